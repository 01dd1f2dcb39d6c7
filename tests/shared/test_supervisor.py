"""Every background task runs supervised: restarted with back-off, its state in /readyz and in
metrics, a crash makes the service unready (issue 5, defect 1)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import uvicorn
from aiokafka.errors import KafkaConnectionError
from fastapi import FastAPI

from bwc.devstack.processes import free_port
from bwc.observability import ReadinessCheck, operations_router
from bwc.supervisor import Supervisor, TaskState, is_dependency_error


async def _ok() -> None:
    return None


@contextlib.asynccontextmanager
async def _serving(supervisor: Supervisor) -> AsyncIterator[str]:
    """The real operations router over a real socket."""
    app = FastAPI()
    app.include_router(operations_router({"database": ReadinessCheck(_ok)}, supervisor))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _wait_for(predicate: object, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_crashed_task_is_restarted_and_readyz_says_so_until_it_recovers(
    http: httpx.AsyncClient,
) -> None:
    runs = 0
    release = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            await release.wait()
            raise ValueError(f"defect on run {runs}")
        await asyncio.Event().wait()  # healthy from the third run on

    supervisor = Supervisor(initial_backoff=0.1, healthy_after=1.0)
    supervisor.start("flaky", flaky)
    async with _serving(supervisor) as url:
        ready = await http.get(f"{url}/readyz")
        assert ready.status_code == 200
        assert ready.json()["tasks"]["flaky"]["state"] == "running"

        release.set()
        await _wait_for(lambda: runs == 3)
        ready = await http.get(f"{url}/readyz")
        assert ready.status_code == 503, ready.text
        body = ready.json()
        assert body["tasks"]["flaky"]["state"] == "crashed"
        assert body["tasks"]["flaky"]["restarts"] == 2
        assert "defect on run 2" in body["tasks"]["flaky"]["last_error"]
        assert "task flaky crashed" in body["reasons"]
        metrics = (await http.get(f"{url}/metrics")).text
        assert 'bwc_task_restarts_total{cause="crash",task="flaky"} 2.0' in metrics

        # Once it has run healthily for healthy_after, the service is ready again.
        await _wait_for(lambda: not supervisor.crashed(), timeout=5)
        assert (await http.get(f"{url}/readyz")).status_code == 200
        assert 'bwc_task_up{task="flaky"} 1.0' in (await http.get(f"{url}/metrics")).text
    await supervisor.stop()
    assert supervisor.statuses["flaky"].state == TaskState.STOPPED


async def test_a_dependency_outage_is_waiting_not_crashed() -> None:
    attempts = 0

    async def needs_broker() -> None:
        nonlocal attempts
        attempts += 1
        raise ConnectionRefusedError("broker away")

    supervisor = Supervisor(initial_backoff=0.05, max_backoff=0.2)
    supervisor.start("relay", needs_broker)
    await _wait_for(lambda: attempts >= 4)
    status = supervisor.report()["relay"]
    assert status["state"] == "waiting"
    assert "broker away" in status["last_error"]
    assert supervisor.crashed() == []  # the broker's absence is reported, not a crash
    await supervisor.stop()


async def test_backoff_grows_so_a_failing_task_never_spins() -> None:
    starts: list[float] = []

    async def always_fails() -> None:
        starts.append(asyncio.get_running_loop().time())
        raise RuntimeError("boom")

    supervisor = Supervisor(initial_backoff=0.05, max_backoff=0.4)
    supervisor.start("spinner", always_fails)
    await _wait_for(lambda: len(starts) >= 5, timeout=10)
    await supervisor.stop()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[-1] > gaps[0] * 2, gaps  # exponential, not a tight loop


async def test_a_task_that_returns_is_restarted() -> None:
    runs = 0

    async def returns_early() -> None:
        nonlocal runs
        runs += 1
        if runs > 1:
            await asyncio.Event().wait()

    supervisor = Supervisor(initial_backoff=0.05)
    supervisor.start("short", returns_early)
    await _wait_for(lambda: runs == 2)
    assert "returned" in (supervisor.report()["short"]["last_error"] or "")
    await supervisor.stop()


@pytest.mark.parametrize(("error", "dependency"), [
    (ConnectionRefusedError("broker away"), True),
    (TimeoutError(), True),
    (asyncpg.CannotConnectNowError("the database system is starting up"), True),
    (asyncpg.ConnectionDoesNotExistError("connection was closed"), True),
    (KafkaConnectionError("no broker"), True),
    (FileNotFoundError(2, "No such file", "/etc/bwc/ca.pem"), False),  # configuration
    (ssl.SSLError(1, "certificate verify failed"), False),
    (asyncpg.InterfaceError("the server expects 2 arguments, 1 was passed"), False),  # a defect
    (ValueError("bug"), False),
])
def test_only_unreachable_dependencies_count_as_waiting(
    error: BaseException, dependency: bool
) -> None:
    """A defect or a configuration error must crash (unready, messages parked), not look like
    an outage that waits forever with /readyz 200."""
    assert is_dependency_error(error) is dependency


async def test_a_stray_cancelled_error_does_not_end_a_task_for_good() -> None:
    """A task that awaits a future someone else cancelled (a library closing a connection)
    gets CancelledError without being cancelled itself. The supervisor took that for its own
    stop: the task ended silently and /readyz kept reporting it `running`."""
    runs = 0

    async def victim() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.cancel()
            await future  # raises CancelledError into this task
        await asyncio.Event().wait()

    supervisor = Supervisor(initial_backoff=0.05)
    supervisor.start("victim", victim)
    try:
        for _ in range(100):
            if runs >= 2:
                break
            await asyncio.sleep(0.02)
        assert runs == 2, "the task was not restarted"
        assert supervisor.report()["victim"]["restarts"] == 1
    finally:
        await supervisor.stop()
