"""Supervised background work: every relay, consumer, janitor and sweeper runs under this.

A task is a coroutine function that runs until it is cancelled. When it raises (or returns),
the supervisor logs why, counts it, waits with jittered exponential back-off and starts it
again, like a Kubernetes controller's work queue. Nothing a task does can end it for good.

Two kinds of failure are told apart, because they call for different answers:

- a **dependency** (broker, database, S3) cannot be reached: expected in operation. The task
  is ``waiting``; the dependency's own readiness check decides whether the service is ready
  (an outbox, for instance, keeps ingest useful while the broker is away);
- **anything else** is a defect or a state nobody foresaw. The task is ``crashed`` until it
  has run ``healthy_after`` seconds again, and ``/readyz`` answers 503 meanwhile.

Either way the state is visible in ``/readyz`` and as the metrics ``bwc_task_up`` and
``bwc_task_restarts_total``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg
import urllib3.exceptions
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from minio.error import ServerError
from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

TaskFn = Callable[[], Coroutine[Any, Any, None]]

TASK_UP = Gauge("bwc_task_up", "1 while a supervised background task runs", ["task"])
TASK_RESTARTS = Counter("bwc_task_restarts_total",
                        "Restarts of a supervised background task", ["task", "cause"])


class TaskState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    WAITING = "waiting"  # a dependency is unreachable; restarting with back-off
    CRASHED = "crashed"  # failed for another reason; restarting with back-off
    STOPPED = "stopped"


class DependencyUnavailable(Exception):
    """Raised by a task when something it needs (broker, database, S3) cannot be reached."""


def is_dependency_error(exc: BaseException) -> bool:
    """Errors that mean "a dependency is away", not "this code or its configuration is wrong".

    Narrow on purpose: a missing CA file (``FileNotFoundError``), a certificate problem
    (``ssl.SSLError``) or a misuse of the driver (``asyncpg.InterfaceError``) are defects or
    configuration, so they count as crashes and make the service unready, and a consumer parks
    the message instead of blocking its partition.
    """
    if isinstance(exc, DependencyUnavailable | KafkaConnectionError | KafkaTimeoutError):
        return True
    if isinstance(exc, KafkaError):
        return bool(exc.retriable)
    if isinstance(exc, OSError) and exc.errno in _UNREACHABLE:
        return True
    return isinstance(exc, (
        ConnectionError, TimeoutError, socket.gaierror,
        asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
        asyncpg.TooManyConnectionsError,
        urllib3.exceptions.MaxRetryError, urllib3.exceptions.ProtocolError,
        urllib3.exceptions.TimeoutError, urllib3.exceptions.NewConnectionError, ServerError,
    ))


#: Network errors that Python does not raise as ``ConnectionError``.
_UNREACHABLE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN,
                          errno.EHOSTDOWN, errno.ETIMEDOUT})


@dataclass
class TaskStatus:
    name: str
    state: TaskState = TaskState.STARTING
    restarts: int = 0
    last_error: str | None = None
    changed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # While set, the task counts as crashed: it failed and has not yet proven itself again.
    crashed_until: float | None = None

    def snapshot(self) -> dict[str, Any]:
        return {"state": self.effective_state().value, "restarts": self.restarts,
                "last_error": self.last_error, "since": self.changed_at.isoformat()}

    def effective_state(self) -> TaskState:
        if (self.state == TaskState.RUNNING and self.crashed_until is not None
                and time.monotonic() < self.crashed_until):
            return TaskState.CRASHED
        return self.state

    def _set(self, state: TaskState) -> None:
        self.state = state
        self.changed_at = datetime.now(UTC)
        TASK_UP.labels(self.name).set(1 if state == TaskState.RUNNING else 0)


class Supervisor:
    """Starts tasks, restarts them when they fail, and reports their state."""

    def __init__(
        self, *, initial_backoff: float = 0.5, max_backoff: float = 30.0,
        healthy_after: float = 30.0,
    ) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.healthy_after = healthy_after
        self.statuses: dict[str, TaskStatus] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, fn: TaskFn) -> None:
        if name in self.statuses:
            raise ValueError(f"a task named {name!r} is already supervised")
        status = TaskStatus(name)
        self.statuses[name] = status
        TASK_UP.labels(name).set(0)
        self._tasks.append(asyncio.create_task(self._keep_running(status, fn), name=name))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for status in self.statuses.values():
            status._set(TaskState.STOPPED)
        self._tasks.clear()

    def crashed(self) -> list[str]:
        return [s.name for s in self.statuses.values()
                if s.effective_state() == TaskState.CRASHED]

    def report(self) -> dict[str, dict[str, Any]]:
        return {name: status.snapshot() for name, status in self.statuses.items()}

    async def _keep_running(self, status: TaskStatus, fn: TaskFn) -> None:
        backoff = self.initial_backoff
        while True:
            started = time.monotonic()
            status._set(TaskState.RUNNING)
            try:
                await fn()
                error: BaseException = RuntimeError("the task returned; it must run until "
                                                    "cancelled")
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise  # the supervisor (or the loop) stops this task
                # A future someone else cancelled (a library closing a connection): a failure
                # like any other, not a reason to end the task for good while it shows running.
                error = exc
            except Exception as exc:
                error = exc
            if time.monotonic() - started > self.healthy_after:
                backoff = self.initial_backoff  # it had recovered; this is a new incident
            dependency = is_dependency_error(error)
            cause = "dependency" if dependency else "crash"
            status.restarts += 1
            status.last_error = f"{type(error).__name__}: {error}"[:500]
            TASK_RESTARTS.labels(status.name, cause).inc()
            delay = backoff * random.uniform(0.8, 1.2)
            if dependency:
                status._set(TaskState.WAITING)
                log.warning("background task waits for a dependency", extra={
                    "task": status.name, "error": status.last_error, "retry_in_s": delay})
            else:
                status._set(TaskState.CRASHED)
                status.crashed_until = time.monotonic() + delay + self.healthy_after
                log.error("background task crashed; restarting", exc_info=error, extra={
                    "task": status.name, "retry_in_s": delay})
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, self.max_backoff)
