"""Webhook secrets against receivers that echo them: a token a receiver repeats in its error answer (the URL's
path, its last segment, its percent-encoded form) appears in no answer, log line, state or output file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from fakes._server import FakeServer, Recorded, Reply
from helpers import DaemonProcess

TOKEN = "Zq8SECRETtok3nLastSeg"


class EchoingReceiver(FakeServer):
    """``/refuse/...`` answers 400 quoting the token it was called with, ``/broken/...`` 500 quoting the whole path
    (once: then it takes the message)."""

    def respond(self, rec: Recorded) -> Reply:
        if rec.path.startswith("/refuse/"):
            return Reply(400, f"invalid_token: {rec.path.rsplit('/', 1)[-1]}".encode(), content_type="text/plain")
        if sum(r.path.startswith("/broken/") for r in self.requests) == 1:
            return Reply(500, f"no route for POST {rec.path}".encode(), content_type="text/plain")
        return Reply(204)


def test_a_receiver_echoing_the_token_leaks_it_nowhere(short_tmp: Path, env: dict[str, str]) -> None:
    """A Slack URL refused with its token quoted, an encoded token refused the same way, a webhook whose receiver
    quotes its path on 500s, and URLs no attempt can reach (port 99999, no host, refused at once): the answers, the
    run, the log, the state and the output say why without the token."""
    with EchoingReceiver() as hook:
        config = short_tmp / "cis.toml"
        config.write_text("".join(f"""
[notifications.channels.{name}]
kind = "{kind}"
url-env = "URL_{name.upper()}"
""" for name, kind in (("chat", "slack"), ("encoded", "slack"), ("hook", "webhook"), ("badport", "slack"),
                           ("nohost", "webhook"))) + """
[[notifications.rules]]
when = "always"
""")
        urls = {"URL_CHAT": f"{hook.url}/refuse/T0/B0/{TOKEN}", "URL_ENCODED": f"{hook.url}/refuse/%5A{TOKEN[1:]}",
                "URL_HOOK": f"{hook.url}/broken/{TOKEN}", "URL_BADPORT": f"http://127.0.0.1:99999/{TOKEN}",
                "URL_NOHOST": f"http:///{TOKEN}"}
        d = DaemonProcess.start(short_tmp / "d.sock", {**env, **urls}, extra=["--config", str(config)])
        try:
            c = d.client()
            run = c.request("create_test_run", {"name": "unit", "branch": "main"})
            answers: list[Any] = [c.request("complete_test_run", {"test_run_id": run["id"]})]
            sent = c.request("send_notifications", {"test_run_id": run["id"], "wait": True, "wait_s": 20})
            answers += [sent, c.request("get_test_run_status", {"test_run_id": run["id"]})]
            assert {n: sent[n]["state"] for n in sent} == {"chat": "failed", "encoded": "failed", "hook": "delivered",
                                                           "badport": "failed", "nohost": "failed"}
            assert "webhook URL has a port outside 1..65535" in sent["badport"]["error"]["message"]
            assert "webhook URL has no host" in sent["nohost"]["error"]["message"]  # refused at once, not retried
            assert "invalid_token: ***" in sent["chat"]["error"]["message"]
            assert "invalid_token: ***" in sent["encoded"]["error"]["message"]
            assert "no route for POST ***" in d.log()
        finally:
            d.stop()
    leaks = [TOKEN, TOKEN[1:], f"/refuse/T0/B0/{TOKEN}"]
    assert not [s for s in leaks if s in json.dumps(answers)]
    assert not [s for s in leaks if s in d.log()]
    written = subprocess.run(["grep", "-rlaF", TOKEN[1:], str(short_tmp), env["CI_SIDECAR_STATE_DIR"],
                              env["CI_SIDECAR_OUTPUT_DIR"]], capture_output=True, text=True).stdout.split()
    assert [f for f in written if not f.endswith("cis.toml")] == []
