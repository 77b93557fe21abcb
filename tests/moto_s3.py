"""moto's S3 server for the volume tests, bound to one address of this machine (loopback or a lab veth).

With ``auth=True`` moto checks every request's signature against the IAM access keys it knows: the test gets
one good key (an IAM user allowed ``s3:*``), and any other key is refused, as AWS S3 refuses it.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


@dataclass(frozen=True)
class S3Server:
    url: str
    access_key: str
    secret_key: str
    bucket: (
        str  # a fresh, empty bucket of this server (moto's state is global to the process: names are unique)
    )

    def client(self, access_key: str | None = None, secret_key: str | None = None):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
        )

    def keys(self) -> dict[str, str]:
        """The good key as environment variables, for boto3's chain on the client."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
        }


@contextmanager
def s3_server(address: str, *, auth: bool = True) -> Iterator[S3Server]:
    """moto's server on `address` (a port of its choosing), stopped on exit."""
    server = ThreadedMotoServer(ip_address=address, port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        iam = boto3.client(
            "iam",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        user = f"skyward-test-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(_POLICY))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        bucket = f"skyward-data-{uuid.uuid4().hex[:8]}"
        boto3.client(
            "s3",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        ).create_bucket(Bucket=bucket)
        if auth:  # from now on, every request must be signed with a key moto knows
            _reset_auth(url, "0")
        yield S3Server(url, key["AccessKeyId"], key["SecretAccessKey"], bucket)
    finally:
        # moto's setting is global to this process (the server is a thread here): back to "no auth" for the
        # other tests' moto servers.
        if auth:
            _reset_auth(url, "inf")
        server.stop()


def _reset_auth(url: str, value: str) -> None:
    request = urllib.request.Request(
        f"{url}/moto-api/reset-auth",
        data=value.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(request, timeout=10).close()
