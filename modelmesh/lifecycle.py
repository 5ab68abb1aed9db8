"""Process lifecycle shared by every mode: event loop choice, signals, graceful shutdown.

An app is started, runs until SIGTERM/SIGINT (or until it finishes by itself), then gets
`stop()` within its shutdown budget. A second signal forces exit.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Protocol

from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.lifecycle")


class App(Protocol):
    """An app may also have `stop_requested` (an asyncio.Event): setting it stops the app as
    SIGTERM does (e.g. the mesh's preStop), without counting as a first signal."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def wait_done(self) -> None:
        """Return when the app ends on its own (e.g. a supervised child died)."""
        ...


class StartupError(RuntimeError):
    """A start-up failure whose message is already clear to a user (port taken, ...)."""


def use_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


async def serve(app: App, shutdown_timeout_s: float) -> int:
    loop = asyncio.get_running_loop()
    stop = getattr(app, "stop_requested", None)
    if stop is None:
        stop = asyncio.Event()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            log.warning("second signal, exiting now", signal=signal.Signals(signum).name)
            raise SystemExit(130)
        log.info("shutdown requested", signal=signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    # Start-up may wait a long time (e.g. for the model server); a signal must still stop it.
    starting = asyncio.ensure_future(app.start())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        stopper.cancel()
        ok = await _stop(app, shutdown_timeout_s)
        log.info("stopped during start-up", exit_code=0 if ok else 1)
        return 0 if ok else 1
    try:
        starting.result()
    except (StartupError, OSError) as e:
        stopper.cancel()
        log.error("start-up failed", error=str(e))
        await _stop(app, shutdown_timeout_s)
        return 1
    log.info("started")
    done_on_own = asyncio.ensure_future(app.wait_done())
    finished, _ = await asyncio.wait({stopper, done_on_own}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if done_on_own in finished and not stop.is_set():
        exc = done_on_own.exception()
        log.error("app ended on its own", error=str(exc) if exc else None)
        code = 1
    stopper.cancel()
    done_on_own.cancel()
    if not await _stop(app, shutdown_timeout_s):
        code = code or 1
    log.info("stopped", exit_code=code)
    return code


async def _stop(app: App, timeout_s: float) -> bool:
    try:
        await asyncio.wait_for(app.stop(), timeout_s)
        return True
    except asyncio.TimeoutError:
        log.error("graceful shutdown timed out", timeout_s=timeout_s)
        return False
    except Exception as e:  # noqa: BLE001 - report, and exit non-zero, rather than a traceback
        log.error("shutdown failed", error=repr(e))
        return False


def run(make_app: Callable[[], App], shutdown_timeout_s: float) -> int:
    """Run an app to completion on uvloop when installed; returns the exit code."""

    async def main() -> int:
        return await serve(make_app(), shutdown_timeout_s)

    if use_uvloop():
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())
