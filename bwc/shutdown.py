"""The process-wide "shutting down" signal (set by ``bwc.serve`` on SIGTERM).

Readiness asks ``is_set()``. Work that waits on a client for long (a tus PATCH body) registers
a callback with ``listening`` for as long as it waits, so that it is woken the moment the
signal comes, without racing an extra future against every read of its hot loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


class Shutdown:
    def __init__(self) -> None:
        self._set = False
        self._listeners: set[Callable[[], None]] = set()

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        """Begin the shutdown (in the event loop's thread); wakes every listener once."""
        if self._set:
            return
        self._set = True
        for listener in list(self._listeners):
            listener()

    @contextlib.contextmanager
    def listening(self, callback: Callable[[], None]) -> Iterator[None]:
        """Call ``callback`` if the shutdown begins while this block runs."""
        self._listeners.add(callback)
        try:
            yield
        finally:
            self._listeners.discard(callback)
