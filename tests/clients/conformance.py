"""The conformance vectors (clients/conformance/vectors.json): loading, the shape language, and a replayer
for the Python client. The Node and Go replayers implement the same rules (clients/conformance/README.md)."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

from ci_sidecar_client import Client, RpcError

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "clients" / "conformance" / "vectors.json"

__all__ = ["load_scenarios", "match", "resolve", "Mismatch", "replay_python"]


class Mismatch(AssertionError):
    """A value did not match its expected shape; the message names the JSON path."""


def load_scenarios() -> list[dict[str, Any]]:
    """Every scenario in the vectors file."""
    return json.loads(VECTORS.read_text())["scenarios"]


_TYPES = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}


def resolve(value: Any, saved: dict[str, Any]) -> Any:
    """Replace every ``{"$ref": "name.path"}`` with the saved value it names."""
    if isinstance(value, dict):
        if set(value) == {"$ref"}:
            name, *path = value["$ref"].split(".")
            out = saved[name]
            for key in path:
                out = out[key]
            return out
        return {k: resolve(v, saved) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, saved) for v in value]
    return value


def _ok(shape: Any, actual: Any) -> bool:
    try:
        match(shape, actual)
        return True
    except Mismatch:
        return False


def match(shape: Any, actual: Any, path: str = "$") -> None:
    """Raise :class:`Mismatch` unless ``actual`` matches ``shape`` (refs already resolved)."""
    if isinstance(shape, dict) and len(shape) == 1 and next(iter(shape)).startswith("$"):
        op, arg = next(iter(shape.items()))
        if op == "$type":
            kinds = arg if isinstance(arg, list) else [arg]
            if not any(_TYPES[k](actual) for k in kinds):
                raise Mismatch(f"{path}: expected type {arg}, got {actual!r}")
        elif op == "$absent":
            if actual is not None:
                raise Mismatch(f"{path}: expected absent, got {actual!r}")
        elif op == "$regex":
            if not isinstance(actual, str) or not re.search(arg, actual):
                raise Mismatch(f"{path}: {actual!r} does not match /{arg}/")
        elif op == "$gte":
            if not _TYPES["number"](actual) or actual < arg:
                raise Mismatch(f"{path}: expected >= {arg}, got {actual!r}")
        elif op == "$oneOf":
            if not any(_ok(s, actual) for s in arg):
                raise Mismatch(f"{path}: {actual!r} matches none of {arg!r}")
        elif op == "$contains":
            if not isinstance(actual, list):
                raise Mismatch(f"{path}: expected an array, got {actual!r}")
            for s in arg:
                if not any(_ok(s, a) for a in actual):
                    raise Mismatch(f"{path}: no element matches {s!r}")
        elif op == "$subsequence":
            if not isinstance(actual, list):
                raise Mismatch(f"{path}: expected an array, got {actual!r}")
            i = 0
            for s in arg:
                while i < len(actual) and not _ok(s, actual[i]):
                    i += 1
                if i == len(actual):
                    raise Mismatch(f"{path}: {s!r} not found in order in {actual!r}")
                i += 1
        elif op == "$unordered":
            if not isinstance(actual, list) or len(actual) != len(arg):
                raise Mismatch(f"{path}: expected {len(arg)} elements in any order, got {actual!r}")
            left = list(actual)
            for s in arg:
                hit = next((a for a in left if _ok(s, a)), _MISSING)
                if hit is _MISSING:
                    raise Mismatch(f"{path}: no remaining element matches {s!r}")
                left.remove(hit)
        else:
            raise Mismatch(f"{path}: unknown shape operator {op}")
        return
    if isinstance(shape, dict):
        if not isinstance(actual, dict):
            raise Mismatch(f"{path}: expected an object, got {actual!r}")
        for key, sub in shape.items():
            if isinstance(sub, dict) and set(sub) == {"$absent"}:
                if actual.get(key) is not None:
                    raise Mismatch(f"{path}.{key}: expected absent, got {actual[key]!r}")
                continue
            if key not in actual:
                raise Mismatch(f"{path}: missing key {key!r} in {actual!r}")
            match(sub, actual[key], f"{path}.{key}")
        return
    if isinstance(shape, list):
        if not isinstance(actual, list) or len(actual) != len(shape):
            raise Mismatch(f"{path}: expected {len(shape)} elements, got {actual!r}")
        for i, (s, a) in enumerate(zip(shape, actual)):
            match(s, a, f"{path}[{i}]")
        return
    if isinstance(shape, (int, float)) and not isinstance(shape, bool):
        if not _TYPES["number"](actual) or actual != shape:
            raise Mismatch(f"{path}: expected {shape!r}, got {actual!r}")
        return
    if shape != actual or type(shape) is not type(actual):
        raise Mismatch(f"{path}: expected {shape!r}, got {actual!r}")


_MISSING = object()


def check_outcome(expect: dict[str, Any], outcome: tuple[str, Any], where: str) -> None:
    """``outcome`` is ("result", value) or ("error", {code, message, data})."""
    kind, value = outcome
    want = "result" if "result" in expect else "error"
    if kind != want:
        raise Mismatch(f"{where}: expected {want} {expect[want]!r}, got {kind} {value!r}")
    try:
        match(expect[want], value)
    except Mismatch as exc:
        raise Mismatch(f"{where}: {exc}") from None


# --- the Python replayer -------------------------------------------------------------------------------


def _call(client: Client, step: dict[str, Any], saved: dict[str, Any]) -> tuple[tuple[str, Any], list, float]:
    seen: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_note(method: str, params: Any) -> None:
        with lock:
            seen.append({"method": method, "params": params})

    client.on_notification(on_note)
    started = time.monotonic()
    try:
        params = resolve(step["params"], saved) if "params" in step else None
        fut = client.send_request(step["call"], params)
        if "cancel_after_ms" in step:
            time.sleep(step["cancel_after_ms"] / 1000)
            client.cancel(fut)
        try:
            outcome: tuple[str, Any] = ("result", fut.result(timeout=30))
        except RpcError as exc:
            outcome = ("error", {"code": exc.code, "message": exc.message, "data": exc.data})
    finally:
        client._listeners.remove(on_note)  # the public API has no unsubscribe yet
    return outcome, seen, (time.monotonic() - started) * 1000


def _run_call(client: Client, step: dict[str, Any], saved: dict[str, Any], where: str) -> None:
    outcome, notes, ms = _call(client, step, saved)
    check_outcome(resolve(step["expect"], saved), outcome, where)
    if "expect_notifications" in step:
        try:
            match(resolve(step["expect_notifications"], saved), notes)
        except Mismatch as exc:
            raise Mismatch(f"{where}: notifications: {exc}") from None
    if "max_ms" in step and ms > step["max_ms"]:
        raise Mismatch(f"{where}: took {ms:.0f} ms, bound {step['max_ms']} ms")
    if "save" in step:
        saved[step["save"]] = outcome[1]


def replay_python(scenario: dict[str, Any], socket_path: str, raw_factory: Any) -> None:
    """Run one scenario with ``ci_sidecar_client``. ``raw_factory(initialize: bool)`` opens a bare framed
    connection for the steps the client has no API for (batches, raw JSON)."""
    init = scenario.get("initialize", True)
    client = Client.connect(socket_path, initialize=init, client_name="conformance-python")
    saved: dict[str, Any] = {}
    raw = None
    try:
        for i, step in enumerate(scenario["steps"]):
            where = f"{scenario['name']} step {i}"
            if "check_initialize" in step:
                match(step["check_initialize"], client.initialize_result)
            elif "call" in step:
                _run_call(client, step, saved, where)
            elif "notify" in step:
                client.notify(step["notify"], step.get("params"))
            elif "parallel" in step:
                started = time.monotonic()
                errors: list[BaseException] = []

                def one(sub: dict[str, Any], j: int) -> None:
                    try:
                        _run_call(client, sub, saved, f"{where}.{j}")
                    except BaseException as exc:  # noqa: BLE001 - reported below
                        errors.append(exc)

                threads = [threading.Thread(target=one, args=(s, j)) for j, s in enumerate(step["parallel"])]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(30)
                if errors:
                    raise errors[0]
                ms = (time.monotonic() - started) * 1000
                if "max_ms" in step and ms > step["max_ms"]:
                    raise Mismatch(f"{where}: parallel calls took {ms:.0f} ms, bound {step['max_ms']} ms")
            elif "batch" in step:
                # ci_sidecar_client has no batch API: send it on a bare connection in the same state
                raw = raw or raw_factory(init)
                message = []
                ids = []
                for j, el in enumerate(step["batch"]):
                    m: dict[str, Any] = {"jsonrpc": "2.0", "method": el["method"]}
                    if "params" in el:
                        m["params"] = resolve(el["params"], saved)
                    if not el.get("notification"):
                        m["id"] = f"b{i}.{j}"
                        ids.append(m["id"])
                    message.append(m)
                raw.send(message)
                if not ids:
                    # nothing may come back: prove it with a follow-up request answered first
                    reply = raw.request("sidecar/status", None, rid="probe")
                    if reply.get("id") != "probe":
                        raise Mismatch(f"{where}: an all-notification batch was answered: {reply!r}")
                    continue
                reply = raw.receive()
                if not isinstance(reply, list):
                    raise Mismatch(f"{where}: batch answered with {reply!r}")
                by_id = {r.get("id"): r for r in reply}
                if len(reply) != len(ids) or set(by_id) != set(ids):
                    raise Mismatch(f"{where}: expected answers for {ids}, got {reply!r}")
                for rid, exp in zip(ids, step["expect"]):
                    r = by_id[rid]
                    outcome = ("error", r["error"]) if "error" in r else ("result", r.get("result"))
                    check_outcome(resolve(exp, saved), outcome, f"{where} [{rid}]")
            elif "raw" in step:
                raw = raw or raw_factory(init)
                raw.send(step["raw"])
                match(resolve(step["expect_raw"], saved), raw.receive(), f"{where} raw")
            else:
                raise AssertionError(f"{where}: unknown step {step!r}")
    finally:
        if raw is not None:
            raw.close()
        if client.initialize_result is None or any(s.get("call") == "shutdown" for s in scenario["steps"]):
            # Client.close() hangs when its shutdown is refused (-32002 / -32600): it then closes the
            # socket's reader while the reader thread blocks in it. Ending the session with exit avoids it.
            client.notify("exit")
            client._reader.join(5)
        client.close(timeout=5)
