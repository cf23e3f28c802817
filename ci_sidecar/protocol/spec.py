"""How one protocol method is described: :class:`MethodSpec`, and the parameter types methods share.

The method table itself is :data:`ci_sidecar.protocol.methods.METHODS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec

__all__ = ["MethodSpec", "WaitS"]

#: how long a write with ``wait: true`` waits for its delivery
WaitS = Annotated[float, msgspec.Meta(gt=0, le=3600)]


@dataclass(frozen=True)
class MethodSpec:
    """One protocol method."""

    name: str
    params: type
    result: Any  # a type, or None for notifications
    summary: str
    notification: bool = False
    debug_only: bool = False
    #: True when the params carry ``test_run_id`` and requests must apply in arrival order per run
    run_scoped: bool = False
    errors: tuple[int, ...] = field(default=())
