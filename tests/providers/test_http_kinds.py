"""The HTTP layer's pluggable parts against a real loopback server: each pagination, auth, body and error kind,
redirect policies and non-JSON 2xx answers."""

from __future__ import annotations

import base64
import email.parser
import email.policy
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest

from ci_sidecar.providers._http import (
    Basic,
    ContinuationToken,
    Crumb,
    Form,
    HeaderToken,
    HttpConfig,
    HttpError,
    HttpLayer,
    Json,
    JsonNext,
    Multipart,
    NextPageHeader,
    Raw,
    Response,
    Rules,
)
from ci_sidecar.providers.base import Outcome

from fakes._server import FakeServer, Recorded, Reply, page_json_next, page_link, page_number_header, page_token

TOKEN = "tok-3f9a7c1e55"
ITEMS = list(range(25))


class _Vendors(FakeServer):
    """One route per vendor behaviour the layer must handle."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions = 0  # Jenkins: a restart forgets every web session
        self.crumbs_enabled = True

    def respond(self, rec: Recorded) -> Reply:
        q, path = rec.query, rec.path
        if path == "/link":
            items, headers = page_link(ITEMS, self.url + path, q, default=10)
            return Reply(200, items, headers)
        if path == "/gitlab":
            items, headers = page_number_header(ITEMS, q, default=10)
            return Reply(200, items, headers)
        if path == "/azure":
            items, headers = page_token(ITEMS, q, size=10)
            return Reply(200, {"count": len(items), "value": items}, headers)
        if path == "/bitbucket":
            return Reply(200, page_json_next(ITEMS, self.url + path, q, size=10))
        if path == "/echo":
            return Reply(200, {"headers": rec.headers, "body": rec.raw.decode("latin-1")})
        if path == "/bitbucket-error":
            return Reply(404, {"type": "error", "error": {"message": "Repository not found", "detail": "check it"}})
        if path == "/xml-error":
            return Reply(409, b"<Error><Code>Busy</Code></Error>", content_type="application/xml")
        if path == "/signin":
            return Reply(203, b"<html>Sign in to Azure DevOps</html>", content_type="text/html")
        if path == "/redirect":
            return Reply(302, None, {"Location": "/landing"})
        if path == "/away":
            return Reply(302, None, {"Location": "http://elsewhere.example/x"})
        if path == "/landing":
            return Reply(200, {"landed": rec.method})
        if path == "/crumbIssuer/api/json":
            if not self.crumbs_enabled:
                return Reply(404, b"", content_type="text/html")
            return Reply(200, {"crumbRequestField": "Jenkins-Crumb", "crumb": f"crumb-{self.sessions}"},
                         {"Set-Cookie": f"JSESSIONID.abc=s{self.sessions}; Path=/; HttpOnly"})
        if path == "/job/app/build":
            if not self.crumbs_enabled:
                return Reply(201, None, {"Location": f"{self.url}/queue/item/1/"})
            crumb, cookie = rec.headers.get("jenkins-crumb"), rec.headers.get("cookie", "")
            if crumb != f"crumb-{self.sessions}" or f"JSESSIONID.abc=s{self.sessions}" not in cookie:
                return Reply(403, b"No valid crumb was included in the request", content_type="text/html")
            return Reply(201, None, {"Location": f"{self.url}/queue/item/1/"})
        return Reply(404, {"message": "no route"})


@pytest.fixture
def fake() -> Iterator[_Vendors]:
    with _Vendors() as server:
        yield server


@pytest.fixture
async def layer() -> AsyncIterator[HttpLayer]:
    lay = HttpLayer("test", pacing=())
    yield lay
    await lay.aclose()


def _api(layer: HttpLayer, fake: FakeServer, **kw: Any) -> Any:
    return layer.session(HttpConfig(base_url=fake.url, trust_env=False), TOKEN, None, **kw)


# --- pagination -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path, pagination, items", [
    ("/link", None, lambda r: r.json()),
    ("/gitlab", NextPageHeader(), lambda r: r.json()),
    ("/azure", ContinuationToken(), lambda r: r.json()["value"]),
    ("/bitbucket", JsonNext(), lambda r: r.json()["values"]),
])
async def test_each_pagination_kind_reads_every_item_once(layer: HttpLayer, fake: _Vendors, path: str,
                                                          pagination: Any, items: Any) -> None:
    """Link header, GitLab's X-Next-Page, Azure's continuation token and Bitbucket's JSON next each end on the
    last page with every item read exactly once."""
    params = {"per_page": 10} if path in ("/link", "/gitlab") else None
    got = [x async for page in _api(layer, fake).paginate(path, params, pagination=pagination) for x in items(page)]
    assert got == ITEMS
    assert len(fake.calls(path=path)) == 3


async def test_a_header_token_next_page_keeps_the_first_pages_parameters(layer: HttpLayer, fake: _Vendors) -> None:
    """GitLab pages after the first are asked with the original query plus the page number."""
    pages = [p async for p in _api(layer, fake).paginate("/gitlab", {"per_page": 10, "scope": "all"},
                                                         pagination=NextPageHeader())]
    assert len(pages) == 3
    assert [c.query.get("scope") for c in fake.calls(path="/gitlab")] == [["all"]] * 3
    assert [c.query.get("page") for c in fake.calls(path="/gitlab")] == [None, ["2"], ["3"]]


# --- auth -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth, header, value", [
    (None, "authorization", f"Bearer {TOKEN}"),
    (Basic(), "authorization", "Basic " + base64.b64encode(f":{TOKEN}".encode()).decode()),
    (Basic("ci-bot"), "authorization", "Basic " + base64.b64encode(f"ci-bot:{TOKEN}".encode()).decode()),
    (HeaderToken("PRIVATE-TOKEN"), "private-token", TOKEN),
    (HeaderToken("JOB-TOKEN"), "job-token", TOKEN),
])
async def test_each_auth_kind_puts_the_token_where_the_vendor_reads_it(layer: HttpLayer, fake: _Vendors,
                                                                       auth: Any, header: str, value: str) -> None:
    """Bearer, Basic (PAT with an empty user, or a fixed user) and header tokens arrive as the vendor expects."""
    resp = await _api(layer, fake, auth=auth).request("GET", "/echo")
    assert resp.json()["headers"][header] == value


async def test_basic_credentials_are_redacted_in_every_form(layer: HttpLayer, fake: _Vendors) -> None:
    """Neither the password nor its base64 Authorization form survives in a message."""
    api = _api(layer, fake, auth=Basic("ci-bot"))
    encoded = base64.b64encode(f"ci-bot:{TOKEN}".encode()).decode()
    assert api.redact(f"{TOKEN} / Basic {encoded}") == "*** / Basic ***"


async def test_jenkins_crumb_and_cookie_are_fetched_once_and_refreshed_once_after_a_restart(
        layer: HttpLayer, fake: _Vendors) -> None:
    """A write carries the crumb with the session cookie it belongs to; after a restart the 403 leads to one
    new crumb and one resend, and reads never fetch a crumb."""
    api = _api(layer, fake, auth=Crumb("ci-bot"))
    await api.request("GET", "/echo")
    assert fake.calls(path="crumbIssuer") == []
    for _ in range(2):
        resp = await api.request("POST", "/job/app/build", body=Form({"delay": "0sec"}), expect_json=False)
        assert resp.status == 201
    assert len(fake.calls(path="crumbIssuer")) == 1
    fake.sessions += 1  # Jenkins restarted: the old crumb and session are gone
    resp = await api.request("POST", "/job/app/build", body=Form({"delay": "0sec"}), expect_json=False)
    assert resp.status == 201
    assert len(fake.calls(path="crumbIssuer")) == 2
    assert [c.status for c in fake.calls("POST")] == [201, 201, 403, 201]
    assert "crumb-1" not in api.redact("crumb-1") and TOKEN not in api.redact(TOKEN)


async def test_a_jenkins_without_a_crumb_issuer_gets_writes_without_a_crumb(layer: HttpLayer,
                                                                           fake: _Vendors) -> None:
    """404 from the crumb issuer means crumbs are off: the write goes out without one."""
    fake.crumbs_enabled = False
    resp = await _api(layer, fake, auth=Crumb("ci-bot")).request("POST", "/job/app/build", expect_json=False)
    assert resp.status == 201 and "jenkins-crumb" not in fake.calls("POST")[0].headers


async def test_a_write_refused_with_a_fresh_crumb_is_resent_once_then_refused(layer: HttpLayer,
                                                                             fake: _Vendors) -> None:
    """The crumb refresh happens once per call: a write still refused afterwards is refused, not looped."""
    api = _api(layer, fake, auth=Crumb("ci-bot"))

    def broken(rec: Recorded) -> Reply:
        return Reply(200, {"crumbRequestField": "Jenkins-Crumb", "crumb": "never-accepted"})

    original = fake.respond
    fake.respond = lambda rec: broken(rec) if "crumbIssuer" in rec.path else original(rec)  # type: ignore[method-assign]
    with pytest.raises(HttpError) as err:
        await api.request("POST", "/job/app/build", expect_json=False)
    assert err.value.status == 403 and err.value.outcome.kind == "refused"
    assert len(fake.calls("POST")) == 2  # the first send and exactly one resend with a fresh crumb


# --- bodies ---------------------------------------------------------------------------------------------


async def test_each_body_kind_arrives_with_its_content_type(layer: HttpLayer, fake: _Vendors) -> None:
    """JSON, form, multipart and a raw stream of known length reach the server intact and typed."""
    api = _api(layer, fake)
    got = (await api.request("POST", "/echo", body=Json({"a": [1, "é"]}), paced=False)).json()
    assert got["headers"]["content-type"] == "application/json" and got["body"] == '{"a":[1,"\xc3\xa9"]}'
    got = (await api.request("POST", "/echo", body=Form({"json": '{"x":1}', "a b": "c&d"}))).json()
    assert got["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(got["body"]) == {"json": ['{"x":1}'], "a b": ["c&d"]}
    got = (await api.request("POST", "/echo", body=Multipart({"name": "junit"},
                                                             {"file": ("r.xml", b"<testsuite/>", "application/xml")}))
           ).json()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {got['headers']['content-type']}\r\n\r\n".encode() + got["body"].encode("latin-1"))
    parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
    assert parts["name"].get_content() == "junit"
    assert parts["file"].get_filename() == "r.xml" and parts["file"].get_content() == b"<testsuite/>"

    async def stream() -> AsyncIterator[bytes]:
        yield b"abc"
        yield b"def"

    got = (await api.request("PUT", "/echo", body=Raw(stream(), "application/octet-stream", length=6))).json()
    assert got["body"] == "abcdef" and got["headers"]["content-length"] == "6"
    assert not fake.calls("PUT")[0].chunked


# --- errors, classification, non-JSON answers, redirects ------------------------------------------------


async def test_bitbucket_error_bodies_give_the_vendors_words(layer: HttpLayer, fake: _Vendors) -> None:
    """``{"error": {"message", "detail"}}`` becomes "message; detail", refused."""
    with pytest.raises(HttpError) as err:
        await _api(layer, fake).request("GET", "/bitbucket-error")
    assert err.value.outcome.kind == "refused" and err.value.provider_message == "Repository not found; check it"


async def test_vendor_hooks_parse_and_classify_their_own_errors(fake: _Vendors) -> None:
    """A vendor's parser reads its XML error and its classifier turns that code into a retry."""

    def xml_message(resp: Response) -> str | None:
        return resp.body.decode().split("<Code>")[1].split("<")[0] if b"<Code>" in resp.body else None

    def busy_is_transient(resp: Response, message: str, now: float | None) -> Outcome | None:
        return Outcome.retry(f"busy: {message}", status=resp.status) if message == "Busy" else None

    layer = HttpLayer("xml", pacing=(), rules=Rules(error_message=xml_message, classify=busy_is_transient))
    with pytest.raises(HttpError) as err:
        await _api(layer, fake).request("GET", "/xml-error")
    await layer.aclose()
    assert err.value.outcome.kind == "retry" and err.value.outcome.message == "busy: Busy"


async def test_a_sign_in_page_with_203_is_an_auth_failure_not_a_retry(layer: HttpLayer, fake: _Vendors) -> None:
    """Azure DevOps answers a rejected PAT with 203 and HTML: refused as a credential problem, sent once."""
    with pytest.raises(HttpError) as err:
        await _api(layer, fake).request("GET", "/signin")
    assert err.value.outcome.kind == "refused" and "credential was not accepted" in err.value.outcome.message
    assert len(fake.calls(path="/signin")) == 1


async def test_redirects_follow_the_requests_policy(layer: HttpLayer, fake: _Vendors) -> None:
    """Refused by default, returned when asked (Jenkins' 302), followed on the same origin only."""
    api = _api(layer, fake)
    with pytest.raises(HttpError) as err:
        await api.request("GET", "/redirect")
    assert err.value.outcome.kind == "refused" and "redirect 302" in err.value.outcome.message
    resp = await api.request("POST", "/redirect", redirects="return", expect_json=False)
    assert resp.status == 302 and resp.headers["location"] == "/landing"
    resp = await api.request("POST", "/redirect", redirects="follow")
    assert resp.json() == {"landed": "GET"}  # a 302 after a POST is fetched with GET
    with pytest.raises(HttpError) as err:
        await api.request("GET", "/away", redirects="follow")
    assert err.value.outcome.kind == "refused" and "another origin" in err.value.outcome.message
