"""Expat callbacks that turn JUnit elements into TestResult objects (the inside of :func:`~.junit.iter_junit`).

See :mod:`ci_sidecar.reports.junit` for the mapping from each flavour's elements to results.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from ci_sidecar.protocol.errors import ContentError
from ci_sidecar.protocol.records import TestResult, TestStatus

_SUITE_JOIN = " > "
_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\r?\n)+")


class Refused(ContentError):
    """Raised from expat handlers to stop at the first DTD or entity construct."""


class NotJUnit(ContentError):
    """The root element is not ``<testsuites>`` or ``<testsuite>``."""


class _Text:
    """Collects character data up to a cap, counting what was dropped."""

    __slots__ = ("parts", "size", "dropped", "cap")

    def __init__(self, cap: int) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0
        self.cap = cap

    def add(self, text: str) -> None:
        room = self.cap - self.size
        if room >= len(text):
            self.parts.append(text)
            self.size += len(text)
        else:
            if room > 0:
                self.parts.append(text[:room])
                self.size += room
            self.dropped += len(text) - max(room, 0)

    def value(self) -> str | None:
        # Drop the pretty-printing around the text, keep the first line's own indentation (Go's "    x_test.go:").
        text = _LEADING_BLANK_LINES.sub("", "".join(self.parts).rstrip())
        if self.dropped:
            text += f"\n… [{self.dropped} characters cut by ci-sidecar]"
        return text if text.strip() else None


class _Outcome:
    """One ``<failure>``/``<error>``/``<skipped>`` or rerun element of a test case."""

    __slots__ = ("status", "message", "type", "text", "trace", "time", "stdout", "stderr")

    def __init__(self, status: TestStatus, attrs: dict[str, str], cap: int) -> None:
        self.status = status
        self.message = attrs.get("message")
        self.type = attrs.get("type")
        self.text = _Text(cap)
        self.trace: _Text | None = None  # Surefire's <stackTrace> child of a rerun element
        self.time = _duration(attrs.get("time"))
        self.stdout: _Text | None = None
        self.stderr: _Text | None = None


class _Case:
    """The test case being read."""

    __slots__ = ("attrs", "suite", "suite_file", "outcomes", "flaky", "reruns", "stdout", "stderr", "props")

    def __init__(self, attrs: dict[str, str], suite: str | None, suite_file: str | None) -> None:
        self.attrs = attrs
        self.suite = suite
        self.suite_file = suite_file
        # Created on first use: most cases pass with no children, and this runs once per test.
        self.outcomes: list[_Outcome] | None = None
        self.flaky: list[_Outcome] | None = None
        self.reruns: list[_Outcome] | None = None
        self.stdout: _Text | None = None
        self.stderr: _Text | None = None
        self.props: dict[str, Any] | None = None


_OUTCOME = {"failure": "failed", "error": "error", "skipped": "skipped"}
_RERUN = {"flakyFailure": "failed", "flakyError": "error", "rerunFailure": "failed", "rerunError": "error"}


def _duration(raw: str | None) -> float | None:
    """Seconds from a ``time`` attribute; Surefire may write ``1,234.5`` and some locales ``0,5``."""
    if not raw:
        return None
    raw = raw.strip()
    if "," in raw:
        raw = raw.replace(",", "") if "." in raw else raw.replace(",", ".")
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _line(raw: str | None) -> int | None:
    if raw is None:
        return None
    raw = raw.strip()
    return int(raw) if raw.isdigit() else None


def _first_line(text: str | None) -> str | None:
    if not text:
        return None
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:500]
    return None


class Reader:
    """Expat callbacks that turn JUnit elements into :class:`TestResult` objects as each case ends."""

    def __init__(self, parser: Any, cap: int) -> None:
        self.parser = parser
        self.cap = cap
        self.ready: list[TestResult] = []
        self.suites: list[str] = []  # names of the open <testsuite> elements
        self.suite_files: list[str | None] = []
        # Attempts so far of each test that failed, per open suite (to number gotestsum-style repeats).
        self.seen: list[dict[tuple[str | None, str], int]] = [{}]
        self.suite: str | None = None  # joined names of the open suites, computed when they change
        self.suite_file: str | None = None
        self.case: _Case | None = None
        self.rerun: _Outcome | None = None  # open flaky/rerun element inside the case
        self.text_stack: list[_Text | None] = []
        self.prop_name: str | None = None
        self.in_properties = False

    # -- expat handlers --------------------------------------------------------------------------

    def root(self, tag: str, attrs: dict[str, str]) -> None:
        """Handler for the first element only: check it is JUnit, then hand over to :meth:`start`."""
        if tag not in ("testsuites", "testsuite"):
            raise NotJUnit(tag)
        self.parser.StartElementHandler = self.start
        self.start(tag, attrs)

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        case = self.case
        if case is None:
            # Outside a test case only suites matter; text_stack is used inside a case only (it is the hot path).
            if tag == "testcase":
                self.case = _Case(attrs, self.suite, self.suite_file)
            elif tag == "testsuite":
                self.suites.append(attrs.get("name") or "")
                self.suite_files.append(attrs.get("file") or attrs.get("filepath"))
                self.seen.append({})
                self._suite_changed()
            return
        target: _Text | None = None
        if tag in _OUTCOME:
            outcome = _Outcome(_OUTCOME[tag], attrs, self.cap)  # type: ignore[arg-type]
            if case.outcomes is None:
                case.outcomes = []
            case.outcomes.append(outcome)
            target = outcome.text
        elif tag in _RERUN:
            outcome = _Outcome(_RERUN[tag], attrs, self.cap)  # type: ignore[arg-type]
            if tag.startswith("flaky"):
                case.flaky = [*(case.flaky or ()), outcome]
            else:
                case.reruns = [*(case.reruns or ()), outcome]
            self.rerun = outcome
            target = outcome.text
        elif tag in ("system-out", "system-err"):
            owner: _Case | _Outcome = self.rerun if self.rerun is not None else case
            text = _Text(self.cap)
            if tag == "system-out":
                owner.stdout = text
            else:
                owner.stderr = text
            target = text
        elif tag == "stackTrace" and self.rerun is not None:
            self.rerun.trace = target = _Text(self.cap)
        elif tag == "properties":
            self.in_properties = True
        elif tag == "property" and self.in_properties:
            name = attrs.get("name")
            if name:
                if "value" in attrs:
                    self._set_prop(name, attrs["value"])
                else:  # value written as element text (JUnit 5 / some loggers)
                    self.prop_name = name
                    target = _Text(self.cap)
        else:
            target = self.text_stack[-1] if self.text_stack else None  # unknown child: text goes to the parent
        self.text_stack.append(target)

    def end(self, tag: str) -> None:
        case = self.case
        if case is None:
            if tag == "testsuite" and self.suites:
                self.suites.pop()
                self.suite_files.pop()
                self.seen.pop()
                self._suite_changed()
            return
        if not self.text_stack:  # no child open: this is </testcase>
            self.case = None
            self.rerun = None
            self._finish(case)
            return
        target = self.text_stack.pop()
        if tag in _RERUN:
            self.rerun = None
        elif tag == "properties":
            self.in_properties = False
        elif tag == "property" and self.prop_name is not None:
            self._set_prop(self.prop_name, target.value() if target else None)
            self.prop_name = None

    def data(self, text: str) -> None:
        if self.text_stack:
            target = self.text_stack[-1]
            if target is not None:
                target.add(text)

    def refuse(self, *args: object) -> None:
        raise Refused(
            f"DTDs and entities are not allowed in JUnit files (refused at line {self.parser.CurrentLineNumber}; "
            "nothing was expanded)"
        )

    # -- building results --------------------------------------------------------------------------

    def _suite_changed(self) -> None:
        self.suite = _SUITE_JOIN.join(s for s in self.suites if s) or None
        self.suite_file = next((f for f in reversed(self.suite_files) if f), None)

    def _set_prop(self, name: str, value: Any) -> None:
        case = self.case
        assert case is not None
        if case.props is None:
            case.props = {}
        if name in case.props:  # repeated names (attachments, tags) keep every value
            old = case.props[name]
            case.props[name] = [*old, value] if isinstance(old, list) else [old, value]
        else:
            case.props[name] = value

    def _finish(self, case: _Case) -> None:
        attrs = case.attrs
        name = attrs.get("name") or attrs.get("classname") or "(unnamed)"
        classname = attrs.get("classname") or None
        file = attrs.get("file") or attrs.get("filepath") or case.suite_file
        raw_line = attrs.get("line") or attrs.get("lineno")
        line = _line(raw_line) if raw_line is not None else None
        duration = _duration(attrs.get("time"))
        key = (classname, name)
        scope = self.seen[-1]
        before = scope.get(key, 0)
        if not (case.outcomes or case.flaky or case.reruns or case.props or case.stdout or case.stderr or before):
            # Fast path: the common passing test with nothing attached.
            self.ready.append(
                TestResult(
                    name=name, status="passed", suite=case.suite, classname=classname,
                    file=file, line=line, duration=duration,
                )
            )
            return
        common: dict[str, Any] = {
            "name": name, "suite": case.suite, "classname": classname, "file": file, "line": line,
        }
        main_status: TestStatus = "passed"
        message = details = junit_type = None
        if case.outcomes:
            # A failure beats an error beats a skip (pytest writes both for a failing test whose teardown errors).
            order = {"failed": 0, "error": 1, "skipped": 2}
            primary = min(case.outcomes, key=lambda o: order[o.status])
            main_status = primary.status
            texts = [t for t in (o.text.value() for o in case.outcomes) if t]
            details = "\n\n".join(texts) or None
            message = primary.message or _first_line(primary.text.value())
            if primary.status == "skipped" and message == "true":
                message = None  # Node's reporter writes message="true" for a bare `skip: true`
            junit_type = primary.type
        props = dict(case.props) if case.props else None
        if junit_type:
            props = {**(props or {}), "junit.type": junit_type}
        main = TestResult(
            status=main_status,
            duration=duration,
            message=message,
            details=details,
            stdout=case.stdout.value() if case.stdout else None,
            stderr=case.stderr.value() if case.stderr else None,
            properties=props,
            **common,
        )
        attempts = [self._attempt(o, common) for o in case.flaky or ()] + [main]
        attempts += [self._attempt(o, common) for o in case.reruns or ()]
        if before or any(a.status in ("failed", "error") for a in attempts):
            # Only tests that failed are remembered: a rerun follows a failure, and memory stays O(failures).
            scope[key] = before + len(attempts)
        if before == 0 and len(attempts) == 1:
            self.ready.append(main)
            return
        for i, result in enumerate(attempts, start=before + 1):
            self.ready.append(msgspec.structs.replace(result, attempt=i))

    @staticmethod
    def _attempt(outcome: _Outcome, common: dict[str, Any]) -> TestResult:
        text = (outcome.trace.value() if outcome.trace else None) or outcome.text.value()
        return TestResult(
            status=outcome.status,
            duration=outcome.time,
            message=outcome.message or _first_line(text),
            details=text,
            stdout=outcome.stdout.value() if outcome.stdout else None,
            stderr=outcome.stderr.value() if outcome.stderr else None,
            properties={"junit.type": outcome.type} if outcome.type else None,
            **common,
        )
