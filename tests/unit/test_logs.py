from __future__ import annotations

import json
import logging

import pytest

from shared.logs import configure_logging, get_logger, mask_text, mask_value
from shared.settings import LogFormat


@pytest.mark.parametrize(
    "personal",
    ["13812345678", "+86 138 1234 5678", "110105199003071234", "11010519900307123X", "zhang.san@example.cn"],
)
def test_personal_data_in_free_text_is_masked(personal: str) -> None:
    masked = mask_text(f"customer said: {personal}, please call")
    assert personal not in masked
    assert masked.startswith("customer said: ")


def test_ordinary_identifiers_and_amounts_are_left_alone() -> None:
    text = "customer C0001 moved 18250.40 CNY at branch BR-SH-001, event evt-42"
    assert mask_text(text) == text


def test_personal_fields_are_masked_whatever_their_value() -> None:
    assert mask_value("name", "Li Lei") == "***"
    assert mask_value("profile", {"phone": "x", "tier": "vip"}) == {"phone": "***", "tier": "vip"}


def test_log_lines_carry_no_personal_data(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test", "INFO", LogFormat.JSON)
    get_logger("t").info(
        "profile updated", name="Wang Fang", note="reach me on 13912345678", customer_id="C9"
    )
    logging.getLogger("uvicorn.access").info("GET /x?phone=%s", "13912345678")
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    text = json.dumps(lines)
    assert "Wang Fang" not in text
    assert "13912345678" not in text
    assert lines[0]["customer_id"] == "C9"
    assert lines[0]["service"] == "test"
