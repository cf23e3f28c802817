"""Benchmark: journal append + group commit vs a plain write+fsync baseline, then replay.

Appends N realistic test-result records (msgspec msgpack of a TestResult: ~60-char name, suite,
file, duration; ~220 bytes) in commits of 1,000, and measures in the same run a baseline
that writes the same payload bytes with ``f.write`` and one ``fsync`` per 1,000. Prints records/s for
both and the ratio, then the time to replay (and to replay + decode) all records after a reopen.

Usage: python bench/bench_journal.py [--records 1000000] [--batch 1000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ci_sidecar.state import Journal, RecordStore, SnapshotStore, recover  # noqa: E402

try:
    from ci_sidecar.protocol.records import TestResult
except Exception:  # the wire module may be mid-edit; the payload shape is what matters here

    class TestResult(msgspec.Struct, kw_only=True, omit_defaults=True):  # type: ignore[no-redef]
        """Same fields as ci_sidecar.protocol.records.TestResult (fallback)."""

        name: str
        status: str
        suite: str | None = None
        classname: str | None = None
        file: str | None = None
        line: int | None = None
        duration: float | None = None
        attempt: int | None = None


DISTINCT_BATCHES = 50  # payloads are cycled so the benchmark itself stays small in memory


def make_batches(batch: int) -> list[list[bytes]]:
    """Realistic encoded results, ``DISTINCT_BATCHES`` batches of ``batch``."""
    enc = msgspec.msgpack.Encoder()
    out = []
    for b in range(DISTINCT_BATCHES):
        rows = []
        for i in range(batch):
            n = b * batch + i
            rows.append(enc.encode(TestResult(
                name=f"test_payment_gateway_handles_timeout_and_retries_case_{n:08d}",
                status="failed" if n % 97 == 0 else "passed",
                suite=f"integration.payments.gateway{n % 13}",
                classname="TestGateway",
                file=f"tests/integration/payments/test_gateway_{n % 13}.py",
                duration=(n % 1000) / 997.0,
                attempt=1,
            )))
        out.append(rows)
    return out


def bench_baseline(path: Path, batches: list[list[bytes]], total: int) -> float:
    """Plain write of the same payload bytes + one fsync per batch; returns seconds."""
    t0 = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        done = 0
        while done < total:
            rows = batches[(done // len(batches[0])) % len(batches)]
            f.write(b"".join(rows))
            os.fsync(f.fileno())
            done += len(rows)
    return time.perf_counter() - t0


def bench_journal_sync(directory: Path, batches: list[list[bytes]], total: int) -> float:
    """Journal.append per record + commit_sync per batch; returns seconds."""
    j = Journal.open(directory, "bench")
    t0 = time.perf_counter()
    done = 0
    while done < total:
        rows = batches[(done // len(batches[0])) % len(batches)]
        for payload in rows:
            j.append(payload)
        j.commit_sync()
        done += len(rows)
    elapsed = time.perf_counter() - t0
    j.close()
    return elapsed


def as_msgpack_array(rows: list[bytes]) -> bytes:
    """The encoded rows as one msgpack array (array32 header + elements), as a batch record would be."""
    return b"\xdd" + struct.pack(">I", len(rows)) + b"".join(rows)


def bench_journal_batch_records(directory: Path, batches: list[list[bytes]], total: int) -> float:
    """One journal record per batch (a msgpack array of the batch's results) + commit_sync per batch."""
    joined = [as_msgpack_array(rows) for rows in batches]
    j = Journal.open(directory, "bench")
    t0 = time.perf_counter()
    done, per = 0, len(batches[0])
    while done < total:
        j.append(joined[(done // per) % len(joined)])
        j.commit_sync()
        done += per
    elapsed = time.perf_counter() - t0
    j.close()
    return elapsed


def bench_journal_trio(directory: Path, batches: list[list[bytes]], total: int) -> float:
    """Journal.append per record + ``await commit()`` (worker thread) per batch, under trio."""

    async def main() -> float:
        j = Journal.open(directory, "bench")
        t0 = time.perf_counter()
        done = 0
        while done < total:
            rows = batches[(done // len(batches[0])) % len(batches)]
            for payload in rows:
                j.append(payload)
            await j.commit()
            done += len(rows)
        elapsed = time.perf_counter() - t0
        await j.aclose()
        return elapsed

    return trio.run(main)


def bench_records(path: Path, batches: list[list[bytes]], total: int) -> tuple[float, float]:
    """RecordStore: append all + write without fsync per batch, then iterate them all back."""
    store = RecordStore.open(path)
    t0 = time.perf_counter()
    done = 0
    while done < total:
        rows = batches[(done // len(batches[0])) % len(batches)]
        store.append_many(rows)
        store.commit_sync(fsync=False)
        done += len(rows)
    write = time.perf_counter() - t0
    t0 = time.perf_counter()
    count = sum(1 for _ in store.iter_records())
    read = time.perf_counter() - t0
    assert count == total, count
    store.close()
    return write, read


def bench_replay(directory: Path, total: int) -> tuple[float, float, float]:
    """Reopen + replay every record (bytes only), and replay + msgpack decode; returns seconds."""
    t0 = time.perf_counter()
    j = Journal.open(directory, "bench")
    r = recover(j, SnapshotStore(directory, "bench"))
    count = sum(1 for _ in r.records)
    raw = time.perf_counter() - t0
    assert count == total, count
    dec = msgspec.msgpack.Decoder(TestResult)
    t0 = time.perf_counter()
    count = 0
    for payload in j.replay():
        dec.decode(payload)
        count += 1
    decoded = time.perf_counter() - t0
    j.close()
    return raw, decoded, count


def bench_replay_batches(directory: Path, total: int) -> float:
    """Reopen + replay batch records + decode every result; returns seconds."""
    t0 = time.perf_counter()
    j = Journal.open(directory, "bench")
    dec = msgspec.msgpack.Decoder(list[TestResult])
    count = sum(len(dec.decode(record)) for record in recover(j, SnapshotStore(directory, "bench")).records)
    elapsed = time.perf_counter() - t0
    j.close()
    assert count == total, count
    return elapsed


def settle(*paths: Path) -> None:
    """Delete a phase's files and flush dirty pages, so write-back of one phase doesn't slow the next."""
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    os.sync()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--dir", type=Path, default=None, help="scratch directory (default: a temp dir)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-journal-", dir=args.dir))
    try:
        batches = make_batches(args.batch)
        sizes = [len(p) for rows in batches for p in rows]
        n = args.records
        print(f"records: {n:,} in commits of {args.batch:,}; payload {min(sizes)}-{max(sizes)} bytes "
              f"(mean {sum(sizes) / len(sizes):.0f})")
        settle()
        base = bench_baseline(root / "baseline.bin", batches, n)
        print(f"baseline  f.write + fsync/batch : {n / base:12,.0f} records/s  ({base:.2f} s)")
        settle(root / "baseline.bin")
        js = bench_journal_sync(root / "sync", batches, n)
        print(f"journal   append + commit_sync  : {n / js:12,.0f} records/s  ({js:.2f} s)  "
              f"ratio vs baseline {base / js:.2f}")
        settle(root / "sync")
        jb = bench_journal_batch_records(root / "batch", batches, n)
        print(f"journal   1 record per batch    : {n / jb:12,.0f} results/s  ({jb:.2f} s)  "
              f"ratio vs baseline {base / jb:.2f}")
        rb = bench_replay_batches(root / "batch", n)
        print(f"replay {n:,} results as batch records + decode to TestResult: {rb:.2f} s")
        settle(root / "batch")
        jt = bench_journal_trio(root / "trio", batches, n)
        print(f"journal   append + await commit : {n / jt:12,.0f} records/s  ({jt:.2f} s)  "
              f"ratio vs baseline {base / jt:.2f}")
        raw, decoded, _ = bench_replay(root / "trio", n)
        print(f"replay {n:,} records (open+recover+iterate): {raw:.2f} s; "
              f"replay + msgpack decode to TestResult: {decoded:.2f} s")
        settle(root / "trio")
        rw, rr = bench_records(root / "run.rec", batches, n)
        print(f"record store: append+write {n / rw:,.0f} records/s ({rw:.2f} s); iterate back {rr:.2f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
