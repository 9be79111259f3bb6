"""A moto server of our own that enforces IAM, and the deploy/iam policies installed in it.

The session-wide moto server runs in this process and shares moto's settings, so IAM
enforcement gets its own server process (`iam_moto_server.py`: moto's server with its
signature check fixed for query strings holding a `/`). Setup (buckets, queue,
users, roles, policies) runs while it still accepts anyone; `enforce()` then makes every
request prove its identity and pass the policies (moto's `/moto-api/reset-auth`).

What moto's IAM evaluates: actions and resources of identity policies, for IAM users and
assumed roles. Not evaluated: `Condition` blocks of identity policies (the `s3:prefix` and
SSE conditions of the loader policy), resource policies, KMS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3

from clickstream_assets.testing.services import FAKE_AWS_ENV, free_port

POLICY_DIR = Path(__file__).resolve().parents[1] / "deploy" / "iam"
REGION = "us-east-1"


def render_policy(name: str, **values: str) -> str:
    """deploy/iam/<name>.json with its <PLACEHOLDERS> filled; an unfilled one is an error."""
    text = (POLICY_DIR / f"{name}.json").read_text()
    for key, value in values.items():
        text = text.replace(f"<{key}>", value)
    if "<" in text:
        raise ValueError(f"{name}: placeholders left: {text[text.index('<'):][:40]}")
    json.loads(text)
    return text


@dataclass
class IamMoto:
    endpoint_url: str
    process: subprocess.Popen

    def client(self, service: str, creds: dict | None = None):
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=REGION,
                            **(creds or admin_creds()))

    def _auth(self, count: str) -> None:
        urllib.request.urlopen(urllib.request.Request(
            f"{self.endpoint_url}/moto-api/reset-auth", data=count.encode(), method="POST",
            headers={"Content-Type": "text/plain"}),
            timeout=10).read()

    def enforce(self) -> None:
        self._auth("0")

    def relax(self) -> None:
        self._auth("inf")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def admin_creds() -> dict:
    return {"aws_access_key_id": FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"]}


def start_iam_moto() -> IamMoto:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "INITIAL_NO_AUTH_ACTION_COUNT"}
    process = subprocess.Popen([sys.executable, "-m", "clickstream_assets_tests.iam_moto_server",
                                str(port)], env=env, cwd=POLICY_DIR.parents[1],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).read()
            return IamMoto(url, process)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto server did not start")
            time.sleep(0.2)


def create_user(iam, name: str, policy_name: str, document: str) -> dict:
    """An IAM user with one managed policy; -> its access key as boto3 client kwargs."""
    iam.create_user(UserName=name)
    arn = iam.create_policy(PolicyName=policy_name, PolicyDocument=document)["Policy"]["Arn"]
    iam.attach_user_policy(UserName=name, PolicyArn=arn)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"]}


def assume_new_role(iam, sts, name: str, trust: str, policy_name: str, document: str) -> dict:
    """A role with one managed policy, assumed (as Redshift assumes its COPY role);
    -> the session's credentials as boto3 client kwargs."""
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]
    arn = iam.create_policy(PolicyName=policy_name, PolicyDocument=document)["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    creds = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="redshift-copy")["Credentials"]
    return {"aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"]}
