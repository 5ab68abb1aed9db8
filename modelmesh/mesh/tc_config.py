"""tc-config: the type constraints and the data-plane config of a mesh instance.

Each is given inline (MM_TYPE_CONSTRAINTS, MM_DATAPLANE_CONFIG) or as a file
(MM_TYPE_CONSTRAINTS_PATH, MM_DATAPLANE_CONFIG_PATH): keys of the `tc-config` ConfigMap,
which the controller rewrites when runtimes change. A file is re-read when it changes (a
ConfigMap update swaps a symlink, so its inode changes), without a restart; a bad update is
logged and the previous config stays. Bad config at start-up is a settings error naming the
variable.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Generic, TypeVar

from modelmesh.config.mesh import MeshSettings
from modelmesh.config.settings import SettingsError
from modelmesh.mesh.constraints import TypeConstraints
from modelmesh.mesh.dataplane import DataPlaneConfig
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.mesh.tc_config")

POLL_INTERVAL_S = 1.0  # a stat per file per second: cheap, and well inside a ConfigMap's own sync delay

T = TypeVar("T")
_Signature = tuple[int, int, int, int] | None


def _signature(path: str) -> _Signature:
    try:
        st = os.stat(path)  # follows the ConfigMap's ..data symlink
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


class _Source(Generic[T]):
    """One setting: inline text or a watched file, and how to parse it."""

    def __init__(self, inline: str, inline_var: str, path: str, path_var: str,
                 load: Callable[[str, str], T]) -> None:
        self.inline, self.path, self._load = inline, path, load
        self.variable = inline_var if inline else path_var
        self.watched = bool(path) and not inline
        self._seen: _Signature = _signature(path) if self.watched else None

    def load(self) -> T:
        try:
            return self._load(self.inline, self.path)
        except (ValueError, OSError) as e:
            raise SettingsError(f"invalid {self.variable}: {e}") from None

    def changed(self) -> bool:
        if not self.watched:
            return False
        now = _signature(self.path)
        if now == self._seen:
            return False
        self._seen = now
        return True


class TcConfig:
    """The current type constraints (one object, updated in place, so every holder sees a
    change) and data-plane config (replaced; listeners are told)."""

    def __init__(self, settings: MeshSettings) -> None:
        s = settings
        self._constraints_source = _Source(s.type_constraints, "MM_TYPE_CONSTRAINTS", s.type_constraints_path,
                                           "MM_TYPE_CONSTRAINTS_PATH", TypeConstraints.load)
        self._dataplane_source = _Source(s.dataplane_config, "MM_DATAPLANE_CONFIG", s.dataplane_config_path,
                                         "MM_DATAPLANE_CONFIG_PATH", DataPlaneConfig.load)
        self.constraints: TypeConstraints = self._constraints_source.load()
        self.dataplane: DataPlaneConfig = self._dataplane_source.load()
        self._dataplane_listeners: list[Callable[[DataPlaneConfig], None]] = []
        self._constraints_listeners: list[Callable[[], None]] = []

    def on_dataplane_change(self, listener: Callable[[DataPlaneConfig], None]) -> None:
        self._dataplane_listeners.append(listener)

    def on_constraints_change(self, listener: Callable[[], None]) -> None:
        self._constraints_listeners.append(listener)

    def reload_changed(self) -> None:
        """Re-read whichever file changed since the last look."""
        if self._constraints_source.changed():
            fresh = self._reload(self._constraints_source)
            if fresh is not None:
                self.constraints.replace_with(fresh)
                log.info("type constraints reloaded", path=self._constraints_source.path,
                         types=len(fresh.types()))
                for listener in self._constraints_listeners:
                    listener()
        if self._dataplane_source.changed():
            fresh_dp = self._reload(self._dataplane_source)
            if fresh_dp is not None:
                self.dataplane = fresh_dp
                log.info("data-plane config reloaded", path=self._dataplane_source.path,
                         rpcs=sorted(fresh_dp.rpc_configs), allow_other_rpcs=fresh_dp.allow_other_rpcs)
                for listener in self._dataplane_listeners:
                    listener(fresh_dp)

    @staticmethod
    def _reload(source: _Source[T]) -> T | None:
        try:
            return source.load()
        except SettingsError as e:
            log.warning("config file changed but cannot be used; keeping the previous one", error=str(e))
            return None

    async def watch(self, interval_s: float = POLL_INTERVAL_S) -> None:
        if not (self._constraints_source.watched or self._dataplane_source.watched):
            return
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.reload_changed()
            except Exception as e:  # noqa: BLE001 - a listener's failure must not end the watch
                log.warning("config reload failed", error=str(e))
