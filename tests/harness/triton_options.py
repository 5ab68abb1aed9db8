"""Triton with extra server options (header forwarding, gRPC TLS) for protocol tests."""

from __future__ import annotations

from pathlib import Path

from harness.process import port_open
from harness.services import Triton


class TritonWithOptions(Triton):
    """The harness Triton plus `extra_args`; readiness is the gRPC port (it may be TLS-only)."""

    def __init__(self, workdir: Path, extra_args: list[str]) -> None:
        super().__init__(workdir)
        self.extra_args = extra_args

    def command(self, t: dict[str, str]) -> list:
        return [*super().command(t), *self.extra_args]

    def healthy(self) -> bool:
        return port_open(self.grpc_port) and port_open(self.http_port)
