"""Ports of the front door, checked before anything starts: a taken port is a bad setting."""

from __future__ import annotations

import socket


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
