"""ci-sidecar: a JSON-RPC 2.0 daemon (LSP framing, trio) that does CI work for test runners.

The wire contract is ``docs/protocol.md``; the method table in :mod:`ci_sidecar.protocol.methods`
is the single source of truth that validation, ``rpc.discover`` and the client typings derive from.
"""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
SUPPORTED_PROTOCOL_VERSIONS = (1,)
