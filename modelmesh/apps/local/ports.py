"""Ports: the front door's, checked before anything starts (a taken port is a bad setting),
and free ones for the children, chosen where no outgoing connection can take them."""

from __future__ import annotations

import random
import socket
from collections.abc import Container
from pathlib import Path

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def port_pool() -> range:
    """Ports below (or above) the kernel's ephemeral range: a port the kernel picks with bind(0)
    comes from that range, where any process's next outgoing connection may take it between
    our choosing and the child binding it."""
    try:
        low, high = map(int, EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    if low > 12000:
        return range(10000, low)
    if high < 63000:
        return range(high + 1, 65536)
    return range(0)  # no room outside it: let the kernel choose


def free_port(avoid: Container[int] = ()) -> int:
    """A TCP port free on every address right now, from `port_pool()`, not one of `avoid`."""
    pool = port_pool()
    for _ in range(500):
        port = random.choice(pool) if pool else 0
        if port in avoid:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError("no free TCP port found")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on host:port right now."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (see `free_port`)."""
    ports: list[int] = []
    while len(ports) < count:
        ports.append(free_port(avoid=ports))
    return ports


class PortProblem(ValueError):
    pass


def check_ports(host: str, ports: dict[str, int]) -> None:
    seen: dict[int, str] = {}
    for flag, port in ports.items():
        if port == 0:
            continue
        if port in seen:
            raise PortProblem(f"{flag} {port} is also {seen[port]}; give each its own port")
        seen[port] = flag
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError as e:
                reason = "in use" if e.errno == 98 else e.strerror
                raise PortProblem(f"port {port} ({flag}) on {host} is {reason}; pick another with {flag}") from None
