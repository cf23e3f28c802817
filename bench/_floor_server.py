"""Baselines for bench_rpc.py: the floor (trio + msgspec echo with the same LSP framing) and a pygls
server answering the same method. Not part of the product."""

from __future__ import annotations

import os
import socket
import sys

import msgspec
import trio

from ci_sidecar.transport.framing import FrameParser, FrameReader, encode_frame

STATUS = {"version": "floor", "uptime": 0.0, "sessions": 1, "runs": 0, "outbox": {"pending": 0, "failed": 0}}


async def serve_stream(stream) -> None:
    reader = FrameReader(stream, FrameParser())
    send, recv = trio.open_memory_channel(64)

    async def writer() -> None:
        async for body in recv:
            await stream.send_all(encode_frame(body))

    async with trio.open_nursery() as n:
        n.start_soon(writer)
        while (body := await reader.receive()) is not None:
            msg = msgspec.json.decode(body)
            if "id" in msg:
                await send.send(msgspec.json.encode({"jsonrpc": "2.0", "id": msg["id"], "result": STATUS}))
        await send.aclose()


async def main_socket(path: str) -> None:
    sock = trio.socket.socket(socket.AF_UNIX)
    await sock.bind(path)
    sock.listen(16)
    await trio.serve_listeners(serve_stream, [trio.SocketListener(sock)])


async def main_stdio() -> None:
    stream = trio.StapledStream(trio.lowlevel.FdStream(os.dup(1)), trio.lowlevel.FdStream(os.dup(0)))
    await serve_stream(stream)


def pygls_server() -> None:
    from pygls.protocol import JsonRPCProtocol, default_converter
    from pygls.server import JsonRPCServer

    server = JsonRPCServer(JsonRPCProtocol, default_converter)

    @server.feature("sidecar/status")
    def status(params):  # noqa: ANN001
        return STATUS

    server.start_io()


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "socket":
        trio.run(main_socket, sys.argv[2])
    elif kind == "stdio":
        trio.run(main_stdio)
    else:
        pygls_server()
