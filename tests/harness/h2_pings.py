"""Counts the HTTP/2 PING frames a gRPC client sends (not the ACKs), read off the bytes a
TcpProxy forwards: how a test sees a client's keepalive without trusting its settings."""

from __future__ import annotations

import time
from collections.abc import Callable

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PING, ACK = 0x6, 0x1


class PingCounter:
    def __init__(self) -> None:
        self.pings: list[float] = []  # monotonic time of each client PING

    def connection(self) -> Callable[[bytes], None]:
        """A parser for one connection's client-to-server bytes."""
        buffer = bytearray()
        preface_seen = False

        def feed(data: bytes) -> None:
            nonlocal preface_seen
            buffer.extend(data)
            if not preface_seen:
                if len(buffer) < len(PREFACE):
                    return
                del buffer[:len(PREFACE)]
                preface_seen = True
            while len(buffer) >= 9:
                length = int.from_bytes(buffer[0:3], "big")
                if len(buffer) < 9 + length:
                    return
                frame_type, flags = buffer[3], buffer[4]
                if frame_type == PING and not flags & ACK:
                    self.pings.append(time.monotonic())
                del buffer[:9 + length]

        return feed

    def since(self, t: float) -> int:
        return sum(1 for p in self.pings if p >= t)
