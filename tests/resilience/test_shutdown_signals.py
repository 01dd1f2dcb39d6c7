"""Signals during the drain (review of bwc/serve.py and the devstack): a second signal skips
the drain but never the lifespan's shutdown; `make run` (Stack.stop) lets every service drain."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import httpx
import uvicorn
from fastapi import FastAPI

from bwc.devstack.processes import free_port
from bwc.devstack.stack import Stack
from bwc.serve import GracefulServer
from bwc.shutdown import Shutdown
from tests.fixtures.services import extra_service


async def test_a_second_sigint_skips_the_drain_but_not_the_lifespan_shutdown(
    http: httpx.AsyncClient,
) -> None:
    """Ctrl-C twice: the second ends the drain at once. The drain's own timer then handed
    uvicorn a third SIGINT, which uvicorn reads as "force exit": it stopped waiting for open
    requests and skipped the lifespan's shutdown (no consumer commit, no supervisor stop, pools
    left open)."""
    shutdown_ran = asyncio.Event()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        shutdown_ran.set()

    app = FastAPI(lifespan=lifespan)
    app.state.shutting_down = Shutdown()

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(2.0)  # still open when the drain's timer fires
        return {"status": "done"}

    port = free_port()
    server = GracefulServer(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on",
                       timeout_graceful_shutdown=10), app, drain=1.0)
    serving = asyncio.create_task(server._serve())  # no signal capture: we call handle_exit
    while not server.started:
        await asyncio.sleep(0.02)
    request = asyncio.create_task(http.get(f"http://127.0.0.1:{port}/slow"))
    await asyncio.sleep(0.2)
    server.handle_exit(signal.SIGINT, None)
    await asyncio.sleep(0.2)
    server.handle_exit(signal.SIGINT, None)  # the impatient second Ctrl-C
    response = await request
    assert response.status_code == 200  # the open request was allowed to finish
    await asyncio.wait_for(serving, timeout=15)
    assert not server.force_exit
    assert shutdown_ran.is_set(), "the lifespan's shutdown was skipped"


async def test_stack_stop_lets_each_service_drain(stack: Stack, http: httpx.AsyncClient) -> None:
    """Stack.stop (Ctrl-C in `make run`) sends every service SIGTERM, then stops them one by
    one. Child.stop sent a second SIGTERM, which skips the drain: the listener closed at once
    instead of answering 503 on /readyz for BWC_SHUTDOWN_DRAIN seconds."""
    async with extra_service(stack, "catalog", env={"BWC_SHUTDOWN_DRAIN": "3"}) as catalog:
        catalog.child.terminate()  # what Stack.stop does first, for every service
        stopping = asyncio.create_task(asyncio.to_thread(catalog.child.stop))  # and then
        await asyncio.sleep(1.0)
        try:
            ready = await http.get(f"{catalog.url}/readyz")
        except httpx.ConnectError:
            raise AssertionError("the service stopped listening without draining") from None
        assert ready.status_code == 503, ready.text
        assert "shutting down" in ready.json()["reasons"]
        await stopping
