"""The run history: one compact record per test of every finished run, in SQLite, kept by age and count.

Layout (``<state root>/history.sqlite3``, WAL, ``0600``)::

    runs      pk, run_id, name, repository, branch, target_branch, pr_number, commit_sha, build_id,
              conclusion, finished (epoch s), end_time, total, failed, series
    tests     key (the run service's 64-bit test key, signed), suite, classname, name
    results   (run pk, test key) → status code, duration            — WITHOUT ROWID (no second index: a
              test's history is a point lookup per retained run, and ingest stays one ordered append)
    series    id, key ("<repository>\\x1f<run name>\\x1f<branch>")
    recent    (series, test) → the test's last outcomes on that series, oldest first, one letter each

Status codes: 0 passed, 1 failed, 2 error, 3 skipped, 4 passed after a failed attempt (flaky within the run).
Outcome letters: ``P`` passed, ``F`` failed or error, ``S`` skipped, ``R`` passed on a retry.

Blocking: the daemon keeps one connection, used from worker threads one call at a time (the caller
serialises); other processes (another instance, ``ci-sidecar history``) open their own, read-only ones.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Container
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["HISTORY_FILE", "HistoryRun", "HistoryStore", "OUTCOME_LETTERS", "TestOutcome", "to_signed", "to_unsigned"]

HISTORY_FILE = "history.sqlite3"
SCHEMA_VERSION = 1
#: status code → outcome letter of the ``recent`` strings
OUTCOME_LETTERS = "PFFSR"
#: SQLite's page cache for the writer (KiB): a 100,000-test run touches a few thousand index pages
CACHE_KIB = 64 * 1024
_CLEANUP_EVERY = 50  # runs deleted by retention between sweeps of tests and series nobody refers to any more

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    pk INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL UNIQUE, name TEXT NOT NULL, repository TEXT,
    branch TEXT, target_branch TEXT, pr_number INTEGER, commit_sha TEXT, build_id TEXT, conclusion TEXT,
    finished REAL NOT NULL, end_time TEXT, total INTEGER NOT NULL, failed INTEGER NOT NULL, series INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_branch ON runs(name, branch, pk);
CREATE TABLE IF NOT EXISTS tests (key INTEGER PRIMARY KEY, suite TEXT, classname TEXT, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    run INTEGER NOT NULL, test INTEGER NOT NULL, status INTEGER NOT NULL, duration REAL,
    PRIMARY KEY (run, test)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS recent (
    series INTEGER NOT NULL, test INTEGER NOT NULL, outcomes TEXT NOT NULL,
    PRIMARY KEY (series, test)) WITHOUT ROWID;
"""

_RUN_COLUMNS = ("run_id, name, repository, branch, target_branch, pr_number, commit_sha, build_id, conclusion, "
                "finished, end_time, total, failed")


def to_signed(key: int) -> int:
    """A 64-bit unsigned test key as SQLite's signed INTEGER."""
    return key - (1 << 64) if key >= 1 << 63 else key


def to_unsigned(key: int) -> int:
    """The inverse of :func:`to_signed`."""
    return key + (1 << 64) if key < 0 else key


@dataclass(frozen=True)
class HistoryRun:
    """One finished run as the history keeps it."""

    run_id: str
    name: str
    repository: str | None
    branch: str | None
    target_branch: str | None
    pr_number: int | None
    commit_sha: str | None
    build_id: str | None
    conclusion: str | None
    finished: float
    end_time: str | None
    total: int
    failed: int


class TestOutcome(NamedTuple):
    """One test in one run: its identity (signed key, suite, classname, name), status code and duration."""

    key: int
    suite: str | None
    classname: str | None
    name: str
    status: int
    duration: float | None


def series_key(repository: str | None, name: str, branch: str | None) -> str:
    """The series a run belongs to: its repository, name and branch."""
    return f"{repository or ''}\x1f{name}\x1f{branch or ''}"


class HistoryStore:
    """The history database (blocking; one call at a time per instance)."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            if not self.path.exists():
                raise FileNotFoundError(f"no run history at {self.path}")
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=busy_timeout_s,
                                       check_same_thread=False)
        else:
            # created 0600 before SQLite opens it (its -wal and -shm files take the same mode)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(self.path, timeout=busy_timeout_s, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            if self._db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                self._db.executescript(_SCHEMA + f"PRAGMA user_version={SCHEMA_VERSION};")
        self._deleted = 0

    def close(self) -> None:
        self._db.close()

    # --- reading ------------------------------------------------------------------------------------

    def run(self, run_id: str) -> HistoryRun | None:
        row = self._db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return HistoryRun(*row) if row else None

    def latest(self, name: str, repository: str | None, branch: str | None, *,
               exclude: str | None = None) -> HistoryRun | None:
        """The last recorded run of ``name`` on ``branch`` (of ``repository`` when known), ``exclude`` aside."""
        sql = (f"SELECT {_RUN_COLUMNS} FROM runs WHERE name = ? AND branch IS ? AND run_id IS NOT ?"
               + (" AND repository IS ?" if repository else "") + " ORDER BY pk DESC LIMIT 1")
        args: tuple[Any, ...] = (name, branch, exclude) + ((repository,) if repository else ())
        row = self._db.execute(sql, args).fetchone()
        return HistoryRun(*row) if row else None

    def statuses(self, run_id: str) -> dict[int, int]:
        """Signed test key → status code, for every test of a recorded run."""
        return dict(self._db.execute(
            "SELECT test, status FROM results WHERE run = (SELECT pk FROM runs WHERE run_id = ?)", (run_id,)))

    def recent(self, repository: str | None, name: str, branch: str | None) -> dict[int, str]:
        """Signed test key → its last outcomes (letters, oldest first) on a series."""
        return dict(self._db.execute(
            "SELECT test, outcomes FROM recent WHERE series = (SELECT id FROM series WHERE key = ?)",
            (series_key(repository, name, branch),)))

    def names(self, keys: Iterable[int]) -> dict[int, tuple[str | None, str | None, str]]:
        """Signed test key → (suite, classname, name) for the given keys."""
        out: dict[int, tuple[str | None, str | None, str]] = {}
        keys = list(keys)
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for key, suite, classname, name in self._db.execute(
                    f"SELECT key, suite, classname, name FROM tests WHERE key IN ({marks})", chunk):
                out[key] = (suite, classname, name)
        return out

    def find_tests(self, pattern: str, limit: int = 200) -> list[tuple[int, str | None, str | None, str]]:
        """Tests whose name, ``classname.name`` or suite equals ``pattern``; else contains it (case-insensitive)."""
        exact = self._db.execute(
            "SELECT key, suite, classname, name FROM tests WHERE name = ?1 OR suite = ?1 OR classname = ?1 "
            "OR classname || '.' || name = ?1 LIMIT ?2", (pattern, limit)).fetchall()
        if exact:
            return exact
        like = "%" + pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return self._db.execute(
            "SELECT key, suite, classname, name FROM tests WHERE name LIKE ?1 ESCAPE '\\' OR suite LIKE ?1 "
            "ESCAPE '\\' OR (classname || '.' || name) LIKE ?1 ESCAPE '\\' LIMIT ?2", (like, limit)).fetchall()

    def outcomes(self, keys: list[int], limit_runs: int, branch: str | None = None) -> list[tuple[Any, ...]]:
        """(run_id, run name, branch, commit, end_time, conclusion, test key, status, duration) of ``keys`` in
        the last ``limit_runs`` runs that have any of them, newest first (a point lookup per run and key)."""
        marks = ",".join("?" * len(keys))
        where, args = ("WHERE branch = ?", [branch]) if branch is not None else ("", [])
        out: list[tuple[Any, ...]] = []
        seen = 0
        for run in self._db.execute(f"SELECT pk, run_id, name, branch, commit_sha, end_time, conclusion FROM runs "
                                    f"{where} ORDER BY pk DESC", args).fetchall():
            rows = self._db.execute(f"SELECT test, status, duration FROM results WHERE run = ? AND test IN ({marks})",
                                    [run[0], *keys]).fetchall()
            if rows:
                out += [(*run[1:], *row) for row in rows]
                seen += 1
                if seen >= limit_runs:
                    break
        return out

    def durations(self, name: str, repository: str | None, *, exclude: str | None = None,
                  runs: int = 5) -> tuple[dict[int, float], int]:
        """(signed test key → mean duration, runs read) over the last ``runs`` recorded runs of ``name`` (of
        ``repository`` when known) on any branch, ``exclude`` aside: how long each test takes lately."""
        sql = ("SELECT pk FROM runs WHERE name = ? AND run_id IS NOT ?" + (" AND repository IS ?" if repository else "")
               + " ORDER BY pk DESC LIMIT ?")
        args: tuple[Any, ...] = (name, exclude) + ((repository,) if repository else ()) + (runs,)
        pks = [pk for (pk,) in self._db.execute(sql, args)]
        if not pks:
            return {}, 0
        marks = ",".join("?" * len(pks))
        rows = self._db.execute(f"SELECT test, avg(duration) FROM results WHERE run IN ({marks}) "
                                "AND duration IS NOT NULL GROUP BY test", pks)
        return dict(rows), len(pks)

    def count_runs(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM runs").fetchone()[0])

    # --- writing ------------------------------------------------------------------------------------

    def add_run(self, run: HistoryRun, tests: list[TestOutcome], *, window: int,
                known: Container[int] = ()) -> None:
        """Record a finished run and its tests in one transaction, appending each test's outcome to its
        series' recent outcomes (kept to ``window``). Recording a run again replaces its tests and leaves
        the recent outcomes alone (they already have it). ``known``: keys of tests a retained run has (their
        names are stored already)."""
        db = self._db
        key = series_key(run.repository, run.name, run.branch)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT OR IGNORE INTO series(key) VALUES (?)", (key,))
            series = db.execute("SELECT id FROM series WHERE key = ?", (key,)).fetchone()[0]
            old = db.execute("SELECT pk FROM runs WHERE run_id = ?", (run.run_id,)).fetchone()
            if old is not None:
                db.execute("DELETE FROM results WHERE run = ?", old)
                db.execute("DELETE FROM runs WHERE pk = ?", old)
            cur = db.execute(
                f"INSERT INTO runs ({_RUN_COLUMNS}, series) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run.run_id, run.name, run.repository, run.branch, run.target_branch, run.pr_number, run.commit_sha,
                 run.build_id, run.conclusion, run.finished, run.end_time, run.total, run.failed, series))
            pk = cur.lastrowid
            tests = sorted(tests, key=itemgetter(0))  # by key: tables are then written in order, not at random
            db.executemany("INSERT OR IGNORE INTO tests(key, suite, classname, name) VALUES (?,?,?,?)",
                           ((t.key, t.suite, t.classname, t.name) for t in tests if t.key not in known))
            db.executemany("INSERT OR REPLACE INTO results(run, test, status, duration) VALUES (?,?,?,?)",
                           ((pk, t.key, t.status, t.duration) for t in tests))
            if old is None and tests:
                recent = dict(db.execute("SELECT test, outcomes FROM recent WHERE series = ?", (series,)))
                changed = []
                for t in tests:
                    old_letters = recent.get(t.key)
                    letters = ((old_letters or "") + OUTCOME_LETTERS[t.status])[-window:]
                    if letters != old_letters:  # a steady test with a full window stays as it is
                        changed.append((series, t.key, letters))
                db.executemany("INSERT OR REPLACE INTO recent(series, test, outcomes) VALUES (?,?,?)", changed)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def delete_run(self, run_id: str) -> bool:
        """Delete a recorded run and its tests' results (the tests' recent outcomes keep it); False: not there."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            old = db.execute("SELECT pk FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if old is not None:
                db.execute("DELETE FROM results WHERE run = ?", old)
                db.execute("DELETE FROM runs WHERE pk = ?", old)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return old is not None

    def retain(self, *, max_runs: int, max_age_s: float, now: float | None = None) -> int:
        """Delete the runs beyond the newest ``max_runs`` or older than ``max_age_s``; the number deleted."""
        db = self._db
        cutoff = (time.time() if now is None else now) - max_age_s
        db.execute("BEGIN IMMEDIATE")
        try:
            doomed = [pk for (pk,) in db.execute(
                "SELECT pk FROM runs WHERE finished < ?1 OR pk <= coalesce("
                "(SELECT pk FROM runs ORDER BY pk DESC LIMIT 1 OFFSET ?2), -1)", (cutoff, max_runs))]
            for pk in doomed:
                db.execute("DELETE FROM results WHERE run = ?", (pk,))
                db.execute("DELETE FROM runs WHERE pk = ?", (pk,))
            self._deleted += len(doomed)
            if self._deleted >= _CLEANUP_EVERY or (doomed and not db.execute("SELECT 1 FROM runs LIMIT 1").fetchone()):
                self._deleted = 0
                db.execute("DELETE FROM tests WHERE NOT EXISTS (SELECT 1 FROM results WHERE test = tests.key)")
                db.execute("DELETE FROM recent WHERE series NOT IN (SELECT DISTINCT series FROM runs)")
                db.execute("DELETE FROM series WHERE id NOT IN (SELECT DISTINCT series FROM runs)")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return len(doomed)
