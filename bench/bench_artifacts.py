"""Artifact store benchmark: a large upload by path against plain copies of the same file, and many small files.

For each round a file of fresh random bytes is written (so no cache of a previous round helps), then,
in the same run:

* ``upload_artifact`` by path through a real daemon (copy + SHA-256 in one pass, fsync, rename);
* ``shutil.copyfile`` of the same file (a plain copy, no hash, no fsync);
* ``cp --reflink=never`` + ``sync -f`` + ``openssl dgst -sha256`` (a durable copy plus a fast hash).

It prints each time, the ratios, and the daemon's peak RSS growth during the upload (VmHWM from
/proc), then 1,000 small artifacts through ``upload_artifacts`` (files/s).

    python bench/bench_artifacts.py [--size-mib 1024] [--rounds 5] [--small 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers import DaemonProcess, scrubbed_env  # noqa: E402


def vm(pid: int, field: str) -> int:
    """A /proc/<pid>/status memory field in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    try:  # Linux ≥ 4.0: writing 5 to clear_refs resets VmHWM to the current RSS
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def fresh_file(path: Path, size: int) -> None:
    chunk = 8 * 1024 * 1024
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n
        f.flush()
        os.fsync(f.fileno())


def drop_cache(path: Path) -> None:
    """Ask the kernel to forget the file's pages, so every contender reads from disk alike."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--small", type=int, default=1000)
    args = ap.parse_args()
    size = args.size_mib * 1024 * 1024

    work = Path(tempfile.mkdtemp(prefix="cs-bench-", dir="/tmp"))
    env = scrubbed_env(work, CI_SIDECAR_ARTIFACT_MAX_FILE_BYTES=str(max(size, 1) * 2),
                       CI_SIDECAR_ARTIFACT_MAX_RUN_BYTES=str(max(size, 1) * 4 * args.rounds))
    daemon = DaemonProcess.start(work / "b.sock", env)
    try:
        client = daemon.client(config={"output_dir": str(work / "out")})
        rid = client.request("create_test_run", {"name": "bench"})["id"]
        pid = daemon.proc.pid
        print(f"{args.size_mib} MiB of fresh random bytes per round, {args.rounds} round(s); "
              f"{os.cpu_count()} CPUs, load average %.2f %.2f %.2f" % os.getloadavg())
        ratios_copy, ratios_durable, growth = [], [], []
        for r in range(args.rounds):
            src = work / f"big-{r}.bin"
            fresh_file(src, size)

            dst, dst2 = work / f"copy-{r}.bin", work / f"cp-{r}.bin"
            peak = 0

            def upload() -> None:
                nonlocal peak
                rss0 = vm(pid, "VmRSS")
                reset_peak(pid)
                client.request("upload_artifact", {"test_run_id": rid, "path": str(src), "name": f"big-{r}.bin"},
                               timeout=600)
                peak = vm(pid, "VmHWM") - rss0

            def copy() -> None:
                shutil.copyfile(src, dst)

            def durable() -> None:
                subprocess.run(["cp", "--reflink=never", str(src), str(dst2)], check=True)
                subprocess.run(["sync", "-f", str(dst2)], check=True)
                subprocess.run(["openssl", "dgst", "-sha256", str(dst2)], check=True, capture_output=True)

            contenders = [("upload", upload), ("copy", copy), ("durable", durable)]
            contenders = contenders[r % 3:] + contenders[:r % 3]  # rotate: no contender always goes first
            times: dict[str, float] = {}
            for label, fn in contenders:
                drop_cache(src)
                subprocess.run(["sync"], check=True)  # start each from a quiet disk
                times[label] = timed(fn)
            t_up, t_copy, t_dur = times["upload"], times["copy"], times["durable"]
            growth.append(peak)
            dst.unlink()
            dst2.unlink()
            src.unlink()
            ratios_copy.append(t_up / t_copy)
            ratios_durable.append(t_up / t_dur)
            print(f"round {r + 1} (load {os.getloadavg()[0]:.1f}): "
                  f"upload_artifact {t_up:.2f} s ({size / t_up / 2**20:.0f} MiB/s) | "
                  f"shutil.copyfile {t_copy:.2f} s -> ratio {t_up / t_copy:.2f} | "
                  f"cp+sync+openssl {t_dur:.2f} s -> ratio {t_up / t_dur:.2f} | "
                  f"daemon peak RSS growth {peak / 2**20:.1f} MiB")
        # the disk's writeback makes single rounds noisy: the median is the number to compare with the goal
        print(f"ratio vs cp+sync+openssl dgst (the goal's baseline): median {statistics.median(ratios_durable):.2f}, "
              f"best {min(ratios_durable):.2f}, worst {max(ratios_durable):.2f} (goal <= 1.2); "
              f"vs shutil.copyfile: median {statistics.median(ratios_copy):.2f}; "
              f"max RSS growth {max(growth) / 2**20:.1f} MiB (goal < 64)")
        client.request("purge_artifacts_for_test_run", {"test_run_id": rid})

        small_dir = work / "small"
        small_dir.mkdir()
        items = []
        for i in range(args.small):
            p = small_dir / f"log-{i}.txt"
            p.write_bytes(os.urandom(512) + str(i).encode())
            items.append({"path": str(p)})
        t = timed(lambda: client.request("upload_artifacts", {"test_run_id": rid, "items": items}, timeout=600))
        print(f"{args.small} small artifacts through upload_artifacts: {t:.2f} s, {args.small / t:.0f} files/s")
    finally:
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
