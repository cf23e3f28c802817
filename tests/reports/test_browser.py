"""report.html in a real browser: Debian's headless Chromium opens the report a daemon wrote for a real run.

The run goes through the daemon (passes, failures whose messages carry ``<script>`` and unicode, an
error, skips, a flaky test); ``complete_test_run`` writes report.html into the run's output folder.
Chromium is started by the test itself (flags as ARCHITECTURE.md gives them, a fresh profile, no network
beyond what a file:// page needs) and its console is captured from ``--enable-logging=stderr``: page
console messages, uncaught errors and Content-Security-Policy violations appear there as ``CONSOLE`` lines.
A control page proves the capture sees script errors here, so "no errors" is never vacuous.

Without Chromium the tests skip, or fail under ``CI_SIDECAR_REQUIRE_ALL=1`` (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ci_sidecar_client import Client
from helpers import CI_NAMES, CI_PREFIXES, DaemonProcess, missing, scrubbed_env

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
         "--enable-logging=stderr", "--v=0"]
PHONE = "--window-size=390,844"
BROWSER_TIMEOUT_S = 45  # an alert() that ran would block headless Chromium until this runs out

XSS_MESSAGE = "expected <b>ok</b> but got <script>alert(1)</script>"
XSS_DETAILS = "Traceback:\n  </pre><script>alert(2)</script>\n  File \"board.py\", line 7"
ERROR_MESSAGE = '"><img src=x onerror=alert(3)> fixture exploded'
UNICODE_MESSAGE = "Temperatur über 85 °C — 温度が高すぎます 🔥 (ñ ≠ n)"
UNICODE_NAME = "test_ünïcödé_名前"


@dataclass
class Browser:
    """One headless Chromium invocation's output."""

    stdout: str
    console: list[str]  # the page's console lines (messages, uncaught errors, CSP violations)
    log: str  # everything Chromium wrote to stderr


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        missing("needs Debian's chromium for the report browser test", "apt-get install chromium (.ci/run does)")
    return path


def open_in_browser(chromium: str, url: str, profile: Path, *extra: str) -> Browser:
    """Run headless Chromium on ``url`` with a fresh profile; the console comes back separately."""
    profile.mkdir(parents=True)
    try:
        done = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *extra, url],
                              capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, cwd=profile,
                              check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"Chromium did not finish {url} in {BROWSER_TIMEOUT_S} s: a dialog (alert()) blocks headless "
                    "Chromium, so a script in the page may have run")
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert done.returncode == 0, f"chromium exited with {done.returncode}:\n{done.stderr[-3000:]}"
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return Browser(done.stdout, console, done.stderr)


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the unfiltered rows of an 8-bit RGB/RGBA PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = prev[i]
            corner = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line) if bpp == 3 else bytes(b for j, b in enumerate(line) if j % 4 != 3))
        prev = line
    return width, height, rows


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """report.html of a real run, written by a real daemon at completion."""
    tmp = tmp_path_factory.mktemp("browser")
    sock_dir = Path(tempfile.mkdtemp(prefix="cb", dir="/tmp"))  # short: sun_path is 108 bytes
    env = scrubbed_env(tmp)
    daemon = DaemonProcess.start(sock_dir / "d.sock", env)
    mp = pytest.MonkeyPatch()
    # the client sends its environment: the CI machine's own variables must not make this a GitHub run
    for name in [n for n in os.environ if n in CI_NAMES or n.startswith(CI_PREFIXES)]:
        mp.delenv(name)
    try:
        client: Client = daemon.client(config={"output_dir": str(tmp / "out")})
        run = client.request("create_test_run", {"name": "board bring-up <rev-b> ✓"})
        results = [
            {"name": f"test_pass_{i}", "suite": "smoke", "status": "passed", "duration": d}
            for i, d in enumerate([0.002, 0.04, 0.3, 1.5, 12.0])
        ] + [
            {"name": "test_xss_message", "suite": "security", "classname": "sec.Xss", "status": "failed",
             "message": XSS_MESSAGE, "details": XSS_DETAILS, "file": "tests/sec.py", "line": 41, "duration": 0.2},
            {"name": UNICODE_NAME, "suite": "thermal ✓", "status": "failed", "message": UNICODE_MESSAGE,
             "stdout": "sensor: 86 °C", "duration": 2.5},
            {"name": "test_fixture", "suite": "setup", "status": "error", "message": ERROR_MESSAGE},
            {"name": "test_needs_lab", "suite": "smoke", "status": "skipped", "message": "no lab <here>"},
            {"name": "test_flaky_uart", "suite": "io", "status": "failed", "message": "timeout", "attempt": 1},
            {"name": "test_flaky_uart", "suite": "io", "status": "passed", "attempt": 2, "duration": 0.5},
        ]
        client.request("report_results", {"test_run_id": run["id"], "results": results})
        done = client.request("complete_test_run", {"test_run_id": run["id"], "wait": True})
        assert done["counts"] == {"total": 10, "passed": 6, "failed": 2, "errors": 1, "skipped": 1, "flaky": 1}
        path = Path(done["output_dir"]) / "report.html"
        assert path.is_file(), f"complete_test_run did not write {path}"
        yield path
    finally:
        mp.undo()
        daemon.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_the_console_capture_sees_script_errors(chromium: str, tmp_path: Path) -> None:
    """Calibration: on this machine, a page's errors do reach the captured console."""
    page = tmp_path / "broken.html"
    page.write_text('<!doctype html><meta charset="utf-8"><p>x</p>'
                    '<script>console.error("control-message"); notDefined();</script><script>var x = ;</script>')
    seen = open_in_browser(chromium, page.as_uri(), tmp_path / "profile", "--dump-dom")
    text = "\n".join(seen.console)
    assert "control-message" in text and "Uncaught ReferenceError" in text and "SyntaxError" in text, seen.log[-3000:]


def test_failures_are_visible_escaped_and_nothing_runs(chromium: str, report: Path, tmp_path: Path) -> None:
    seen = open_in_browser(chromium, report.as_uri(), tmp_path / "profile", PHONE, "--dump-dom")
    dom = seen.stdout
    assert "</html>" in dom, f"no DOM dumped:\n{seen.log[-3000:]}"
    # no script errors, no blocked script or remote load (a CSP violation is logged to the console)
    assert seen.console == [], "\n".join(seen.console)
    assert not re.search(r"Uncaught|SyntaxError", seen.log)
    # nothing executable made it into the document: the hostile text is text
    assert re.search(r"<script\b", dom, re.I) is None
    assert re.search(r"<img\b", dom, re.I) is None
    assert re.search(r"<[^>]*\son\w+=", dom) is None  # no event-handler attribute on any element
    assert "expected &lt;b&gt;ok&lt;/b&gt; but got &lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in dom
    assert "&lt;img src=x onerror=alert(3)&gt; fixture exploded" in dom
    # the failures come first, with their messages, unicode intact
    failures = dom.index('id="failures"')
    assert failures < dom.index('id="tests"')
    section = dom[failures:dom.index("</section>", failures)]
    for text in ("test_xss_message", UNICODE_NAME, UNICODE_MESSAGE, "test_fixture", "tests/sec.py:41"):
        assert text in section, text
    assert "test_flaky_uart" not in section  # passed on its retry: flaky, not a failure
    assert "board bring-up &lt;rev-b&gt; ✓" in dom
    assert "<svg" in dom and 'role="img"' in dom  # the duration chart is inline


def test_readable_on_a_phone(chromium: str, report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "phone.png"
    seen = open_in_browser(chromium, report.as_uri(), tmp_path / "profile", PHONE, "--hide-scrollbars",
                           f"--screenshot={shot}")
    assert seen.console == [], "\n".join(seen.console)
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (390, 844)
    background = rows[0][:3]
    ink = sum(1 for row in rows for x in range(0, len(row), 3) if row[x:x + 3] != background)
    assert ink > 0.03 * width * height, f"only {ink} non-background pixels: the page looks blank"
    # the failure markers (a red bar left of each failure) are on the first screen
    red = sum(1 for row in rows for x in range(0, len(row), 3)
              if row[x] > 170 and row[x + 1] < 80 and row[x + 2] < 90)
    assert red > 200, f"{red} red pixels: no failure visible on the first screen"
    # nothing is cut off at the right edge: the last columns are background (no horizontal overflow)
    edge = sum(1 for row in rows if row[-6:] != background * 2)
    assert edge < 0.02 * height, f"{edge} rows touch the right edge: content wider than a phone"
