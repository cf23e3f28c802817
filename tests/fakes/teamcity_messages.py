"""A parser of TeamCity service messages written from the grammar alone (not from ci_sidecar's escaper), and a
checker of the order TeamCity's agent requires on each flow.

Grammar (https://www.jetbrains.com/help/teamcity/service-messages.html)::

    message  = "##teamcity[" name ( WSP "'" value "'" | ( WSP key "=" "'" value "'" )* ) WSP? "]"
    value    = ( any character but "|", "'", "[", "]", CR, LF  |  "|" escape )*
    escape   = "'" | "n" | "r" | "|" | "[" | "]" | "x" (U+0085) | "l" (U+2028) | "p" (U+2029) | "0x" 4 HEXDIG

Lines that are not service messages (the command's own output) are kept as text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Message", "ParseError", "parse_line", "parse_stream", "check_flows", "FlowReport"]

PREFIX = "##teamcity["
_ESCAPES = {"'": "'", "n": "\n", "r": "\r", "|": "|", "[": "[", "]": "]", "x": "\u0085", "l": "\u2028",
            "p": "\u2029"}
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:")


class ParseError(ValueError):
    """A line that starts like a service message but breaks the grammar."""


@dataclass(frozen=True)
class Message:
    """One service message: its name, and either one unnamed value or named attributes."""

    name: str
    value: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)


def _value(line: str, i: int) -> tuple[str, int]:
    """The quoted value starting at line[i] == "'"; returns (value, index after the closing quote)."""
    if i >= len(line) or line[i] != "'":
        raise ParseError(f"expected ' at {i}: {line!r}")
    i += 1
    out: list[str] = []
    while True:
        if i >= len(line):
            raise ParseError(f"unterminated value: {line!r}")
        ch = line[i]
        if ch == "'":
            return "".join(out), i + 1
        if ch in "[]\n\r":
            raise ParseError(f"unescaped {ch!r} at {i}: {line!r}")
        if ch != "|":
            out.append(ch)
            i += 1
            continue
        code = line[i + 1:i + 2]
        if code == "0" and line[i + 2:i + 3] == "x":
            digits = line[i + 3:i + 7]
            if len(digits) != 4 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise ParseError(f"bad |0x escape at {i}: {line!r}")
            out.append(chr(int(digits, 16)))
            i += 7
            continue
        if code not in _ESCAPES:
            raise ParseError(f"unknown escape |{code} at {i}: {line!r}")
        out.append(_ESCAPES[code])
        i += 2


def _name(line: str, i: int) -> tuple[str, int]:
    j = i
    while j < len(line) and line[j] in _NAME_CHARS:
        j += 1
    if j == i:
        raise ParseError(f"expected a name at {i}: {line!r}")
    return line[i:j], j


def parse_line(line: str) -> Message | None:
    """The service message on *line* (None: not one). Raises :class:`ParseError` for a broken one."""
    line = line.rstrip("\n")
    if not line.startswith(PREFIX):
        return None
    name, i = _name(line, len(PREFIX))
    value: str | None = None
    attrs: dict[str, str] = {}
    while True:
        start = i
        while i < len(line) and line[i] in " \t":
            i += 1
        if i >= len(line):
            raise ParseError(f"no closing ]: {line!r}")
        if line[i] == "]":
            if line[i + 1:].strip():
                raise ParseError(f"text after ]: {line!r}")
            return Message(name, value, attrs)
        if i == start:
            raise ParseError(f"expected whitespace at {i}: {line!r}")
        if line[i] == "'":
            if value is not None or attrs:
                raise ParseError(f"a second unnamed value: {line!r}")
            value, i = _value(line, i)
            continue
        if value is not None:
            raise ParseError(f"attributes after an unnamed value: {line!r}")
        key, i = _name(line, i)
        if line[i:i + 1] != "=":
            raise ParseError(f"expected = after {key}: {line!r}")
        if key in attrs:
            raise ParseError(f"attribute {key} twice: {line!r}")
        attrs[key], i = _value(line, i + 1)


def parse_stream(text: str) -> list[Message]:
    """Every service message of a job log, in order (other lines skipped; a broken message raises)."""
    return [m for m in (parse_line(line) for line in text.splitlines()) if m is not None]


@dataclass
class FlowReport:
    """What one flow carried: each test's (name, outcome, duration ms) in order, its suites, the rest."""

    tests: list[tuple[str, str, int]] = field(default_factory=list)
    suites: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def check_flows(messages: list[Message]) -> dict[str, FlowReport]:
    """Check the order the agent needs on each ``flowId`` and return what each flow reported.

    Per flow: tests only inside an open suite; ``testStarted`` X, then only X's ``testStdOut``/``testStdErr``/
    ``testFailed``/``testIgnored``, then ``testFinished`` X with a whole-number ``duration``; suites closed in
    reverse order of opening, all closed at the end. Raises AssertionError on the first breach.
    """
    flows: dict[str, FlowReport] = {}
    open_suites: dict[str, list[str]] = {}
    running: dict[str, tuple[str, str] | None] = {}
    for m in messages:
        if not m.name.startswith("test"):
            continue
        flow = m.attrs.get("flowId", "")
        report = flows.setdefault(flow, FlowReport())
        suites = open_suites.setdefault(flow, [])
        current = running.get(flow)
        name = m.attrs.get("name")
        if m.name == "testMetadata":
            continue
        if m.name == "testSuiteStarted":
            assert current is None, f"suite {name} opened inside test {current} on flow {flow}"
            suites.append(name or "")
            report.suites.append(name or "")
        elif m.name == "testSuiteFinished":
            assert current is None, f"suite {name} closed inside test {current} on flow {flow}"
            assert suites and suites[-1] == name, f"suite {name} closed but {suites} open on flow {flow}"
            suites.pop()
        elif m.name == "testStarted":
            assert suites, f"test {name} outside a suite on flow {flow}"
            assert current is None, f"test {name} started inside {current} on flow {flow}"
            running[flow] = (name or "", "passed")
        elif m.name in ("testFailed", "testIgnored", "testStdOut", "testStdErr"):
            assert current is not None and current[0] == name, f"{m.name} {name} outside it on flow {flow}"
            if m.name == "testFailed":
                running[flow] = (current[0], "failed")
                report.failures[current[0]] = m.attrs.get("message", "")
            elif m.name == "testIgnored":
                running[flow] = (current[0], "skipped")
        elif m.name == "testFinished":
            assert current is not None and current[0] == name, f"testFinished {name} but {current} on flow {flow}"
            duration = m.attrs.get("duration", "0")
            assert duration.isdigit(), f"duration {duration!r} of {name}"
            report.tests.append((current[0], current[1], int(duration)))
            running[flow] = None
    for flow, suites in open_suites.items():
        assert not suites and running.get(flow) is None, f"flow {flow} ends with {suites} / {running.get(flow)} open"
    return flows
