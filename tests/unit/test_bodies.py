"""How deep a JSON body nests, found before decoding, and what decoding it costs per byte."""

from __future__ import annotations

import gc
import json
import tracemalloc

import pytest

from shared.bodies import MAX_JSON_DEPTH, json_depth
from shared.contracts.envelope import decode_json
from shared.settings import Settings

BODY_BYTES = 512 * 1024
NON_BMP = "\U0001f600".encode()


def repeated(item: bytes) -> bytes:
    """A top-level array of `item` as many times as fits in BODY_BYTES."""
    return b"[" + b",".join([item] * ((BODY_BYTES - 2) // (len(item) + 1))) + b"]"


def with_non_bmp_text(body: bytes) -> bytes:
    """The same array with one more item, a string of a character outside the BMP: the whole
    decoded text then takes four bytes a character."""
    return body[:-1] + b',"' + NON_BMP + b'"]'


DEEPEST = MAX_JSON_DEPTH - 1  # inside the top-level array
NESTED_LISTS = repeated(b"[" * DEEPEST + b"]" * DEEPEST)
NESTED_OBJECTS = repeated(b'{"":' * (DEEPEST - 1) + b"{}" + b"}" * (DEEPEST - 1))
COSTLY_SHAPES = {
    "nested lists": NESTED_LISTS,
    "nested lists, non-BMP text": with_non_bmp_text(NESTED_LISTS),
    "nested objects": NESTED_OBJECTS,
    "nested objects, non-BMP text": with_non_bmp_text(NESTED_OBJECTS),
    "empty lists": repeated(b"[]"),
    "empty objects": repeated(b"{}"),
    "lists of one list": repeated(b"[[]]"),
    "lists of one object": repeated(b"[{}]"),
    "zeros": repeated(b"0"),
    "empty strings": repeated(b'""'),
    "decimals": repeated(b"1e1"),
    "lists of a decimal": repeated(b"[1e1]"),
    "lists of a list of a decimal": with_non_bmp_text(repeated(b"[[1e1]]")),
    "short keys": b"{" + b",".join(b'"%x":0' % n for n in range(BODY_BYTES // 8)) + b"}",
    "objects of short keys": repeated(b'{"a":0,"b":0}'),
}


@pytest.mark.parametrize("body", COSTLY_SHAPES.values(), ids=COSTLY_SHAPES.keys())
def test_decoding_a_body_within_the_nesting_limit_costs_less_than_ingest_charges_for_it(body: bytes) -> None:
    assert json_depth(body) <= MAX_JSON_DEPTH
    gc.collect()
    tracemalloc.start()
    try:
        decoded = decode_json(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del decoded
    # The body itself is held while it is decoded; the charge keeps a margin for the allocator.
    held_per_body_byte = peak / len(body) + 1
    assert held_per_body_byte * 1.15 <= Settings.DECODED_BYTES_PER_BODY_BYTE, f"{held_per_body_byte:.1f}"


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ('{"a": 1}', 1),
        ("[]", 1),
        ("0", 0),
        ('"[[["', 0),
        ('{"a": "[[[\\"[[", "b": [{"c": 1}]}', 3),
        ('["\\\\", [["]"]]]', 3),
        ('["\\\\\\"[", {"]": "{"}]', 2),
        ('[{"é": ["' + "\U0001f600" + '", {}]}]', 4),
        ("[" * 40 + "]" * 40, 40),
        ("[[],[[]],[[[]]]]", 4),
        ("[[[", 3),
    ],
)
def test_the_depth_of_json_counts_brackets_outside_strings_only(text: str, depth: int) -> None:
    assert json_depth(text.encode()) == depth


def test_the_depth_of_json_is_the_depth_its_decoder_sees() -> None:
    document = {"data": {"breakdown": [{"amount": "1.5", "tags": ["[", "]]", '"{'], "nested": {"x": [[]]}}]}}
    assert json_depth(json.dumps(document).encode()) == 7
