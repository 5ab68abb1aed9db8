"""Child processes of `modelmesh local`: started in their own process group, tied to this
process's life (they get SIGKILL if it dies without stopping them), stopped by PID group.

A `Child` is one process with a readiness check. A `SupervisedPair` keeps a model server
and the adapter in front of it running together: when either exits, both are restarted (the
adapter's view of the server's loaded models would be wrong otherwise), with backoff.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.local.children")

PR_SET_PDEATHSIG = 1
ReadyCheck = Callable[[], Awaitable[bool]]


class ChildFailed(RuntimeError):
    """A child exited or never got ready; the message is one line naming it and its log."""


def _load_prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux: children are still stopped with their group on a normal exit


_PRCTL = _load_prctl()  # resolved here, not between fork and exec (no loader locks there)


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGKILL it when this process dies, even by
    SIGKILL (a normal stop signals the whole group first)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


class Child:
    def __init__(self, name: str, cmd: Sequence[str | os.PathLike], env: dict[str, str], log_path: Path,
                 ready: ReadyCheck, cwd: Path | None = None) -> None:
        self.name = name
        self.cmd = [str(c) for c in cmd]
        self.env = env
        self.log_path = log_path
        self.ready = ready
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self._exited: asyncio.Future | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def start(self, timeout_s: float) -> None:
        """Spawn and wait until ready; ChildFailed if it exits or is not ready in time."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Popen, not the loop's subprocess API: uvloop does not run preexec_fn. Both are quick.
        with open(self.log_path, "ab") as out:  # noqa: ASYNC230
            try:
                self.proc = subprocess.Popen(  # noqa: ASYNC220
                    self.cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                    cwd=self.cwd, start_new_session=True, preexec_fn=_die_with_parent)  # noqa: PLW1509
            except OSError as e:
                raise ChildFailed(f"{self.name}: cannot run {self.cmd[0]}: {e.strerror or e}") from None
        self._exited = asyncio.ensure_future(asyncio.to_thread(self.proc.wait))
        deadline = time.monotonic() + timeout_s
        while True:
            if self._exited.done():
                raise ChildFailed(f"{self.name} exited with code {self.proc.returncode} while starting "
                                  f"(log: {self.log_path})")
            try:
                if await self.ready():
                    return
            except Exception:  # noqa: BLE001, S110 - not ready yet
                pass
            if time.monotonic() > deadline:
                await self.stop()
                raise ChildFailed(f"{self.name} not ready after {timeout_s:.0f}s (log: {self.log_path})")
            await asyncio.wait({self._exited}, timeout=0.2)

    async def wait(self) -> int:
        assert self._exited is not None
        return await asyncio.shield(self._exited)

    async def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM to the group, SIGKILL to whatever is left of it after `grace_s`."""
        if self.proc is None:
            return
        pid = self.proc.pid
        if self.proc.poll() is None:
            _signal_group(pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.wait(), grace_s)
            except TimeoutError:
                log.warning("child did not stop in time, killing", child=self.name, pid=pid)
        _signal_group(pid, signal.SIGKILL)  # its own children too (the group outlives its leader)
        if self._exited is not None:
            try:
                await asyncio.wait_for(self.wait(), 5)
            except TimeoutError:
                log.error("child did not die after SIGKILL", child=self.name, pid=pid)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


Report = Callable[[str], None]


class SupervisedPair:
    """A model server and its adapter (or puller), restarted together when either exits; the
    mesh in front of them notices the restart by itself. Each event goes to `report`."""

    MAX_BACKOFF_S = 30.0

    def __init__(self, name: str, server: Child, adapter: Child, report: Report, start_timeout_s: float) -> None:
        self.name = name
        self.server = server
        self.adapter = adapter
        self.report = report
        self.start_timeout_s = start_timeout_s
        self.restarts = 0
        self.state = "starting"  # starting | running | restarting | stopped
        self._task: asyncio.Task | None = None
        self._stopping = False

    async def start(self) -> None:
        """First start: a failure here is a start-up error of `modelmesh local`."""
        try:
            await self._start_children()
        except ChildFailed:
            self.state = "failed"
            raise
        self.state = "running"
        self._task = asyncio.create_task(self._supervise(), name=f"supervise-{self.name}")
        self._task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("supervisor failed", runtime=self.name, error=repr(task.exception()))

    async def _supervise(self) -> None:
        backoff = 1.0
        running_since = time.monotonic()
        while not self._stopping:
            server_exit = asyncio.ensure_future(self.server.wait())
            adapter_exit = asyncio.ensure_future(self.adapter.wait())
            done, pending = await asyncio.wait({server_exit, adapter_exit}, return_when=asyncio.FIRST_COMPLETED)
            for f in pending:
                f.cancel()
            if self._stopping:
                return
            which = self.server if server_exit in done else self.adapter
            code = which.proc.returncode if which.proc else None
            self.state = "restarting"
            self.report(f"{which.name} exited (code {code}); restarting {self.name}")
            log.warning("child exited, restarting", child=which.name, code=code, runtime=self.name)
            await self._stop_children()
            # A crash loop backs off; a child that ran a while is restarted at once.
            if time.monotonic() - running_since > 60:
                backoff = 1.0
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.MAX_BACKOFF_S)
            while not self._stopping:
                try:
                    await self._start_children()
                except ChildFailed as e:
                    self.report(f"restart of {self.name} failed: {e}; retrying in {backoff:.0f}s")
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.MAX_BACKOFF_S)
                    continue
                break
            if self._stopping:
                return
            running_since = time.monotonic()
            self.restarts += 1
            self.state = "running"
            self.report(f"{self.name} restarted (restart #{self.restarts})")

    async def _start_children(self) -> None:
        """The adapter first (it needs no running server), then the server: a server that
        answers while nothing is in front of it would have the mesh try (and fail, and
        remember the failure) a reload through the missing adapter."""
        try:
            await self.adapter.start(self.start_timeout_s)
            await self.server.start(self.start_timeout_s)
        except ChildFailed:
            await self._stop_children()
            raise

    async def _stop_children(self) -> None:
        await self.adapter.stop()
        await self.server.stop()

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._stop_children()
        self.state = "stopped"
