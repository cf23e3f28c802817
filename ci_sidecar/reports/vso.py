"""Azure Pipelines logging commands (``##vso[…]``) for a run: what a job step prints for the agent to act on.

Printed by ``ci-sidecar exec`` in an Azure Pipelines job (the Azure provider's job-log format), they are the tier
that needs no token (``System.AccessToken`` not mapped into the step):

* ``task.logissue`` — an error per failed test (file and line when known), shown in the build summary;
* ``results.publish`` — the agent publishes the run's JUnit file as a test run of the build (the Tests tab),
  printed only when the run was not published through the REST API already (no native target), so it is never
  there twice;
* ``build.addbuildtag`` — ``tests-passed``, ``tests-failed`` or ``tests-cancelled`` on the build.

Escaping follows the agent's rules (azure-pipelines-task-lib ``escapedata``/``escape``): in messages ``%``,
``\\r`` and ``\\n`` become ``%AZP25``, ``%0D``, ``%0A``; property values also escape ``;`` and ``]`` as ``%3B`` and
``%5D``.
"""

from __future__ import annotations

from collections.abc import Iterator

from ci_sidecar.protocol.records import TestResult

from ._text import clip_utf8, trim_lines
from .model import ReportData, display_name

__all__ = ["escape_vso_data", "escape_vso_property", "iter_vso", "MAX_ISSUES"]

#: errors logged per run (a summary holds only so many; the rest are counted in one warning)
MAX_ISSUES = 50
MAX_MESSAGE_BYTES = 4096
TRACE_LINES = 20


def escape_vso_data(text: str) -> str:
    """Escape a logging command's message."""
    return text.replace("%", "%AZP25").replace("\r", "%0D").replace("\n", "%0A")


def escape_vso_property(text: str) -> str:
    """Escape a logging command's property value."""
    return escape_vso_data(text).replace(";", "%3B").replace("]", "%5D")


def issue(result: TestResult) -> str:
    """The ``task.logissue`` line of one failed or errored test."""
    props = ["type=error"]
    if result.file:
        props.append(f"sourcepath={escape_vso_property(result.file)}")
        if result.line is not None and result.line > 0:
            props.append(f"linenumber={result.line}")
    body = f"{display_name(result)}: {result.message or result.status}"
    if result.details and result.details.strip() != (result.message or "").strip():
        body += "\n" + trim_lines(result.details, TRACE_LINES)
    return f"##vso[task.logissue {';'.join(props)};]{escape_vso_data(clip_utf8(body, MAX_MESSAGE_BYTES))}"


def _published_natively(data: ReportData) -> bool:
    """Whether the run went to Azure DevOps through the API (its test run exists: nothing more to publish)."""
    return any(t.role == "ci" and t.provider == "azure" and t.kind == "native" for t in data.run.targets)


def iter_vso(data: ReportData, junit_path: str | None = None) -> Iterator[str]:
    """The logging commands for ``data``: its failures, its JUnit file to publish (``junit_path``), its tag."""
    # the publish and the tag first: a byte limit drops lines from the end, the issues are the part to lose
    if junit_path and not _published_natively(data):
        yield (f"##vso[results.publish type=JUnit;runTitle={escape_vso_property(data.run.name)};mergeResults=false;"
               f"publishRunAttachments=false;resultFiles={escape_vso_property(junit_path)};]")
    c = data.run.counts
    outcome = "cancelled" if data.run.conclusion == "cancelled" else \
        "failed" if c.failed or c.errors or data.run.conclusion == "failure" else "passed"
    yield f"##vso[build.addbuildtag]tests-{outcome}"
    failures = [r for r in data.failures if r.status in ("failed", "error")]
    for result in failures[:MAX_ISSUES]:
        yield issue(result)
    if len(failures) > MAX_ISSUES:
        yield (f"##vso[task.logissue type=warning;]{len(failures) - MAX_ISSUES} more failed test(s): see the test "
               "run")
