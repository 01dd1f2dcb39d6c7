"""Run one service with a graceful shutdown: ``python -m bwc.serve ingest --port 8001``.

uvicorn alone stops accepting connections the moment SIGTERM arrives and then cuts off what is
still running after its timeout. A tus PATCH can run for minutes, so shutdown goes in steps:

1. SIGTERM: the app is marked as shutting down. ``/readyz`` answers 503, so load balancers
   send new work elsewhere, and every PATCH in flight stops reading at once, stores
   what arrived and answers 503 with ``Retry-After`` (the device resumes on another instance).
2. After ``BWC_SHUTDOWN_DRAIN`` seconds uvicorn stops accepting connections and waits up to
   ``BWC_SHUTDOWN_GRACE`` seconds for the requests still open.
3. The lifespan ends: supervised tasks stop (a consumer commits what it applied), pools close.

A second signal skips the drain. Keep drain + grace below the orchestrator's grace period
(Kubernetes: ``terminationGracePeriodSeconds``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
from types import FrameType

import uvicorn
from fastapi import FastAPI

from bwc.settings import CommonSettings

SERVICES = ("ingest", "catalog", "review", "retention")


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, *, drain: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain = drain
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler runs between two bytecodes of the loop's thread: hand over to the
        # loop rather than touch asyncio objects (the shutdown wakes waiting reads) from here.
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(self._begin_shutdown)
        if self._draining or self.drain <= 0:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        loop.call_soon_threadsafe(loop.call_later, self.drain, self._end_drain, sig)

    def _begin_shutdown(self) -> None:
        self.app.state.shutting_down.set()

    def _end_drain(self, sig: int) -> None:
        # A second signal may have ended the drain already. Passing this one on as well would
        # be a third to uvicorn, which takes a repeated SIGINT as "force exit": no more waiting
        # for open requests, and no lifespan shutdown (consumers would not commit).
        if not self.should_exit:
            super().handle_exit(sig, None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bwc.serve", description=__doc__)
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    module = importlib.import_module(f"services.{args.service}.app")
    app: FastAPI = module.create_app()
    settings: CommonSettings = app.state.settings
    config = uvicorn.Config(
        app, host=args.host, port=args.port, access_log=False, log_config=None,
        timeout_graceful_shutdown=int(settings.shutdown_grace), lifespan="on")
    GracefulServer(config, app, drain=settings.shutdown_drain).run()


if __name__ == "__main__":
    main()
