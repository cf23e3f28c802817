"""TeamCity service messages: the escaping of TeamCity's grammar, and a run's results as a message stream.

Grammar (https://www.jetbrains.com/help/teamcity/service-messages.html): a message is one line
``##teamcity[messageName 'value']`` or ``##teamcity[messageName name1='value1' name2='value2']``; inside a
value ``|`` escapes: ``|'`` (apostrophe), ``|n`` (line feed), ``|r`` (carriage return), ``||`` (the bar),
``|[`` and ``|]`` (brackets), ``|0xNNNN`` (the UTF-16 code unit NNNN). :func:`escape` writes the line
breaks TeamCity knows (U+0085, U+2028, U+2029) and every other control character as ``|0xNNNN``, so a
message is always exactly one line, whatever a test's name or output holds.

:class:`ServiceMessages` renders one run on its own ``flowId`` (the run's id): one suite named after the run,
each result as ``testStarted`` [``testStdOut``/``testStdErr``] [``testFailed``/``testIgnored``]
``testFinished`` (duration in ms), and at the end the run's artifacts (``publishArtifacts``, and
``testMetadata`` links where an artifact names its test), ``buildProblem`` for a failed run, ``buildStatus``
and ``addBuildTag``. It only renders: who prints it (``ci-sidecar exec``) or posts it (the REST tier) decides
which part goes when, and remembers how far it got.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ci_sidecar.protocol.records import TestResult

__all__ = ["ServiceMessages", "escape", "message", "single", "test_name"]

_SIMPLE = {"|": "||", "'": "|'", "\n": "|n", "\r": "|r", "[": "|[", "]": "|]"}


def _escape_char(ch: str) -> str:
    simple = _SIMPLE.get(ch)
    if simple is not None:
        return simple
    code = ord(ch)
    if code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029):
        return f"|0x{code:04X}"
    return ch


def escape(value: str) -> str:
    """*value* as a service-message attribute value (without the quotes)."""
    if value.isalnum() and value.isascii():
        return value  # the common case (ids, counts, plain names) needs no work
    return "".join(_escape_char(ch) for ch in value)


def single(kind: str, value: str, /) -> str:
    """``##teamcity[kind 'value']`` (one line, with its line feed)."""
    return f"##teamcity[{kind} '{escape(value)}']\n"


def message(kind: str, /, **attrs: Any) -> str:
    """``##teamcity[kind key='value' ...]`` (one line, with its line feed); None values are left out."""
    parts = [f"{key}='{escape(str(value))}'" for key, value in attrs.items() if value is not None]
    return f"##teamcity[{' '.join([kind, *parts])}]\n"


def test_name(result: TestResult) -> str:
    """The name TeamCity shows a test under: ``<classname or suite>.<name>`` (its tree groups by the dots)."""
    prefix = result.classname or result.suite
    return f"{prefix}.{result.name}" if prefix and not result.name.startswith(prefix + ".") else result.name


test_name.__test__ = False  # type: ignore[attr-defined]


def _ms(seconds: float | None) -> int:
    return max(0, round((seconds or 0.0) * 1000))


class ServiceMessages:
    """The service messages of one run on its own flow (``flowId`` = the run's id).

    Args:
        flow_id: the run's id (TeamCity keeps interleaved flows apart by it).
        suite: the suite every test of the run is reported under (the run's name).
        artifact_root: where the run's artifacts are published in the build's artifacts (``publishArtifacts``
            target), e.g. ``ci-sidecar/<run id>``.
    """

    def __init__(self, *, flow_id: str, suite: str, artifact_root: str) -> None:
        self.flow_id = flow_id
        self.suite = suite
        self.artifact_root = artifact_root.strip("/")

    def begin(self) -> str:
        """``testSuiteStarted`` of the run."""
        return message("testSuiteStarted", name=self.suite, flowId=self.flow_id)

    def result(self, r: TestResult) -> str:
        """One test (one attempt): started, its output, failed or ignored, finished."""
        name, flow = test_name(r), self.flow_id
        out = [message("testStarted", name=name, captureStandardOutput="false", flowId=flow)]
        if r.stdout:
            out.append(message("testStdOut", name=name, out=r.stdout, flowId=flow))
        if r.stderr:
            out.append(message("testStdErr", name=name, out=r.stderr, flowId=flow))
        if r.status in ("failed", "error"):
            text = r.message or ("error" if r.status == "error" else "failed")
            out.append(message("testFailed", name=name, message=text, details=r.details or "", flowId=flow))
        elif r.status == "skipped":
            out.append(message("testIgnored", name=name, message=r.message or "skipped", flowId=flow))
        out.append(message("testFinished", name=name, duration=str(_ms(r.duration)), flowId=flow))
        return "".join(out)

    def results(self, results: Iterable[TestResult]) -> str:
        """Each result of *results*, in order."""
        return "".join(self.result(r) for r in results)

    def artifact_path(self, name: str) -> str:
        """Where an artifact named *name* lands among the build's artifacts."""
        return f"{self.artifact_root}/{name.strip('/')}"

    def suite_end(self) -> str:
        """``testSuiteFinished`` of the run."""
        return message("testSuiteFinished", name=self.suite, flowId=self.flow_id)

    def publish(self, artifacts: Iterable[Mapping[str, Any]], staged: Mapping[str, str]) -> str:
        """``publishArtifacts`` for each artifact with a staged file, and a ``testMetadata`` link from the test an
        artifact names (``metadata.test``) to where it lands."""
        out = []
        for art in artifacts:
            source = staged.get(art["name"])
            if source is None:
                continue
            target = self.artifact_path(art["name"]).rpartition("/")[0]
            out.append(single("publishArtifacts", f"{source} => {target}"))
            test = (art.get("metadata") or {}).get("test")
            if isinstance(test, str) and test:
                out.append(message("testMetadata", testName=test, name=art["name"], type="artifact",
                                   value=self.artifact_path(art["name"]), flowId=self.flow_id))
        return "".join(out)

    def status_text(self, run: Mapping[str, Any]) -> str:
        """``<run>: N passed, N failed, N skipped``."""
        counts = run.get("counts") or {}
        failed = int(counts.get("failed", 0)) + int(counts.get("errors", 0))
        return (f"{run.get('name', self.suite)}: {counts.get('passed', 0)} passed, {failed} failed, "
                f"{counts.get('skipped', 0)} skipped")

    def problem(self, run: Mapping[str, Any]) -> str:
        """A ``buildProblem`` (which fails the build) when the run failed, else nothing."""
        counts = run.get("counts") or {}
        conclusion = run.get("conclusion") or "unknown"
        if conclusion not in ("failure", "timed_out", "cancelled") and not (counts.get("failed") or counts.get("errors")):
            return ""
        return message("buildProblem", description=f"{self.status_text(run)} ({conclusion})"[:4000],
                       identity=f"ci-sidecar-{self.flow_id}"[:60])

    @staticmethod
    def tag(run: Mapping[str, Any]) -> str:
        """The build tag of the run's conclusion: ``ci-sidecar-<conclusion>``."""
        return f"ci-sidecar-{run.get('conclusion') or 'unknown'}"

    def end(self, run: Mapping[str, Any], artifacts: Iterable[Mapping[str, Any]] = (),
            staged: Mapping[str, str] | None = None) -> str:
        """The end of the run in the build log: ``testSuiteFinished``, its artifacts published, a
        ``buildProblem`` when it failed, its ``buildStatus`` text and an ``addBuildTag``.

        Args:
            run: the run as ``get_test_run_status`` returns it (``name``, ``conclusion``, ``counts``).
            artifacts: the run's artifacts (``name``, ``metadata``) to publish.
            staged: artifact name → the file to publish (artifacts without one are not published).
        """
        # {build.status.text} keeps TeamCity's own text (its test counts) ahead of ours
        return (self.suite_end() + self.publish(artifacts, staged or {}) + self.problem(run)
                + message("buildStatus", text=f"{{build.status.text}}; {self.status_text(run)}")
                + single("addBuildTag", self.tag(run)))
