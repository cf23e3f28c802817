"""kill -9 of a process that appends and commits in a loop loses nothing it acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from ci_sidecar.state import Journal

ROOT = Path(__file__).resolve().parents[2]

# The child acknowledges a batch on stdout only after ``commit`` returned, like a daemon answering
# a request; several tasks commit concurrently so group commit is exercised too.
CHILD = textwrap.dedent(
    """
    import sys, trio
    from ci_sidecar.state import Journal

    async def writer(j, task):
        i = 0
        while True:
            for k in range(10):
                j.append(b"%d:%d:%d" % (task, i, k))
            await j.commit()
            sys.stdout.write("%d:%d\\n" % (task, i))
            sys.stdout.flush()
            i += 1

    async def main():
        j = Journal.open(sys.argv[1], "state")
        async with trio.open_nursery() as nursery:
            for task in range(4):
                nursery.start_soon(writer, j, task)

    trio.run(main)
    """
)


def test_kill9_loses_no_acknowledged_record(tmp_path: Path) -> None:
    """Every batch the child acknowledged before SIGKILL is replayed whole, in per-task order."""
    state = tmp_path / "state"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(state)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.stdout is not None
    acked: list[tuple[int, int]] = []
    try:
        while len(acked) < 400:
            line = child.stdout.readline()
            assert line, "child exited early"
            task, i = line.decode().split(":")
            acked.append((int(task), int(i)))
    finally:
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate(timeout=30)
    acked += [tuple(map(int, ln.split(":"))) for ln in rest.decode().split()]  # type: ignore[misc]
    assert -signal.SIGKILL == child.returncode

    j = Journal.open(state, "state")
    records = [tuple(map(int, r.split(b":"))) for r in j.replay()]
    j.close()
    present = set(records)
    missing = [(t, i, k) for t, i in acked for k in range(10) if (t, i, k) not in present]
    assert [] == missing
    # Per task, records are in append order with no holes (a batch is never half there, except a
    # last batch that was never acknowledged).
    for task in range(4):
        seq = [(i, k) for t, i, k in records if t == task]
        assert seq == sorted(seq)
        assert [(i // 10, i % 10) for i in range(len(seq))] == seq
