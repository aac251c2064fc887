"""``[aws] image`` resolution against moto, and the login user of each image family."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from composer.errors import PreflightError
from composer.targets.aws.images import Image, login_user_for, resolve_image
from tests.unit.aws_fakes import REGION, aws_env  # noqa: F401 - fixture

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

UBUNTU_TRUSTY = "ami-1e749f67"
PARAMETER = "/composer-test/ubuntu/server/14.04/stable/current/amd64/hvm/ebs-gp3/ami-id"


@pytest.fixture
def session(aws_env: None) -> Iterator[Any]:  # noqa: F811
    with moto.mock_aws():
        yield boto3.Session(region_name=REGION)


@pytest.mark.parametrize(("name", "owner", "user"), [
    ("ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250115", "099720109477",
     "ubuntu"),
    ("ubuntu-minimal/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-minimal-20250115", "1",
     "ubuntu"),
    ("some-canonical-build", "099720109477", "ubuntu"),
    ("al2023-ami-2023.6.20250115.0-kernel-6.1-x86_64", "137112412989", "ec2-user"),
    ("amzn2-ami-hvm-2.0.20250108.0-x86_64-gp2", "137112412989", "ec2-user"),
    ("amazon-eks-node-al2023-x86_64-standard-1.31-v20250116", "602401143452", "ec2-user"),
    ("debian-12-amd64-20250112-1993", "136693071363", "admin"),
    ("Rocky-9-EC2-Base-9.5-20241118.0.x86_64", "792107900819", "rocky"),
    ("Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.5.1 (Ubuntu 22.04) 20250113",
     "898082745236", "ubuntu"),
    ("Deep Learning Base OSS Nvidia Driver GPU AMI (Amazon Linux 2023) 20250113",
     "898082745236", "ec2-user"),
    ("Deep Learning AMI Amazon Linux - 3.3_Oct2017", "898082745236", "ec2-user"),
    ("Deep Learning AMI (something else) 20250113", "898082745236", None),
    ("Windows_Server-2022-English-Full-Base-2025.01.15", "801119661308", None),
    ("RHEL-9.5.0_HVM-20241211-x86_64-0-Hourly2-GP3", "309956199498", None),
    ("my-team-image-2025", "111122223333", None),
])
def test_login_user_by_family(name: str, owner: str, user: str | None) -> None:
    assert login_user_for(name, owner) == user


def test_windows_platform_has_no_login_user() -> None:
    assert login_user_for("ubuntu-lookalike", "1", "Windows") is None


def test_an_ami_id(session: Any) -> None:
    assert resolve_image(session, REGION, UBUNTU_TRUSTY) == Image(
        image=UBUNTU_TRUSTY, ami_id=UBUNTU_TRUSTY, architecture="x86_64",
        name="ubuntu/images/hvm-ssd/ubuntu-trusty-14.04-amd64-server-20170727",
        owner="099720109477", login_user="ubuntu")


def test_an_ssm_alias(session: Any) -> None:
    session.client("ssm", region_name=REGION).put_parameter(
        Name=PARAMETER, Value=UBUNTU_TRUSTY, Type="String", DataType="aws:ec2:image")
    image = resolve_image(session, REGION, f"ssm:{PARAMETER}")
    assert (image.image, image.ami_id, image.login_user) == \
        (f"ssm:{PARAMETER}", UBUNTU_TRUSTY, "ubuntu")


def test_moto_amazon_linux_alias(session: Any) -> None:
    path = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    image = resolve_image(session, REGION, f"ssm:{path}")
    assert image.ami_id.startswith("ami-")
    assert (image.architecture, image.login_user) == ("x86_64", "ec2-user")


def message(session: Any, image: str) -> str:
    with pytest.raises(PreflightError) as caught:
        resolve_image(session, REGION, image)
    return caught.value.message


def test_a_missing_parameter_names_aws_image(session: Any) -> None:
    assert message(session, "ssm:/composer-test/nothing/here").startswith(
        "aws.image: SSM parameter '/composer-test/nothing/here' not found in us-east-1")


def test_a_parameter_that_is_not_an_ami_is_refused_without_showing_its_value(
        session: Any) -> None:
    secret = "s3cr3t-hunter2\x1b[2J\x1b]0;pwned\x07"
    session.client("ssm", region_name=REGION).put_parameter(
        Name="/prod/db/password", Value=secret, Type="String")
    said = message(session, "ssm:/prod/db/password")
    assert said == ("aws.image: SSM parameter '/prod/db/password' holds something other "
                    f"than an AMI id ({len(secret)} characters)")
    assert "hunter2" not in said and "\x1b" not in said


def test_an_unknown_ami(session: Any) -> None:
    assert message(session, "ami-0123456789abcdef0") == \
        "aws.image: image ami-0123456789abcdef0 not found in us-east-1"


def test_an_alias_to_an_unknown_ami(session: Any) -> None:
    session.client("ssm", region_name=REGION).put_parameter(
        Name="/composer-test/gone", Value="ami-0123456789abcdef0", Type="String")
    assert message(session, "ssm:/composer-test/gone") == (
        "aws.image: image ami-0123456789abcdef0 (from 'ssm:/composer-test/gone') "
        "not found in us-east-1")


@pytest.mark.parametrize("image", ["ubuntu-24.04", "ami-XYZ", "ssm:"])
def test_malformed_images(session: Any, image: str) -> None:
    assert message(session, image).startswith("aws.image: ")
