"""Chunked artifact streams: open, write at an offset, close (or discarded when idle or their session ends)."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from ci_sidecar.protocol import errors as E
from ci_sidecar.protocol.artifact_methods import (
    CloseArtifactStreamParams,
    OpenArtifactStreamParams,
    OpenArtifactStreamResult,
    WriteArtifactStreamParams,
    WriteArtifactStreamResult,
)
from ci_sidecar.protocol.records import Artifact

from ..casstore import BlobWriter, TooLarge
from .uploads import ArtifactUploads, _Upload

if TYPE_CHECKING:
    from ..session_context import SessionContext

__all__ = ["ArtifactStreams"]

log = logging.getLogger("ci_sidecar.artifacts")


@dataclass
class _Stream:
    handle: str
    run_id: str
    name: str
    type: str | None
    labels: list[str]
    metadata: dict[str, Any]
    size: int | None
    session_id: str
    writer: BlobWriter
    last_used: float = field(default_factory=time.monotonic)
    lock: trio.Lock = field(default_factory=trio.Lock)
    dead: bool = False



class ArtifactStreams(ArtifactUploads):
    """The three stream methods and the sweep that discards idle streams."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._streams: dict[str, _Stream] = {}

    async def _sweep_streams(self) -> None:
        interval = max(0.05, min(30.0, self.settings.stream_idle_s / 4))
        while True:
            await trio.sleep(interval)
            now = time.monotonic()
            for stream in list(self._streams.values()):
                if now - stream.last_used > self.settings.stream_idle_s:
                    log.info("artifact stream %s (%s) idle for %.0f s: discarded", stream.handle, stream.name,
                             now - stream.last_used)
                    self._discard_stream(stream)

    def session_ended(self, session_id: str) -> None:
        """A session's open streams go with it (nobody can finish them)."""
        for stream in [s for s in self._streams.values() if s.session_id == session_id]:
            self._discard_stream(stream)

    async def open_stream(self, ctx: SessionContext, p: OpenArtifactStreamParams) -> OpenArtifactStreamResult:
        state = self.runs._require(p.test_run_id)
        name = self._check_name(state, p.name)
        if p.size is not None:
            self._check_limits(state.meta.id, name, p.size)
        mine = sum(1 for s in self._streams.values() if s.session_id == ctx.session_id)
        if mine >= self.settings.max_streams_per_session:
            raise E.LimitExceeded(self.settings.max_streams_per_session, mine + 1,
                                  "too many open artifact streams in this session")
        limit = self.settings.max_file_bytes if p.size is None else min(p.size, self.settings.max_file_bytes)
        writer = await trio.to_thread.run_sync(self.cas.writer, limit)
        stream = _Stream(handle=uuid.uuid4().hex, run_id=state.meta.id, name=name, type=p.type,
                         labels=list(p.labels), metadata=dict(p.metadata), size=p.size,
                         session_id=ctx.session_id, writer=writer)
        self._streams[stream.handle] = stream
        return OpenArtifactStreamResult(handle=stream.handle)

    def _stream(self, run_id: str, handle: str) -> _Stream:
        stream = self._streams.get(handle)
        if stream is None or stream.run_id != run_id:
            raise E.InvalidParams("$.handle", "unknown artifact stream (closed, discarded after 10 minutes idle "
                                              "or when its session ended, or of another run)")
        return stream

    async def write_stream(self, p: WriteArtifactStreamParams) -> WriteArtifactStreamResult:
        stream = self._stream(p.test_run_id, p.handle)
        async with stream.lock:
            if stream.dead:
                raise E.InvalidParams("$.handle", "the artifact stream was discarded")
            stream.last_used = time.monotonic()
            try:
                await trio.to_thread.run_sync(stream.writer.write_at, p.offset, p.chunk_base64)
            except ValueError as exc:
                raise E.InvalidParams("$.offset", f"{exc}; send from offset {stream.writer.written}") from None
            except TooLarge as exc:
                self._discard_stream(stream, locked=True)
                raise E.LimitExceeded(exc.limit, exc.actual,
                                      f"artifact {stream.name!r} passed its size limit ({exc.limit} bytes); "
                                      "the stream was discarded") from None
            finally:
                if stream.dead:
                    await trio.to_thread.run_sync(stream.writer.discard)
            return WriteArtifactStreamResult(written=stream.writer.written)

    async def close_stream(self, ctx: SessionContext, p: CloseArtifactStreamParams) -> Artifact:
        stream = self._stream(p.test_run_id, p.handle)
        state = self.runs._require(p.test_run_id)
        async with stream.lock:
            if stream.dead:
                raise E.InvalidParams("$.handle", "the artifact stream was discarded")
            written = stream.writer.written
            if stream.size is not None and written != stream.size:
                raise E.InvalidParams("$.handle", f"incomplete: {written} of {stream.size} byte(s) written; "
                                                  f"send from offset {written}")
            self._streams.pop(stream.handle, None)
            stream.dead = True
            try:
                staged = await trio.to_thread.run_sync(stream.writer.finish)
            except BaseException:
                await trio.to_thread.run_sync(stream.writer.discard)
                raise
        if p.sha256 is not None and p.sha256.lower() != staged.sha256:
            await trio.to_thread.run_sync(self.cas.discard, staged)
            raise E.InvalidParams("$.sha256", f"does not match the {staged.size} byte(s) received "
                                              f"(sha256 {staged.sha256}); the upload was discarded")
        entry_ids, meta = await self._register(ctx, state, staged,
                                               _Upload(stream.name, stream.type, stream.labels, stream.metadata))
        await self.store.commit()
        await self._after_upload(meta)
        if entry_ids and p.wait:
            await self._wait(entry_ids, p.wait_s)
        return self.view(meta)

    def _discard_stream(self, stream: _Stream, *, locked: bool = False) -> None:
        self._streams.pop(stream.handle, None)
        stream.dead = True
        if not locked and not stream.lock.locked():
            stream.writer.discard()  # close + unlink: quick; a busy stream is discarded by its writer
