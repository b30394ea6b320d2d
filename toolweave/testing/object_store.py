"""An S3-compatible object store on 127.0.0.1 for tests: moto in server mode (real HTTP).

    with moto_s3() as root:      # "s3://toolweave-test"; AWS_* env vars point at the server
        io.write_part(records, f"{root}/run/episodes", Episode)

Only the loopback address; dummy credentials (moto accepts any). The env vars it set are
restored on exit.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from toolweave.llm.engine import free_port

ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
       "AWS_EC2_METADATA_DISABLED": "true"}


@contextlib.contextmanager
def moto_s3(bucket: str = "toolweave-test") -> Iterator[str]:
    """Start the server, create `bucket`, yield its URI; the server stops on exit."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in [*ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(ENV, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    try:
        boto3.client("s3").create_bucket(Bucket=bucket)
        yield f"s3://{bucket}"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
