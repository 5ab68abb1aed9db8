"""The deploy/ tests' kube-apiserver: the real 1.20 apiserver, with RBAC, and bearer tokens for
the controller's service accounts (so the controller runs with exactly the installed RBAC) and
for a user with no rights.

Validating admission webhooks are off in this one: it has no kubelet, so no pod can ever serve
the webhook that install.sh registers (a real cluster runs it in the controller pod).
test_deploy_webhook.py checks the webhook registration against an apiserver that calls it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_helpers import sa_kubeconfig
from harness.services import KubeApiServer

SA_NAMESPACES = ("mm-cluster", "mm-nsscope")
NOBODY_TOKEN = "nobody-token"


def sa_token(namespace: str) -> str:
    return f"sa-{namespace}-token"


class DeployCluster:
    def __init__(self, server: KubeApiServer, workdir: Path) -> None:
        self.server = server
        self.kubeconfig = server.kubeconfig
        self.workdir = workdir

    def as_controller(self, namespace: str) -> Path:
        return sa_kubeconfig(self.kubeconfig, sa_token(namespace), self.workdir / f"sa-{namespace}.kubeconfig")

    def as_nobody(self) -> Path:
        return sa_kubeconfig(self.kubeconfig, NOBODY_TOKEN, self.workdir / "nobody.kubeconfig")


@pytest.fixture(scope="session")
def deploy_cluster(tmp_path_factory) -> Iterator[DeployCluster]:
    workdir = tmp_path_factory.mktemp("deploy-kube")
    users = [f'{sa_token(ns)},system:serviceaccount:{ns}:modelmesh-controller,sa-{ns},"system:serviceaccounts,'
             f'system:serviceaccounts:{ns},system:authenticated"' for ns in SA_NAMESPACES]
    users.append(f"{NOBODY_TOKEN},nobody,nobody")
    server = KubeApiServer(workdir / "apiserver", extra_args=["--disable-admission-plugins=ValidatingAdmissionWebhook"],
                           users=users)
    server.start()
    try:
        yield DeployCluster(server, workdir)
    finally:
        server.stop()
