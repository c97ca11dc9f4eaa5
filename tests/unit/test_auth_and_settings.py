from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from shared.auth import ApiKeyError, Principal, Role, parse_api_keys
from shared.settings import Settings
from tests.infra import patched_environ


def principal(key: str, *roles: Role) -> Principal:
    """Who `key` is: audit trails name it by the start of its SHA-256, never by the key."""
    return Principal(key_id=hashlib.sha256(key.encode()).hexdigest()[:8], roles=frozenset(roles))


def test_contract_key_syntax_gives_each_key_its_roles() -> None:
    keyring = parse_api_keys("k1=admin;k2=ingest;k3=ops,rm")
    ops_rm, ingest = principal("k3", Role.OPS, Role.RM), principal("k2", Role.INGEST)
    assert keyring.authenticate("k3") == ops_rm
    assert ops_rm.may(Role.RM)
    assert not ops_rm.may(Role.INGEST)
    assert keyring.authenticate("k2") == ingest
    assert not ingest.may(Role.OPS)


def test_admin_may_do_everything() -> None:
    admin = principal("k1", Role.ADMIN)
    assert parse_api_keys("k1=admin").authenticate("k1") == admin
    assert all(admin.may(role) for role in Role)


def test_unknown_keys_do_not_authenticate() -> None:
    assert parse_api_keys("k1=admin").authenticate("k2") is None
    assert parse_api_keys("").authenticate("") is None


@pytest.mark.parametrize("raw", ["k1=root", "k1=", "=admin", "k1"])
def test_malformed_key_lists_are_refused_clearly(raw: str) -> None:
    with pytest.raises(ApiKeyError, match="entry 1"):
        parse_api_keys(raw)


def test_the_key_itself_is_not_kept_in_the_principal() -> None:
    found = parse_api_keys("very-secret-key=ops").authenticate("very-secret-key")
    assert found == principal("very-secret-key", Role.OPS)
    assert "very-secret-key" not in repr(found)


def test_settings_read_the_contract_environment_names() -> None:
    env = {
        "DATABASE_URL": "postgresql+asyncpg://u:p@db:5432/tf",
        "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
        "TIERFLOW_INGEST_PORT": "9001",
        "TIERFLOW_API_KEYS": "abc=ingest",
        "TIERFLOW_BASE_CURRENCY": "HKD",
        "TIERFLOW_FX_RATES": '{"USD": "7.80", "CNY": "1.08"}',
    }
    with patched_environ(env):
        settings = Settings()
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.database_url.get_secret_value().endswith("@db:5432/tf")
    assert settings.port_of("ingest") == 9001
    assert settings.api_keys.authenticate("abc") == principal("abc", Role.INGEST)
    assert settings.fx_rates["USD"] == Decimal("7.80")
    assert settings.accepts_currency("USD")
    assert not settings.accepts_currency("EUR")


def test_the_database_password_is_not_shown_in_settings_repr() -> None:
    with patched_environ({"DATABASE_URL": "postgresql+asyncpg://u:hunter2@db/tf"}):
        assert "hunter2" not in repr(Settings())


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("TIERFLOW_FX_RATES", '{"usd": "7"}', "fx_rates key 'usd' is not an ISO 4217 currency code"),
        ("TIERFLOW_FX_RATES", '{"USD": "-1"}', r"fx_rates\[USD\] must be a positive decimal"),
        ("TIERFLOW_BASE_CURRENCY", "yuan", r"base_currency\s+String should match pattern"),
    ],
)
def test_bad_settings_fail_at_start_up(name: str, value: str, reason: str) -> None:
    with patched_environ({name: value}), pytest.raises(ValidationError, match=reason):
        Settings()


def test_the_fixed_clock_needs_its_instant_with_an_offset() -> None:
    with patched_environ({"TIERFLOW_SCORING_CLOCK": "fixed"}), pytest.raises(ValidationError, match="AS_OF"):
        Settings()
    naive = {"TIERFLOW_SCORING_CLOCK": "fixed", "TIERFLOW_SCORING_AS_OF": "2026-01-01T00:00:00"}
    with patched_environ(naive), pytest.raises(ValidationError, match="timezone"):
        Settings()
    with patched_environ({**naive, "TIERFLOW_SCORING_AS_OF": "2026-01-01T00:00:00+08:00"}):
        assert Settings().scoring_as_of == datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=8)))


def test_loops_are_a_comma_separated_choice_and_unknown_names_are_refused() -> None:
    from fastapi import FastAPI

    from shared.worker_app import Resources, worker_app

    with patched_environ({"TIERFLOW_LOOPS": " consumer, review ,"}):
        settings = Settings()
    assert settings.loops == {"consumer", "review"}
    with patched_environ({"TIERFLOW_LOOPS": "relay"}):
        resources = Resources.create(Settings())

    async def idle(_stop: object) -> None:
        return None

    with pytest.raises(ValueError, match="no loop named relay; it has consumer, outbox-relay"):
        worker_app(
            "feedback", resources, loops={"consumer": idle, "outbox-relay": idle}, routers=[], description=""
        )
    assert isinstance(worker_app("feedback", Resources.create(settings), loops={"consumer": idle},
                                 routers=[], description=""), FastAPI)  # fmt: skip


def test_a_key_bound_to_an_rm_acts_as_that_rm_and_sees_its_branch() -> None:
    bound = parse_api_keys("k4=rm:BR014-RM1@BR014").authenticate("k4")
    assert bound is not None
    assert (bound.roles, bound.rm_id, bound.branches) == (
        frozenset({Role.RM}),
        "BR014-RM1",
        frozenset({"BR014"}),
    )
    assert [bound.sees(branch) for branch in ("BR014", "BR015", None)] == [True, False, False]
    assert bound.branch_scope(None) == frozenset({"BR014"})
    assert bound.branch_scope("BR015") == frozenset()


def test_an_ops_key_scoped_to_branches_sees_those_and_a_plain_one_the_bank() -> None:
    keyring = parse_api_keys("k5=ops@BR014+BR015; k6=ops")
    scoped, bank = keyring.authenticate("k5"), keyring.authenticate("k6")
    assert scoped is not None
    assert bank is not None
    assert (scoped.roles, scoped.rm_id, scoped.branches) == (
        frozenset({Role.OPS}),
        None,
        frozenset({"BR014", "BR015"}),
    )
    assert scoped.branch_scope("BR015") == frozenset({"BR015"})
    assert (bank.branches, bank.branch_scope(None), bank.branch_scope("B9")) == (
        None,
        None,
        frozenset({"B9"}),
    )
    assert [bank.sees(branch) for branch in ("anything", None)] == [True, True]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("k1=rm:BR014-RM1", "entry 1: a bound RM key must look like KEY=rm:RM_ID@BRANCH"),
        ("k1=rm:@BR014", "entry 1: a bound RM key must look like KEY=rm:RM_ID@BRANCH"),
        ("k1=rm:RM1@", "entry 1: a bound RM key must look like KEY=rm:RM_ID@BRANCH"),
        ("k1=rm:RM1@B1+B2", "entry 1: an RM belongs to one branch"),
        ("k1=admin;k2=rm:RM 1@B1", "entry 2: RM id 'RM 1' must be"),
        ("k1=ops@", "entry 1: branch id '' must be"),
        ("k1=ops@BR014+", "entry 1: branch id '' must be"),
        ("k1=ops@BR014+-x", "entry 1: branch id '-x' must be"),
        ("k1=ingest@BR014", "entry 1: only an ops key takes branches"),
        ("k1=ops,rm@BR014", "entry 1: only an ops key takes branches"),
        ("k1=root", "entry 1: unknown role 'root'"),
        ("k1=ops;k1=admin", "entry 2 repeats a key"),
    ],
)
def test_malformed_bound_keys_are_refused_naming_the_entry_and_the_fault(raw: str, message: str) -> None:
    with pytest.raises(ApiKeyError, match=re.escape(message)):
        parse_api_keys(raw)


def test_the_guarding_settings_have_typed_defaults_and_bounds() -> None:
    with patched_environ({}):
        settings = Settings()
    assert (settings.ingest_key_rate_per_s, settings.ingest_key_burst) == (200.0, 400)
    assert (settings.auth_failure_limit, settings.auth_failure_window_s, settings.readiness_cache_s) == (
        100,
        60.0,
        1.0,
    )
    with patched_environ({"TIERFLOW_INGEST_KEY_RATE_PER_S": "0"}), pytest.raises(ValidationError):
        Settings()
