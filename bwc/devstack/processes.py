"""Starting, watching and stopping the child processes the stack is made of."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def _die_with_parent() -> None:
    """Runs in the child before exec: on Linux, ask for SIGTERM when the parent dies, so a
    supervisor killed without clean-up (SIGKILL, a CI time-out) leaves no stack behind."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    terminated: bool = False

    def terminate(self) -> None:
        """Ask this child to stop (SIGTERM); ``stop`` waits for it."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self, timeout: float = 10) -> None:
        """Stop this child (and only it): SIGTERM (unless ``terminate`` sent it: a second
        one would make a service skip its drain), then SIGKILL."""
        if not self.alive():
            return
        if not self.terminated:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            # SIGKILL cannot be refused, but a process holding gigabytes (the embedded S3
            # endpoint after a whole test session) takes a while to be torn down on a busy
            # machine; 5 s was seen to be too short in CI.
            self.process.wait(60)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class ProcessGroup:
    """Children started by us, stopped in reverse order."""

    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(
        self, name: str, argv: list[str], *, env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log_file = log_path.open("ab")
        process = subprocess.Popen(
            argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, cwd=cwd,
            # Own process group: Ctrl-C reaches the supervisor, which stops children in order.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log_file.close()
        child = Child(name, process, log_path)
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, child: Child | None = None,
    interval: float = 0.2,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise RuntimeError(f"{what}: process exited early\n{child.log_tail()}")
        if check():
            return
        time.sleep(interval)
    tail = f"\n{child.log_tail()}" if child else ""
    raise TimeoutError(f"{what}: not ready after {timeout:.0f}s{tail}")
