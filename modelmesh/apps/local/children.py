"""Child processes of `modelmesh local`: started in their own process group, tied to this
process's life (they get SIGKILL if it dies without stopping them), stopped by PID group.

A `Child` is one process with a readiness check. A `SupervisedGroup` keeps children that
depend on each other running together: when one exits, all are restarted, with backoff. A
model server and the adapter in front of it are one group (the adapter's view of the
server's loaded models would be wrong otherwise); a mesh is a group of its own.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import threading
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
        self._exited = _exit_future(self.proc, self.name)
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


def _exit_future(proc: subprocess.Popen, name: str) -> asyncio.Future:
    """A future of the child's exit code. Not a thread of the loop's default executor per
    child: a few instances would use up its handful of threads for good, and every other
    `to_thread` of the process would wait forever. A pidfd turns readable when the process
    exits (Linux >= 5.3); elsewhere a daemon thread of its own waits."""
    loop = asyncio.get_running_loop()
    exited: asyncio.Future = loop.create_future()

    def settle() -> None:
        if not exited.done():
            exited.set_result(proc.wait())  # reaps it (it has exited: no wait)

    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        def wait() -> None:
            proc.wait()
            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

        threading.Thread(target=wait, name=f"wait-{name}", daemon=True).start()
        return exited

    def readable() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        settle()

    loop.add_reader(pidfd, readable)
    return exited


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


Report = Callable[[str], None]


class SupervisedGroup:
    """Children started in order (each ready before the next) and restarted together when
    any of them exits; the mesh in front of a restarted runtime notices by itself. Each
    event goes to `report`."""

    MAX_BACKOFF_S = 30.0

    def __init__(self, name: str, children: Sequence[Child], report: Report, start_timeout_s: float) -> None:
        self.name = name
        self.children = list(children)
        self.report = report
        self.start_timeout_s = start_timeout_s
        self.restarts = 0
        self.state = "starting"  # starting | running | restarting | stopped
        self._task: asyncio.Task | None = None
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self.children if c.pid is not None] if self.state != "stopped" else []

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
            exits = {asyncio.ensure_future(c.wait()): c for c in self.children}
            done, pending = await asyncio.wait(exits, return_when=asyncio.FIRST_COMPLETED)
            for f in pending:
                f.cancel()
            if self._stopping:
                return
            which = exits[next(iter(done))]
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
        try:
            for child in self.children:
                await child.start(self.start_timeout_s)
        except ChildFailed:
            await self._stop_children()
            raise

    async def _stop_children(self, grace_s: float = 5.0) -> None:
        for child in self.children:
            await child.stop(grace_s)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Each child gets SIGTERM and `grace_s` to exit before SIGKILL."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._stop_children(grace_s)
        self.state = "stopped"
