"""The console's pure parts: sessions and their expiry, languages and formats, charts."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.console import outreach_reasons
from services.console.charts import Series, heat_map, stacked_bars, stacked_columns
from services.console.i18n import TEXTS, Formatter, negotiate
from services.console.sessions import Expiry, Identity, SessionStore
from services.engagement.domain.guardrails import Contact, consented_channel, label_allowed_channels
from services.engagement.domain.holdouts import HeldOut, held_out_reason, hold_reason
from services.engagement.domain.lifecycle import ItemStatus
from services.engagement.domain.planning import OpenItem, plan
from services.engagement.domain.playbook import (
    Action,
    ActionKind,
    Category,
    ContactChannel,
    Holdout,
    LabelSuppression,
    Priority,
)
from services.feedback.domain.effects import Conclusion
from services.feedback.domain.events import Arm
from services.scoring.domain.evaluation import derive
from services.scoring.domain.features import Features
from services.scoring.domain.policy import LabelDimension, Op, default_policy
from shared.contracts.outbound import (
    ChangeDirection,
    ComplaintSeverity,
    ComplaintStatus,
    NpsCategory,
    OutreachOutcome,
    SurveyKind,
)
from shared.contracts.types import Channel, Segment, Stage, Tier
from tests.unit.engagement.test_guardrails_and_planning import NOON, PLAYBOOK, change
from tests.unit.engagement.test_households import contact_of, decided, member, the_call

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
ADMIN = Identity(key_id="ab12cd34", roles=frozenset({"admin"}), rm_id=None, branches=None)


def store() -> SessionStore:
    return SessionStore(Expiry(idle=timedelta(minutes=30), absolute=timedelta(hours=8)))


def test_a_session_ends_after_its_idle_time_without_requests() -> None:
    sessions = store()
    opened = sessions.open("secret-key", ADMIN, T0)
    assert sessions.touch(opened.session_id, T0 + timedelta(minutes=29)) is not None
    assert sessions.touch(opened.session_id, T0 + timedelta(minutes=60)) is None
    # Gone for good: the same cookie does not come back to life.
    assert sessions.touch(opened.session_id, T0 + timedelta(minutes=61)) is None


def test_a_busy_session_still_ends_at_its_absolute_expiry() -> None:
    sessions = store()
    opened = sessions.open("secret-key", ADMIN, T0)
    moment = T0
    while moment < T0 + timedelta(hours=8):
        assert sessions.touch(opened.session_id, moment) is not None
        moment += timedelta(minutes=20)
    assert sessions.touch(opened.session_id, T0 + timedelta(hours=8, minutes=1)) is None


def test_signing_out_closes_the_session_and_the_key_never_shows_in_its_repr() -> None:
    sessions = store()
    opened = sessions.open("secret-key", ADMIN, T0)
    assert "secret-key" not in repr(opened)
    sessions.close(opened.session_id)
    assert sessions.touch(opened.session_id, T0) is None


def test_the_csrf_token_matches_only_itself() -> None:
    opened = store().open("secret-key", ADMIN, T0)
    assert opened.csrf_matches(opened.csrf_token)
    assert not opened.csrf_matches(None)
    assert not opened.csrf_matches("")
    assert not opened.csrf_matches(store().open("secret-key", ADMIN, T0).csrf_token)


def test_identity_reads_the_services_answer_to_who_am_i() -> None:
    rm = Identity.from_me(
        {"key_id": "ab12cd34", "roles": ["rm"], "rm_id": "BR014-RM1", "branches": ["BR014"]}
    )
    assert rm.is_rm
    assert not rm.reads_operations
    assert rm.branches == ("BR014",)
    assert Identity.from_me(
        {"key_id": "x", "roles": ["ops"], "rm_id": None, "branches": None}
    ).reads_operations


def test_the_language_is_the_choice_made_else_the_browsers() -> None:
    assert negotiate("zh-CN,zh;q=0.9,en;q=0.8", None) == "zh-CN"
    assert negotiate("zh-TW", None) == "zh-CN"
    assert negotiate("en-GB,en;q=0.9", None) == "en"
    assert negotiate("fr-FR", None) == "en"
    assert negotiate("zh-CN", "en") == "en"
    assert negotiate("en", "klingon") == "en"


def test_numbers_and_money_are_formatted_for_the_language() -> None:
    english, chinese = Formatter("en", "CNY"), Formatter("zh-CN", "CNY")
    assert english.number(1234567) == "1,234,567"
    assert english.money("20463.39") == "CN¥20,463.39"
    assert chinese.money("20463.39") == "¥20,463.39"
    assert chinese.label("tier", "private") == "私人银行"
    assert english.label("tier", "unheard-of") == "unheard-of"
    assert english.number(None) == chinese.money(None)


def test_every_text_has_both_languages() -> None:
    for key, (english, chinese) in TEXTS.items():
        assert english.strip(), key
        assert chinese.strip(), key


def test_a_reason_is_worded_in_the_pages_language_from_its_conditions() -> None:
    reason: dict[str, Any] = {
        "rule": "tier.wealth",
        "detail": "aum_avg_30d 620000 >= 500000; nps_category promoter = promoter",
        "conditions": [
            {"feature": "aum_avg_30d", "operator": "gte", "value": "620000", "threshold": "500000"},
            {"feature": "nps_category", "operator": "eq", "value": "promoter", "threshold": "promoter"},
        ],
    }
    english, chinese = Formatter("en", "CNY"), Formatter("zh-CN", "CNY")
    assert chinese.rule("tier.wealth") == "财富"
    assert (
        chinese.reason(reason)
        == "近30日日均资产 ¥620,000.00（不低于 ¥500,000.00）；NPS 类别 推荐者（等于 推荐者）"
    )
    assert english.reason(reason).startswith("average AUM (30 days) CN¥620,000.00 (at least CN¥500,000.00)")


def test_reasons_without_conditions_are_worded_too_and_old_ones_keep_their_words() -> None:
    chinese = Formatter("zh-CN", "CNY")
    catch_all = {"rule": "tier.mass", "detail": "no other rule matched", "conditions": []}
    hold = {"rule": "hysteresis.hold", "detail": "below the vip gate since 2026-10-01 but within 10%"}
    left = {"rule": "label.digital_first", "detail": "left: its conditions no longer hold"}
    recorded_before_conditions = {"rule": "tier.vip", "detail": "aum_avg_30d 60000 >= 50000"}
    assert chinese.reason(catch_all) == "未满足其他规则"
    assert chinese.rule(hold["rule"]) == "降级宽限"
    assert "宽限期" in chinese.reason(hold)
    assert chinese.rule(left["rule"]) == "数字化优先"
    assert chinese.reason(left) == "条件不再满足，标签已移除"
    assert chinese.reason(recorded_before_conditions) == "aum_avg_30d 60000 >= 50000"


def test_an_outreach_items_planned_reason_names_tiers_stages_and_labels_in_the_language() -> None:
    chinese = Formatter("zh-CN", "CNY")
    planned = "win-back: vip/at_risk -> vip/churned (entered digital_first, left high_loyalty)"
    assert chinese.outreach_reason(planned) == (
        "win-back: 贵宾/流失风险 → 贵宾/已流失 (新增数字化优先；移除高忠诚度)"
    )
    assert chinese.outreach_reason("welcome: new/new -> mass/new") == "welcome: （新客户）/新客 → 大众/新客"


def _reasons_engagement_writes() -> list[str]:
    """The reasons on the items engagement's own planning makes, one situation each, and the
    guardrails', holdouts' and households' sentences from the functions that write them."""
    upgrade = change(previous_tier="mass", tier="vip", direction="upgrade")
    churned = change(
        previous_tier="vip", tier="vip", previous_stage="at_risk", stage="churned", direction="stage"
    )
    open_call = OpenItem("i1", "top-tier-retention", "rm_call", Category.RETENTION, Tier.VIP, Stage.CORE)
    marketing = [Contact(Category.MARKETING, ContactChannel.APP, NOON - timedelta(days=2))] * 2
    plans = [
        plan(upgrade, [], marketing, PLAYBOOK, NOON),  # a frequency cap
        plan(replace(upgrade, complaints_open_high=1), [], [], PLAYBOOK, NOON),
        plan(replace(churned, profile={**churned.profile, "risk_profile": "C5"}), [], [], PLAYBOOK, NOON),
        plan(replace(churned, profile={**churned.profile, "risk_profile": None}), [], [], PLAYBOOK, NOON),
        plan(change(event_id="chg-3"), [open_call], [], PLAYBOOK, NOON),  # an open item of the kind
        plan(change(stage="at_risk"), [], [], PLAYBOOK, NOON),  # two calls for one change
    ]
    contact = the_call(decided(member("M1"), []))
    household = [contact, the_call(decided(member("M2"), [contact_of(contact)]))]
    offer = Action(
        kind=ActionKind.OFFER, category=Category.MARKETING, channels=[ContactChannel.APP, ContactChannel.SMS],
        template="fund-offer", product="balanced-fund", min_risk="C3",
    )  # fmt: skip
    refusals = [
        consented_channel([ContactChannel.PHONE, ContactChannel.APP], {"phone": False, "app": False})[1],
        label_allowed_channels(
            offer, {"branch_reliant"},
            [LabelSuppression(label="branch_reliant", category=Category.MARKETING, channels=offer.channels)],
        )[1],
    ]  # fmt: skip
    return [
        *(item.reason for planned in plans for item in planned.items),
        *(item.reason for item in household),
        *(f"guardrail: {refusal}" for refusal in refusals),
        held_out_reason(Holdout(experiment="vip-welcome-2026", share=Decimal("0.1"))),
        hold_reason(HeldOut(kind="rm_call", experiment="vip-welcome-2026", until=T0)),
    ]


def test_every_reason_engagement_writes_on_an_item_is_worded_in_the_language() -> None:
    chinese, english = Formatter("zh-CN", "CNY"), Formatter("en-US", "CNY")
    raw_values = {kind.value for kind in ActionKind} | {channel.value for channel in ContactChannel}
    raw_values |= {category.value for category in Category} | {"branch_reliant"}
    reasons = _reasons_engagement_writes()
    # Every kind of sentence engagement writes is among them.
    matched = {known[0] for known in map(outreach_reasons.match, reasons) if known is not None}
    assert matched == {pattern.key for pattern in outreach_reasons.PATTERNS}
    for reason in reasons:
        worded = chinese.outreach_reason(reason)
        assert worded != reason
        # Whole words only: a rule's or an experiment's name (`top-tier-retention`) is the bank's own.
        assert set(re.findall(r"(?<![\w-])[a-z]+(?:_[a-z]+)*(?![\w-])", worded)) & raw_values == set(), worded
        assert english.outreach_reason(reason) != worded
    held = chinese.outreach_reason(hold_reason(HeldOut(kind="rm_call", experiment="x", until=T0)))
    assert "客户经理致电" in held
    assert chinese.when(T0) in held


def test_a_reason_the_console_cannot_word_is_shown_as_engagement_wrote_it() -> None:
    chinese = Formatter("zh-CN", "CNY")
    not_a_time = "holdout: held out of rm_call by experiment x until soon, whatever rule triggers it"
    assert chinese.outreach_reason(not_a_time) == not_a_time
    nested = "welcome: new/new -> mass/new" + " (household H1 contact)" * 300
    assert chinese.outreach_reason(nested) == nested
    assert chinese.outreach_reason("held out by vip-welcome-holdout") == "held out by vip-welcome-holdout"


def test_every_value_the_services_send_has_chinese_words() -> None:
    chinese = Formatter("zh-CN", "CNY")
    named = {
        "tier": Tier, "stage": Stage, "direction": ChangeDirection, "status": ItemStatus,
        "action": ActionKind, "priority": Priority, "outcome": OutreachOutcome, "kind": SurveyKind,
        "severity": ComplaintSeverity, "channel": Channel, "segment": Segment, "dimension": LabelDimension,
        "nps_category": NpsCategory, "conclusion": Conclusion, "arm": Arm,
    }  # fmt: skip
    values = [(prefix, member.value) for prefix, enum in named.items() for member in enum]
    values += [("status", status.value) for status in ComplaintStatus]
    values += [("channel", channel.value) for channel in ContactChannel]
    values += [("category", category.value) for category in Category]
    values += [("feature", name) for name in derive(Features(), datetime(2026, 1, 1, tzinfo=UTC))]
    values += [("label", label.name) for label in default_policy().labels]
    values += [("op", op.value) for op in Op]
    untranslated = [(prefix, value) for prefix, value in values if f"{prefix}.{value}" not in TEXTS]
    assert untranslated == []
    assert chinese.label("tier", "unknown") == "未知"


def test_a_heat_map_labels_rows_and_columns_and_escapes_every_text() -> None:
    rows = [("a", "<script>"), ("b", "B")]
    svg = str(
        heat_map("moves", rows, [("a", "A"), ("b", "B")], {("a", "b"): 7, ("b", "b"): 70}, "from", "to")
    )
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert re.findall(r'class="heat-(\d)"', svg) == ["0", "1", "0", "5"]
    assert ">70<" in svg
    assert ">from<" in svg
    assert ">to<" in svg


def test_column_and_bar_charts_have_axes_with_units_and_a_legend() -> None:
    series = [Series("upgrade", "up"), Series("downgrade", "down")]
    columns = str(stacked_columns("changes", ["Oct 1", "Oct 2"], series, [{"upgrade": 3}, {}], "changes"))
    assert columns.count('class="axis"') == 2
    assert ">changes<" in columns
    assert ">up<" in columns
    assert ">down<" in columns
    assert ">5<" in columns  # the y axis rounds 3 up to a readable 5
    ten = str(stacked_columns("changes", ["Oct 1"], series, [{"upgrade": 8}], "changes"))
    ticks = re.findall(r'class="tick end"[^>]*>([^<]+)<', ten)
    assert ticks == ["0", "2", "4", "6", "8", "10"]  # whole counts only, no 2.5 shown as 2
    coloured = str(stacked_columns("c", ["Oct 1"], [Series("downgrade", "down", 5)], [{"downgrade": 1}], "c"))
    assert coloured.count('class="series-5"') == 2  # the column and its legend keep the colour given
    bars = str(
        stacked_bars("tiers", [("vip", "VIP")], series, {"vip": {"upgrade": 40, "downgrade": 2}}, "customers")
    )
    assert ">42<" in bars
    assert ">customers<" in bars
