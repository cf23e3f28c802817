"""Artifacts: named files attached to a run, stored once by content, handed to the run's providers.

Every upload (a daemon-readable path, inline base64, or a chunked stream) ends the same way: the bytes
are staged and hashed in one pass (:mod:`.casstore`), the blob is committed (identical content is
stored once), the artifact's metadata is journaled with the run state, and one ``UploadArtifact``
write per provider goes through the outbox (the ``local`` provider always, to materialise the file
under the run's output folder; the run's CI provider too when it has an artifact tier). ``upload.state``
reflects the primary provider's outcome and is never "uploaded" for a write that failed.
"""

from .service import ArtifactService
from .settings import ArtifactSettings, normalise_name

__all__ = ["ArtifactService", "ArtifactSettings", "normalise_name"]
