"""The console in real headless Chromium against the real stack, filled with a simulated bank.

One stack and one browser serve the whole module. Set CONSOLE_SCREENSHOTS_DIR (e.g. to
docs/console) to keep a screenshot of every page as the tests see it.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from rich.console import Console

from services.console.i18n import TEXTS
from shared.contracts.outbound import SURVEY
from tests.e2e.conftest import bearer, get_json
from tests.infra import (
    ADMIN_KEY,
    API_KEYS,
    Infra,
    ServiceProcess,
    all_services,
    fetch_rows,
    start_service,
    wait_until,
)
from tierflow.demo import Endpoints, simulate_and_summarise
from tierflow.simulate import Bank, branches, customer_id, records
from tierflow.stack import Stopping

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
END = datetime(2026, 11, 1, tzinfo=UTC)
BANK = Bank(160, 30, start=END - timedelta(days=365), branches=3, cohort=160)
RM_ID = branches(BANK)[0].rms[0].rm_id
RM_BRANCH = branches(BANK)[0].branch_id
OTHER_BRANCH = branches(BANK)[1].branch_id
RM_KEY = "console-rm-key-0005"
# Bound as the first branch's first RM.
RM_ENTRY = f"{RM_KEY}=rm:{RM_ID}@{RM_BRANCH}"
WINDOW = f"start={(END - timedelta(days=60)).date()}&end={(END - timedelta(days=1)).date()}"
SHOTS = Path(os.environ["CONSOLE_SCREENSHOTS_DIR"]) if os.environ.get("CONSOLE_SCREENSHOTS_DIR") else None

if not Path(CHROMIUM).exists():
    pytest.skip(
        "browser tests need Chromium: install the `chromium` package (apt-get install chromium)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="install the dev extras: pip install -e '.[dev]'"
)


# Enum values the services send, which a zh page must show in words (whole words only).
ENUM_VALUES = re.compile(
    r"\b(unknown|queued|assigned|in_progress|completed|cancelled|expired|held_out|resolved|"
    r"low|medium|high|critical|normal|reached|not_reached|converted|declined|upgrade|downgrade|"
    r"assign_rm|rm_call|app_push|branch_invitation|offer|return_visit_call|digital_coaching|"
    r"needs|behaviour|loyalty|promoter|passive|detractor|individual|corporate|institution|"
    r"mobile|online|branch|phone|review|override|treated|gte|lte)\b"
)


def untranslated(page: Any) -> set[str]:
    return set(ENUM_VALUES.findall(page.inner_text("main")))


@dataclass
class Stack:
    services: dict[str, ServiceProcess]
    console: str
    database_url: str

    def api(self, service: str, path: str, key: str = ADMIN_KEY, **params: str) -> Any:
        return get_json(f"{self.services[service].base_url}{path}", key, **params)


@pytest.fixture(scope="module")
def stack(infra: Infra) -> Iterator[Stack]:
    keys = f"{API_KEYS};{RM_ENTRY}"
    with all_services(
        infra, "console_ui", TIERFLOW_SCORING_CLOCK="event", TIERFLOW_API_KEYS=keys
    ) as services:
        endpoints = Endpoints({name: s.base_url for name, s in services.items()}, ADMIN_KEY)
        quiet = Console(file=io.StringIO(), width=120)
        simulate_and_summarise(quiet, endpoints, BANK, 0, Stopping())
        urls = {f"TIERFLOW_{name.upper()}_URL": s.base_url for name, s in services.items()}
        console = start_service(infra, "console", TIERFLOW_API_KEYS=keys, **urls)
        try:
            yield Stack(services, console.base_url, services["scoring"].env["DATABASE_URL"])
        finally:
            console.stop()


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Any]:
    # After the stack: its set-up runs event loops of its own, which the browser's driver's
    # running loop would refuse when a test that needs both is run alone.
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def signed_in(browser: Any, stack: Stack, key: str, language: str = "en-US") -> Any:
    context = browser.new_context(locale=language, viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.goto(stack.console + "/")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def shot(page: Any, name: str) -> None:
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def numbers(text: str) -> int:
    return int(re.sub(r"\D", "", text))


def test_signed_out_visitors_are_sent_to_sign_in_and_cross_site_posts_are_refused(stack: Stack) -> None:
    with httpx.Client(base_url=stack.console, timeout=30) as anonymous:
        for path in ("/customers", "/queue", "/policies", "/reports", f"/customers/{customer_id(0)}"):
            response = anonymous.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"] == "/"
        signin = anonymous.get("/")
        assert 'name="api_key"' in signin.text
        csp = signin.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        # Sign-in itself needs the token from the form: a forged cross-site sign-in is refused.
        assert anonymous.post("/signin", data={"api_key": ADMIN_KEY, "csrf_token": "x"}).status_code == 403
        token = re.search(r'name="csrf_token" value="([^"]+)"', signin.text)
        assert token is not None
        signed = anonymous.post("/signin", data={"api_key": ADMIN_KEY, "csrf_token": token.group(1)})
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert ADMIN_KEY not in cookie
        # A state-changing form without this session's token does nothing.
        before = stack.api("scoring", f"/v1/customers/{customer_id(0)}")
        refused = anonymous.post(
            f"/customers/{customer_id(0)}/override",
            data={"tier": "private", "reason": "forged", "expires_on": "2030-01-01"},
        )
        assert refused.status_code == 403
        assert stack.api("scoring", f"/v1/customers/{customer_id(0)}")["override"] == before["override"]
        assert ADMIN_KEY not in anonymous.get("/").text


def test_the_overview_shows_the_apis_numbers_in_both_languages(browser: Any, stack: Stack) -> None:
    distribution = stack.api("scoring", "/v1/tiers/distribution")
    for language, name in (("en-US", "overview-en"), ("zh-CN", "overview-zh")):
        page = signed_in(browser, stack, ADMIN_KEY, language)
        page.goto(f"{stack.console}/?{WINDOW}")
        assert numbers(page.inner_text("#total-customers")) == distribution["total"]
        for tier, count in distribution["by_tier"].items():
            assert page.get_attribute(f'tr[data-tier="{tier}"] td[data-total]', "data-total") == str(count)
        assert page.locator("#migrations svg rect").count() >= 16
        assert page.locator("#changes svg rect").count() > 0
        assert page.get_attribute("html", "lang") == ("zh-CN" if language == "zh-CN" else "en")
        if language == "zh-CN":
            assert "客户分布" in page.inner_text("#distribution h2")
            assert untranslated(page) == set()
        assert ADMIN_KEY not in page.content()
        shot(page, name)
        page.context.close()


def test_a_customer_page_shows_the_apis_reasons_and_an_override_set_there_is_in_the_api(
    browser: Any, stack: Stack
) -> None:
    customer = (
        stack.api("scoring", "/v1/customers", limit="1", tier="wealth")["items"]
        or stack.api("scoring", "/v1/customers", limit="1")["items"]
    )
    customer_id = customer[0]["customer_id"]
    view = stack.api("scoring", f"/v1/customers/{customer_id}")
    for language, name in (("zh-CN", "customer-zh"), ("en-US", "customer-en")):
        page = signed_in(browser, stack, ADMIN_KEY, language)
        page.goto(f"{stack.console}/customers/{customer_id}")
        shown = page.inner_text("#reasons")
        words = 1 if language == "zh-CN" else 0
        for reason in view["reasons"]:
            assert page.locator(f'#reasons [data-rule="{reason["rule"]}"]').count() == 1
            for condition in reason["conditions"]:
                assert TEXTS[f"feature.{condition['feature']}"][words] in shown
                assert TEXTS[f"op.{condition['operator']}"][words] in shown
        assert any(reason["conditions"] for reason in view["reasons"])
        if language == "zh-CN":
            assert untranslated(page) == set()
        shot(page, name)
    page.select_option("#override select[name=tier]", "private")
    page.fill("#override input[name=reason]", "retention offer agreed with the branch")
    page.click("#set-override")
    page.wait_for_load_state()
    override = stack.api("scoring", f"/v1/customers/{customer_id}")["override"]
    assert override["tier"] == "private"
    assert override["reason"] == "retention offer agreed with the branch"
    assert "retention offer" in page.inner_text("#active-override")
    page.click("#clear-override")
    page.wait_for_load_state()
    assert stack.api("scoring", f"/v1/customers/{customer_id}")["override"] is None
    page.goto(f"{stack.console}/customers?tier=mass")
    assert page.locator("#customer-list tbody tr").count() > 0
    shot(page, "customers")
    page.context.close()


def test_a_simulated_policy_renders_its_migration_matrix(browser: Any, stack: Stack) -> None:
    active = next(p for p in stack.api("scoring", "/v1/policies") if p["active"])
    document = stack.api("scoring", f"/v1/policies/{active['version']}")
    document["version"] = "candidate-1"
    page = signed_in(browser, stack, ADMIN_KEY)
    page.goto(f"{stack.console}/policies")
    page.fill("#candidate", yaml.safe_dump(document, sort_keys=False))
    page.click("#run-simulation")
    page.wait_for_load_state()
    matrix = page.inner_text("#simulation")
    assert "candidate-1" in matrix
    assert page.locator("#simulation svg text").count() > 20
    shot(page, "policies-simulation")
    # Stored, it can be compared with the active version and activated after a confirmation.
    stored = httpx.post(
        f"{stack.services['scoring'].base_url}/v1/policies",
        json=document,
        headers=bearer(ADMIN_KEY),
        timeout=30,
    )
    assert stored.status_code == 201, stored.text
    page.goto(f"{stack.console}/policies/compare?older={active['version']}&newer=candidate-1")
    assert "+version: candidate-1" in page.inner_text("pre.diff")
    page.goto(f"{stack.console}/policies/candidate-1")
    page.click("#activate")
    page.wait_for_load_state()
    shot(page, "policy-activate")
    page.click("#confirm-activate")
    page.wait_for_load_state()
    assert next(p for p in stack.api("scoring", "/v1/policies") if p["active"])["version"] == "candidate-1"
    page.context.close()


def test_the_read_apis_the_console_draws_on_agree_with_the_data(stack: Stack) -> None:
    assert stack.api("scoring", "/v1/me") == {
        "key_id": stack.api("engagement", "/v1/me")["key_id"],
        "roles": ["admin"],
        "rm_id": None,
        "branches": None,
    }
    # The simulated RMs' last surveys may still be on their way through feedback and scoring:
    # the counts are compared once the pipeline has settled, as the console would show them.
    span = {"from": BANK.start.isoformat(), "to": (END + timedelta(days=2)).isoformat()}
    surveys = [r for r in records(BANK) if r["type"] == SURVEY]
    surveyed = surveys[0]["data"]["customer_id"]
    answered = {r["data"]["survey_id"] for r in surveys if r["data"]["customer_id"] == surveyed}

    def settled() -> bool:
        # On a thread of its own: the browser's driver keeps an event loop running on this one.
        with ThreadPoolExecutor(1) as thread:
            rows = thread.submit(fetch_rows, stack.database_url, "SELECT count(*) FROM scoring.tier_history")
            recorded = rows.result()[0][0]
        per_day = stack.api("scoring", "/v1/tiers/changes-per-day", **span)
        assert [day["day"] for day in per_day] == sorted(day["day"] for day in per_day)
        feedback = stack.api("feedback", f"/v1/customers/{surveyed}/feedback")
        return sum(sum(day["changes"].values()) for day in per_day) == recorded and answered <= {
            survey["survey_id"] for survey in feedback["surveys"]
        }

    wait_until(settled, 60, "changes per day to add up to the tier history, and the surveys to arrive")
    scoring = stack.api("scoring", "/v1/worker/status")
    assert scoring["service"] == "scoring"
    assert {t["topic"] for t in scoring["topics"]} >= {"console_ui.bank.events.v1"}
    assert all(t["lag"] == 0 for t in scoring["topics"])


def test_every_page_renders_in_both_languages(browser: Any, stack: Stack) -> None:
    for language in ("en-US", "zh-CN"):
        page = signed_in(browser, stack, ADMIN_KEY, language)
        suffix = "zh" if language == "zh-CN" else "en"
        for path, name in (
            ("/customers", "customers"),
            ("/policies", "policies"),
            ("/playbooks", "playbooks"),
            (f"/reports?{WINDOW}", "reports"),
        ):
            response = page.goto(stack.console + path)
            assert response.status == 200, path
            assert page.locator("#language-switch").count() == 1
            if suffix == "zh":
                assert untranslated(page) == set(), path
            if suffix == "en" or name == "reports":
                shot(page, f"{name}-{suffix}" if name == "reports" else name)
        page.click("#language-switch")
        page.wait_for_load_state()
        assert page.get_attribute("html", "lang") == ("en" if language == "zh-CN" else "zh-CN")
        page.context.close()


def test_an_rm_completes_an_item_in_their_queue_and_sees_no_other_branch(browser: Any, stack: Stack) -> None:
    assert stack.api("scoring", "/v1/me", key=RM_KEY)["rm_id"] is not None
    page = signed_in(browser, stack, RM_KEY)
    assert page.url.endswith("/queue")
    items = page.locator("#my-items tbody tr[data-item]")
    if items.count() == 0:
        page.locator("form[action$='/claim'] button").first.click()
        page.wait_for_load_state()
    row = page.locator("#my-items tbody tr[data-item]").first
    item_id = row.get_attribute("data-item")
    if row.locator("button.start").count():
        row.locator("button.start").click()
        page.wait_for_load_state()
    row = page.locator(f'#my-items tr[data-item="{item_id}"]')
    past_sla = page.locator("#my-items tbody tr[data-item] td.warn").count()
    rm_id = stack.api("engagement", "/v1/me", key=RM_KEY)["rm_id"]
    (me,) = [rm for rm in stack.api("engagement", "/v1/rms", key=RM_KEY) if rm["rm_id"] == rm_id]
    overdue = me["overdue_items"]
    assert past_sla == overdue, "the SLA column is judged at engagement's clock, as its overdue count"
    row.locator("select[name=outcome]").select_option("converted")
    row.locator("input[name=note]").fill("opened a deposit")
    shot(page, "queue")
    chinese = signed_in(browser, stack, RM_KEY, "zh-CN")
    assert untranslated(chinese) == set()
    assert chinese.locator(f'#my-items tr[data-item="{item_id}"]').count() == 1
    shot(chinese, "queue-zh")
    chinese.context.close()
    row.locator("form.complete button").click()
    page.wait_for_load_state()
    item = stack.api("engagement", f"/v1/outreach/{item_id}")
    assert item["status"] == "completed"
    assert item["outcome"] == "converted"
    other = stack.api("scoring", "/v1/customers", branch_id=OTHER_BRANCH, limit="1")["items"][0]
    response = page.goto(f"{stack.console}/customers/{other['customer_id']}")
    assert response.status in (403, 404)
    page.context.close()
