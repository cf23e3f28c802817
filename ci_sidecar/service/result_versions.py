"""One record per test and attempt: the versions of a (test, attempt) that a run received, merged.

A test can reach a run more than once: the pytest plugin reports it and ``exec --junit`` then ingests
pytest's JUnit XML of the same session, or a client resends a batch. Counting keys tests already
(``tally.py``); this module does the same for the stored records that reports and providers read, so
one test is one record, and the richest source wins: when two versions agree on the outcome, the one
with more fields filled is kept and the other only fills the fields it lacks (the plugin's file, line
and captured output survive a later JUnit copy, which knows none of them). A version with another
outcome is a real resend and replaces what came before, as docs/protocol.md says.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator

import msgspec

from ci_sidecar.protocol.records import TestResult

__all__ = ["test_key", "merge_versions", "iter_merged"]

#: the fields a version may or may not carry (name, status, suite, classname and attempt make the key)
_FILLABLE = ("file", "line", "duration", "message", "details", "stdout", "stderr", "properties")

_decode = msgspec.msgpack.Decoder(TestResult).decode
_encode = msgspec.msgpack.Encoder().encode


def test_key(r: TestResult) -> int:
    """A stable 64-bit identity of (suite, classname, name) — stable across restarts, unlike hash()."""
    raw = f"{r.suite or ''}\x1f{r.classname or ''}\x1f{r.name}".encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little")


test_key.__test__ = False  # type: ignore[attr-defined]


def _filled(r: TestResult) -> int:
    return sum(1 for f in _FILLABLE if getattr(r, f) not in (None, "", {}))


def merge_versions(old: TestResult, new: TestResult) -> TestResult:
    """The one record for two versions of the same (test, attempt), ``new`` having arrived later."""
    if old.status != new.status:
        return new
    base, other = (new, old) if _filled(new) >= _filled(old) else (old, new)
    fill = {f: getattr(other, f) for f in _FILLABLE
            if getattr(base, f) in (None, "", {}) and getattr(other, f) not in (None, "", {})}
    return msgspec.structs.replace(base, **fill) if fill else base


def _key(raw: bytes) -> tuple[TestResult, tuple[int, int]]:
    r = _decode(raw)
    return r, (test_key(r), r.attempt or 1)


def iter_merged(records: Callable[[], Iterable[bytes]], end: int, *, start: int = 0,
                unique: bool = False) -> Iterator[bytes]:
    """Stored records ``[start, end)`` (msgpack TestResults) with each (test, attempt) once.

    ``records`` opens a fresh pass over the stored records; ``unique`` says that no record repeats a
    test (a run with as many records as tests), which skips the search for repeats. A version seen once
    passes through untouched; a (test, attempt) seen more often comes out merged, at the place of its
    first version, so the order of what was read before stays a prefix as records arrive (GitHub
    annotations are sent that way). Blocking: call from a worker thread. Without repeats this is one
    pass and one key per record; with repeats, three passes and the merged versions of the repeated
    tests are kept until they are yielded.
    """
    if unique:
        yield from itertools.islice(records(), start, end)
        return
    seen: set[tuple[int, int]] = set()
    repeated: set[tuple[int, int]] = set()
    for raw in itertools.islice(records(), end):
        key = _key(raw)[1]
        (repeated if key in seen else seen).add(key)
    del seen
    if not repeated:
        yield from itertools.islice(records(), start, end)
        return
    merged: dict[tuple[int, int], TestResult] = {}
    for raw in itertools.islice(records(), end):
        r, key = _key(raw)
        if key in repeated:
            earlier = merged.get(key)
            merged[key] = r if earlier is None else merge_versions(earlier, r)
    for i, raw in enumerate(itertools.islice(records(), end)):
        r, key = _key(raw)
        if key not in repeated:
            if i >= start:
                yield raw
            continue
        one = merged.pop(key, None)  # the first version's place takes it; later versions find nothing
        if one is not None and i >= start:
            yield _encode(one)
