"""JSON structured logging with personal data masked before anything is written."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from functools import partial
from typing import Any

import structlog

from shared.settings import LogFormat

# Keys whose values are personal data whatever they look like.
PERSONAL_KEYS = frozenset(
    {
        "name", "full_name", "first_name", "last_name", "customer_name",
        "phone", "phone_number", "mobile", "email", "id_number", "id_no", "national_id",
        "passport", "address", "comment", "authorization", "api_key", "password",
    }
)  # fmt: skip

# Values that look like personal data wherever they appear in free text.
_PATTERNS = [
    # PRC resident ID numbers (18 characters, last may be X) and other long digit runs.
    (re.compile(r"(?<![0-9A-Za-z])\d{6}(?:19|20)\d{2}\d{7}[\dXx](?![0-9A-Za-z])"), "ID"),
    # Mobile and landline numbers, with an optional +86/+852 style country code.
    (re.compile(r"(?<![\w+])(?:\+\d{1,3}[ -]?)?1[3-9]\d{9}(?!\d)"), "PHONE"),
    (re.compile(r"(?<![\w+])\+\d{1,3}[ -]?\d{3,4}[ -]?\d{3,4}[ -]?\d{3,4}(?!\d)"), "PHONE"),
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "EMAIL"),
    (re.compile(r"(?i)bearer\s+\S+"), "BEARER"),
]


def mask_text(text: str) -> str:
    """Replace anything shaped like an ID number, phone number, e-mail or bearer token."""
    for pattern, label in _PATTERNS:
        text = pattern.sub(partial(_mask_match, label=label), text)
    return text


def _mask_match(match: re.Match[str], label: str) -> str:
    value = match.group(0)
    if label == "BEARER":
        return "Bearer ***"
    if label == "EMAIL":
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    digits = value[-4:] if len(value) > 8 else ""
    return f"***{label}***{digits}"


def mask_value(key: str, value: Any) -> Any:
    if key.lower() in PERSONAL_KEYS and value is not None:
        return "***"
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(key, v) for v in value]
    return value


def mask_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the last word on what reaches a log line."""
    return {key: mask_value(key, value) for key, value in event_dict.items()}


def configure_logging(service: str, level: str = "INFO", fmt: LogFormat = LogFormat.JSON) -> None:
    """Send structlog and stdlib records (uvicorn, aiokafka, sqlalchemy) through one masked renderer."""
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt is LogFormat.JSON
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _add_service(service),
            mask_personal_data,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))


def _add_service(service: str) -> Any:
    def processor(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    return processor


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
