"""What GitHub shows our writes under: check-run names and status contexts unique per job, and annotation
paths GitHub can link.

* **Names**: matrix legs and parallel jobs that publish a run of the same name on the same commit would
  create check runs of the same name, and the list endpoint's default ``filter=latest`` shows only the
  newest of them — a passing leg hides a failing one. So the name is the run's name plus the job and the
  matrix values, the way GitHub names job checks (``tests (unit, ubuntu-latest)``), unless the
  configuration sets an exact ``check_name``.
* **Paths**: GitHub links an annotation only when its path is relative to the repository root, with
  forward slashes. Absolute paths under ``GITHUB_WORKSPACE``, the ``workspace`` setting or the session's
  checkout (the git root holding its cwd, else the cwd), Windows paths
  (``D:\\a\\repo\\repo\\tests\\test_x.py``) and dotted module names that map to a file in the checkout are
  normalised; anything else is not a repository path, and the annotation goes on the check run as a whole
  (path ``.github``, as GitHub's own job-level annotations do) with the original location in its text.
"""

from __future__ import annotations

import os
import re

from ..base import ProviderEnv
from .runtime import matrix_values
from .settings import GitHubSettings

__all__ = ["check_name", "annotation_path", "RUN_LEVEL_PATH"]

#: where an annotation with no linkable file goes: GitHub attaches ``.github`` annotations to the run itself
RUN_LEVEL_PATH = ".github"
_WINDOWS_ABS = re.compile(r"^[A-Za-z]:[\\/]")
_DOTTED = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")
_SOURCE_SUFFIXES = (".py", ".js", ".ts", ".go", ".rb", ".java", ".rs", ".c", ".cc", ".cpp", ".cs", ".kt", ".php")


def check_name(run_name: str, env: ProviderEnv) -> str:
    """The check-run name and status context of a run: ``<run> (<job>, <matrix values>)`` inside Actions,
    ``check_name`` when configured, else the run's name."""
    settings = GitHubSettings.of(env)
    if settings.check_name:
        return settings.check_name
    parts = [str(settings.github_job or env.ci.job or "")]
    if settings.artifact_matrix:
        parts += matrix_values(str(settings.artifact_matrix))
    parts = [p for p in parts if p and p != run_name]
    return f"{run_name} ({', '.join(parts)})" if parts else run_name


def _roots(env: ProviderEnv) -> list[str]:
    settings = GitHubSettings.of(env)
    # the session's checkout, else its cwd: a job may check out somewhere other than GITHUB_WORKSPACE
    roots = [settings.workspace, settings.github_workspace, settings.repository_root or settings.session_cwd]
    return [r.replace("\\", "/").rstrip("/") for r in roots if r]


def annotation_path(raw: str | None, env: ProviderEnv) -> str | None:
    """The repository-relative path GitHub links for ``raw`` (a file path or a dotted module name), or None
    when it is not one (the caller puts the annotation on the run and says where it was)."""
    if not raw:
        return None
    path = raw.strip().replace("\\", "/").removeprefix("file://")
    roots = _roots(env)
    if path.startswith("/") or _WINDOWS_ABS.match(path):
        for root in roots:
            if _under(path, root):
                return _clean(path[len(root) + 1:])
        parts = path.split("/")
        if _WINDOWS_ABS.match(path) and len(parts) > 4 and parts[1] == "a" and parts[2] == parts[3]:
            return _clean("/".join(parts[4:]))  # a hosted Windows runner's checkout: D:\a\<repo>\<repo>\…
        return None
    if any(os.path.isfile(os.path.join(root, path)) for root in roots):
        return _clean(path)
    if _DOTTED.match(path) and os.path.splitext(path)[1] not in _SOURCE_SUFFIXES:
        return _module_file(path, roots)  # a module name: linked only when it maps to a file in the checkout
    return _clean(path)


def _under(path: str, root: str) -> bool:
    if _WINDOWS_ABS.match(root):  # drive letters and Windows paths ignore case
        return path.lower().startswith(root.lower() + "/")
    return path.startswith(root + "/")


def _module_file(dotted: str, roots: list[str]) -> str | None:
    """``pkg.tests.test_x`` → ``pkg/tests/test_x.py`` when that file (or a package) is in the checkout."""
    parts = dotted.split(".")
    for root in roots:
        for end in range(len(parts), 0, -1):  # a class or function may follow the module: try shorter prefixes
            base = "/".join(parts[:end])
            for candidate in (f"{base}.py", f"{base}/__init__.py"):
                if os.path.isfile(os.path.join(root, candidate)):
                    return candidate
    return None


def _clean(path: str) -> str | None:
    while path.startswith("./"):
        path = path[2:]
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)
