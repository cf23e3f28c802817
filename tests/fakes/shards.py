"""Sharded jobs for tests and benchmarks: one ``ci-sidecar serve`` process per shard, all on one bucket (moto's
S3 server behind :class:`s3_fixtures.FaultProxy`) and, optionally, one GitHub world of fakes.

Used by ``tests/groups/test_groups_e2e.py`` and ``bench/bench_shards.py``.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ci_sidecar_client import Client
from helpers import CI_NAMES, CI_PREFIXES, DaemonProcess, scrubbed_env

__all__ = ["RUN", "Shards", "Job", "connect", "shard_results", "run_shard", "run_group", "group_doc", "wait_final",
           "wait_doc", "group_folder", "CreateThenHang"]

RUN = "unit tests"


def shard_results(shard: int, count: int) -> list[dict[str, Any]]:
    """``count`` tests of one shard, every 20th failing (names unique across shards)."""
    out = []
    for i in range(count):
        failed = i % 20 == 7
        r: dict[str, Any] = {"name": f"test_{shard}_{i:05d}", "suite": f"pkg.shard{shard}",
                             "classname": f"pkg.shard{shard}.Case", "file": f"tests/test_shard{shard}.py",
                             "line": 10 + i, "duration": 0.001, "status": "failed" if failed else "passed"}
        if failed:
            r["message"] = f"assert {i} == {i + 1}"
        out.append(r)
    return out


class Shards:
    """One daemon per shard, each with its own state dir, all on one bucket and one (optional) GitHub world."""

    def __init__(self, base: Path, store_url: str, bucket: str, world: Any, *, region: str = "us-east-1",
                 key: tuple[str, str] = ("testing-key-id", "testing-secret-key")) -> None:
        self.base, self.store_url, self.bucket, self.world = base, store_url, bucket, world
        self.region, self.key = region, key
        self.daemons: dict[str, DaemonProcess] = {}
        self.finished: dict[str, float] = {}  # job name → when its complete_test_run answered (monotonic)
        self.requests: dict[str, int] = {}  # job name → object store requests of its (last) daemon

    def env(self, name: str) -> dict[str, str]:
        return scrubbed_env(self.base / name, CI_SIDECAR_ARTIFACT_STORE_BUCKET=self.bucket,
                            CI_SIDECAR_ARTIFACT_STORE_ENDPOINT_URL=self.store_url,
                            CI_SIDECAR_ARTIFACT_STORE_REGION=self.region, NO_PROXY="127.0.0.1,localhost")

    def start(self, name: str) -> DaemonProcess:
        (self.base / name).mkdir(parents=True, exist_ok=True)
        d = self.daemons[name] = DaemonProcess.start(self.base / name / "d.sock", self.env(name))
        return d

    def job_env(self, name: str) -> dict[str, str]:
        env = self.world.job_env(self.base / name / "job") if self.world else {
            "CI": "true", "CI_SIDECAR_OUTPUT_DIR": str(self.base / name / "job" / "ci-sidecar-out")}
        return dict(env, AWS_ACCESS_KEY_ID=self.key[0], AWS_SECRET_ACCESS_KEY=self.key[1], RUNNER_NAME=f"runner-{name}")

    def stop(self) -> None:
        for name, d in self.daemons.items():
            if d.proc.poll() is None:
                try:
                    status = d.client().request("sidecar/status", {})
                    self.requests[name] = self.requests.get(name, 0) + status.get("groups", {}).get("store_requests", 0)
                except Exception:
                    pass
            d.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{d.log()[-4000:]}" for n, d in self.daemons.items())

    def __enter__(self) -> Shards:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        """Stop every daemon; when the block failed, print their logs first (pytest shows them)."""
        if kind is not None:
            print(self.logs())
        self.stop()


def connect(daemon: DaemonProcess, job_env: dict[str, str], cwd: str | None = None) -> Client:
    """A session whose environment is the job's. Shards run in threads, so this never touches ``os.environ``
    (the scenario harness's ``connect`` swaps it for the time of ``initialize``, which races across threads)."""
    env = {k: v for k, v in os.environ.items() if k not in CI_NAMES and not k.startswith(CI_PREFIXES)} | job_env
    c = Client.connect(str(daemon.path), initialize=False)
    daemon.clients.append(c)
    c.initialize_result = c.request("initialize", {"protocolVersion": 1, "clientInfo": {"name": "shard-job"},
                                                   "processId": os.getpid(), "cwd": cwd or os.getcwd(), "env": env})
    c.notify("initialized", {})
    return c


class Job:
    """One CI job of a shard, step by step: its daemon, its session and its run."""

    def __init__(self, shards: Shards, key: str, shard: int, total: int, results: list[dict[str, Any]], *,
                 deadline_s: float = 120.0) -> None:
        self.shards, self.results = shards, results
        self.name = f"{key}-{shard}"
        self.group = {"key": key, "shard": shard, "total": total, "deadline_s": deadline_s}
        self.run_id = ""

    def start(self) -> None:
        """Start the job's daemon and create (or, after a restart, join again) the shard's run."""
        self.daemon = self.shards.start(self.name)
        self.client = connect(self.daemon, self.shards.job_env(self.name))
        run_id = self.client.request("create_test_run", {"name": RUN, "group": self.group})["id"]
        assert self.run_id in ("", run_id)  # a restarted job joins its run (journaled by the killed daemon)
        self.run_id = run_id

    def report(self) -> None:
        for i in range(0, len(self.results), 100):
            self.client.request("report_results", {"test_run_id": self.run_id, "results": self.results[i:i + 100]})

    def complete(self) -> None:
        self.client.request("complete_test_run", {"test_run_id": self.run_id})
        self.shards.finished[self.name] = time.monotonic()

    def kill(self) -> None:
        """kill -9 of the job's daemon."""
        self.daemon.proc.kill()
        self.daemon.proc.wait()
        self.daemon.stop()


class CreateThenHang:
    """Wraps a fake's request handling: the first request matching ``method`` and ``path`` (a regex) is made
    (the object exists), then its answer waits until :attr:`release` is set and is lost. The window between a
    provider creating an object and its writer recording the id, held open for a kill -9."""

    def __init__(self, fake: Any, method: str, path: str) -> None:
        self.created, self.release = threading.Event(), threading.Event()
        self._inner: Callable[[Any], Any] = fake.dispatch
        self._method, self._path = method, re.compile(path)
        fake.dispatch = self._dispatch

    def _dispatch(self, rec: Any) -> Any:
        from ._server import Drop

        reply = self._inner(rec)
        if rec.method == self._method and self._path.search(rec.path) and not self.created.is_set() \
                and 200 <= reply.status < 300:
            self.created.set()
            self.release.wait(60)
            raise Drop
        return reply


def run_shard(shards: Shards, key: str, shard: int, total: int, results: list[dict[str, Any]], *,
              kill_halfway: bool = False, delay: float = 0.0, deadline_s: float = 120.0) -> None:
    """One CI job: create the shard's run, report in batches of 100 (killed -9 and restarted halfway when
    asked: the restarted job joins its run again and resends everything), complete."""
    time.sleep(delay)
    job = Job(shards, key, shard, total, results, deadline_s=deadline_s)
    job.start()
    if kill_halfway:
        half = (len(results) // 200 + 1) * 100  # the batches up to the middle one
        job.results = results[:half]
        job.report()
        time.sleep(0.3)  # segments and the shard state go out meanwhile
        job.kill()
        job.start()
        job.results = results
    job.report()
    job.complete()


def run_group(shards: Shards, key: str, total: int, per_shard: int, *, kill: tuple[int, ...] = (),
              never: tuple[int, ...] = (), deadline_s: float = 120.0, seed: int = 1, max_delay: float = 1.0) -> None:
    """Every shard but ``never`` as a job of its own (threads), started at random delays up to ``max_delay``."""
    rng = random.Random(seed)
    errors: list[BaseException] = []

    def job(shard: int, delay: float) -> None:
        try:
            run_shard(shards, key, shard, total, shard_results(shard, per_shard), kill_halfway=shard in kill,
                      delay=delay, deadline_s=deadline_s)
        except BaseException as exc:  # reported by the calling thread
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(s, rng.uniform(0, max_delay))) for s in range(total)
               if s not in never]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    if errors:
        raise errors[0]


def group_doc(s3: Any, bucket: str, folder: str) -> dict[str, Any] | None:
    """``group.json`` of the group in ``folder`` (``groups/<slug>``), read with a boto3 client."""
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=f"{folder}/group.json")["Body"].read())
    except Exception:
        return None


def group_folder(s3: Any, bucket: str) -> str:
    """The folder (``groups/<slug>``) of the only group in ``bucket`` (its key as the daemon scoped it)."""
    found = {k["Key"].rsplit("/", 1)[0] for k in s3.list_objects_v2(Bucket=bucket, Prefix="groups/").get("Contents", [])
             if k["Key"].endswith("/group.json")}
    assert len(found) == 1, found
    return found.pop()


def wait_doc(s3: Any, bucket: str, folder: str, what: Callable[[dict[str, Any]], bool], timeout: float,
             poll: float = 0.02) -> dict[str, Any]:
    """``group.json`` once ``what`` holds of it (polled every ``poll`` s; the store has no notifications)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = group_doc(s3, bucket, folder)
        if doc and what(doc):
            return doc
        time.sleep(poll)
    raise AssertionError(f"group in {folder} not as expected after {timeout} s: {group_doc(s3, bucket, folder)}")


def wait_final(s3: Any, bucket: str, folder: str, timeout: float, poll: float = 0.2) -> dict[str, Any]:
    return wait_doc(s3, bucket, folder, lambda doc: bool(doc.get("final")), timeout, poll)
