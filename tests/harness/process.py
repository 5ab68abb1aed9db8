"""Supervised child processes for tests: free ports, readiness with a deadline, stop by PID."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from modelmesh.apps.local.ports import free_port as pick_free_port
from modelmesh.apps.local.ports import port_open  # noqa: F401 - re-exported: harness modules import it from here


_handed_out: set[int] = set()  # never the same port twice in one test session


def free_port() -> int:
    """A TCP port that is free right now, outside the kernel's ephemeral range (see
    `port_pool`), and not handed out before in this session."""
    port = pick_free_port(avoid=_handed_out)
    _handed_out.add(port)
    return port


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `check` until it is true; raise TimeoutError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as e:  # noqa: BLE001 - the check is allowed to fail until ready
            last_exc = e
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s" + (f" (last error: {last_exc})" if last_exc else ""))


async def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Await until `condition()` (sync or async) is truthy and return it; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        assert loop.time() < deadline, f"{what} not within {timeout}s"
        await asyncio.sleep(interval)


class ManagedProcess:
    """A child process in its own process group, logging to a file.

    `stop()` sends SIGTERM to the group, then SIGKILL after `grace` seconds, so children
    the process spawned (MLServer workers, Triton backend stubs) never outlive a test.
    """

    def __init__(self, name: str, cmd: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.cmd = [str(c) for c in cmd]
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, ready: Callable[[], bool], timeout: float) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
            start_new_session=True, stdin=subprocess.DEVNULL,
        )
        log.close()

        def ready_or_dead() -> bool:
            if self.proc.poll() is not None:
                raise ProcessExited(f"{self.name} exited with {self.proc.returncode}")
            return ready()

        try:
            wait_until(ready_or_dead, timeout, self.name)
        except ProcessExited as e:
            raise RuntimeError(f"{e}; log tail:\n{self.log_tail()}") from None
        except TimeoutError as e:
            self.stop()
            raise RuntimeError(f"{e}; log tail:\n{self.log_tail()}") from None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the group (the leader or its children) is killed.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(grace=0, sig=signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class ProcessExited(RuntimeError):
    pass
