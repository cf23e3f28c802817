"""A Bitbucket Data Center job with an object store: Data Center has no Downloads API, so the job's artifacts go
to the ``[artifact_store]`` (and the local output folder) while its report goes to Code Insights."""

from __future__ import annotations

import base64
from pathlib import Path

from fakes.bitbucket_dc import SHA, FakeBitbucketDC
from fakes.scenario import connect
from helpers import DaemonProcess
from s3_fixtures import DUMMY_KEY, Moto, moto  # noqa: F401

TOKEN = "dc-http-token"


def test_data_center_artifacts_go_to_the_object_store(short_tmp: Path, env: dict[str, str], moto: Moto,  # noqa: F811
                                                      tmp_path: Path) -> None:
    """The artifact tier is the object store and an upload lands there with its URL; nothing is sent to
    Bitbucket for it, and the run's report still reaches Code Insights."""
    bucket = moto.bucket()
    daemon_env = dict(env, CI_SIDECAR_ARTIFACT_STORE_BUCKET=bucket, CI_SIDECAR_ARTIFACT_STORE_ENDPOINT_URL=moto.url,
                      CI_SIDECAR_ARTIFACT_STORE_PREFIX="ci", AWS_ACCESS_KEY_ID=DUMMY_KEY[0],
                      AWS_SECRET_ACCESS_KEY=DUMMY_KEY[1], NO_PROXY="127.0.0.1,localhost")
    job = {"CI": "true", "BITBUCKET_COMMIT": SHA, "BITBUCKET_PROJECT_KEY": "PROJ", "BITBUCKET_REPO_SLUG": "widgets",
           "CI_SIDECAR_BITBUCKET_BASE_URL": "", "BITBUCKET_TOKEN": TOKEN,
           "CI_SIDECAR_OUTPUT_DIR": str(tmp_path / "out")}
    with FakeBitbucketDC() as dc:
        job["CI_SIDECAR_BITBUCKET_BASE_URL"] = dc.rest_url
        d = DaemonProcess.start(short_tmp / "dc.sock", daemon_env)
        try:
            c = connect(d, job)
            ci = c.initialize_result["capabilities"]["roles"]["ci"]
            assert ci["test_run"]["via"] == "code insights report" and ci["artifacts"]["via"] == "object store"
            run = c.request("create_test_run", {"name": "dc"})["id"]
            art = c.request("upload_artifact", {"test_run_id": run, "name": "logs/out.txt", "wait": True,
                                                "wait_s": 30, "content_base64": base64.b64encode(b"hello").decode()})
            assert art["upload"]["state"] == "uploaded" and art["upload"]["provider"] == "s3"
            assert art["url"].startswith(f"{moto.url}/{bucket}/ci/{run}/logs/out.txt")
            c.request("complete_test_run", {"test_run_id": run, "wait": True})
        finally:
            d.stop()
        assert dc.calls(path="logs|out.txt") == [] and dc.report(SHA, "ci-sidecar-dc") is not None
        assert dc.violations == []
