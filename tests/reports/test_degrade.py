"""The degrade ladder: steps in order, and for any input the output fits, is valid UTF-8 and keeps fences closed."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ci_sidecar.protocol.records import TestResult
from ci_sidecar.reports import cut_markdown, fit_markdown, render_markdown

from .reports_helpers import make_data

URL = "https://ci.example.test/runs/1/report.html"
_FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def open_fence_at_end(text: str) -> bool:
    """Independent check: walk fence lines (CommonMark rules, simplified) and say if one is left open."""
    fence = None
    for line in text.split("\n"):
        m = _FENCE_LINE.match(line)
        if not m:
            continue
        marker, rest = m.groups()
        if fence is None:
            if marker[0] == "`" and "`" in rest:
                continue
            fence = marker
        elif marker[0] == fence[0] and len(marker) >= len(fence) and not rest.strip():
            fence = None
    return fence is not None


def big_run(passed: int = 400, failures: int = 5, trace_lines: int = 200) -> list[TestResult]:
    trace = "\n".join(f"  at frame_{i} (file_{i}.py:{i}) ünïcødé ✓" for i in range(trace_lines))
    results = [TestResult(name=f"test_passing_number_{i}", status="passed", duration=0.01) for i in range(passed)]
    results += [TestResult(name=f"test_fail_{i}", status="failed", message=f"boom {i}", details=trace, duration=1.0)
                for i in range(failures)]
    return results


class TestLadder:
    def test_fits_untouched(self) -> None:
        """A report under budget is returned whole and not marked shortened."""
        data = make_data(big_run(passed=3, failures=1, trace_lines=3))
        fitted = fit_markdown(data, 65_536)
        assert (False, "full") == (fitted.shortened, fitted.step)
        assert render_markdown(data) == fitted.text

    def test_steps_in_order(self) -> None:
        """Tighter budgets drop the passed list, then trim traces, then drop them, then cut with a link."""
        data = make_data(big_run(), full_report_url=URL)
        sizes = {}
        for step, opts in (("full", {}), ("no-passed", {"include_passed": False}),
                           ("trimmed-traces", {"include_passed": False, "trace_lines": 20}),
                           ("no-traces", {"include_passed": False, "trace_lines": 0})):
            sizes[step] = len(render_markdown(data, **opts).encode())
        assert sizes["full"] > sizes["no-passed"] > sizes["trimmed-traces"] > sizes["no-traces"]
        seen = []
        for budget, expected in ((sizes["full"] - 1, "no-passed"), (sizes["no-passed"] - 1, "trimmed-traces"),
                                 (sizes["trimmed-traces"] - 1, "no-traces"), (sizes["no-traces"] // 2, "cut")):
            fitted = fit_markdown(data, budget)
            seen.append(fitted.step)
            assert fitted.shortened
            assert len(fitted.text.encode()) <= budget
            assert URL in fitted.text
            assert not open_fence_at_end(fitted.text)
        assert ["no-passed", "trimmed-traces", "no-traces", "cut"] == seen

    def test_messages_survive_until_the_cut(self) -> None:
        """Dropping traces keeps every failure message."""
        data = make_data(big_run(), full_report_url=URL)
        no_traces = len(render_markdown(data, include_passed=False, trace_lines=0).encode())
        fitted = fit_markdown(data, no_traces + 200)
        assert "no-traces" == fitted.step
        assert all(f"boom {i}" in fitted.text for i in range(5))
        assert "frame_1 " not in fitted.text

    def test_cut_closes_open_fence_and_details(self) -> None:
        """Cutting inside a trace closes its fence and its <details> before the link."""
        text = "intro\n\n<details><summary>x</summary>\n\n```text\n" + "line ✓\n" * 500 + "```\n\n</details>\n"
        out = cut_markdown(text, 300, full_report_url=URL)
        assert len(out.encode()) <= 300
        assert not open_fence_at_end(out)
        assert out.count("<details>") == out.count("</details>")
        assert out.rstrip().endswith(f"[full report]({URL})._")

    def test_tiny_budget(self) -> None:
        """Even a budget smaller than the notice gives valid, in-budget output."""
        for budget in (0, 1, 5, 20):
            out = cut_markdown("# ü\n" * 100, budget, full_report_url=URL)
            assert len(out.encode()) <= budget
            out.encode().decode("utf-8")


# Markdown-ish documents: paragraphs with multibyte text, tables, and fenced blocks of varying fence length.
_words = st.text(alphabet=st.sampled_from("ab |`*\\<>é€😀✓ \t"), min_size=0, max_size=40)
_para = _words.map(lambda s: s.replace("```", "``"))
_fenced = st.tuples(st.sampled_from(["```", "````", "~~~"]), st.lists(_words, max_size=8)).map(
    lambda t: t[0] + "text\n" + "\n".join(line.replace(t[0][0] * 3, "xx") for line in t[1]) + "\n" + t[0]
)
_details = st.lists(_para, max_size=3).map(lambda ls: "<details><summary>s</summary>\n\n" + "\n".join(ls) + "\n\n</details>")
_doc = st.lists(st.one_of(_para, _fenced, _details), min_size=1, max_size=15).map("\n\n".join)


class TestProperties:
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(doc=_doc, budget=st.integers(min_value=0, max_value=2000), url=st.sampled_from([None, URL]))
    def test_cut_markdown(self, doc: str, budget: int, url: str | None) -> None:
        """Output ≤ budget bytes, valid UTF-8, fences balanced, and unchanged when it already fits."""
        out = cut_markdown(doc, budget, full_report_url=url)
        data = out.encode("utf-8")
        assert len(data) <= budget
        assert data.decode("utf-8") == out
        if len(doc.encode()) <= budget:
            assert doc == out
        else:
            assert not open_fence_at_end(out)
            if budget >= 200 and url:
                assert url in out

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        names=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=20),
        trace=st.text(max_size=400),
        budget=st.integers(min_value=0, max_value=6000),
    )
    def test_fit_markdown(self, names: list[str], trace: str, budget: int) -> None:
        """Any run, any budget: the ladder's output fits, is valid UTF-8 and has no open fence."""
        results = [TestResult(name=n, status="failed" if i % 3 == 0 else "passed", message=n, details=trace)
                   for i, n in enumerate(names)]
        fitted = fit_markdown(make_data(results, full_report_url=URL), budget)
        data = fitted.text.encode("utf-8")
        assert len(data) <= budget
        data.decode("utf-8")
        assert not open_fence_at_end(fitted.text)
