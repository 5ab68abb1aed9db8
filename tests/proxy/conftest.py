"""Fixtures of the REST proxy tests: real runtimes with test models, and in-process proxies
pointed straight at a runtime's gRPC port (the mesh sits in between in production)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import grpc
import pytest
import pytest_asyncio

from harness.echo_models import triton_python_echo
from harness.models import sklearn_iris, triton_python_doubler, triton_python_sleeper
from harness.triton_options import TritonWithOptions
from modelmesh.apps.rest_proxy import RestProxyApp, make_app
from modelmesh.config.proxy import RestProxySettings
from modelmesh.config.settings import load_settings
from modelmesh.protos import grpc_predict_v2_pb2 as pb
from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

IRIS = "iris-rest"


def load_models(grpc_port: int, *names: str) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = GRPCInferenceServiceStub(channel)
        for name in names:
            stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=name), timeout=120)
            assert stub.ModelReady(pb.ModelReadyRequest(name=name)).ready, name


@pytest.fixture(scope="session")
def proxy_triton(tmp_path_factory) -> Iterator[TritonWithOptions]:
    """Triton that forwards `mm-*` gRPC headers into request parameters, so the echo model
    shows which routing metadata the proxy sent."""
    triton = TritonWithOptions(tmp_path_factory.mktemp("proxy-triton"), ["--grpc-header-forward-pattern=mm-.*"])
    triton.start()
    try:
        triton_python_echo(triton.repo, "echo")
        triton_python_doubler(triton.repo, "doubler")
        triton_python_sleeper(triton.repo, "sleeper")
        load_models(triton.grpc_port, "echo", "doubler", "sleeper")
        yield triton
    finally:
        triton.stop()


@pytest.fixture(scope="session")
def iris_name() -> str:
    return IRIS


@pytest.fixture(scope="session")
def proxy_mlserver(mlserver):
    sklearn_iris(mlserver.models_dir / IRIS, mlserver.python, IRIS)
    load_models(mlserver.grpc_port, IRIS)
    return mlserver


ProxyFactory = Callable[..., Awaitable[RestProxyApp]]


@pytest_asyncio.fixture(scope="session")
async def start_proxy() -> AsyncIterator[ProxyFactory]:
    """Start in-process proxies (settings from env-style strings); all are stopped at the end."""
    apps: list[RestProxyApp] = []

    async def start(grpc_port: int, **env: str) -> RestProxyApp:
        settings = load_settings(RestProxySettings, {
            "REST_PROXY_LISTEN_HOST": "127.0.0.1", "REST_PROXY_LISTEN_PORT": "0",
            "REST_PROXY_GRPC_PORT": str(grpc_port), **env,
        })
        app = make_app(settings)
        await app.start()
        apps.append(app)
        return app

    yield start
    for app in reversed(apps):
        await app.stop()


def base_url(app: RestProxyApp) -> str:
    return f"{app.proxy.scheme}://127.0.0.1:{app.proxy.port}"


@pytest_asyncio.fixture(scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


@pytest_asyncio.fixture(scope="session")
async def triton_url(proxy_triton, start_proxy) -> str:
    return base_url(await start_proxy(proxy_triton.grpc_port))


@pytest_asyncio.fixture(scope="session")
async def mlserver_url(proxy_mlserver, start_proxy) -> str:
    return base_url(await start_proxy(proxy_mlserver.grpc_port))
