"""The shared HTTP layer against a small scripted loopback server: classification, redaction, limits, pacing."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
import trio

from ci_sidecar import __version__
from ci_sidecar.providers._http import (
    HttpConfig,
    HttpError,
    HttpLayer,
    Pacer,
    Response,
    classify_response,
    parse_link_header,
    retry_after_seconds,
)

from ci_sidecar.providers.github._api import RULES as GITHUB_RULES

from fakes._server import LoopbackServer

SECRET = "s3cr3t-token-value"


class _Scripted(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, Any]]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, "headers": dict(self.headers.items())})
        port = self.server.server_address[1]
        path = self.path.split("?")[0]
        if path == "/echo-error":  # a server that repeats the credential back (some proxies do)
            self._json(400, {"message": f"bad token {self.headers.get('Authorization')}"})
        elif path == "/slow":
            time.sleep(1.0)
            self._json(200, {})
        elif path == "/huge":
            self._json(200, {"blob": "x" * 200_000})
        elif path == "/proxy-page":
            self._raw(200, b"<html>corporate proxy says hi</html>", "text/html")
        elif path == "/page1":
            self._json(200, [1, 2], {"Link": f'<http://127.0.0.1:{port}/page2>; rel="next", <x>; rel="last"'})
        elif path == "/page2":
            self._json(200, [3], {"Link": '<http://evil.example/page3>; rel="next"'})
        elif path == "/limits":
            self._json(200, {}, {"x-ratelimit-limit": "1000", "x-ratelimit-remaining": "998",
                                 "x-ratelimit-used": "2", "x-ratelimit-reset": "1900000000",
                                 "x-ratelimit-resource": "core"})
        else:
            self._json(200, {"ok": True})

    do_POST = do_GET

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._raw(status, json.dumps(body).encode(), "application/json", headers)

    def _raw(self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("H", (_Scripted,), {"seen": seen})
    srv = LoopbackServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
async def layer() -> Any:
    lay = HttpLayer("test", pacing=((1000, 60.0),))
    yield lay
    await lay.aclose()


def _session(layer: HttpLayer, url: str, logs: list[str] | None = None, **kw: Any) -> Any:
    return layer.session(HttpConfig(base_url=url, trust_env=False, **kw), SECRET,
                         logs.append if logs is not None else None)


async def test_user_agent_and_auth_are_sent(layer: HttpLayer, server: Any) -> None:
    url, seen = server
    await _session(layer, url).request("GET", "/ok")
    headers = {k.lower(): v for k, v in seen[0]["headers"].items()}
    assert headers["user-agent"] == f"ci-sidecar/{__version__}"
    assert headers["authorization"] == f"Bearer {SECRET}"


async def test_token_is_redacted_from_provider_messages_and_logs(layer: HttpLayer, server: Any) -> None:
    url, _ = server
    logs: list[str] = []
    api = _session(layer, url, logs)
    with pytest.raises(HttpError) as err:
        await api.request("GET", "/echo-error")
    assert err.value.outcome.kind == "refused" and err.value.status == 400
    assert SECRET not in err.value.outcome.message and "bad token Bearer ***" in err.value.outcome.message
    assert SECRET not in str(err.value)
    api.log(f"something mentioning {SECRET}")
    assert logs == ["something mentioning ***"]


async def test_timeout_is_a_retry(layer: HttpLayer, server: Any) -> None:
    url, _ = server
    with pytest.raises(HttpError) as err:
        await _session(layer, url, timeout=0.2).request("GET", "/slow")
    assert err.value.outcome.kind == "retry" and "timed out" in err.value.outcome.message


async def test_connection_refused_is_a_retry(layer: HttpLayer) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(HttpError) as err:
        await _session(layer, f"http://127.0.0.1:{port}").request("GET", "/x")
    assert err.value.outcome.kind == "retry" and "connection failed" in err.value.outcome.message


async def test_response_size_limit(layer: HttpLayer, server: Any) -> None:
    url, _ = server
    with pytest.raises(HttpError) as err:
        await _session(layer, url, max_response_bytes=10_000).request("GET", "/huge")
    assert err.value.outcome.kind == "refused" and "larger than 10000 bytes" in err.value.outcome.message
    ok = await _session(layer, url).request("GET", "/huge")
    assert len(ok.json()["blob"]) == 200_000


async def test_non_json_success_body_is_refused_by_default_and_retried_by_github(layer: HttpLayer,
                                                                                server: Any) -> None:
    """A 2xx HTML page is "not the API" (refused, asking again gets the same page); GitHub's hook retries it."""
    url, _ = server
    with pytest.raises(HttpError) as err:
        await _session(layer, url).request("GET", "/proxy-page")
    assert err.value.outcome.kind == "refused" and "not JSON" in err.value.outcome.message
    github = HttpLayer("github", rules=GITHUB_RULES)
    with pytest.raises(HttpError) as err:
        await _session(github, url).request("GET", "/proxy-page")
    await github.aclose()
    assert err.value.outcome.kind == "retry" and "undecodable" in err.value.outcome.message


async def test_pagination_follows_next_but_never_another_origin(layer: HttpLayer, server: Any) -> None:
    url, seen = server
    pages = [r.json() async for r in _session(layer, url).paginate("/page1")]
    assert pages == [[1, 2], [3]]
    assert [s["path"] for s in seen] == ["/page1", "/page2"]


async def test_credentials_are_not_sent_to_another_origin(layer: HttpLayer, server: Any) -> None:
    url, seen = server
    with pytest.raises(HttpError) as err:
        await _session(layer, url).request("GET", "http://evil.example/steal")
    assert err.value.outcome.kind == "refused" and seen == []


async def test_rate_limit_state_for_sidecar_status(layer: HttpLayer, server: Any) -> None:
    url, _ = server
    await _session(layer, url).request("GET", "/limits")
    state = layer.status()["rate_limit"]
    assert state["limit"] == 1000 and state["remaining"] == 998 and state["reset"] == 1900000000
    assert state["resource"] == "core"


async def test_pacer_waits_and_says_so(server: Any) -> None:
    url, seen = server
    lay = HttpLayer("test", pacing=((3, 0.6),))
    logs: list[str] = []
    api = _session(lay, url, logs)
    start = trio.current_time()
    for _ in range(4):
        await api.request("POST", "/create", expect_json=False)
    elapsed = trio.current_time() - start
    await lay.aclose()
    assert elapsed >= 0.5, elapsed
    assert len(logs) == 1 and "pacing POST /create" in logs[0]
    assert lay.status()["rate_limit"]["paced_waits"] == 1
    assert all(s["path"] == "/create" for s in seen[-4:]) and len(seen) == 4


async def test_pacer_windows() -> None:
    pacer = Pacer(((2, 10.0), (3, 100.0)))
    pacer._stamps.extend([0.0, 1.0])
    assert pacer.delay(2.0) == pytest.approx(8.0)  # the 10 s window is full until t=10
    pacer._stamps.append(11.0)
    assert pacer.delay(12.0) == pytest.approx(88.0)  # three in 100 s: wait for the first to age out


def _resp(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Response:
    return Response(status=status, headers=httpx.Headers(headers or {}), body=json.dumps(body).encode() if body
                    else b"", url="http://x/")


def test_classification_table() -> None:
    """429/5xx retry with the server's wait; other 4xx are refused with the provider's words; GitHub's hook
    (not the layer's default) makes a rate-limit 403 a retry."""
    now = 1_700_000_000.0
    assert classify_response(_resp(200, {})) is None
    r = classify_response(_resp(429, {"message": "slow"}, {"Retry-After": "12"}), now=now)
    assert r is not None and r.kind == "retry" and r.retry_after == 12
    secondary = _resp(403, {"message": "You have exceeded a secondary rate limit."})
    r = classify_response(secondary, rules=GITHUB_RULES, now=now)
    assert r is not None and r.kind == "retry" and r.retry_after == 60
    r = classify_response(secondary, now=now)
    assert r is not None and r.kind == "refused"
    r = classify_response(_resp(403, {"message": "API rate limit exceeded"},
                                {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(now) + 90)}),
                          rules=GITHUB_RULES, now=now)
    assert r is not None and r.kind == "retry" and r.retry_after == 90
    r = classify_response(_resp(403, {"message": "Resource not accessible by integration"}), rules=GITHUB_RULES,
                          now=now)
    assert r is not None and r.kind == "refused" and r.message.startswith("Resource not accessible by integration: ")
    r = classify_response(_resp(422, {"message": "Validation Failed", "errors": [
        {"resource": "Status", "code": "custom", "field": "description", "message": "description is too long"}]}))
    assert r is not None and r.kind == "refused" and r.message == "Validation Failed (description is too long)"
    for status in (500, 502, 503, 504):
        r = classify_response(_resp(status, {"message": "oops"}))
        assert r is not None and r.kind == "retry" and r.status == status
    r = classify_response(_resp(404))
    assert r is not None and r.kind == "refused" and "404" in r.message


def test_retry_after_http_date_and_links() -> None:
    headers = httpx.Headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after_seconds(headers, now=1445412480.0 - 30) == pytest.approx(30)
    links = parse_link_header('<https://a/x?page=2>; rel="next", </y?page=9>; rel="last"', "https://a/x")
    assert links == {"next": "https://a/x?page=2", "last": "https://a/y?page=9"}


async def test_unreadable_ca_bundle_is_refused_not_raised(layer: HttpLayer, server: Any, tmp_path: Any) -> None:
    url, seen = server
    with pytest.raises(HttpError) as err:
        await _session(layer, url, ca_bundle=str(tmp_path / "missing.pem")).request("GET", "/ok")
    assert err.value.outcome.kind == "refused" and "ca_bundle" in err.value.outcome.message and seen == []
