"""Reading request bodies the cheap and safe way: bounded size, known media types, exact numbers."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar

import yaml
from fastapi import Request
from pydantic import ValidationError

from shared.batches import BatchRefused, BatchRejected
from shared.contracts.envelope import decode_json, field_errors
from shared.http import ApiError

T = TypeVar("T")
JSON_MEDIA_TYPES = frozenset(
    {"application/json", "application/cloudevents+json", "application/cloudevents-batch+json"}
)


def check_media_type(request: Request, allowed: Collection[str] = JSON_MEDIA_TYPES) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in allowed:
        shown = media_type or "none"
        raise ApiError(415, f"content type {shown!r} is not accepted; send one of {sorted(allowed)}")


async def read_bounded(request: Request, limit: int) -> bytes:
    """The body, refusing with 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int) -> object:
    check_media_type(request)
    body = await read_bounded(request, limit)
    if not body.strip():
        raise ApiError(400, "the body is empty; send a JSON object or array")
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
