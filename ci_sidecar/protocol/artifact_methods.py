"""Params and results of the artifact methods (docs/protocol.md §Artifacts), and their entries in the method table."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from .records import Artifact, ErrorInfo, Wire
from .spec import MethodSpec, WaitS

__all__ = [
    "MAX_CHUNK_BYTES",
    "UploadArtifactParams",
    "UploadItem",
    "UploadArtifactsParams",
    "UploadItemResult",
    "OpenArtifactStreamParams",
    "OpenArtifactStreamResult",
    "WriteArtifactStreamParams",
    "WriteArtifactStreamResult",
    "CloseArtifactStreamParams",
    "ArtifactNameParams",
    "ArtifactRunParams",
    "ArtifactUrlResult",
    "UpdateArtifactMetadataParams",
    "PurgeArtifactsResult",
]

#: the largest decoded chunk ``write_artifact_stream`` takes (its base64 fits the 16 MiB frame limit)
MAX_CHUNK_BYTES = 8 * 1024 * 1024

Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-fA-F]{64}$")]
Labels = Annotated[list[str], msgspec.Meta(max_length=256)]
Offset = Annotated[int, msgspec.Meta(ge=0)]


class UploadArtifactParams(Wire):
    """``upload_artifact``: exactly one of ``path`` (read by the daemon) or ``content_base64``."""

    test_run_id: str
    path: str | None = None
    content_base64: bytes | None = None
    name: str | None = None
    type: str | None = None
    labels: Labels = []
    metadata: dict[str, Any] = {}
    workDoneToken: int | str | None = None
    wait: bool = False
    wait_s: WaitS = 30.0


class UploadItem(Wire):
    path: str
    name: str | None = None
    type: str | None = None
    labels: Labels = []
    metadata: dict[str, Any] = {}


class UploadArtifactsParams(Wire):
    """``upload_artifacts``: many files, uploaded concurrently, each answered on its own."""

    test_run_id: str
    items: Annotated[list[UploadItem], msgspec.Meta(max_length=100_000)]
    workDoneToken: int | str | None = None


class UploadItemResult(Wire):
    name: str
    ok: bool
    artifact: Artifact | None = None
    error: ErrorInfo | None = None


class OpenArtifactStreamParams(Wire):
    test_run_id: str
    name: str
    type: str | None = None
    labels: Labels = []
    metadata: dict[str, Any] = {}
    #: the total size, when known: checked against the limits now and against the bytes at close
    size: Offset | None = None


class OpenArtifactStreamResult(Wire):
    handle: str


class WriteArtifactStreamParams(Wire):
    """A chunk at ``offset``; bytes at offsets already written are ignored (resends are harmless)."""

    test_run_id: str
    handle: str
    offset: Offset
    chunk_base64: Annotated[bytes, msgspec.Meta(max_length=MAX_CHUNK_BYTES)]


class WriteArtifactStreamResult(Wire):
    #: bytes stored so far (the next offset to send)
    written: int


class CloseArtifactStreamParams(Wire):
    test_run_id: str
    handle: str
    sha256: Sha256 | None = None
    wait: bool = False
    wait_s: WaitS = 30.0


class ArtifactNameParams(Wire):
    test_run_id: str
    name: str


class ArtifactRunParams(Wire):
    test_run_id: str


class ArtifactUrlResult(Wire):
    url: str | None
    expires_at: str | None = None
    #: why the URL is not (yet) the CI's own: the artifact is staged for a step of the job that uploads it
    #: (CircleCI's ``store_artifacts``), whose URL exists only after that step
    note: str | None = None


class UpdateArtifactMetadataParams(Wire):
    """Shallow merge into the artifact's metadata (a key set to null is removed); ``labels`` replaces."""

    test_run_id: str
    name: str
    metadata: dict[str, Any]
    labels: Labels | None = None


class PurgeArtifactsResult(Wire):
    removed: int


_UPLOAD_ERRORS = (-31001, -31005, -31006, -31003, -31004)
#: the artifact methods, in the order the method table lists them
ARTIFACT_METHODS: tuple[MethodSpec, ...] = (
    MethodSpec("upload_artifact", UploadArtifactParams, Artifact,
               "Store a file (by daemon-readable path or inline base64) as a named artifact of a run "
               "and hand it to the run's providers; the same name again replaces it.",
               errors=_UPLOAD_ERRORS),
    MethodSpec("upload_artifacts", UploadArtifactsParams, list[UploadItemResult],
               "Upload many files concurrently; each item answers on its own ($/progress with a workDoneToken).",
               errors=(-31001,)),
    MethodSpec("open_artifact_stream", OpenArtifactStreamParams, OpenArtifactStreamResult,
               "Start a chunked upload for clients that cannot share files with the daemon.",
               run_scoped=True, errors=(-31001, -31005, -31006)),
    MethodSpec("write_artifact_stream", WriteArtifactStreamParams, WriteArtifactStreamResult,
               "Write a chunk (≤ 8 MiB) at an offset; chunks at offsets already written are ignored.",
               run_scoped=True, errors=(-31006,)),
    MethodSpec("close_artifact_stream", CloseArtifactStreamParams, Artifact,
               "Finish a chunked upload (the sha256 is checked when given) and store it as an artifact.",
               run_scoped=True, errors=(-31001, -31006, -31003, -31004)),
    MethodSpec("get_artifact_url", ArtifactNameParams, ArtifactUrlResult,
               "The artifact's URL: the provider's when known, else the local file:// URL, else null.",
               errors=(-31001, -31002)),
    MethodSpec("get_artifacts_for_test_run", ArtifactRunParams, list[Artifact],
               "Every artifact of a run, oldest first.", errors=(-31001,)),
    MethodSpec("get_artifact_by_name", ArtifactNameParams, Artifact | None,
               "One artifact by name, or null.", errors=(-31001,)),
    MethodSpec("update_artifact_metadata", UpdateArtifactMetadataParams, Artifact,
               "Merge metadata into an artifact (unknown name: -31002).", errors=(-31001, -31002)),
    MethodSpec("purge_artifacts_for_test_run", ArtifactRunParams, PurgeArtifactsResult,
               "Remove a run's artifacts, their local copies and any stored content no other artifact uses.",
               errors=(-31001,)),
)
