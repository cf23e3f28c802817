"""JSON-RPC 2.0 envelope rules, including spec-correct batches, plus a fuzz of the parser."""

from __future__ import annotations

import json

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_sidecar.protocol.errors import INVALID_REQUEST, PARSE_ERROR, InvalidRequest, ParseError, SidecarError
from ci_sidecar.rpc.envelope import Invalid, Request, decode_message, params_error


def test_request_and_notification() -> None:
    is_batch, [req] = decode_message(b'{"jsonrpc":"2.0","id":7,"method":"m","params":{"a":1}}')
    assert not is_batch and isinstance(req, Request) and req.id == 7 and not req.is_notification
    _, [note] = decode_message(b'{"jsonrpc":"2.0","method":"m"}')
    assert note.is_notification
    _, [null_id] = decode_message(b'{"jsonrpc":"2.0","id":null,"method":"m"}')
    assert not null_id.is_notification and null_id.id is None


def test_invalid_json_is_parse_error() -> None:
    err = decode_message(b'{"jsonrpc": "2.0", "method"')
    assert isinstance(err, SidecarError) and err.code == PARSE_ERROR


def test_empty_batch_is_one_invalid_request() -> None:
    err = decode_message(b"[]")
    assert isinstance(err, SidecarError) and err.code == INVALID_REQUEST


def test_batch_has_one_error_per_bad_element() -> None:
    is_batch, items = decode_message(b'[1, {"jsonrpc":"2.0","id":1,"method":"a"}, {"jsonrpc":"1.0","id":2,"method":"b"}]')
    assert is_batch and len(items) == 3
    assert isinstance(items[0], Invalid) and items[0].id is None
    assert isinstance(items[1], Request)
    assert isinstance(items[2], Invalid) and items[2].id == 2  # the id is echoed when it can be read


def test_params_must_be_structured() -> None:
    _, [item] = decode_message(b'{"jsonrpc":"2.0","id":1,"method":"a","params":3}')
    assert isinstance(item, Invalid) and item.error.code == INVALID_REQUEST


def test_params_error_has_json_path() -> None:
    class P(msgspec.Struct):
        pr_number: int

    try:
        msgspec.json.decode(b'{"pr_number":"x"}', type=P)
    except msgspec.ValidationError as exc:
        err = params_error(exc)
    assert err.data == {"path": "$.pr_number", "reason": "Expected `int`, got `str`"}
    try:
        msgspec.json.decode(b"{}", type=P)
    except msgspec.ValidationError as exc:
        err = params_error(exc)
    assert err.data["path"] == "$.pr_number"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200)))
def test_any_body_decodes_or_errors_cleanly(body: bytes) -> None:
    out = decode_message(body)
    if isinstance(out, SidecarError):
        assert out.code in (PARSE_ERROR, INVALID_REQUEST)
    else:
        is_batch, items = out
        assert items and all(isinstance(i, (Request, Invalid)) for i in items)


def test_undecodable_bodies_are_parse_errors() -> None:
    """Bytes that are not UTF-8 and nesting past the decoder's limit are -32700, never an exception."""
    for body in (b'{"jsonrpc":"2.0","id":1,"method":"a\xff"}', b"[" * 100_000, b'[{"method":"\xff"}]'):
        out = decode_message(body)
        assert isinstance(out, ParseError), body[:20]


def test_batch_over_the_limit_is_refused_whole() -> None:
    """A batch longer than ``max_batch`` is one -32600 that names the limit."""
    out = decode_message(b"[" + b",".join([b'{"jsonrpc":"2.0","id":1,"method":"a"}'] * 3) + b"]", max_batch=2)
    assert isinstance(out, InvalidRequest) and "limit is 2" in out.data["reason"]
