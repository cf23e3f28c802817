"""The Python client's typed methods and TypedDicts against the daemon's ``rpc.discover``."""

from __future__ import annotations

import importlib.util
import typing
from pathlib import Path

from ci_sidecar_client import Client, types
from helpers import DaemonProcess

CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "python"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_methods", CLIENT_DIR / "scripts" / "gen_methods.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _discover(daemon: DaemonProcess) -> dict:
    with Client.connect(str(daemon.path)) as c:
        return c.request("rpc.discover")


def test_every_discovered_method_and_field_is_typed(shared_daemon: DaemonProcess) -> None:
    """Each method rpc.discover lists is a Client method taking its params, and each wire type a TypedDict
    with every field (a method or field added to the daemon without regenerating fails here)."""
    gen = _generator()
    doc = _discover(shared_daemon)
    missing = []
    for m in doc["methods"]:
        if m["name"] in gen.LIFECYCLE:
            continue
        fn = getattr(Client, gen.method_name(m["name"]), None)
        if fn is None:
            missing.append(f"method {m['name']}")
            continue
        args = set(typing.get_type_hints(fn)) - {"return"}
        missing += [f"{m['name']}({p['name']})" for p in m["params"] if p["name"] not in args]
    for name, schema in doc["components"]["schemas"].items():
        td = getattr(types, name, None)
        if td is None:
            missing.append(f"type {name}")
            continue
        missing += [f"{name}.{k}" for k in schema.get("properties", {}) if k not in td.__annotations__]
        assert td.__required_keys__ == frozenset(schema.get("required", [])), name
    assert not missing, f"the Python client lacks {missing}: run python3 scripts/gen_methods.py in clients/python"


def test_generated_module_is_what_rpc_discover_generates_today(shared_daemon: DaemonProcess) -> None:
    """ci_sidecar_client/_methods.py is exactly the generator's output for the daemon's rpc.discover."""
    gen = _generator()
    committed = (CLIENT_DIR / "ci_sidecar_client" / "_methods.py").read_text()
    assert committed == gen.render(_discover(shared_daemon)), "regenerate: python3 scripts/gen_methods.py"


def test_typed_methods_drive_a_run(shared_daemon: DaemonProcess) -> None:
    """A run created, fed, streamed back by cursor and completed with coverage through the typed methods;
    arguments left as None are not sent."""
    with Client.connect(str(shared_daemon.path)) as c:
        run = c.create_test_run(name="typed", branch="main")
        results = [{"name": f"t{i}", "status": "passed" if i else "failed"} for i in range(3)]
        assert c.report_results(test_run_id=run["id"], results=results)["accepted"] == 3
        first = c.read_test_results(test_run_id=run["id"], limit=2)
        rest = c.read_test_results(test_run_id=run["id"], cursor=first["cursor"])
        assert [r["name"] for r in first["results"] + rest["results"]] == ["t0", "t1", "t2"]
        done = c.complete_test_run(test_run_id=run["id"], coverage=81.5, wait=True, wait_s=30)
        assert done["status"] == "finished" and done["conclusion"] == "failure"
        assert done["coverage"] == 81.5 and done["counts"]["failed"] == 1
        assert c.get_test_run_status(test_run_id=run["id"])["delta"]["new_failures"] == ["t0"]
