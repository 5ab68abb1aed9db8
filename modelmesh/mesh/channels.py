"""gRPC channels to the local runtime and to peer instances, calling methods as raw bytes.

Requests and responses are never decoded here: serializer/deserializer are identity, so a
forwarded call costs one copy of the payload per hop at most.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

Metadata = Sequence[tuple[str, str | bytes]]


def _channel_options(max_msg_size: int, keepalive: bool) -> list[tuple[str, int]]:
    options = [
        ("grpc.max_receive_message_length", max_msg_size),
        ("grpc.max_send_message_length", max_msg_size),
    ]
    if keepalive:
        # Peers: one TCP connection carries all streams; keep it warm. Our servers permit it
        # (server._server_options).
        options += [
            ("grpc.keepalive_time_ms", 30000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
        ]
    # Runtimes get no keepalive pings: gRPC servers (MLServer, Triton) by default allow no
    # pings without calls and none more often than every 5 min, and answer more with GOAWAY
    # too_many_pings. The runtime is local; its health is watched through the channel state.
    return options


class RawChannel:
    """One channel; `call` invokes any unary method with bytes in, bytes out. `keepalive`
    only toward peers (see _channel_options)."""

    def __init__(self, target: str, max_msg_size: int, keepalive: bool = False) -> None:
        self.target = target
        self.channel = grpc.aio.insecure_channel(target, options=_channel_options(max_msg_size, keepalive))
        self._methods: dict[str, grpc.aio.UnaryUnaryMultiCallable] = {}

    def _method(self, method: str) -> grpc.aio.UnaryUnaryMultiCallable:
        m = self._methods.get(method)
        if m is None:
            # No (de)serializers: grpc passes bytes through untouched.
            m = self._methods[method] = self.channel.unary_unary(method)
        return m

    def call(self, method: str, data: bytes, metadata: Metadata, timeout: float | None) -> grpc.aio.UnaryUnaryCall:
        return self._method(method)(data, metadata=metadata, timeout=timeout)

    async def close(self) -> None:
        await self.channel.close()


class PeerChannels:
    """Channels to peer instances, by endpoint, created on first use."""

    def __init__(self, max_msg_size: int) -> None:
        self.max_msg_size = max_msg_size
        self._channels: dict[str, RawChannel] = {}

    def get(self, endpoint: str) -> RawChannel:
        ch = self._channels.get(endpoint)
        if ch is None:
            ch = self._channels[endpoint] = RawChannel(endpoint, self.max_msg_size, keepalive=True)
        return ch

    def endpoints(self) -> list[str]:
        return list(self._channels)

    async def drop(self, endpoint: str) -> None:
        ch = self._channels.pop(endpoint, None)
        if ch is not None:
            await ch.close()

    async def close(self) -> None:
        for ch in list(self._channels.values()):
            await ch.close()
        self._channels.clear()
