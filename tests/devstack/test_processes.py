"""The stack's children never outlive their supervisor, even one killed without clean-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SUPERVISOR = """
import sys, time
from pathlib import Path
from bwc.devstack.processes import ProcessGroup
child = ProcessGroup(Path(sys.argv[1])).start("sleeper", ["sleep", "60"])
print(child.process.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited already; only its parent's reaping is missing.
    status = Path(f"/proc/{pid}/status").read_text()
    return "State:\tZ" not in status


def test_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(tmp_path)],
                                  stdout=subprocess.PIPE, text=True)
    assert supervisor.stdout is not None
    child_pid = int(supervisor.stdout.readline())
    assert _alive(child_pid)
    supervisor.send_signal(signal.SIGKILL)  # no finally blocks, no atexit
    supervisor.wait()
    deadline = time.monotonic() + 5
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child_pid)
