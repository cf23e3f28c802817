"""clients/go: `go vet` and `go test ./...` (standard library only, no network)."""

from __future__ import annotations

from pathlib import Path

from _subsuite import REPO, require_tool, run_suite

GO_DIR = REPO / "clients" / "go"
GO_ENV = {"GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}


def test_go_suite(tmp_path: Path) -> None:
    go = require_tool("go", "apt-get install golang-go (Go >= 1.19)")
    run_suite([go, "vet", "./..."], GO_DIR, tmp_path, **GO_ENV)
    out = run_suite([go, "test", "-count=1", "./..."], GO_DIR, tmp_path, **GO_ENV)
    assert "ok  \tgithub.com/ci-sidecar/ci-sidecar/clients/go" in out, out
