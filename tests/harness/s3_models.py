"""Real models in a real S3 server (moto), and the storage-config secret that points at it,
as the puller reads them: used by adapter, mesh end-to-end and controller end-to-end tests."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import aioboto3

from harness import tools
from harness.models import sklearn_iris, triton_python_doubler
from harness.services import S3Server

BUCKET = "adapter-models"
STORAGE_KEY = "localS3"


def write_storage_config(directory: Path, s3_server: S3Server) -> Path:
    """The storage-config secret as mounted: one JSON file per key."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / STORAGE_KEY).write_text(json.dumps({
        "type": "s3", "access_key_id": s3_server.ACCESS_KEY, "secret_access_key": s3_server.SECRET_KEY,
        "endpoint_url": s3_server.endpoint, "region": s3_server.REGION, "default_bucket": BUCKET,
    }))
    return directory


async def upload_dir(s3_server: S3Server, local: Path, prefix: str) -> None:
    session = aioboto3.Session(aws_access_key_id=s3_server.ACCESS_KEY, aws_secret_access_key=s3_server.SECRET_KEY,
                               region_name=s3_server.REGION)
    async with session.client("s3", endpoint_url=s3_server.endpoint) as s3:
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            await s3.create_bucket(Bucket=BUCKET)
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
        for f in files:
            key = prefix if local.is_file() else f"{prefix}/{f.relative_to(local).as_posix()}"
            await s3.put_object(Bucket=BUCKET, Key=key, Body=f.read_bytes())


async def upload_test_models(s3_server: S3Server, src: Path) -> dict[str, str]:
    """sklearn iris (native MLServer dir), a corrupt joblib, a Triton python-backend doubler
    (native repository dir) and a schema for it. Returns name -> S3 path."""
    iris = sklearn_iris(src / "iris", tools.mlserver_venv() / "bin" / "python", "iris-original-name")
    await upload_dir(s3_server, iris, "sklearn/iris")
    (src / "corrupt.joblib").write_bytes(b"this is not a pickle\x00\x01")
    await upload_dir(s3_server, src / "corrupt.joblib", "sklearn/corrupt/model.joblib")
    doubler = triton_python_doubler(src / "triton", "doubler")
    await upload_dir(s3_server, doubler, "triton/doubler")
    schema = src / "doubler-schema.json"
    schema.write_text(json.dumps({
        # Fixed dims where the model's own config says [-1]: visible in ModelMetadata.
        "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [3]}],
        "outputs": [{"name": "OUTPUT0", "datatype": "FP32", "shape": [3]}],
    }))
    await upload_dir(s3_server, schema, "triton/doubler-schema.json")
    return {"iris": "sklearn/iris", "iris-file": "sklearn/iris/model.joblib", "corrupt": "sklearn/corrupt/model.joblib",
            "doubler": "triton/doubler", "doubler-schema": "triton/doubler-schema.json"}


def s3_key(model_type: str, **extra) -> str:
    """A modelKey JSON for a model in the test bucket."""
    return json.dumps({"storage_key": STORAGE_KEY, "model_type": {"name": model_type}, **extra})
