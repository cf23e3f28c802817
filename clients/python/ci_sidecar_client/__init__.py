"""Standard-library client for the ci-sidecar daemon (Python >= 3.9, no dependencies).

    from ci_sidecar_client import Client

    with Client.connect() as c:            # $CI_SIDECAR_SOCKET, or spawn with Client.spawn()
        run = c.request("create_test_run", {"name": "unit"})
        c.request("report_results", {"test_run_id": run["id"], "results": [...]})
        c.request("complete_test_run", {"test_run_id": run["id"]})
"""

from ._client import Client, ConnectionLost, DaemonNotFound, RpcError, default_socket_path

__all__ = ["Client", "RpcError", "ConnectionLost", "DaemonNotFound", "default_socket_path"]
__version__ = "0.1.0"
