"""Uploading the archive to the signed (SAS) Azure blob URL CreateArtifact hands out: one PUT, or Put Block per
block and Put Block List, streamed so memory stays at one block. The URL's query is a credential: never shown."""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx

from .._http import HttpConfig, HttpError, HttpLayer, NoAuth, Raw
from ..base import Outcome, ProviderEnv
from ._zip import ZipLayout, zip_stream
from .runtime import origin

__all__ = ["Blob"]


class _HideSignedQueries(logging.Filter):
    """httpx logs each request's full URL at INFO: a signed blob URL's query is a credential, drop it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) and b"sig=" in a.query
                                                  for a in record.args):
            record.args = tuple(a.copy_with(query=None) if isinstance(a, httpx.URL) and b"sig=" in a.query else a
                                for a in record.args)
        return True


_SAS_FILTER = _HideSignedQueries()
logging.getLogger("httpx").addFilter(_SAS_FILTER)  # idempotent: the same filter object is added once


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class Blob:
    """Uploads to a signed (SAS) blob URL: no Authorization header, the URL's query never shown."""

    def __init__(self, http: HttpLayer, url: str, env: ProviderEnv) -> None:
        self.url = url
        self.http = http
        self.config = HttpConfig.from_env_config(origin(url) or url, env.config)
        parts = urlsplit(url)
        self.secrets = [parts.query] + [v for _k, v in parse_qsl(parts.query) if len(v) >= 8]
        self.shown = f"{parts.netloc}{parts.path}"
        self.calls = 0

    def _clean(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret:
                text = text.replace(secret, "***").replace(quote(secret, safe=""), "***")
        return text

    async def put(self, content: Any, headers: dict[str, str], params: dict[str, str] | None = None) -> None:
        # no credential header: the signature is in the URL, which is a secret of the session
        api = self.http.session(self.config, None, None, auth=NoAuth(), secrets=self.secrets)
        self.calls += 1
        # appended by hand: httpx would replace the SAS query (the signature) with ``params``
        url = self.url + (("&" if "?" in self.url else "?") + urlencode(params) if params else "")
        try:
            await api.request("PUT", url, body=Raw(content), headers=headers, paced=False, expect_json=False)
        except HttpError as err:
            outcome = err.outcome
            if err.status == 403:
                # an expired or rejected signature: a new CreateArtifact hands out a fresh URL
                outcome = Outcome.retry(outcome.message, status=403)
            outcome.message = self._clean(f"blob upload to {self.shown}: {outcome.message}")
            raise HttpError(outcome) from None

    async def upload(self, layout: ZipLayout, path: str, block_bytes: int) -> str:
        """Send the archive; returns the SHA-256 of what was sent."""
        digest = hashlib.sha256()
        content_type = {"x-ms-blob-content-type": "application/zip"}
        if layout.size <= block_bytes:
            async def body() -> AsyncIterator[bytes]:
                async with aclosing(zip_stream(layout, path)) as chunks:
                    async for chunk in chunks:
                        digest.update(chunk)
                        yield chunk

            await self.put(body(), {"x-ms-blob-type": "BlockBlob", "Content-Type": "application/zip",
                                    "Content-Length": str(layout.size), **content_type})
            return digest.hexdigest()
        ids: list[str] = []
        pending = bytearray()

        async def flush() -> None:
            block_id = base64.b64encode(f"ci-sidecar-{len(ids):08d}".encode()).decode()
            size = len(pending)
            # handed over as a one-shot stream: httpx keeps requests in reference cycles for a while, and a
            # finished generator holds no bytes, so memory stays at one block
            await self.put(_once(bytes(pending)), {"Content-Length": str(size)},
                           {"comp": "block", "blockid": block_id})
            pending.clear()
            ids.append(block_id)

        async with aclosing(zip_stream(layout, path)) as chunks:
            async for chunk in chunks:
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    room = block_bytes - len(pending)
                    pending.extend(view[:room])
                    view = view[room:]
                    if len(pending) == block_bytes:
                        await flush()
        if pending:
            await flush()
        xml = ('<?xml version="1.0" encoding="utf-8"?><BlockList>'
               + "".join(f"<Latest>{i}</Latest>" for i in ids) + "</BlockList>").encode()
        await self.put(xml, {"Content-Type": "application/xml", "Content-Length": str(len(xml)), **content_type},
                       {"comp": "blocklist"})
        return digest.hexdigest()
