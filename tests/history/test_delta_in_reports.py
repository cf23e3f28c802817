"""The delta reaches what providers publish (check summaries, staged reports) and is escaped per format."""

from __future__ import annotations

from ci_sidecar.protocol.history import BaseRun, DeltaCounts, FlakyTest, RunDelta
from ci_sidecar.protocol.records import CIContext, Counts
from ci_sidecar.providers._render import report_data
from ci_sidecar.providers._results import Collected
from ci_sidecar.providers.base import ProviderEnv, RunSnapshot
from ci_sidecar.reports import fit_markdown, render_html

DELTA = RunDelta(
    base_kind="target_branch", counts=DeltaCounts(new_failures=2, fixed=1),
    base=BaseRun(test_run_id="0123456789abcdef", name="unit", branch="main", commit_sha="a" * 40),
    new_failures=["t.test_<script>", "t.test_|pipe"], fixed=["t.test_ok"],
    flaky=[FlakyTest(test="t.test_wobbly", score=0.5, flips=2, runs=4)], window=20)


def _data():  # type: ignore[no-untyped-def]
    run = RunSnapshot(id="r", name="unit", status="finished", conclusion="failure", start_time="2026-01-01T00:00:00Z",
                      end_time="2026-01-01T00:01:00Z", counts=Counts(total=3, failed=2, passed=1), delta=DELTA, output_dir="/nonexistent")
    env = ProviderEnv.build(CIContext(provider="github", sources={}), {}, None, None)
    return report_data(run, env, Collected(), max_failures=10)


def test_check_summary_has_the_comparison_section() -> None:
    """A provider's summary (rendered from the run snapshot) says what it was compared with and what changed."""
    text = fit_markdown(_data(), 65535).text
    section = text.split("### Compared with ", 1)[1]
    assert section.startswith("main @ aaaaaaaaaaaa \\(target branch")
    assert "**New failures (2)**" in section and "**Fixed (1)**" in section
    assert r"t.test\_\<script\>" in section and r"t.test\_\|pipe" in section and "<script>" not in section
    assert "| t.test\\_wobbly | 0.50 | 2 / 4 |" in section


def test_html_report_escapes_the_comparison() -> None:
    """Test names in the HTML comparison are text, never markup."""
    html = render_html(_data())
    assert "t.test_&lt;script&gt;" in html and "<script>" not in html.split('<section id="delta">')[1]
