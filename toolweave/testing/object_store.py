"""An S3-compatible object store on 127.0.0.1 for tests: moto in server mode (real HTTP).

    with moto_s3() as root:      # "s3://toolweave-test"; AWS_* env vars point at the server
        io.write_part(records, f"{root}/run/episodes", Episode)

Only the loopback address; dummy credentials (moto accepts any). The env vars it set are
restored on exit. The server is a process of its own: a crash in it (once, a segfault in its thread of
the test process, which ended the whole pytest run) fails only the test that uses it, and its work
never waits on the test's GIL.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

from toolweave.llm.engine import free_port

# the secret key is registered for redaction when a bucket is used: a word like "testing" would be
# redacted from every text of the test process
ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "moto-Fk3xQ9vT2wLr8sYp",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@contextlib.contextmanager
def moto_s3(bucket: str = "toolweave-test") -> Iterator[str]:
    """Start the server, create `bucket`, yield its URI; the server stops on exit."""
    import boto3

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    saved = {k: os.environ.get(k) for k in [*ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(ENV, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    try:
        _wait_listening(server, port)
        boto3.client("s3").create_bucket(Bucket=bucket)
        yield f"s3://{bucket}"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_listening(server: subprocess.Popen, port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"moto's S3 server exited with code {server.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"moto's S3 server did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s")
