"""Benchmark: ci-sidecar's iter_junit vs a plain xml.etree.ElementTree.iterparse pass over the same JUnit file.

Generates a JUnit file of about ``--mb`` MB in a temporary directory (2% failures with traces, 5% skips,
some captured output), then in this one process times:

* baseline: ``xml.etree.ElementTree.iterparse`` (C accelerated, no safety guards, no result objects),
  clearing each element as it ends;
* reference: ``defusedxml.ElementTree.iterparse`` the same way (what the safe stdlib-style route costs);
* ``ci_sidecar.reports.iter_junit``: safe, streaming, building a TestResult per test.

Peak RSS is read per pass from /proc/self/status (VmHWM, reset through /proc/self/clear_refs) where Linux
allows it, else from resource.getrusage (process-wide high-water mark, so only the first pass is exact).

Usage: python bench/bench_junit.py [--mb N]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import defusedxml.ElementTree as DET  # noqa: E402

from ci_sidecar.reports import ParseIssue, iter_junit  # noqa: E402

TRACE = "".join(f"    at com.example.Service.method{i}(Service.java:{100 + i})\n" for i in range(15))


def generate(path: Path, megabytes: float) -> int:
    """Write a JUnit file of about ``megabytes`` MB; returns the number of test cases."""
    target = int(megabytes * 1_000_000)
    written = cases = suite = 0
    with path.open("w", encoding="utf-8") as fp:
        fp.write('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="bench">\n')
        while written < target:
            parts = [f'<testsuite name="com.example.Suite{suite}" tests="200" time="12.5">\n']
            for i in range(200):
                n = cases + i
                attrs = f'name="test_case_{n}_does_something" classname="com.example.Suite{suite}" time="0.{n % 997:03d}"'
                if n % 50 == 0:
                    parts.append(f'<testcase {attrs}><failure message="expected &lt;{n}&gt; but was &lt;0&gt;" '
                                 f'type="java.lang.AssertionError">java.lang.AssertionError: expected\n{TRACE}'
                                 "</failure><system-out>log line one\nlog line two\n</system-out></testcase>\n")
                elif n % 20 == 0:
                    parts.append(f'<testcase {attrs}><skipped message="disabled on linux"/></testcase>\n')
                elif n % 7 == 0:
                    parts.append(f"<testcase {attrs}><system-out>started\nfinished ok\n</system-out></testcase>\n")
                else:
                    parts.append(f"<testcase {attrs}/>\n")
            parts.append("</testsuite>\n")
            chunk = "".join(parts)
            fp.write(chunk)
            written += len(chunk)
            cases += 200
            suite += 1
        fp.write("</testsuites>\n")
    return cases


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fp:
            fp.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    try:
        with open("/proc/self/status") as fp:
            for line in fp:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plain_iterparse(path: Path, iterparse: Callable = ET.iterparse) -> int:
    count = 0
    for _event, elem in iterparse(path, events=("end",)):
        if elem.tag == "testcase":
            count += 1
            elem.clear()
        elif elem.tag == "testsuite":
            elem.clear()
    return count


def sidecar(path: Path) -> int:
    count = 0
    for item in iter_junit(path):
        if isinstance(item, ParseIssue):
            raise SystemExit(f"unexpected issue: {item}")
        count += 1
    return count


def timed(label: str, fn: Callable[[Path], int], path: Path) -> float:
    exact = _reset_peak()
    start = time.perf_counter()
    count = fn(path)
    elapsed = time.perf_counter() - start
    note = "" if exact else " (process high-water mark)"
    print(f"{label:<34} {elapsed:8.2f} s  {count:>9} tests  peak RSS {_peak_mb():7.1f} MB{note}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="size of the generated file in MB (default 100)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-junit-") as tmp:
        path = Path(tmp) / "junit.xml"
        start = time.perf_counter()
        cases = generate(path, args.mb)
        size = path.stat().st_size / 1_000_000
        print(f"generated {size:.1f} MB, {cases} test cases in {time.perf_counter() - start:.1f} s "
              f"(python {sys.version.split()[0]}, pid {os.getpid()})")
        print(f"{'baseline RSS before parsing':<34} {'':>8}    {'':>9}        peak RSS {_peak_mb():7.1f} MB")
        ours = timed("ci_sidecar iter_junit", sidecar, path)
        base = timed("xml.etree iterparse (baseline)", plain_iterparse, path)
        defused = timed("defusedxml iterparse (reference)", lambda p: plain_iterparse(p, DET.iterparse), path)
        print(f"ratio iter_junit / baseline: {ours / base:.2f}x   "
              f"(defusedxml / baseline: {defused / base:.2f}x)   throughput {size / ours:.1f} MB/s")


if __name__ == "__main__":
    main()
