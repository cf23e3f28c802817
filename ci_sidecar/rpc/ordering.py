"""Arrival-order gates: requests naming the same key (a test run id) run one at a time, in the order
the reader saw them, while requests for different keys run concurrently.

trio schedules runnable tasks in no guaranteed order, so the reader takes a ticket synchronously when a
message arrives and the handler task waits for its ticket's turn.
"""

from __future__ import annotations

from collections import deque

import trio

__all__ = ["KeyedGate", "Ticket"]


class Ticket:
    """A place in one key's queue; ``async with ticket:`` waits for the turn and releases it after."""

    __slots__ = ("_gate", "_key", "_turn")

    def __init__(self, gate: KeyedGate, key: str) -> None:
        self._gate = gate
        self._key = key
        self._turn = trio.Event()

    async def __aenter__(self) -> None:
        try:
            await self._turn.wait()
        except BaseException:
            self._gate._release(self)
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._gate._release(self)

    def release(self) -> None:
        """Give the turn up without using it (the request was refused before it ran)."""
        self._gate._release(self)


class KeyedGate:
    """FIFO queues of tickets, one per key; keys with no waiting ticket take no memory."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Ticket]] = {}

    def ticket(self, key: str) -> Ticket:
        """Take the next place for ``key`` (synchronous, so it records arrival order)."""
        t = Ticket(self, key)
        q = self._queues.get(key)
        if q is None:
            self._queues[key] = deque((t,))
            t._turn.set()
        else:
            q.append(t)
        return t

    def _release(self, t: Ticket) -> None:
        q = self._queues.get(t._key)
        if q is None:
            return
        if q and q[0] is t:
            q.popleft()
            if q:
                q[0]._turn.set()
            else:
                del self._queues[t._key]
        else:
            try:
                q.remove(t)
            except ValueError:
                pass

    def __len__(self) -> int:
        return len(self._queues)
