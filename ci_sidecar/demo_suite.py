"""A tiny bundled test suite for ``ci-sidecar demo``: runs a few real checks and writes JUnit XML.

One test fails on purpose (so the report shows a failure with its message) and one is skipped.
"""

from __future__ import annotations

import sys
import time
import traceback
from xml.sax.saxutils import quoteattr, escape


def _check_addition() -> None:
    assert 1 + 1 == 2


def _check_sorting() -> None:
    assert sorted([3, 1, 2]) == [1, 2, 3]


def _check_string_padding() -> None:
    assert "ci".ljust(4, "-") == "ci--"


def _check_slow_io() -> None:
    time.sleep(0.2)


def _check_rounding() -> None:
    # fails on purpose: binary floating point
    assert 0.1 + 0.2 == 0.3, "0.1 + 0.2 != 0.3 in binary floating point"


TESTS = [
    ("math", "test_addition", _check_addition),
    ("math", "test_rounding", _check_rounding),
    ("collections", "test_sorting", _check_sorting),
    ("strings", "test_padding", _check_string_padding),
    ("io", "test_slow_io", _check_slow_io),
]


def main(argv: list[str]) -> int:
    out = argv[1] if len(argv) > 1 else "demo-junit.xml"
    cases = []
    failed = 0
    for suite, name, fn in TESTS:
        start = time.perf_counter()
        body = ""
        try:
            fn()
            sys.stdout.write(f"PASS {suite}::{name}\n")
        except AssertionError as exc:
            failed += 1
            trace = traceback.format_exc()
            body = f"<failure message={quoteattr(str(exc))} type=\"AssertionError\">{escape(trace)}</failure>"
            sys.stdout.write(f"FAIL {suite}::{name}: {exc}\n")
        took = time.perf_counter() - start
        cases.append(f'<testcase classname="demo.{suite}" name="{name}" file="demo_suite.py" '
                     f'time="{took:.4f}">{body}</testcase>')
    cases.append('<testcase classname="demo.network" name="test_needs_network" time="0">'
                 '<skipped message="no network on this machine"/></testcase>')
    sys.stdout.write("SKIP network::test_needs_network: no network on this machine\n")
    xml = ('<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite name="demo" tests="%d" failures="%d" '
           'skipped="1">%s</testsuite></testsuites>\n' % (len(cases), failed, "".join(cases)))
    with open(out, "w", encoding="utf-8") as fh:
        fh.write(xml)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
