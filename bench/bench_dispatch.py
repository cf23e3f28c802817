"""In-process cost of dispatching one request: ci-sidecar's envelope + typed params vs jsonrpcserver.

    python bench/bench_dispatch.py [--n 20000]

Why the rpc layer owns the envelope instead of dispatching through jsonrpcserver: this measures what
jsonrpcserver would add per request on the hot path (its async dispatcher cannot run under trio at all;
see tests/rpc/test_jsonrpcserver_pin.py). Prints µs per call and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import msgspec
from jsonrpcserver import Success, dispatch

from ci_sidecar.protocol.methods import SleepParams
from ci_sidecar.rpc.envelope import decode_message, encode_result

BODY = b'{"jsonrpc":"2.0","id":7,"method":"sidecar/debug/sleep","params":{"seconds":0.5,"workDoneToken":"t"}}'


def ours(n: int) -> float:
    decoder = msgspec.json.Decoder(SleepParams).decode
    encode = msgspec.json.encode
    t0 = time.perf_counter()
    for _ in range(n):
        _, (req,) = decode_message(BODY)
        params = decoder(req.params)
        encode_result(req.id, encode({"slept": params.seconds}))
    return (time.perf_counter() - t0) / n * 1e6


def jrs(n: int, **kw: object) -> float:
    def sleep(seconds: float = 1.0, workDoneToken: object = None) -> Success:  # noqa: N803
        return Success({"slept": seconds})

    methods = {"sidecar/debug/sleep": sleep}
    text = BODY.decode()
    t0 = time.perf_counter()
    for _ in range(n):
        dispatch(text, methods=methods, **kw)
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    n = ap.parse_args().n
    ours(1000), jrs(1000)
    a = ours(n)
    b = jrs(n)
    c = jrs(n, deserializer=msgspec.json.decode, validator=lambda _: None,
            serializer=lambda o: msgspec.json.encode(o).decode())
    print(f"ci-sidecar envelope + typed params + encode: {a:6.1f} µs/call")
    print(f"jsonrpcserver.dispatch, defaults:            {b:6.1f} µs/call ({b / a:.1f}x)")
    print(f"jsonrpcserver.dispatch, msgspec, no schema:  {c:6.1f} µs/call ({c / a:.1f}x)")
    print("(jsonrpcserver also answers a partly bad batch with one error, and its async dispatch fails under trio)")


if __name__ == "__main__":
    main()
