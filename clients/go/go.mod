module github.com/ci-sidecar/ci-sidecar/clients/go

go 1.19
