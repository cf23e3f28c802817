"""A minimal socket-activated trio server built only from ci_sidecar.transport.systemd.

Not the daemon: it lets tests/systemd/test_activation_stub.py prove the activation harness and the
systemd building blocks together (READY after listening, watchdog from the loop, STOPPING on
SIGTERM) before and independently of ``ci_sidecar.rpc.server``. It answers ``initialize`` only.
Run as ``python stub_daemon.py`` under ``systemd-socket-activate``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import trio

from ci_sidecar.transport.systemd import Notifier, listen_fds, run_watchdog, watchdog_interval


async def handle(stream: trio.SocketStream) -> None:
    buffer = b""
    async with stream:
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = await stream.receive_some()
                if not chunk:
                    return
                buffer += chunk
            header, _, buffer = buffer.partition(b"\r\n\r\n")
            length = int(header.split(b":", 1)[1])
            while len(buffer) < length:
                buffer += await stream.receive_some()
            request, buffer = json.loads(buffer[:length]), buffer[length:]
            result = {"serverInfo": {"name": "stub", "version": "0"}, "protocolVersion": 1}
            body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode()
            await stream.send_all(b"Content-Length: %d\r\n\r\n" % len(body) + body)


async def main() -> int:
    [sock] = listen_fds()
    notifier = Notifier.from_env(unset=True)
    state = Path(os.environ["STATE_DIRECTORY"])
    starts = state / "starts"
    starts.write_text(str(int(starts.read_text()) + 1 if starts.exists() else 1))
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, handle, [listener])
            notifier.ready(f"listening on {sock.getsockname()}")
            if (interval := watchdog_interval()) is not None:
                nursery.start_soon(run_watchdog, notifier, interval)
            async for _ in signals:
                notifier.stopping("SIGTERM")
                nursery.cancel_scope.cancel()
                break
    return 0


if __name__ == "__main__":
    sys.exit(trio.run(main))
