"""The artifact service as the daemon sees it: its method table and background tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from ci_sidecar.protocol.artifact_methods import (
    ArtifactNameParams,
    ArtifactRunParams,
    CloseArtifactStreamParams,
    OpenArtifactStreamParams,
    UpdateArtifactMetadataParams,
    UploadArtifactParams,
    UploadArtifactsParams,
    WriteArtifactStreamParams,
)

from .streams import ArtifactStreams
from .urls import ArtifactUrls

if TYPE_CHECKING:
    from ..calls import Call
    from ..session_context import SessionContext

__all__ = ["ArtifactService"]


class ArtifactService(ArtifactStreams, ArtifactUrls):
    """The ten artifact methods, their persisted state and the blob store behind them."""

    # --- the method table -----------------------------------------------------------------------

    def handlers(self) -> dict[str, Any]:
        def ctx(call: Call) -> SessionContext:
            return call.session.context

        async def upload(call: Call, p: UploadArtifactParams) -> Any:
            return await self.upload(ctx(call), call, p)

        async def upload_many(call: Call, p: UploadArtifactsParams) -> Any:
            return await self.upload_many(ctx(call), call, p)

        async def open_stream(call: Call, p: OpenArtifactStreamParams) -> Any:
            return await self.open_stream(ctx(call), p)

        async def write_stream(call: Call, p: WriteArtifactStreamParams) -> Any:
            return await self.write_stream(p)

        async def close_stream(call: Call, p: CloseArtifactStreamParams) -> Any:
            return await self.close_stream(ctx(call), p)

        async def url(call: Call, p: ArtifactNameParams) -> Any:
            return await self.url(p, ctx(call))

        async def list_all(call: Call, p: ArtifactRunParams) -> Any:
            return self.list(p.test_run_id)

        async def by_name(call: Call, p: ArtifactNameParams) -> Any:
            return self.by_name(p.test_run_id, p.name)

        async def update(call: Call, p: UpdateArtifactMetadataParams) -> Any:
            return await self.update_metadata(p)

        async def purge(call: Call, p: ArtifactRunParams) -> Any:
            return await self.purge(p.test_run_id)

        return {
            "upload_artifact": upload,
            "upload_artifacts": upload_many,
            "open_artifact_stream": open_stream,
            "write_artifact_stream": write_stream,
            "close_artifact_stream": close_stream,
            "get_artifact_url": url,
            "get_artifacts_for_test_run": list_all,
            "get_artifact_by_name": by_name,
            "update_artifact_metadata": update,
            "purge_artifacts_for_test_run": purge,
        }

    async def run(self) -> None:
        """Discard streams left idle (their partial uploads) and apply the store's retention, until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sweep_streams)
            nursery.start_soon(self._retention_loop)
