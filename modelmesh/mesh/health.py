"""The connection to this instance's runtime: whether it is reachable, and what to do when it
comes back (it restarted, so after a fresh handshake every copy here is gone)."""

from __future__ import annotations

import grpc

from modelmesh.mesh.cache import LocalCache
from modelmesh.mesh.channels import RawChannel
from modelmesh.mesh.loader import ModelLoader
from modelmesh.mesh.runtime_client import RuntimeClient
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.mesh.health")

_DOWN = (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN)


class RuntimeHealth:
    def __init__(self, runtime: RuntimeClient, serving: RawChannel, cache: LocalCache, loader: ModelLoader, *,
                 poll_s: float, startup_timeout_s: float) -> None:
        self.runtime = runtime
        self.serving = serving
        self.cache = cache
        self.loader = loader
        self.poll_s = poll_s
        self.startup_timeout_s = startup_timeout_s
        self.healthy = True

    async def check(self) -> bool:
        """Look at the connection state (no RPC: runtimeStatus purges models). When it is
        lost the instance takes no new loads; when it comes back, re-do the handshake and
        forget every copy. True when `healthy` changed."""
        states = {self.runtime.channel.get_state(try_to_connect=True),
                  self.serving.channel.get_state(try_to_connect=True)}
        down = any(s in states for s in _DOWN)
        if down and self.healthy:
            log.warning("runtime unreachable: taking no new loads", runtime=self.runtime.target)
            self.healthy = False
            self.loader.set_runtime_reachable(False)
            return True
        if not down and self.healthy and not self.loader.runtime_reachable:
            # A load found the runtime unreachable, but the connection is up now.
            self.loader.set_runtime_reachable(True)
            return False
        if not down and not self.healthy and grpc.ChannelConnectivity.READY in states:
            log.info("runtime reachable again: re-doing the handshake", runtime=self.runtime.target)
            await self.runtime.wait_ready(self.poll_s, self.startup_timeout_s)
            for copy in self.cache.copies():
                await self.loader.forget(copy)
            self.healthy = True
            self.loader.set_runtime_reachable(True)
            return True
        return False
