"""AWS preflight against moto (EC2, STS, SSM); service-quotas stubbed (moto has none for ec2)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from composer.errors import ExitCode, PreflightError
from composer.targets.aws import gc
from composer.targets.aws.preflight import (
    AwsPreflightError,
    preflight,
    quota_code,
)
from composer.targets.aws.session import translate
from tests.conftest import ROOT
from tests.unit.aws_fakes import (
    ACCOUNT,
    REGION,
    FakePlacementGroups,
    StubbedSession,
    aws_env,  # noqa: F401 - fixture
    aws_spec,
    stubbed_client,
)

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

AMAZON_LINUX_2017 = "ami-760aaa0f"  # in moto's image list: amzn-ami-hvm, owner 137112412989
UBUNTU_TRUSTY = "ami-1e749f67"  # ubuntu/images/hvm-ssd/..., owner 099720109477 (Canonical)
RHEL = "ami-bb9a6bc2"  # RHEL-7.4_HVM_GA..., a family composer does not place
STANDARD_ON_DEMAND = "L-1216C47A"


@pytest.fixture
def session(aws_env: None) -> Iterator[Any]:  # noqa: F811
    with moto.mock_aws():
        yield boto3.Session(region_name=REGION)


def quota(session: Any, value: float | None = None, error: str | None = None,
          code: str = STANDARD_ON_DEMAND) -> tuple[StubbedSession, Any]:
    """A session whose service-quotas client answers one get_service_quota for ``code``."""
    made, stub = stubbed_client(session, "service-quotas")
    params = {"ServiceCode": "ec2", "QuotaCode": code}
    if error:
        stub.add_client_error("get_service_quota", service_error_code=error,
                              service_message="not allowed here", expected_params=params)
    else:
        stub.add_response("get_service_quota", {"Quota": {
            "ServiceCode": "ec2", "QuotaCode": code, "Value": value}}, params)
    stub.activate()
    return StubbedSession(session, {"service-quotas": made}), stub


def problems(spec: Any, session: Any) -> list[str]:
    with pytest.raises(AwsPreflightError) as caught:
        preflight(spec, session)
    assert caught.value.exit_code == ExitCode.INVALID_INPUT
    return [str(p) for p in caught.value.problems]


def default_subnet(session: Any, zone: str) -> tuple[str, str]:
    ec2 = session.client("ec2", region_name=REGION)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]},
                                            {"Name": "availability-zone", "Values": [zone]}])
    return subnets["Subnets"][0]["SubnetId"], vpc["VpcId"]


def image_named(session: Any, pattern: str) -> str:
    ec2 = session.client("ec2", region_name=REGION)
    found = ec2.describe_images(Owners=["amazon"],
                                Filters=[{"Name": "name", "Values": [pattern]}])["Images"]
    return sorted(found, key=lambda i: i["Name"])[-1]["ImageId"]


# -- a spec that passes: the pins --------------------------------------------------------


def test_pins_of_a_cpu_spec(session: Any) -> None:
    stubbed, stub = quota(session, 32.0)
    pins = preflight(aws_spec(nodes=2), stubbed)
    subnet, vpc = default_subnet(session, "us-east-1a")
    assert pins == {
        "account_id": ACCOUNT, "region": REGION, "image": AMAZON_LINUX_2017,
        "ami_id": AMAZON_LINUX_2017, "architecture": "x86_64", "login_user": "ec2-user",
        "instance_type": "t3.micro", "zone": "us-east-1a", "subnet": subnet, "vpc_id": vpc,
        "types": {"t3.micro": {"vcpus": 2, "gpus": 0, "gpu_model": None, "memory_mib": 1024,
                               "efa": False}},
        "candidates": pins["candidates"],
        "warnings": [],
    }
    # every offered zone with a default subnet, in order, the chosen one first
    assert pins["candidates"][0] == {"instance_type": "t3.micro", "zone": "us-east-1a",
                                     "subnet": subnet, "vpc_id": vpc}
    zones = [c["zone"] for c in pins["candidates"]]
    assert zones == sorted(zones) and len(zones) > 1
    stub.assert_no_pending_responses()


def test_gpu_types_are_pinned_with_their_gpus(session: Any) -> None:
    stubbed, _ = quota(session, 1000.0, code="L-417A185B")
    spec = aws_spec(nodes=4, gpus_per_node=8, instance_types=("p4d.24xlarge", "p5.48xlarge"),
                    efa=True, placement="cluster")
    pins = preflight(spec, stubbed)
    assert pins["instance_type"] == "p4d.24xlarge"
    assert pins["types"]["p4d.24xlarge"]["gpus"] == 8
    assert pins["types"]["p4d.24xlarge"]["gpu_model"] == "NVIDIA A100"
    assert pins["types"]["p5.48xlarge"]["efa"] is True
    assert pins["warnings"] == []


def test_the_first_type_wins_over_the_first_zone(session: Any) -> None:
    # t3.micro is not offered in us-east-1e, m4.large is: the preferred type is kept.
    spec = aws_spec(instance_types=("t3.micro", "m4.large"), zones=("us-east-1e", "us-east-1b"))
    pins = preflight(spec, quota(session, 32.0)[0])
    assert (pins["instance_type"], pins["zone"]) == ("t3.micro", "us-east-1b")
    assert pins["subnet"] == default_subnet(session, "us-east-1b")[0]


# -- credentials, boto3, region -----------------------------------------------------------


def test_no_credentials_names_the_variables(aws_env: None,  # noqa: F811
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    with pytest.raises(PreflightError) as caught:
        preflight(aws_spec())  # no moto: the request is never signed, nothing is sent
    assert caught.value.exit_code == ExitCode.INVALID_INPUT
    assert "no usable AWS credentials" in caught.value.message
    assert "AWS_PROFILE" in caught.value.hint
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in caught.value.hint


def test_an_unknown_profile_is_a_credentials_error(aws_env: None,  # noqa: F811
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nosuchprofile")
    with pytest.raises(PreflightError) as caught:
        preflight(aws_spec())
    assert "nosuchprofile" in caught.value.message
    assert "AWS_PROFILE" in caught.value.hint


def test_boto3_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(PreflightError) as caught:
        preflight(aws_spec())
    assert "pip install 'composer-runs[aws]'" in caught.value.hint


def test_an_aws_error_is_one_line_with_service_and_operation(session: Any) -> None:
    sts, stub = stubbed_client(session, "sts")
    stub.add_client_error("get_caller_identity", service_error_code="AccessDenied",
                          service_message="User is not authorized")
    stub.activate()
    with pytest.raises(PreflightError) as caught:
        preflight(aws_spec(), StubbedSession(session, {"sts": sts}))
    assert caught.value.message == \
        "AWS sts GetCallerIdentity failed: AccessDenied: User is not authorized"


def test_connection_errors_become_composer_errors() -> None:
    from botocore.exceptions import EndpointConnectionError

    error = translate(EndpointConnectionError(endpoint_url="http://127.0.0.1:1/"),
                      "ec2", "DescribeRegions", PreflightError)
    assert isinstance(error, PreflightError)
    assert error.message.startswith("AWS ec2 DescribeRegions failed: Could not connect")


@pytest.mark.parametrize(("region", "message"), [
    ("xx-nowhere-1", "aws.region: unknown region 'xx-nowhere-1'"),
    ("us-east-7", "aws.region: unknown region 'us-east-7'; did you mean 'us-east-2'?"),
])
def test_unknown_region(session: Any, region: str, message: str) -> None:
    with pytest.raises(PreflightError) as caught:
        preflight(aws_spec(region=region), session)
    assert caught.value.message == message


def test_a_region_not_enabled_for_the_account(session: Any) -> None:
    with pytest.raises(PreflightError) as caught:
        preflight(aws_spec(region="ap-east-1"), session)
    assert caught.value.message == \
        "aws.region: region 'ap-east-1' is not enabled for this account"


def test_sts_refusing_a_disabled_region_is_asked_again_in_us_east_1(session: Any) -> None:
    sts, stub = stubbed_client(session, "sts")
    stub.add_client_error("get_caller_identity", service_error_code="InvalidClientTokenId",
                          service_message="The security token included in the request is "
                                          "invalid", http_status_code=403)
    stub.add_response("get_caller_identity", {"Account": ACCOUNT, "UserId": "x",
                                              "Arn": f"arn:aws:iam::{ACCOUNT}:user/x"})
    stub.activate()
    with pytest.raises(PreflightError) as caught:
        preflight(aws_spec(region="ap-east-1"), StubbedSession(session, {"sts": sts}))
    assert caught.value.message.startswith("aws.region: region 'ap-east-1' is not enabled")
    stub.assert_no_pending_responses()


# -- instance types and zones -------------------------------------------------------------


def test_unknown_type(session: Any) -> None:
    assert problems(aws_spec(instance_types=("t3.micro", "t3.gigantic")), session) == [
        "aws.instance_types[1]: unknown instance type 't3.gigantic' in us-east-1"]


def test_type_not_offered_in_the_given_zone(session: Any) -> None:
    found = problems(aws_spec(instance_types=("t3.micro",), zones=("us-east-1e",)), session)
    assert found == ["aws.instance_types[0]: t3.micro is not offered in zone us-east-1e; it is "
                     "offered in us-east-1a, us-east-1b, us-east-1c, us-east-1d, us-east-1f"]


def test_unknown_zone(session: Any) -> None:
    found = problems(aws_spec(zones=("us-east-1a", "us-west-2a")), session)
    assert found == ["aws.zones[1]: 'us-west-2a' is not an availability zone of us-east-1"]


def test_gpu_mismatch_message(session: Any) -> None:
    with pytest.raises(AwsPreflightError) as caught:
        preflight(aws_spec(gpus_per_node=4, instance_types=("g5.xlarge",)), session)
    assert caught.value.message == "aws.instance_types[0]: g5.xlarge has 1 GPU; gpus_per_node = 4"
    assert "cluster.gpus_per_node" in caught.value.hint


def test_every_fallback_type_is_checked_for_gpus(session: Any) -> None:
    spec = aws_spec(gpus_per_node=4, instance_types=("g5.12xlarge", "g5.xlarge", "t3.micro"))
    assert problems(spec, session) == [
        "aws.instance_types[1]: g5.xlarge has 1 GPU; gpus_per_node = 4",
        "aws.instance_types[2]: t3.micro has 0 GPUs; gpus_per_node = 4",
    ]


def test_efa_unsupported(session: Any) -> None:
    spec = aws_spec(gpus_per_node=1, efa=True, instance_types=("g4dn.xlarge",))
    assert problems(spec, session) == [
        "aws.instance_types[0]: g4dn.xlarge does not support EFA; efa = true"]


def test_all_problems_come_at_once(session: Any) -> None:
    spec = aws_spec(gpus_per_node=2, efa=True, image="ami-0000000000000dead",
                    instance_types=("g5.xlarge", "nope.large"))
    with pytest.raises(AwsPreflightError) as caught:
        preflight(spec, session)
    assert caught.value.message.splitlines() == [
        "aws preflight: 4 problems",
        "  aws.instance_types[1]: unknown instance type 'nope.large' in us-east-1",
        "  aws.instance_types[0]: g5.xlarge has 1 GPU; gpus_per_node = 2",
        "  aws.instance_types[0]: g5.xlarge does not support EFA; efa = true",
        "  aws.image: image ami-0000000000000dead not found in us-east-1",
    ]


# -- image and login user -----------------------------------------------------------------


def test_arm64_image_on_an_x86_type(session: Any) -> None:
    arm = image_named(session, "al2023-ami-2023*-arm64")
    found = problems(aws_spec(image=arm), session)
    assert len(found) == 1
    assert found[0].startswith(f"aws.image: {arm} (al2023-ami-")
    assert found[0].endswith("is arm64; aws.instance_types[0] t3.micro runs x86_64")


def test_arm64_image_on_a_graviton_type(session: Any) -> None:
    arm = image_named(session, "al2023-ami-2023*-arm64")
    pins = preflight(aws_spec(image=arm, instance_types=("m7g.large",)), quota(session, 8.0)[0])
    assert (pins["architecture"], pins["login_user"]) == ("arm64", "ec2-user")


def test_ssm_alias_is_resolved_and_pinned(session: Any) -> None:
    path = "/composer-test/canonical/ubuntu/server/14.04/stable/current/amd64/ami-id"
    session.client("ssm", region_name=REGION).put_parameter(
        Name=path, Value=UBUNTU_TRUSTY, Type="String", DataType="aws:ec2:image")
    pins = preflight(aws_spec(image=f"ssm:{path}"), quota(session, 32.0)[0])
    assert pins["image"] == f"ssm:{path}"
    assert pins["ami_id"] == UBUNTU_TRUSTY
    assert pins["login_user"] == "ubuntu"


def test_ssh_user_is_required_when_the_family_is_unknown(session: Any) -> None:
    found = problems(aws_spec(image=RHEL), session)
    assert len(found) == 1
    assert found[0].startswith(f"aws.ssh_user: required for image {RHEL} ('RHEL-7.4")


def test_a_written_ssh_user_wins(session: Any) -> None:
    pins = preflight(aws_spec(image=RHEL, ssh_user="ec2-user"), quota(session, 32.0)[0])
    assert pins["login_user"] == "ec2-user"
    pins = preflight(aws_spec(ssh_user="admin"), quota(session, 32.0)[0])
    assert pins["login_user"] == "admin"


# -- subnets ------------------------------------------------------------------------------


def delete_default_vpc(session: Any) -> None:
    ec2 = session.client("ec2", region_name=REGION)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    vpc_id = vpc["VpcId"]
    for subnet in ec2.describe_subnets(
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]:
        ec2.delete_subnet(SubnetId=subnet["SubnetId"])
    for igw in ec2.describe_internet_gateways(
            Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])["InternetGateways"]:
        ec2.detach_internet_gateway(InternetGatewayId=igw["InternetGatewayId"], VpcId=vpc_id)
        ec2.delete_internet_gateway(InternetGatewayId=igw["InternetGatewayId"])
    ec2.delete_vpc(VpcId=vpc_id)


def test_no_default_vpc(session: Any) -> None:
    delete_default_vpc(session)
    with pytest.raises(AwsPreflightError) as caught:
        preflight(aws_spec(), session)
    assert caught.value.message == \
        "aws.subnet_id: not set, and us-east-1 has no default VPC to take a subnet from"
    assert "aws ec2 create-default-vpc --region us-east-1" in caught.value.hint


def test_a_given_subnet_fixes_the_zone(session: Any) -> None:
    delete_default_vpc(session)
    ec2 = session.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24",
                               AvailabilityZone="us-east-1c")["Subnet"]["SubnetId"]
    pins = preflight(aws_spec(subnet_id=subnet), quota(session, 32.0)[0])
    assert (pins["zone"], pins["subnet"], pins["vpc_id"]) == ("us-east-1c", subnet, vpc)


def test_a_given_subnet_in_a_zone_without_the_type(session: Any) -> None:
    subnet = default_subnet(session, "us-east-1e")[0]
    assert problems(aws_spec(subnet_id=subnet), session) == [
        f"aws.subnet_id: {subnet} is in us-east-1e, where none of t3.micro is offered"]


def test_an_unknown_subnet(session: Any) -> None:
    assert problems(aws_spec(subnet_id="subnet-0123456789abcdef0"), session) == [
        "aws.subnet_id: subnet 'subnet-0123456789abcdef0' not found in us-east-1"]


# -- quotas -------------------------------------------------------------------------------


def test_quota_short_is_an_error(session: Any) -> None:
    stubbed, stub = quota(session, 32.0)
    with pytest.raises(AwsPreflightError) as caught:
        preflight(aws_spec(nodes=20), stubbed)
    assert caught.value.message == (
        "cluster.nodes: 20 × t3.micro (aws.instance_types[0]) need 40 vCPUs; the on-demand "
        "Standard (A, C, D, H, I, M, R, T, Z) vCPU quota (L-1216C47A) in us-east-1 is 32")
    assert "--quota-code L-1216C47A --desired-value 40" in caught.value.hint
    stub.assert_no_pending_responses()


def test_spot_uses_the_spot_quota(session: Any) -> None:
    stubbed, stub = quota(session, 64.0, code="L-3819A6DF")
    spec = aws_spec(nodes=4, gpus_per_node=4, market="spot", instance_types=("g5.12xlarge",))
    with pytest.raises(AwsPreflightError) as caught:
        preflight(spec, stubbed)
    assert "need 192 vCPUs; the spot G and VT vCPU quota (L-3819A6DF)" in caught.value.message
    stub.assert_no_pending_responses()


@pytest.mark.parametrize("code", ["AccessDeniedException", "NoSuchResourceException"])
def test_an_unreadable_quota_is_a_warning(session: Any, code: str) -> None:
    stubbed, stub = quota(session, error=code)
    pins = preflight(aws_spec(nodes=2), stubbed)
    assert len(pins["warnings"]) == 1
    assert pins["warnings"][0].startswith(
        f"could not read the vCPU quota L-1216C47A in us-east-1 ({code}: not allowed here)")
    assert pins["warnings"][0].endswith("make sure it covers 4 vCPUs")
    stub.assert_no_pending_responses()


def test_a_failing_quotas_client_is_a_warning(session: Any) -> None:
    class NoQuotas(StubbedSession):
        def client(self, service: str, *args: Any, **kwargs: Any) -> Any:
            if service == "service-quotas":
                from botocore.exceptions import UnknownServiceError

                raise UnknownServiceError(service_name=service, known_service_names=[])
            return super().client(service, *args, **kwargs)

    pins = preflight(aws_spec(), NoQuotas(session, {}))
    assert pins["warnings"][0].startswith("could not read the vCPU quota L-1216C47A")


@pytest.mark.parametrize(("instance_type", "market", "expected"), [
    ("t3.micro", "on-demand", ("Standard (A, C, D, H, I, M, R, T, Z)", "L-1216C47A")),
    ("g5.xlarge", "on-demand", ("G and VT", "L-DB2E81BA")),
    ("gr6.4xlarge", "spot", ("G and VT", "L-3819A6DF")),
    ("vt1.3xlarge", "on-demand", ("G and VT", "L-DB2E81BA")),
    ("p4d.24xlarge", "spot", ("P", "L-7212CCBC")),
    ("p5.48xlarge", "on-demand", ("P", "L-417A185B")),
    ("inf2.xlarge", "on-demand", ("Inf", "L-1945791B")),
    ("trn1.32xlarge", "spot", ("Trn", "L-6B0D517C")),
    ("dl1.24xlarge", "on-demand", ("DL", "L-6E869C2A")),
    ("hpc7g.16xlarge", "on-demand", ("HPC", "L-F7808C92")),
    ("x2idn.16xlarge", "on-demand", ("X", "L-7295265B")),
    ("f1.2xlarge", "spot", ("F", "L-88CF9481")),
    ("im4gn.large", "on-demand", ("Standard (A, C, D, H, I, M, R, T, Z)", "L-1216C47A")),
    ("hpc7g.16xlarge", "spot", None),
    ("u-6tb1.metal", "on-demand", None),
    ("mac2.metal", "on-demand", None),
])
def test_quota_codes(instance_type: str, market: str, expected: Any) -> None:
    assert quota_code(instance_type, market) == expected



# -- the documented IAM policy covers every call ------------------------------------------


def policy_actions() -> set[str]:
    text = (ROOT / "docs" / "targets" / "aws.md").read_text()
    block = text.split("## IAM policy", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    actions: set[str] = set()
    for statement in json.loads(block)["Statement"]:
        action = statement["Action"]
        actions.update([action] if isinstance(action, str) else action)
    return actions


def test_every_call_of_preflight_and_gc_is_in_the_iam_policy(session: Any) -> None:
    calls: set[str] = set()

    def record(model: Any, **_: Any) -> None:
        calls.add(f"{model.service_model.signing_name}:{model.name}")

    session.events.register("before-parameter-build", record)
    pgs = FakePlacementGroups(session, [{"GroupName": "composer-r1", "GroupId": "pg-01",
                                         "Tags": [{"Key": gc.RUN_TAG, "Value": "r1"}]}])
    alias = "ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    preflight(aws_spec(image=alias), quota(session, 32.0)[0])
    ec2 = session.client("ec2", region_name=REGION)
    tag = [{"ResourceType": kind, "Tags": [{"Key": gc.RUN_TAG, "Value": "r1"}]}
           for kind in ("instance", "security-group")]
    ec2.run_instances(ImageId=AMAZON_LINUX_2017, InstanceType="t3.micro", MinCount=1,
                      MaxCount=1, TagSpecifications=tag[:1])
    ec2.create_security_group(GroupName="composer-r1", Description="x", TagSpecifications=tag[1:])
    found = gc.scan(session, REGION, set(), datetime.now(UTC))
    assert {i["kind"] for i in found} == {"instance", "security-group", "placement-group"}
    assert all(i["removed"] for i in gc.remove(session, found, timeout=30))
    assert pgs.calls[-1] == "DeletePlacementGroup composer-r1"
    made_by_test = {"ec2:RunInstances", "ec2:CreateSecurityGroup"}
    assert (calls - made_by_test) - policy_actions() == set()
    assert {"sts:GetCallerIdentity", "ssm:GetParameter", "servicequotas:GetServiceQuota",
            "ec2:TerminateInstances", "ec2:DeletePlacementGroup"} <= calls
