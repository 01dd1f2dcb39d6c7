"""``make run``: start the embedded stack and the four services; Ctrl-C stops all of it."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from bwc.devstack.services import SERVICES
from bwc.devstack.stack import Stack, StackConfig


def main() -> int:
    started = time.monotonic()
    config = StackConfig(
        var_dir=Path(os.environ.get("BWC_VAR_DIR", "var")),
        database=os.environ.get("BWC_RUN_DATABASE", "bwc"),
        database_server=os.environ.get("BWC_DATABASE_SERVER"),
        broker_port=int(os.environ.get("BWC_RUN_BROKER_PORT", "9092")),
        s3_port=int(os.environ.get("BWC_RUN_S3_PORT", "9000")),
        keep_database=os.environ.get("BWC_RUN_KEEP_DATABASE", "") in ("1", "true", "yes"),
    )
    stack = Stack(config)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Also when started with SIGINT ignored (a background job): Ctrl-C must stop the stack.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        print("starting the embedded stack ...", flush=True)
        stack.start_infra()
        for name, text in stack.summary.items():
            print(f"  {name:9} {text}", flush=True)
        print("starting services (migrations run at start-up) ...", flush=True)
        stack.start_services()
        elapsed = time.monotonic() - started
        print(f"\nready in {elapsed:.1f}s:")
        for name in SERVICES:
            print(f"  {name:10} {stack.url(name)}   (OpenAPI: {stack.url(name)}/docs)")
        print(f"\nlogs: {config.var_dir / 'log'}/")
        print("mint a token:  .venv/bin/bwc token --role admin --sub alice")
        print("upload a file: .venv/bin/bwc upload FILE --device cam-01 "
              "--trigger-reason '...' --announced")
        print("Ctrl-C stops everything.", flush=True)
        while True:
            for name, child in stack.services.items():
                if not child.alive():
                    print(f"service {name} exited:\n{child.log_tail()}", file=sys.stderr)
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
