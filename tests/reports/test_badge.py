"""Badges: well-formed accessible SVG, widths from the font table, colours by status, endpoint JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ci_sidecar.protocol.records import TestResult
from ci_sidecar.reports import badge_svg, run_badge_message, shields_endpoint_json, status_color, text_width
from ci_sidecar.reports.badge import _BOLD, _REGULAR

from .reports_helpers import make_run
from .ttf_metrics import advance_widths
from helpers import missing

SVG = "{http://www.w3.org/2000/svg}"
STYLES = ("flat", "flat-square", "for-the-badge")
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")


def width_of(svg: str) -> int:
    return int(ET.fromstring(svg).get("width"))


class TestSvg:
    @pytest.mark.parametrize("style", STYLES)
    def test_well_formed_and_accessible(self, style: str) -> None:
        """Each style is well-formed SVG with role=img, a <title> and an aria-label saying label and message."""
        root = ET.fromstring(badge_svg("tests", "12 passed", "brightgreen", style))  # type: ignore[arg-type]
        assert "img" == root.get("role")
        expected = "TESTS: 12 PASSED" if style == "for-the-badge" else "tests: 12 passed"
        assert expected == root.get("aria-label")
        assert expected == root.find(f"{SVG}title").text

    @pytest.mark.parametrize("style", STYLES)
    def test_width_grows_with_text(self, style: str) -> None:
        """Longer label or message → wider badge; wide letters take more room than narrow ones."""
        base = width_of(badge_svg("tests", "ok", style=style))  # type: ignore[arg-type]
        assert width_of(badge_svg("tests", "ok ok ok", style=style)) > base  # type: ignore[arg-type]
        assert width_of(badge_svg("integration tests", "ok", style=style)) > base  # type: ignore[arg-type]
        assert width_of(badge_svg("t", "WWWW", style=style)) > width_of(badge_svg("t", "iiii", style=style))  # type: ignore[arg-type]

    def test_text_length_matches_table(self) -> None:
        """The message text is laid out to exactly the width computed from the table."""
        root = ET.fromstring(badge_svg("build", "passing", style="flat-square"))
        texts = root.findall(f".//{SVG}text")
        assert ["build", "passing"] == [t.text for t in texts]
        assert pytest.approx(text_width("passing"), abs=0.05) == float(texts[1].get("textLength"))

    def test_hostile_label_escaped(self) -> None:
        """Markup in the label stays text and the document stays well-formed."""
        svg = badge_svg('<script>"x"</script> & ]]>', "a<b")
        root = ET.fromstring(svg)
        assert "<script" not in svg
        assert '<script>"x"</script> & ]]>: a<b' == root.get("aria-label")

    def test_bad_colour_falls_back_to_grey(self) -> None:
        """Only palette names and hex colours are used; anything else is grey (no attribute injection)."""
        svg = badge_svg("a", "b", color='red" onload="x')
        assert "onload" not in svg
        assert 'fill="#9f9f9f"' in svg


class TestColours:
    def test_status_words(self) -> None:
        """Passing is green, failing red, error orange, running yellow, anything else grey."""
        assert ("#4c1", "#e05d44", "#fe7d37", "#dfb317", "#9f9f9f") == tuple(
            status_color(s) for s in ("passing", "Failing", "error", "running", "whatever"))

    def test_run_messages(self) -> None:
        """A run's badge says what happened, in the matching colour."""
        ok = [TestResult(name=f"t{i}", status="passed") for i in range(3)]
        bad = [*ok, TestResult(name="x", status="failed")]
        assert ("3 passed", "#4c1") == run_badge_message(make_run(ok))
        assert ("1 failed, 3 passed", "#e05d44") == run_badge_message(make_run(bad))
        assert ("no tests", "#9f9f9f") == run_badge_message(make_run([]))
        assert ("unknown", "#9f9f9f") == run_badge_message(None)


def test_endpoint_json() -> None:
    """The shields endpoint document has schemaVersion 1, label, message and colour."""
    doc = json.loads(shields_endpoint_json("tests", "3 passed", "brightgreen"))
    assert {"schemaVersion": 1, "label": "tests", "message": "3 passed", "color": "#4c1", "isError": False} == doc


def test_table_is_dejavu_sans_11px() -> None:
    """The embedded width table is DejaVu Sans / Sans Bold at 11px, re-read from the font files."""
    if not (FONT_DIR / "DejaVuSans.ttf").exists():
        missing(f"needs the DejaVu fonts in {FONT_DIR}", "apt-get install fonts-dejavu-core")
    chars = "".join(chr(c) for c in range(32, 127))
    for font, table in (("DejaVuSans.ttf", _REGULAR), ("DejaVuSans-Bold.ttf", _BOLD)):
        widths = advance_widths(FONT_DIR / font, 11, chars)
        assert [round(widths[c], 3) for c in chars] == list(table)
