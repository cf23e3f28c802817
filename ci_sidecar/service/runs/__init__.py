"""Test runs: the provider-neutral heart of the daemon.

Every change is journaled and committed before the client hears about it, then handed to the outbox
for each of the run's targets. The run's local output (``run.json``, ``results.json``, reports) is
always written; the CI provider and the code host get what their tier allows.
"""

from .core import RunState, StateHook, now_iso
from .service import RunService

__all__ = ["RunService", "RunState", "StateHook", "now_iso"]
