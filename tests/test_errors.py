"""The error tree: one root, drawn in ``ci_sidecar.protocol.errors``; wire codes as docs/protocol.md lists them."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import ci_sidecar
from ci_sidecar.protocol import errors as E
from ci_sidecar.rpc.session import _as_protocol_error


def _error_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(ci_sidecar.__path__, "ci_sidecar."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found[f"{obj.__module__}.{name}"] = obj
    return found


def test_every_error_class_descends_from_sidecar_error() -> None:
    """Whatever ci-sidecar raises on purpose can be caught as one SidecarError."""
    assert [] == sorted(name for name, cls in _error_classes().items() if not issubclass(cls, E.SidecarError))


def test_the_drawn_tree_names_every_error_class() -> None:
    """The tree in the errors module's docstring lists every error class, so it stays the whole picture."""
    drawing = E.__doc__ or ""
    assert [] == sorted(name for name in _error_classes() if f" {name.rsplit('.', 1)[1]} " not in drawing)


@pytest.mark.parametrize(("cls", "args", "code"), [
    (E.ParseError, ("bad",), -32700),
    (E.InvalidRequest, ("bad",), -32600),
    (E.MethodNotFound, ("m",), -32601),
    (E.InvalidParams, ("$.x", "bad"), -32602),
    (E.InternalError, ("id",), -32603),
    (E.ServerNotInitialized, (), -32002),
    (E.RequestCancelled, (), -32800),
    (E.UnknownTestRun, ("r",), -31001),
    (E.UnknownArtifact, ("r", "a"), -31002),
    (E.ProviderRefused, ("github", 422, "no"), -31003),
    (E.ProviderUnreachable, ("github", 3, "reset"), -31004),
    (E.PathNotAllowed, ("/x", "outside"), -31005),
    (E.LimitExceeded, (10, 11), -31006),
    (E.NotSupported, ("local", "presign"), -31007),
    (E.RunFinalized, ("r",), -31008),
])
def test_wire_errors_keep_their_protocol_codes(cls: type[E.WireError], args: tuple, code: int) -> None:
    """Each wire error answers the code docs/protocol.md §Errors gives it."""
    assert code == cls(*args).to_object()["code"]


def test_an_awaited_delivery_failure_answers_the_delivery_errors_code() -> None:
    """A write awaited with wait: true answers its delivery error's code and data, not a generic one."""
    from ci_sidecar.protocol.records import ErrorInfo

    err = E.DeliveryFailed(ErrorInfo(code=-31003, message="github refused", data={"status": 422}))
    assert {"code": -31003, "message": "github refused", "data": {"status": 422}} == err.to_object()


def test_internal_errors_reach_a_client_only_as_an_incident() -> None:
    """An error off the wire branch (here a state failure naming a path) answers -32603 with an incident id."""
    answer = _as_protocol_error(E.StateError("cannot write /var/lib/ci-sidecar/private/journal"), "create_test_run")
    assert isinstance(answer, E.InternalError)
    assert "/var/lib" not in str(answer.to_object())
    assert {"incident"} == set(answer.to_object()["data"])
