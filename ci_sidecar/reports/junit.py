"""Streaming, safe reader for JUnit/xUnit XML as written by pytest, Surefire, Go, Jest, Node, .NET and nextest.

Safety: files come from the build under test, so they are untrusted. Any DTD is refused as soon as
``<!DOCTYPE`` is seen (that is where billion-laughs and external-entity payloads live), entity declarations
and external references are refused too, and nothing is ever expanded. This is the same guard defusedxml
installs (its handlers on expat), set up here directly on ``pyexpat`` with ``forbid_dtd`` semantics.

Streaming: the file is fed to expat in chunks and no element tree is built; only the test case being read is
held, with each text field capped (``max_text``), so memory stays constant whatever the file's size.
A broken file yields what parsed before the break, then a :class:`ParseIssue` with the line.

Mapping: ``<failure>`` → ``failed``, ``<error>`` → ``error``, ``<skipped>`` → ``skipped``, else ``passed``;
``message`` (or the text's first line when absent, as jest-junit writes it), the text as ``details``,
``type`` as ``properties["junit.type"]``, ``system-out``/``system-err``, ``time`` → ``duration``,
``file``/``line``, testcase ``<properties>``. Nested ``<testsuite>`` names are joined with ``" > "``.
Reruns become attempts: Surefire/nextest ``<flakyFailure>``/``<flakyError>`` are failed attempts before the
final one, ``<rerunFailure>``/``<rerunError>`` are failed attempts after the first, and a test case repeated
within one suite after failing (gotestsum ``--rerun-fails``) is a further attempt of the same test. Only
failed tests are remembered for that, so memory grows with failures, not with tests.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pyexpat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from ci_sidecar.protocol.records import TestResult

from ._junit_reader import NotJUnit, Reader, Refused

__all__ = ["DEFAULT_MAX_TEXT", "ParseIssue", "iter_junit", "sha256_file"]

log = logging.getLogger(__name__)

#: Per text field (message, details, stdout, stderr) cap in characters; beyond it the text is cut with a note.
DEFAULT_MAX_TEXT = 1 << 20
_CHUNK = 1 << 16


class ParseIssue(msgspec.Struct, kw_only=True, frozen=True):
    """A file that could not be read completely; the wire's ``{file, line?, message}`` error entry."""

    file: str
    message: str
    line: int | None = None


def _make_parser(reader_cap: int) -> tuple[Any, Reader]:
    parser = pyexpat.ParserCreate()
    reader = Reader(parser, reader_cap)
    parser.buffer_text = True
    parser.buffer_size = _CHUNK
    parser.StartElementHandler = reader.root
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.data
    parser.StartDoctypeDeclHandler = reader.refuse
    parser.EntityDeclHandler = reader.refuse
    parser.UnparsedEntityDeclHandler = reader.refuse
    parser.ExternalEntityRefHandler = reader.refuse
    parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
    return parser, reader


def iter_junit(
    source: str | os.PathLike[str] | IO[bytes],
    *,
    name: str | None = None,
    max_text: int = DEFAULT_MAX_TEXT,
) -> Iterator[TestResult | ParseIssue]:
    """Yield each test's result as its ``</testcase>`` is read, and a :class:`ParseIssue` if the file is bad.

    Args:
        source: a path, or a binary file object (read in chunks, not closed).
        name: the file name used in issues (defaults to the path).
        max_text: cap in characters for each text field of a result.

    Yields:
        :class:`TestResult` objects in file order; at most one :class:`ParseIssue`, always last. A file that
        cannot be opened, is not JUnit, holds a DTD/entity, or is malformed/truncated ends with an issue;
        results read before the problem have already been yielded.
    """
    label = name if name is not None else (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<stream>")
    parser, reader = _make_parser(max_text)
    try:
        if isinstance(source, (str, os.PathLike)):
            fp: IO[bytes] = open(source, "rb")  # noqa: SIM115 - closed in finally
            owned = True
        else:
            fp, owned = source, False
    except OSError as exc:
        yield ParseIssue(file=label, message=f"cannot read file: {exc.strerror or exc}")
        return
    issue: ParseIssue | None = None
    try:
        while True:
            chunk = fp.read(_CHUNK)
            parser.Parse(chunk, not chunk)
            if reader.ready:
                yield from reader.ready
                reader.ready.clear()
            if not chunk:
                break
    except Refused as exc:
        issue = ParseIssue(file=label, message=str(exc), line=parser.CurrentLineNumber)
    except NotJUnit as exc:
        issue = ParseIssue(
            file=label,
            message=f"not a JUnit file: root element is <{exc}>, expected <testsuites> or <testsuite>",
            line=parser.CurrentLineNumber,
        )
    except pyexpat.ExpatError as exc:
        what = pyexpat.ErrorString(exc.code) if exc.code else str(exc)
        issue = ParseIssue(
            file=label, message=f"malformed XML: {what} (line {exc.lineno}, column {exc.offset})", line=exc.lineno
        )
    except OSError as exc:
        issue = ParseIssue(file=label, message=f"cannot read file: {exc.strerror or exc}")
    finally:
        if owned:
            fp.close()
    if issue is not None:
        # Results completed before the break are kept; the case open at the break is incomplete and dropped.
        yield from reader.ready
        reader.ready.clear()
        log.info("JUnit file %s: %s", label, issue.message)
        yield issue


def sha256_file(source: str | os.PathLike[str] | IO[bytes]) -> str:
    """Hex SHA-256 of a file (a path, or a binary file object read from where it is, not closed),
    read in chunks (the "same file already ingested" check)."""
    if isinstance(source, (str, os.PathLike)):
        with Path(source).open("rb") as fp:
            return sha256_file(fp)
    digest = hashlib.sha256()
    while chunk := source.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()
