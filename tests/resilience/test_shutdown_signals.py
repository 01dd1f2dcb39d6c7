"""Signals during the drain (review of bwc/serve.py): a second signal skips the drain but never
the lifespan's shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import httpx
import uvicorn
from fastapi import FastAPI

from bwc.devstack.processes import free_port
from bwc.serve import GracefulServer


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
    app.state.shutting_down = asyncio.Event()

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
