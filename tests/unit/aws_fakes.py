"""Shared by the AWS tests: a spec builder, moto's environment, and stubbed clients.

``aws_spec`` is the one place these tests build a ``Spec``. ``StubbedSession``
wraps a real boto3 session and hands out Stubber-backed clients for the services
moto lacks (service-quotas for ec2); ``FakePlacementGroups`` answers the placement
group calls moto does not implement, inside a moto session.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from composer.spec import (
    ClusterSpec,
    CodeSpec,
    JobSection,
    LimitsSpec,
    OutputsSpec,
    RecordSpec,
    RunSpec,
    Spec,
)
from composer.targets.aws.config import AwsSpec

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true",
    "AWS_EC2_METADATA_DISABLED": "true",
}
UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_SECURITY_TOKEN")


def aws_spec(nodes: int = 1, gpus_per_node: int = 0, **aws: Any) -> Spec:
    """A Spec with ``target = "aws"`` and ``target_config = AwsSpec(**aws)``."""
    fields: dict[str, Any] = {"region": REGION, "instance_types": ("t3.micro",),
                              "image": "ami-760aaa0f", "ssh_cidrs": ("203.0.113.0/24",)}
    fields.update(aws)
    fields["instance_types"] = tuple(fields["instance_types"])
    fields["zones"] = tuple(fields.get("zones", ()))
    return Spec(
        job=JobSection("aws-test"),
        cluster=ClusterSpec("aws", nodes, 1, gpus_per_node),
        run=RunSpec("ssh", ("true",)),
        code=CodeSpec(None),
        inputs=(),
        outputs=OutputsSpec(),
        limits=LimitsSpec(),
        record=RecordSpec(),
        source=Path("job.toml"),
        base_dir=Path("."),
        text="",
        target_config=AwsSpec(**fields),
    )


def with_aws(spec: Spec, **aws: Any) -> Spec:
    return replace(spec, target_config=replace(spec.target_config, **aws))


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials for moto; no profile, no endpoint, no shared config read."""
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


class StubbedSession:
    """A boto3 session whose clients of ``stubbed`` services come from ``clients``."""

    def __init__(self, session: Any, clients: dict[str, Any]) -> None:
        self._session = session
        self._clients = clients

    def client(self, service: str, *args: Any, **kwargs: Any) -> Any:
        if service in self._clients:
            return self._clients[service]
        return self._session.client(service, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def stubbed_client(session: Any, service: str) -> tuple[Any, Any]:
    """``(client, Stubber)`` for ``service`` in REGION; activate the stubber yourself."""
    from botocore.stub import Stubber

    made = session.client(service, region_name=REGION)
    return made, Stubber(made)


class FakePlacementGroups:
    """DescribePlacementGroups / DeletePlacementGroup answered in-process (moto lacks
    them); it records the order of the destructive calls it sees."""

    def __init__(self, session: Any, groups: list[dict[str, Any]]) -> None:
        self.groups = groups
        self.calls: list[str] = []
        events = session.events
        events.register("before-call.ec2.DescribePlacementGroups", self.describe)
        events.register("before-call.ec2.DeletePlacementGroup", self.delete)
        for operation in ("TerminateInstances", "DeleteSecurityGroup"):
            events.register(f"before-call.ec2.{operation}", self.record)

    def record(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def describe(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        return SimpleNamespace(status_code=200, headers={}), {"PlacementGroups": self.groups}

    def delete(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        name = params["body"]["GroupName"]
        self.calls.append(f"DeletePlacementGroup {name}")
        self.groups = [g for g in self.groups if g["GroupName"] != name]
        return SimpleNamespace(status_code=200, headers={}), {}
