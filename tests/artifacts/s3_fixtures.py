"""A real S3 protocol server for tests: moto in server mode on 127.0.0.1, and a small fault proxy in front of it.

moto checks SigV4 signatures when IAM authentication is on (``/moto-api/reset-auth``), but it does not check a
presigned URL's expiry; the proxy does that the way S3 does (``X-Amz-Date + X-Amz-Expires`` in the past →
403 ``AccessDenied`` "Request has expired") and injects throttling/5xx answers on demand.
"""

from __future__ import annotations

import http.client
import http.server
import json
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # moto/flask/boto3 deprecation chatter is not ours to fix
    import boto3
    from moto.server import ThreadedMotoServer

REGION = "us-east-1"
DUMMY_KEY = ("testing-key-id", "testing-secret-key")


@dataclass
class Moto:
    """The running server: its URL and a boto3 client (an independent S3 implementation to check results)."""

    url: str
    _auth_lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, service: str = "s3", key: tuple[str, str] = DUMMY_KEY) -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name=REGION, aws_access_key_id=key[0],
                            aws_secret_access_key=key[1])

    def bucket(self) -> str:
        name = f"ci-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def iam_key(self) -> tuple[str, str]:
        """A real access key (IAM user with s3:* allowed): the only kind moto accepts once auth is on."""
        iam = self.client("iam")
        user = f"u{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        made = iam.create_access_key(UserName=user)["AccessKey"]
        return made["AccessKeyId"], made["SecretAccessKey"]

    def set_auth(self, on: bool) -> None:
        conn = http.client.HTTPConnection(urlsplit(self.url).netloc, timeout=5)
        try:
            conn.request("POST", "/moto-api/reset-auth", body=b"0" if on else b"inf")
            assert conn.getresponse().status == 200
        finally:
            conn.close()

    def objects(self, bucket: str) -> dict[str, bytes]:
        s3 = self.client()
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}

    def unfinished_uploads(self, bucket: str) -> list[dict[str, Any]]:
        return self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield Moto(url=f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def moto_auth(moto: Moto) -> Iterator[Moto]:
    """Signature checking on for one test (a process-wide moto setting, restored afterwards)."""
    moto.set_auth(True)
    try:
        yield moto
    finally:
        moto.set_auth(False)


@dataclass
class Fault:
    """Answer the next ``times`` requests matching ``method`` and ``contains`` (in path+query) with an S3 error."""

    method: str
    contains: str
    status: int
    code: str
    times: int = 1


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    size: int


class FaultProxy:
    """Forwards to moto byte for byte (the Host header too, so signatures still match), except for faults."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream).netloc
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        #: requests whose ``method`` and path+query contain these are held, body unread, until ``release``
        #: is set (a slow store: the client's send blocks); ``held`` counts the requests caught so far
        self.hold: tuple[str, str] | None = None
        self.release = threading.Event()
        self.held = 0
        self.expired_rejections = 0
        #: moto checks If-Match / If-None-Match and then writes, without a lock between the two; S3 does both
        #: atomically. Conditional writes pass the proxy one at a time, so moto behaves like S3 here.
        self.conditional = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                if proxy.hold is not None and self.command == proxy.hold[0] and proxy.hold[1] in self.path:
                    proxy.held += 1
                    proxy.release.wait(60)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.seen.append(Seen(self.command, self.path, dict(self.headers.items()), len(body)))
                reply = proxy._fault(self.command, self.path) or proxy._expired(self.command, self.path)
                if reply is not None:
                    status, payload = reply
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conditional = self.command == "PUT" and ("If-Match" in self.headers or "If-None-Match" in self.headers)
                if conditional:
                    proxy.conditional.acquire()
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                try:
                    conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for name, value in self.headers.items():
                        conn.putheader(name, value)
                    conn.endheaders(body)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status)
                    for name, value in resp.getheaders():
                        if name.lower() not in ("content-length", "transfer-encoding", "connection", "server",
                                                "date"):
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    conn.close()
                    if conditional:
                        proxy.conditional.release()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _fault(self, method: str, target: str) -> tuple[int, bytes] | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and fault.contains in target:
                fault.times -= 1
                return fault.status, (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{fault.code}</Code>"
                                      f"<Message>injected {fault.code}</Message></Error>").encode()
        return None

    def _expired(self, method: str, target: str) -> tuple[int, bytes] | None:
        query = parse_qs(urlsplit(target).query)
        if method != "GET" or "X-Amz-Date" not in query:
            return None
        signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        if signed.timestamp() + int(query["X-Amz-Expires"][0]) < time.time():
            self.expired_rejections += 1
            return 403, (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
                         b"<Message>Request has expired</Message></Error>")
        return None

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(moto: Moto) -> Iterator[FaultProxy]:
    with FaultProxy(moto.url) as p:
        yield p
