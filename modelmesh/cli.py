"""The `modelmesh` command: one binary, several modes.

    modelmesh controller            reconcile CRs into Deployments, Services and the mesh
    modelmesh runtime [ROLE]        the runtime-pod sidecar: mesh (default), adapter, puller, rest-proxy
    modelmesh runtime stop [--wait] the mesh container's preStop: hand off the models, then exit
    modelmesh local                 all-in-one on one machine, no Kubernetes
    modelmesh version

Every setting is an env var named as in the reference, and a flag (`--help` lists both);
a flag wins over the env var. An invalid setting exits 2 with one line naming it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from modelmesh import __version__
from modelmesh.config.adapter import AdapterSettings
from modelmesh.config.controller import ControllerSettings
from modelmesh.config.local import LocalSettings
from modelmesh.config.mesh import MeshSettings, MeshStopSettings
from modelmesh.config.proxy import RestProxySettings
from modelmesh.config.settings import SettingsError, describe, fields_of, load_settings

RUNTIME_ROLES: dict[str, tuple[type, str]] = {
    "mesh": (MeshSettings, "the serving mesh (placement, LRU cache, routing over etcd)"),
    "adapter": (AdapterSettings, "built-in adapter + puller in front of Triton/MLServer/OVMS/TorchServe"),
    "puller": (AdapterSettings, "standalone puller for custom runtimes that implement the SPI"),
    "rest-proxy": (RestProxySettings, "KServe V2 REST -> gRPC proxy"),
}


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=40, width=110)


def _add_settings(parser: argparse.ArgumentParser, cls: type, title: str) -> None:
    group = parser.add_argument_group(title, "each flag mirrors the env var shown; flag > env > default")
    for (flag, env, default, help_text), (f, _, _) in zip(describe(cls), fields_of(cls)):
        shown = f" (default {default})" if default != "" else ""
        group.add_argument(flag, dest=f.name, metavar=env, default=None, help=f"{help_text}{shown}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelmesh", description=__doc__, formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"modelmesh {__version__}")
    modes = parser.add_subparsers(dest="mode", metavar="MODE", required=True)

    p = modes.add_parser("controller", help="reconcile ModelMesh CRs on Kubernetes", formatter_class=_Formatter)
    _add_settings(p, ControllerSettings, "controller settings")

    p = modes.add_parser(
        "runtime", help="runtime-pod sidecar (mesh by default)", formatter_class=_Formatter,
        description="Roles: " + "; ".join(f"{r}: {d}" for r, (_, d) in RUNTIME_ROLES.items())
        + ". Without a role, runs the mesh (settings below).",
    )
    _add_settings(p, MeshSettings, "mesh settings")
    roles = p.add_subparsers(dest="role", metavar="ROLE")
    for role, (cls, desc) in RUNTIME_ROLES.items():
        rp = roles.add_parser(role, help=desc, description=desc, formatter_class=_Formatter)
        _add_settings(rp, cls, f"{role} settings")
    desc = "ask the mesh in this pod to hand off its models and exit (the mesh container's preStop)"
    rp = roles.add_parser("stop", help=desc, description=desc, formatter_class=_Formatter)
    rp.add_argument("--wait", action="store_true", help="return only once the mesh is about to exit")
    _add_settings(rp, MeshStopSettings, "stop settings")

    p = modes.add_parser("local", help="all-in-one mesh on this machine (no Kubernetes)", formatter_class=_Formatter,
                         description="Serve the models declared in --config-dir on this machine. "
                         "`modelmesh local status` shows models, runtimes and their states.")
    _add_settings(p, LocalSettings, "local settings")
    local_cmds = p.add_subparsers(dest="local_command", metavar="COMMAND")
    sp = local_cmds.add_parser("status", help="models, runtimes and their states, as a table",
                               formatter_class=_Formatter)
    sp.add_argument("--state-dir", dest="status_state_dir", metavar="MODELMESH_STATE_DIR", default=None,
                    help="state dir of the running `modelmesh local` (default: ~/.local/state/modelmesh)")
    sp.add_argument("--json", action="store_true", help="print the status as JSON")

    modes.add_parser("version", help="print the version")
    return parser


def _overrides(ns: argparse.Namespace, cls: type) -> dict[str, Any]:
    return {f.name: getattr(ns, f.name) for f, _, _ in fields_of(cls) if getattr(ns, f.name, None) is not None}


def _settings(ns: argparse.Namespace, cls: type, env: Mapping[str, str]) -> Any:
    return load_settings(cls, env, _overrides(ns, cls))


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    ns = build_parser().parse_args(argv)
    if ns.mode == "version":
        print(f"modelmesh {__version__}")
        return 0
    if ns.mode == "local" and ns.local_command == "status":
        return _local_status(ns, env)
    try:
        if ns.mode == "controller":
            settings = _settings(ns, ControllerSettings, env)
        elif ns.mode == "runtime" and ns.role == "stop":
            from modelmesh.apps.mesh_stop import request_stop

            return request_stop(_settings(ns, MeshStopSettings, env).prestop_port, ns.wait)
        elif ns.mode == "runtime":
            role = ns.role or "mesh"
            settings = _settings(ns, RUNTIME_ROLES[role][0], env)
        else:
            settings = _settings(ns, LocalSettings, env)
    except SettingsError as e:
        print(f"modelmesh {ns.mode}: {e}", file=sys.stderr)
        return 2
    if ns.mode == "local":
        return _run_local(settings)
    return _run(ns, settings)


def _local_status(ns: argparse.Namespace, env: Mapping[str, str]) -> int:
    import json
    from pathlib import Path

    from modelmesh.apps.local.status import read_snapshot, render
    from modelmesh.config.local import default_state_dir

    state_dir = Path(ns.status_state_dir or env.get("MODELMESH_STATE_DIR") or default_state_dir())
    snapshot = read_snapshot(state_dir)
    text, code = render(snapshot, state_dir)
    print(json.dumps(snapshot, indent=1) if ns.json and snapshot is not None else text)
    return code


def _run_local(settings: LocalSettings) -> int:
    """Bad settings (a taken port among them) exit 2 before anything starts; failures at
    run time exit 1. Logs go to <state>/logs/modelmesh.log; the terminal shows progress."""
    from pathlib import Path

    from modelmesh import lifecycle
    from modelmesh.apps.local.ports import PortProblem, check_ports
    from modelmesh.observability.logging import configure_logging

    try:
        check_ports(settings.host, {"--grpc-port": settings.grpc_port, "--rest-port": settings.rest_port,
                                    "--metrics-port": settings.metrics_port})
    except PortProblem as e:
        print(f"modelmesh local: {e}", file=sys.stderr)
        return 2
    logs = Path(settings.effective_state_dir) / "logs"
    try:
        logs.mkdir(parents=True, exist_ok=True)
        text = settings.effective_format == "console"
        log_file = open(logs / "modelmesh.log", "a" if text else "ab",  # noqa: SIM115 - closed after the run
                        buffering=1 if text else 0)
    except OSError as e:
        print(f"modelmesh local: cannot write the state dir {settings.effective_state_dir}: {e}", file=sys.stderr)
        return 2
    configure_logging(settings.effective_level, settings.effective_format, stream=log_file)
    # This process forks its children while gRPC threads run (the store's etcd front, the
    # mesh client); they exec at once, so gRPC's fork handlers have nothing to do but print
    # "skipping fork() handlers" on the terminal at every start. Set before gRPC is loaded.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    from modelmesh.apps.local import make_app

    try:
        return lifecycle.run(lambda: make_app(settings), shutdown_timeout_s=settings.shutdown_timeout + 20)
    finally:
        log_file.close()


def _run(ns: argparse.Namespace, settings: Any) -> int:
    # Imports are deferred so `--help` and settings errors stay fast.
    from modelmesh import lifecycle
    from modelmesh.observability.logging import configure_logging

    configure_logging(settings.effective_level, settings.effective_format)
    if ns.mode == "controller":
        module, timeout_s = importlib.import_module("modelmesh.apps.controller"), 30.0
    else:
        role = ns.role or "mesh"
        module = importlib.import_module(f"modelmesh.apps.{role.replace('-', '_')}")
        timeout_s = settings.shutdown_timeout_ms / 1000 if role == "mesh" else 30
    try:
        return lifecycle.run(lambda: module.make_app(settings), shutdown_timeout_s=timeout_s)
    except SettingsError as e:
        # A setting only the app can check: MM_TYPE_CONSTRAINTS's JSON, the controller's defaults file.
        print(f"modelmesh {ns.mode}: {e}", file=sys.stderr)
        return 2

if __name__ == "__main__":
    sys.exit(main())
