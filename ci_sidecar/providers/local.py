"""The ``local`` provider: publishes into an output folder, needs no token.

Layout under a run's output dir (default ``<cwd>/ci-sidecar-out/<run id>/``):
``run.json`` (the run as it stands), ``results.json`` (every test's latest result, at completion),
``build-status.json`` (one entry per context), ``comments/<key>.md`` (sticky by key),
``artifacts/<name>``. Every write is atomic (temp file + rename), so a reader never sees half a file, and the
temporary files live beside the output root (``.ci-sidecar-out.partial``), so a pipeline archiving the output
folder never picks one up, even after a ``kill -9`` mid-write.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import trio

from ci_sidecar.atomic import atomic_write_bytes, ready_partial_dir, remove_stale_temps
from ci_sidecar.protocol.records import ProviderCaps, Tier

from ._render import utc_stamp
from ._results import iter_results
from .base import Operation, Outcome, PostComment, ProviderEnv, PublishRun, SetStatus, UploadArtifact

__all__ = ["LocalProvider"]

_OUTPUT_MODE = 0o644  # reports are for people (and the CI group under systemd) to read


def file_url(path: str | os.PathLike[str]) -> str:
    return Path(path).resolve().as_uri()


def output_partial(output_dir: str | os.PathLike[str], run_id: str | None) -> Path | None:
    """Where writes into an output folder keep their temporary files: beside the output root (a run's folder is
    ``<root>/<run id>``), outside anything a pipeline archives; None: beside each file."""
    folder = Path(output_dir)
    return ready_partial_dir(folder.parent if run_id and folder.name == run_id else folder)


def _write_output(path: Path, data: bytes, run_id: str | None, output_dir: str | os.PathLike[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data, mode=_OUTPUT_MODE, tmp_dir=output_partial(output_dir, run_id))


def _write_json(path: Path, obj: Any, run_id: str | None, output_dir: str | os.PathLike[str]) -> None:
    _write_output(path, json.dumps(obj, indent=2, ensure_ascii=False).encode() + b"\n", run_id, output_dir)


def _write_run_file(path: Path, obj: Any, run_id: str) -> None:
    """Write one of the run's own files (``run.json``, ``results.json``), first removing temporary files a
    crash left beside it: only the run's publication writes these, one attempt at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, path.name)
    _write_json(path, obj, run_id, path.parent)


def _comment_name(key: str) -> str:
    # keys are free text: keep them readable but confined to one file name
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key).strip(".") or "comment"
    return safe[:120] + ".md"


class LocalProvider:
    """Writes runs, statuses, comments and artifacts as files."""

    name: ClassVar[str] = "local"

    def capabilities(self, env: ProviderEnv) -> ProviderCaps:
        local = Tier(kind="local", via="output folder")
        return ProviderCaps(provider="local", test_run=local, build_status=local, pr_comment=local,
                            artifacts=local, limits={})

    async def deliver(self, op: Operation, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
        try:
            if isinstance(op, PublishRun):
                return await self._publish(op, env)
            if isinstance(op, SetStatus):
                return await trio.to_thread.run_sync(self._status, op)
            if isinstance(op, PostComment):
                return await trio.to_thread.run_sync(self._comment, op, remote)
            if isinstance(op, UploadArtifact):
                return await trio.to_thread.run_sync(self._artifact, op)
        except OSError as exc:
            # a full disk or a vanished mount may recover; a permission problem will not
            if exc.errno in (13, 1, 30):  # EACCES, EPERM, EROFS
                return Outcome.refused(f"cannot write: {exc}")
            return Outcome.retry(f"cannot write: {exc}")
        return Outcome.unsupported(f"local provider: unknown operation {type(op).__name__}")

    async def _publish(self, op: PublishRun, env: ProviderEnv) -> Outcome:
        run = op.run
        out = Path(run.output_dir)
        doc = msgspec.to_builtins(run)
        await trio.to_thread.run_sync(_write_run_file, out / "run.json", doc, run.id)
        if op.final and env.read_results is not None:
            results = [msgspec.to_builtins(result) async for result in iter_results(run, env)]
            await trio.to_thread.run_sync(_write_run_file, out / "results.json", {"run": doc, "results": results},
                                       run.id)
            if env.render_reports is not None:
                await trio.to_thread.run_sync(env.render_reports, run.id)
        return Outcome.delivered(url=file_url(out / "run.json"), tier="local")

    def _status(self, op: SetStatus) -> Outcome:
        out = Path(op.output_dir or ".")
        path = out / "build-status.json"
        try:
            current = json.loads(path.read_text()) if path.exists() else {}
        except (ValueError, OSError):
            current = {}
        current[op.context] = {
            "state": op.state, "description": op.description, "target_url": op.target_url, "sha": op.sha,
            "run_id": op.run_id, "updated_at": utc_stamp(),
        }
        _write_json(path, current, op.run_id, out)
        return Outcome.delivered(url=file_url(path), remote={"path": str(path)}, tier="local")

    def _comment(self, op: PostComment, remote: dict[str, Any]) -> Outcome:
        directory = Path(op.output_dir or ".") / "comments"
        if op.key:
            path = directory / _comment_name(op.key)
        elif remote.get("path"):
            path = Path(remote["path"])  # a retry of the same unkeyed comment: same file
        else:
            directory.mkdir(parents=True, exist_ok=True)
            n = 1 + sum(1 for p in directory.glob("comment-*.md"))
            path = directory / f"comment-{n}.md"
        existed = path.exists()
        if op.mode == "delete":
            if existed:
                path.unlink()
                return Outcome.delivered(action="deleted", remote={}, tier="local")
            return Outcome.delivered(action="skipped", remote={}, tier="local")
        if op.mode == "create" and op.key and existed:
            return Outcome.delivered(action="skipped", url=file_url(path), remote={"path": str(path)}, tier="local")
        _write_output(path, op.body.encode(), op.run_id, op.output_dir or ".")
        url = file_url(path)
        return Outcome.delivered(action="updated" if existed else "created", url=url,
                                 remote={"path": str(path), "url": url}, tier="local")

    def _artifact(self, op: UploadArtifact) -> Outcome:
        root = Path(op.output_dir or ".") / "artifacts"
        out = root / op.name
        # a folder on the way may be a symlink (put there by anyone): never write outside the artifacts folder
        root.mkdir(parents=True, exist_ok=True)
        real_root, real_parent = root.resolve(), out.parent.resolve()
        if real_parent != real_root and real_root not in real_parent.parents:
            return Outcome.refused(f"artifact name {op.name!r} resolves outside {root}")
        if not os.path.isfile(op.stored_path):
            return Outcome.refused(f"the stored content of artifact {op.name!r} is gone (purged or replaced)")
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.is_dir() and not out.is_symlink():
            return Outcome.refused(f"{out} is a folder")
        partial = output_partial(op.output_dir or ".", op.run_id)
        for folder in ([partial] if partial is not None else []) + [out.parent]:
            tmp = folder / f"{os.getpid()}-{secrets.token_hex(8)}.partial"
            try:
                try:
                    os.link(op.stored_path, tmp)  # same bytes, no copy
                except OSError:  # another filesystem: copy instead
                    shutil.copyfile(op.stored_path, tmp)
                os.replace(tmp, out)
                break
            except BaseException as exc:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                if not (isinstance(exc, OSError) and exc.errno == errno.EXDEV and folder != out.parent):
                    raise
        return Outcome.delivered(url=file_url(out), remote={"path": str(out)}, tier="local")

    async def lookup_artifact(self, op: UploadArtifact, env: ProviderEnv, remote: dict[str, Any]) -> Outcome | None:
        """The materialised copy's ``file://`` URL when the file is there and holds ``op.sha256``."""
        return await trio.to_thread.run_sync(self._find_artifact, op)

    def _find_artifact(self, op: UploadArtifact) -> Outcome | None:
        root = Path(op.output_dir or ".") / "artifacts"
        out = root / op.name
        try:
            real_root, real = root.resolve(strict=True), out.resolve(strict=True)
            if real_root not in real.parents or not out.is_file() or out.stat().st_size != op.size:
                return None
            try:
                same = os.path.samefile(out, op.stored_path)  # the usual hard link: nothing to read
            except OSError:
                same = False
            if not same and _sha256_file(out) != op.sha256:
                return None  # another file under that name (replaced by hand, or a newer upload's)
        except OSError:
            return None
        return Outcome.delivered(url=file_url(out), remote={"path": str(out)}, tier="local")

    async def aclose(self) -> None:
        return None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
