"""Helpers shared by the storage tests (imported by name; conftest holds the fixtures)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioboto3


def s3_config(s3_server, **extra: Any) -> dict[str, Any]:
    return {"type": "s3", "endpoint_url": s3_server.endpoint, "access_key_id": s3_server.ACCESS_KEY,
            "secret_access_key": s3_server.SECRET_KEY, "region": s3_server.REGION, **extra}


class S3Seeder:
    def __init__(self, s3_server) -> None:
        self.session = aioboto3.Session(aws_access_key_id=s3_server.ACCESS_KEY,
                                        aws_secret_access_key=s3_server.SECRET_KEY, region_name=s3_server.REGION)
        self.endpoint = s3_server.endpoint

    async def put(self, bucket: str, objects: dict[str, bytes]) -> None:
        async with self.session.client("s3", endpoint_url=self.endpoint) as s3:
            try:
                await s3.create_bucket(Bucket=bucket)
            except s3.exceptions.BucketAlreadyOwnedByYou:
                pass
            for key, body in objects.items():
                await s3.put_object(Bucket=bucket, Key=key, Body=body)


@dataclass(frozen=True)
class Certs:
    ca_pem: str  # trusted CA (self-signed), signs server and client certs
    server_cert: Path
    server_key: Path
    client_cert_pem: str
    client_key_pem: str
    ca_path: Path


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)
