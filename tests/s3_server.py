"""A real S3 endpoint for tests: one moto server on 127.0.0.1 per test session, so code talks S3 over HTTP.

Import the fixtures into a test module (``from tests.s3_server import s3, s3_server  # noqa: F401``):
``s3_server`` (session) starts the server and stops it after the last test; ``s3`` (per test) points the
standard AWS environment at it (``AWS_ENDPOINT_URL``, fake keys), so s3fs, boto3 and DVC find it the way
they find a real endpoint, and hands out fresh buckets.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

REGION = "us-east-1"


@dataclass(frozen=True)
class S3:
    endpoint: str
    client: Any  # a boto3 S3 client on the server

    def bucket(self, versioned: bool = False) -> str:
        """A new empty bucket (versioning enabled when asked)."""
        name = f"voiceloop-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        if versioned:
            self.client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def versions(self, bucket: str) -> list[tuple[str, bytes | None]]:
        """(key, bytes) of every object version in the bucket (None for a delete marker), oldest first."""
        out: list[tuple[str, bytes | None]] = []
        for page in self.client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for version in page.get("Versions", []):
                body = self.client.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
                out.append((version["Key"], body["Body"].read()))
            out.extend((marker["Key"], None) for marker in page.get("DeleteMarkers", []))
        return out


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server on 127.0.0.1 (a free port), stopped after the session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture()
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    """The AWS environment pointed at the session's server (for this test only), and a client on it."""
    import boto3
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # an s3fs made for another endpoint (another test's) is not reused
    for name, value in {"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    yield S3(s3_server, boto3.client("s3", endpoint_url=s3_server, region_name=REGION))
    s3fs.S3FileSystem.clear_instance_cache()  # nor is ours, once the environment is restored
