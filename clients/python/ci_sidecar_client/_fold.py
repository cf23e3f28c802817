"""Folding pytest's per-phase reports (setup, call, teardown) into one ci-sidecar TestResult per attempt.

Pure bookkeeping over duck-typed report objects (no pytest import), so it can be tested without running
pytest and stays importable on every Python the client supports (>= 3.9).

The rules, as a user reading the run's report would expect them:

* setup failed -> ``error``; setup skipped (skip marker, ``xfail(run=False)``) -> ``skipped``
* call passed -> ``passed`` (an unexpected pass of a non-strict xfail too, with ``properties.xpass``)
* call failed -> ``failed`` (a strict xfail that passed fails this way, as pytest says)
* xfail -> ``skipped`` with the reason as message
* teardown failed after a pass or skip -> ``error``; after a failure the failure stays, with the
  teardown traceback appended to its details
* pytest-rerunfailures' ``rerun`` outcome -> that attempt failed (``error`` when outside the call);
  the attempts of a rerun test are numbered ``report.rerun + 1``; a test that ran once has no attempt.
"""

from typing import Any, Dict, List, Optional, Tuple

__all__ = ["ResultFolder", "collect_error", "split_nodeid", "ARTIFACTS_ATTR", "MAX_TEXT"]

#: longest message/details/stdout/stderr sent per result (the daemon's frames are 16 MiB)
MAX_TEXT = 64 * 1024

#: report attribute the plugin stamps with the artifacts a test marked (survives pytest-xdist)
ARTIFACTS_ATTR = "ci_sidecar_artifacts"


def _clip(text: Optional[str], limit: int = MAX_TEXT) -> Optional[str]:
    if not text:
        return None
    if len(text) <= limit:
        return text
    # the end of a log or traceback is usually what explains it: keep both ends
    half = limit // 2
    return "%s\n... (%d characters omitted) ...\n%s" % (text[:half], len(text) - 2 * half, text[-half:])


def split_nodeid(nodeid: str) -> Tuple[Optional[str], str]:
    """``(classname, name)`` of a pytest node id, the way pytest's own JUnit XML names it:
    ``a/t.py::C::test[x]`` -> ``("a.t.C", "test[x]")``; a module alone -> ``(None, "a.t")``.

    Using pytest's JUnit naming means a run that also ingests pytest's ``--junitxml`` file (``ci-sidecar
    exec --junit``) gets the same result keys, so the ingested results replace these instead of doubling
    the counts. Parameter ids may contain ``::``, so only the part before the first ``[`` is split.
    """
    base, bracket, params = nodeid.partition("[")
    names = base.split("::")
    names[0] = names[0].replace("\\", "/").replace("/", ".")
    if names[0].endswith(".py"):
        names[0] = names[0][:-3]
    names[-1] += bracket + params
    return (".".join(names[:-1]) or None), names[-1]


def _message(report: Any) -> Optional[str]:
    longrepr = getattr(report, "longrepr", None)
    if longrepr is None:
        return None
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, lineno, "Skipped: why")
        return str(longrepr[2])
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return str(crash.message)
    text = str(longrepr).strip()
    return text.splitlines()[-1] if text else None


def _details(report: Any) -> Optional[str]:
    longrepr = getattr(report, "longrepr", None)
    if longrepr is None or isinstance(longrepr, tuple):
        return None
    text = getattr(report, "longreprtext", None)
    return text if text is not None else str(longrepr)


class _Attempt:
    """One test attempt being assembled from its phase reports."""

    def __init__(self, nodeid: str, location: Any, suite: Optional[str], index: int) -> None:
        classname, name = split_nodeid(nodeid)
        self.result: Dict[str, Any] = {"name": name, "suite": suite, "classname": classname, "status": "passed"}
        if location and location[0]:
            self.result["file"] = str(location[0]).replace("\\", "/")
            if location[1] is not None:
                self.result["line"] = int(location[1]) + 1  # pytest's lines are 0-based
        #: pytest-rerunfailures' 0-based attempt index; attempts are only numbered for rerun tests, so a
        #: test that ran once keys like pytest's JUnit XML does
        self.index = index
        self.rerun = index > 0
        self.properties: Dict[str, Any] = {"nodeid": nodeid}
        self.duration = 0.0
        self.decided = False  # a phase already fixed the status (setup error, call outcome)
        self.artifacts: List[Dict[str, Any]] = []

    def fail(self, status: str, report: Any) -> None:
        self.result["status"] = status
        self.result["message"] = _message(report)
        self.result["details"] = _details(report)
        self.decided = True


class ResultFolder:
    """Feed every ``TestReport`` to :meth:`add`; it returns the finished result after the teardown phase.

    ``suite`` names the suite of every result (pytest's JUnit XML uses its ``junit_suite_name``, "pytest").
    """

    def __init__(self, suite: Optional[str] = "pytest") -> None:
        self.suite = suite
        self._open: Dict[Tuple[str, int], _Attempt] = {}

    def add(self, report: Any) -> Optional[Tuple[Dict[str, Any], List[Dict[str, Any]]]]:
        """Fold one phase report; ``(result, artifacts)`` when it completed an attempt, else None."""
        rerun = getattr(report, "rerun", None)
        index = rerun if isinstance(rerun, int) else 0
        key = (report.nodeid, index)
        att = self._open.get(key)
        if att is None:
            att = self._open[key] = _Attempt(report.nodeid, getattr(report, "location", None), self.suite, index)
        att.duration += float(getattr(report, "duration", 0.0) or 0.0)
        if report.outcome == "rerun":
            att.rerun = True
        for item in getattr(report, ARTIFACTS_ATTR, None) or []:
            if item not in att.artifacts:
                att.artifacts.append(item)
        self._phase(att, report)
        if report.when != "teardown":
            return None
        del self._open[key]
        return self._finish(att, report), att.artifacts

    def pending(self) -> List[Dict[str, Any]]:
        """Attempts that never saw their teardown (an interrupted session), as results so far."""
        out = [att.result for att in self._open.values() if att.decided]
        self._open.clear()
        return out

    @staticmethod
    def _phase(att: _Attempt, report: Any) -> None:
        outcome = report.outcome
        when = report.when
        wasxfail = getattr(report, "wasxfail", None)
        if when == "setup":
            if outcome in ("failed", "rerun"):
                att.fail("error", report)
            elif outcome == "skipped":
                att.result["status"] = "skipped"
                att.result["message"] = ("xfail: " + wasxfail) if wasxfail is not None else _message(report)
                att.decided = True
        elif when == "call":
            if att.decided:
                return
            att.decided = True
            if outcome in ("failed", "rerun"):
                att.fail("failed", report)
            elif outcome == "skipped":
                att.result["status"] = "skipped"
                if wasxfail is not None:
                    att.result["message"] = "xfail" + (": " + wasxfail if wasxfail else "")
                    att.properties["xfail"] = True
                else:
                    att.result["message"] = _message(report)
            elif wasxfail is not None:
                att.properties["xpass"] = wasxfail or True
        elif outcome in ("failed", "rerun"):  # teardown
            if att.result["status"] in ("failed", "error"):
                extra = _details(report) or _message(report) or ""
                att.result["details"] = ((att.result.get("details") or "") + "\n\nduring teardown:\n" + extra).strip()
            else:
                att.fail("error", report)
                att.result["message"] = "error in teardown: %s" % (_message(report) or "")

    @staticmethod
    def _finish(att: _Attempt, report: Any) -> Dict[str, Any]:
        r = att.result
        if att.rerun:
            r["attempt"] = att.index + 1
        r["duration"] = round(max(att.duration, 0.0), 6)
        # the teardown report carries the output captured over every phase of the attempt
        r["stdout"] = _clip(getattr(report, "capstdout", None))
        r["stderr"] = _clip(getattr(report, "capstderr", None))
        r["message"] = _clip(r.get("message"), 4096)
        r["details"] = _clip(r.get("details"))
        for name, value in getattr(report, "user_properties", None) or []:
            if isinstance(name, str) and isinstance(value, (str, int, float, bool)) and name not in att.properties:
                att.properties[name] = value
        if att.artifacts:
            att.properties["artifacts"] = [a["name"] for a in att.artifacts]
        r["properties"] = att.properties
        return {k: v for k, v in r.items() if v is not None}


def collect_error(report: Any, suite: Optional[str] = "pytest") -> Dict[str, Any]:
    """The result for a file that failed to collect (an import or syntax error): one ``error``."""
    classname, name = split_nodeid(report.nodeid or "<collection>")
    path = (report.nodeid or "").partition("::")[0]
    return {k: v for k, v in {
        "name": name,
        "suite": suite,
        "classname": classname,
        "file": path or None,
        "status": "error",
        "message": _clip(_message(report), 4096) or "collection failed",
        "details": _clip(_details(report)),
        "properties": {"nodeid": report.nodeid, "collection_error": True},
    }.items() if v is not None}
