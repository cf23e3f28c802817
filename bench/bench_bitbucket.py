"""Bitbucket end to end: what one pull-request build costs in API calls, what 30% injected faults cost in time, and
what a large artifact costs in memory.

    python bench/bench_bitbucket.py [--faults 0.3] [--seeds 1,2,3,4,5] [--results 10000] [--upload-mib 300]

The scenario of ``tests/providers/test_bitbucket_scenario.py`` (``fakes.bitbucket.World`` on the provider-neutral
``fakes.scenario``): a real daemon driven by the Python client; 10,000 results with 300 failures in batches of
100 (Code Insights report and annotations), a sticky PR comment updated once, 20 artifacts into Downloads, two
build status contexts; against the loopback fake Bitbucket. One fault-free run, then one run per seed with the
given share of faults (502/503/429, resets, lost answers to writes), all in this process.

Prints: REST calls excluding Downloads (live updates included), calls per artifact (one POST and one list read,
plus a retry after a lost answer), wall time with faults against fault-free, and whether every faulty run ends
with what the fault-free run shows on the PR.

Then the memory of one Downloads upload of ``--upload-mib`` MiB (above the 256 MiB the provider used to refuse):
the provider's streamed multipart upload against the old way (the file read whole into the multipart body), each
in a fresh process against a loopback sink that discards what it receives; peak RSS of each and their ratio.
Asserts no goal.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_github import main  # noqa: E402  (it puts tests/ and the Python client on sys.path)

_CHUNK = 1 << 20


class _Sink(BaseHTTPRequestHandler):
    """POST …/downloads: read and discard the multipart body, keep the file's name and size; GET …/downloads:
    list that file (what the provider reads its URL from)."""

    got: dict[str, int] = {}

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def do_POST(self) -> None:
        left = int(self.headers["Content-Length"])
        boundary = self.headers["Content-Type"].split("boundary=")[1].encode()
        head = self.rfile.read(min(left, 4096))
        left -= len(head)
        name = re.search(rb'filename="([^"]*)"', head).group(1).decode()  # type: ignore[union-attr]
        body_start = head.index(b"\r\n\r\n") + 4
        total = len(head)
        while left:
            n = len(self.rfile.read(min(left, _CHUNK)))
            left, total = left - n, total + n
        _Sink.got = {name: total - body_start - len(b"\r\n--" + boundary + b"--\r\n")}
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        base = f"http://{self.headers['Host']}/2.0/repositories/team/widgets/downloads"
        values = [{"type": "download", "name": n, "size": s, "links": {"self": {"href": f"{base}/{n}"}}}
                  for n, s in _Sink.got.items()]
        data = json.dumps({"values": values}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _child(how: str, url: str, path: str) -> None:
    """One upload in this process; prints its wall time and peak RSS (MiB)."""
    import trio

    from ci_sidecar.credentials import CredentialRef
    from ci_sidecar.protocol.records import CIContext
    from ci_sidecar.providers._http import Multipart
    from ci_sidecar.providers.base import ProviderEnv, UploadArtifact
    from ci_sidecar.providers.bitbucket import BitbucketProvider

    size = os.path.getsize(path)
    op = UploadArtifact(run_id="run-bench", name="big.bin", stored_path=path, sha256="-", size=size,
                        mime_type="application/octet-stream")
    ci = CIContext(provider="bitbucket", sources={}, repository="team/widgets", commit_sha="ab" * 20)
    cred = CredentialRef(provider="bitbucket", base_url=url, source="env:BITBUCKET_TOKEN", fingerprint="f")
    env = ProviderEnv.build(ci, {"trust_env": False, "workspace": "team", "repo_slug": "widgets"}, cred, "t")

    async def run() -> None:
        provider = BitbucketProvider()
        try:
            if how == "streamed":
                out = await provider.deliver(op, env, {})
                assert out.kind == "delivered", out.message
            else:  # the provider before streaming: the whole file in the multipart body
                api = provider._session(env)
                async with await trio.open_file(path, "rb") as fh:
                    data = await fh.read()
                await api.request("POST", "/repositories/team/widgets/downloads", expect_json=False,
                                  body=Multipart(files={"files": ("big.bin", data, "application/octet-stream")}))
        finally:
            await provider.aclose()

    start = time.perf_counter()
    trio.run(run)
    seconds = time.perf_counter() - start
    print(f"{seconds:.3f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")


def upload_memory(mib: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/2.0"
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    try:
        with tempfile.NamedTemporaryFile(prefix="csb-upload-", dir="/tmp") as fh:
            block = os.urandom(_CHUNK)
            for _ in range(mib):
                fh.write(block)
            fh.flush()
            seen = {}
            for how in ("buffered", "streamed"):
                out = subprocess.run([sys.executable, __file__, "--child", how, url, fh.name], env=env,
                                     capture_output=True, text=True, check=True).stdout.split()
                seen[how] = (float(out[0]), float(out[1]))
                print(f"upload {mib} MiB {how}: wall {seen[how][0]:.2f} s, peak RSS {seen[how][1]:.0f} MiB "
                      f"(Bitbucket received {sum(_Sink.got.values()) / _CHUNK:.0f} MiB)")
            print(f"upload {mib} MiB: streamed peak RSS is {seen['streamed'][1] / seen['buffered'][1]:.2f}× the "
                  f"buffered upload's; wall {seen['streamed'][0] / seen['buffered'][0]:.2f}×")
    finally:
        server.shutdown()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:5])
        raise SystemExit(0)
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--upload-mib", type=int, default=300)
    known, rest = ap.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    from fakes.bitbucket import World

    main(World, "bitbucket/bitbucket-cloud-openapi3.ci-subset.json", __doc__, pr="PR")
    if known.upload_mib:
        upload_memory(known.upload_mib)
