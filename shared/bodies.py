"""Reading request bodies the cheap and safe way: bounded size, known media types, exact numbers."""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Callable, Collection
from itertools import accumulate
from typing import TypeVar

import yaml
from fastapi import Request
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from shared.batches import BatchRefused, BatchRejected
from shared.contracts.envelope import decode_json, field_errors
from shared.http import ApiError
from shared.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")
JSON_MEDIA_TYPES = frozenset(
    {"application/json", "application/cloudevents+json", "application/cloudevents-batch+json"}
)
# How deep arrays and objects may nest in a JSON body. A batch of events nests at most six
# deep (array, envelope, data, a breakdown or consents, ...); deeper nesting is what makes
# decoded JSON cost most per byte (a list in every two bytes), so it is refused before decoding.
MAX_JSON_DEPTH = 16
_OPEN_AND_CLOSE = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_A_BRACKET_OR_QUOTE = bytes(sorted(set(range(256)) - set(b'[]{}"')))


def check_media_type(request: Request, allowed: Collection[str] = JSON_MEDIA_TYPES) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in allowed:
        shown = media_type or "none"
        raise ApiError(415, f"content type {shown!r} is not accepted; send one of {sorted(allowed)}")


async def read_bounded(
    request: Request,
    limit: int,
    *,
    on_received: Callable[[int], None] | None = None,
    timeout_s: float | None = None,
) -> bytes:
    """The body, refusing with 413 as soon as it is known to exceed `limit` bytes, and with 408
    when it has not all arrived within `timeout_s`. `on_received` is told the size of each
    part as it arrives, before it is kept, and may refuse it by raising."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"the body is larger than {limit} bytes")
                if on_received is not None:
                    on_received(len(chunk))
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, f"the body did not arrive within {timeout_s:g} s") from None
    except ClientDisconnect:
        # Nobody is left to answer: a client's choice, not a fault of the service.
        log.info("client disconnected before sending its whole body", received_bytes=size)
        raise ApiError(400, "the client disconnected before sending its whole body") from None
    return b"".join(chunks)


def json_depth(body: bytes) -> int:
    """How deep arrays and objects nest in JSON text, counting brackets outside strings, at the
    cost of a few passes over the bytes in C. Escaped quotes and backslashes go first, then all
    but brackets and quotes; the remaining quotes pair up, and what lies between a pair is
    inside a string. (Bytes of multi-byte UTF-8 characters are never quotes or brackets.)"""
    marks = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_A_BRACKET_OR_QUOTE)
    # Adjacent quotes close a string and open the next, or enclose nothing: no bracket is lost.
    outside_strings = b"".join(marks.replace(b'""', b"").split(b'"')[::2])
    steps = array("b", outside_strings.translate(_OPEN_AND_CLOSE))  # +1 opens, -1 closes
    return max(accumulate(steps), default=0)


async def read_json(
    request: Request,
    limit: int,
    *,
    on_received: Callable[[int], None] | None = None,
    timeout_s: float | None = None,
) -> object:
    """A JSON body of at most `limit` bytes, nested at most MAX_JSON_DEPTH deep, decoded with
    exact numbers; `on_received` and `timeout_s` as for `read_bounded`."""
    check_media_type(request)
    body = await read_bounded(request, limit, on_received=on_received, timeout_s=timeout_s)
    if not body.strip():
        raise ApiError(400, "the body is empty; send a JSON object or array")
    if json_depth(body) > MAX_JSON_DEPTH:
        raise ApiError(400, f"the JSON nests arrays and objects more than {MAX_JSON_DEPTH} deep")
    try:
        return decode_json(body)
    except RecursionError:
        raise ApiError(400, "the JSON is nested too deeply") from None
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8") from None
    except ValueError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None


def refused_batch(exc: BatchRefused, outcome: str) -> ApiError:
    """The answer to a refused batch: 422 locating every problem by index and field, else 413."""
    if isinstance(exc, BatchRejected):
        errors = [{"index": e.index, "field": e.field, "message": e.message} for e in exc.errors]
        problems = "1 problem" if exc.total == 1 else f"{exc.total} problems"
        return ApiError(422, f"{problems} found; nothing was {outcome}", errors=errors)
    return ApiError(413, str(exc))


DOCUMENT_MEDIA_TYPES = frozenset({"application/json", "application/yaml", "application/x-yaml", "text/yaml"})


async def read_document(request: Request, load: Callable[[str], T], what: str, limit: int = 256 * 1024) -> T:
    """A YAML or JSON configuration document (a policy, a playbook), validated by `load`."""
    check_media_type(request, DOCUMENT_MEDIA_TYPES)
    body = await read_bounded(request, limit)
    try:
        return load(body.decode())
    except ValidationError as exc:
        errors = [{"field": e.field, "message": e.message} for e in field_errors(exc)]
        raise ApiError(422, f"the {what} is invalid", errors=errors) from None
    except RecursionError:
        raise ApiError(400, f"the {what} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ApiError(400, f"the {what} is not valid JSON or YAML: {exc}") from None
