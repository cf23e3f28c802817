"""LSP framing: pure parser rules plus a property-based fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_sidecar.transport.framing import FrameParser, FramingError, encode_frame


def parse_all(data: bytes, **limits: int) -> list[bytes]:
    p = FrameParser(**limits)
    p.feed(data)
    out = []
    while (frame := p.next_frame()) is not None:
        out.append(frame)
    return out


def test_headers_case_insensitive_any_order_and_content_type_optional() -> None:
    body = '{"m":"héllo ✓"}'.encode()
    data = (b"content-type: application/vscode-jsonrpc; charset=utf-8\r\nCONTENT-LENGTH: %d\r\n\r\n" % len(body)) + body
    assert parse_all(data) == [body]
    assert parse_all(b"Content-Length:%d\r\n\r\n" % len(body) + body) == [body]


def test_content_length_counts_bytes_not_characters() -> None:
    body = '{"m":"✓✓✓"}'.encode()
    assert len(body) != len(body.decode())
    assert parse_all(encode_frame(body)) == [body]


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"Content-Length: 2\r\nbogus\r\n\r\n{}", "malformed header line"),
        (b"Content-Type: x\r\n\r\n{}", "missing Content-Length"),
        (b"Content-Length: -1\r\n\r\n", "invalid Content-Length"),
        (b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}", "duplicate Content-Length"),
        (b"Content-Length: 2\r\nContent-Type: application/json; charset=latin-1\r\n\r\n{}", "unsupported charset"),
        (b"garbage\r\n\r\n", "malformed header line"),
    ],
)
def test_bad_headers(data: bytes, reason: str) -> None:
    with pytest.raises(FramingError) as exc:
        parse_all(data)
    assert reason in exc.value.reason


def test_limits_are_exact() -> None:
    assert parse_all(encode_frame(b"x" * 100), max_body_bytes=100) == [b"x" * 100]
    with pytest.raises(FramingError, match="message too large"):
        parse_all(encode_frame(b"x" * 101), max_body_bytes=100)
    with pytest.raises(FramingError, match="header too large"):
        parse_all(b"X-Pad: " + b"a" * 9000 + b"\r\nContent-Length: 2\r\n\r\n{}")
    with pytest.raises(FramingError, match="header too large"):
        parse_all(b"X-Pad: " + b"a" * 9000)  # no end of header in sight


def test_huge_declared_length_is_refused_before_reading_the_body() -> None:
    p = FrameParser()
    p.feed(b"Content-Length: 104857600\r\n\r\n")
    with pytest.raises(FramingError, match="message too large"):
        p.next_frame()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=8), st.lists(st.integers(1, 50), min_size=1, max_size=10))
def test_frames_survive_any_split(bodies: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(b) for b in bodies)
    p = FrameParser()
    out: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        p.feed(stream[pos : pos + step])
        pos += step
        i += 1
        while (f := p.next_frame()) is not None:
            out.append(f)
    assert out == bodies
    assert not p.mid_frame


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_only_ever_raise_framing_error(data: bytes) -> None:
    p = FrameParser(max_header_bytes=512, max_body_bytes=4096)
    p.feed(data)
    try:
        while p.next_frame() is not None:
            pass
    except FramingError as exc:
        assert exc.reason
