"""Which database failures a consumer retries and which it dead-letters."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.db import is_data_error, is_transient, is_unreachable, refusal


class DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


def failure(sqlstate: str) -> DBAPIError:
    return DBAPIError("UPDATE scoring.customers ...", None, DriverError(sqlstate))


@pytest.mark.parametrize(
    "sqlstate",
    ["57P01", "57P03", "08006", "40001", "40P01", "53300", "55P03", "25006"],
    ids=["admin shutdown", "starting or shutting down", "connection failure", "serialization",
         "deadlock", "too many connections", "lock not available", "read-only standby"],
)  # fmt: skip
def test_a_database_restarting_or_busy_is_retried_not_dead_lettered(sqlstate: str) -> None:
    assert is_transient(failure(sqlstate))


@pytest.mark.parametrize("sqlstate", ["23505", "22021", "42703", "22P02"])
def test_refusals_of_the_data_itself_are_final(sqlstate: str) -> None:
    assert not is_transient(failure(sqlstate))


def test_a_lost_connection_is_transient_whatever_its_code() -> None:
    assert is_transient(OperationalError("SELECT 1", None, DriverError("XX000")))
    assert is_transient(DBAPIError("SELECT 1", None, DriverError("XX000"), connection_invalidated=True))


def test_only_class_22_is_the_clients_bad_data() -> None:
    assert is_data_error(failure("22021"))
    assert not is_data_error(failure("23505"))


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        PoolTimeout("QueuePool limit of size 5 overflow 5 reached, connection timed out"),
        failure("25006"),
        failure("57P01"),
    ],
    ids=["refused", "timed out", "pool exhausted", "read-only standby", "admin shutdown"],
)
def test_a_database_out_of_reach_for_now_is_waited_for(error: BaseException) -> None:
    assert is_unreachable(error)


@pytest.mark.parametrize(
    "error", [failure("23505"), failure("22021"), KeyError("tier"), ValueError("bad amount")]
)
def test_anything_else_is_not_an_outage(error: BaseException) -> None:
    assert not is_unreachable(error)


def test_a_refusal_names_the_code_and_constraint_but_not_the_values_of_the_row() -> None:
    server = asyncpg.exceptions.CheckViolationError.new(
        {
            "M": 'new row for relation "surveys" violates check constraint "surveys_comment_check"',
            "D": "Failing row contains (C1, jane@example.com, 13800138000).",
            "n": "surveys_comment_check",
            "C": "23514",
        }
    )
    driver = DriverError("23514")
    driver.__cause__ = server
    said = refusal(DBAPIError("INSERT INTO feedback.surveys ...", None, driver))
    expected = "new row for relation … violates check constraint …"
    assert said == f"SQLSTATE 23514 (constraint surveys_comment_check): {expected}"
    assert "jane" not in said
    assert "13800138000" not in said
