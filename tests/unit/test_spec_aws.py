"""The ``[aws]`` section: every rule, every problem at once with its dotted path, defaults,
the expanded form, and how the section is tied to ``cluster.target``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from composer.errors import SpecError
from composer.spec import LimitsSpec, expanded, parse_spec
from composer.targets import TARGETS
from composer.targets.aws.config import AwsSpec
from composer.targets.aws.spec import AWS

from .test_spec import make_job_dir, toml_dumps

DELETE = object()


def aws_doc(**aws: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "region": "us-east-1",
        "instance_types": ["g5.12xlarge"],
        "image": "ami-0123456789abcdef0",
        "ssh_cidrs": ["203.0.113.7/32"],
    }
    for key, value in aws.items():
        if value is DELETE:
            del section[key]
        else:
            section[key] = value
    return {
        "job": {"name": "aws-job"},
        "cluster": {"target": "aws", "nodes": 2, "gpus_per_node": 4},
        "run": {"launcher": "mpi", "command": ["python", "train.py"]},
        "aws": section,
    }


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    return make_job_dir(tmp_path / "job")


def parse(job_dir: Path, doc: dict[str, Any]) -> Any:
    return parse_spec(toml_dumps(doc), job_dir / "job.toml")


def problems(job_dir: Path, doc: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse(job_dir, doc)
    return [str(p) for p in info.value.problems]


def test_minimal_aws_spec_gets_every_default(job_dir: Path) -> None:
    doc = aws_doc()
    doc["cluster"]["nodes"] = 1
    spec = parse(job_dir, doc)
    assert spec.target_config == AwsSpec(
        region="us-east-1", instance_types=("g5.12xlarge",), image="ami-0123456789abcdef0",
        ssh_cidrs=("203.0.113.7/32",), zones=(), ssh_user=None, market="on-demand",
        max_spot_price=None, placement="none", efa=False, root_volume_gb=100, subnet_id=None,
        tags=(),
    )
    assert spec.limits == LimitsSpec(24 * 3600.0, defaulted=True)
    assert expanded(spec)["aws"] == {
        "efa": False, "image": "ami-0123456789abcdef0", "instance_types": ["g5.12xlarge"],
        "market": "on-demand", "max_spot_price": None, "placement": "none",
        "region": "us-east-1", "root_volume_gb": 100, "ssh_cidrs": ["203.0.113.7/32"],
        "ssh_user": None, "subnet_id": None, "tags": {}, "zones": [],
    }


def test_full_aws_spec(job_dir: Path) -> None:
    doc = aws_doc(
        zones=["us-east-1b", "us-east-1a", "us-east-1-bos-1a"],
        instance_types=["p4d.24xlarge", "p5.48xlarge", "m7i.metal-24xl", "u-6tb1.metal"],
        image="ssm:/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04"
              "/latest/ami-id",
        ssh_user="ubuntu", market="spot", max_spot_price=32.5, placement="cluster", efa=True,
        root_volume_gb=16384, subnet_id="subnet-0123456789abcdef0",
        ssh_cidrs=["0.0.0.0/0", "2001:db8::/32", "10.0.0.0/8"],
        tags={"team": "ml", "cost-center": "42", "Name": ""},
    )
    doc["cluster"]["nodes"] = 16
    doc["limits"] = {"max_duration": "none"}
    spec = parse(job_dir, doc)
    config = spec.target_config
    assert config.zones == ("us-east-1b", "us-east-1a", "us-east-1-bos-1a")
    assert config.max_spot_price == "32.5"
    assert config.efa is True and config.placement == "cluster"
    assert config.ssh_cidrs == ("0.0.0.0/0", "2001:db8::/32", "10.0.0.0/8")
    assert config.tags == (("Name", ""), ("cost-center", "42"), ("team", "ml"))
    assert spec.limits == LimitsSpec(None, defaulted=False)
    data = expanded(spec)
    assert json.loads(json.dumps(data)) == data
    assert list(data["aws"]) == sorted(data["aws"])
    assert data["aws"]["tags"] == {"Name": "", "cost-center": "42", "team": "ml"}


@pytest.mark.parametrize(
    ("nodes", "placement", "expected"),
    [(1, DELETE, "none"), (2, DELETE, "cluster"), (1000, DELETE, "cluster"),
     (1, "cluster", "cluster"), (8, "none", "none")],
)
def test_placement_default_follows_nodes(
    job_dir: Path, nodes: int, placement: Any, expected: str
) -> None:
    doc = aws_doc(placement=placement) if placement is not DELETE else aws_doc()
    doc["cluster"]["nodes"] = nodes
    assert parse(job_dir, doc).target_config.placement == expected


@pytest.mark.parametrize(
    ("value", "stored"),
    [("1.25", "1.25"), ("0.001", "0.001"), ("10", "10"), (2, "2"), (0.5, "0.5"),
     (1e-5, "0.00001"), (1.25, "1.25")],
)
def test_spot_price_is_stored_as_text(job_dir: Path, value: Any, stored: str) -> None:
    spec = parse(job_dir, aws_doc(market="spot", max_spot_price=value))
    assert spec.target_config.max_spot_price == stored


@pytest.mark.parametrize(
    "image", ["ami-01234567", "ami-0123456789abcdef0",
              "ssm:/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3"
              "/ami-id", "ssm:/my/team/images/train_v2.1"],
)
def test_images_accepted(job_dir: Path, image: str) -> None:
    assert parse(job_dir, aws_doc(image=image)).target_config.image == image


AWS_CASES = [
    ("region", DELETE, "aws.region: required"),
    ("region", "US-EAST-1", 'aws.region: must be an AWS region name such as "us-east-1", got'),
    ("region", "us-east", 'aws.region: must be an AWS region name such as "us-east-1"'),
    ("region", 1, "aws.region: must be a string, got integer 1"),
    ("region", "", "aws.region: must not be empty"),
    ("zones", "us-east-1a", 'aws.zones: must be an array of zone names, got string "us-east-1a"'),
    ("zones", [], "aws.zones: must not be empty"),
    ("zones", ["eu-west-1a"], 'aws.zones[0]: zone "eu-west-1a" is not in aws.region "us-east-1"'),
    ("zones", ["us-east-11a"], 'aws.zones[0]: zone "us-east-11a" is not in aws.region'),
    ("zones", ["us-east-1"], 'aws.zones[0]: must be a zone name such as "us-east-1a"'),
    ("zones", ["us-east-1a", "us-east-1a"],
     'aws.zones[1]: "us-east-1a" is also listed at aws.zones[0]'),
    ("zones", [1], "aws.zones[0]: must be a string, got integer 1"),
    ("instance_types", DELETE, "aws.instance_types: required"),
    ("instance_types", "g5.xlarge",
     'aws.instance_types: must be an array of instance types, got string "g5.xlarge"'),
    ("instance_types", [], "aws.instance_types: must not be empty"),
    ("instance_types", ["g5"], 'aws.instance_types[0]: must be an instance type such as '
                               '"g5.12xlarge" (family.size), got "g5"'),
    ("instance_types", ["G5.XLarge"], 'aws.instance_types[0]: must be an instance type such as '
     '"g5.12xlarge" (family.size), got "G5.XLarge"; did you mean "g5.xlarge"?'),
    ("instance_types", ["g5.xlarge", "g5.xlarge"],
     'aws.instance_types[1]: "g5.xlarge" is also listed at aws.instance_types[0]'),
    ("instance_types", [""], "aws.instance_types[0]: must not be empty"),
    ("image", DELETE, "aws.image: required"),
    ("image", "ami-123", 'aws.image: an AMI id is "ami-" and 8 or 17 lowercase hex digits'),
    ("image", "ami-0123456789ABCDEF0", 'aws.image: an AMI id is "ami-" and 8 or 17'),
    ("image", "ssm:aws/service/x", 'aws.image: an SSM parameter is "ssm:" and its path, which '
                                   'starts with "/"'),
    ("image", "resolve:ssm:/aws/x", 'aws.image: an SSM parameter is "ssm:" and its path'),
    ("image", "ubuntu-24.04", 'aws.image: must be an AMI id ("ami-0123456789abcdef0") or "ssm:" '
                              "and a parameter path"),
    ("image", ["ami-01234567"], "aws.image: must be a string, got array"),
    ("ssh_user", "Ubuntu", "aws.ssh_user: must be a Unix user name"),
    ("ssh_user", "1user", "aws.ssh_user: must be a Unix user name"),
    ("ssh_user", "a" * 33, "aws.ssh_user: must be a Unix user name"),
    ("ssh_user", "ec2 user", "aws.ssh_user: must be a Unix user name"),
    ("market", "reserved", "aws.market: must be one of 'on-demand', 'spot', got \"reserved\""),
    ("market", "spto", "aws.market: must be one of 'on-demand', 'spot', got \"spto\"; did you "
                       "mean 'spot'?"),
    ("max_spot_price", "1.5", 'aws.max_spot_price: applies only with market = "spot" '
                              '(aws.market is "on-demand"); set aws.market = "spot" or remove it'),
    ("placement", "spread", "aws.placement: must be one of 'cluster', 'none', got \"spread\""),
    ("placement", True, "aws.placement: must be a string, got boolean true"),
    ("efa", "yes", 'aws.efa: must be a boolean (true or false), got string "yes"'),
    ("root_volume_gb", 7, "aws.root_volume_gb: must be at least 8, got 7"),
    ("root_volume_gb", 16385, "aws.root_volume_gb: must be at most 16384, got 16385"),
    ("root_volume_gb", "100", 'aws.root_volume_gb: must be an integer, got string "100"'),
    ("root_volume_gb", 100.0, "aws.root_volume_gb: must be an integer, got float 100.0"),
    ("subnet_id", "subnet-xyz", 'aws.subnet_id: must be a subnet id: "subnet-" and 8 or 17 hex'),
    ("subnet_id", "sn-01234567", "aws.subnet_id: must be a subnet id"),
    ("ssh_cidrs", DELETE, "aws.ssh_cidrs: required"),
    ("ssh_cidrs", [], "aws.ssh_cidrs: must not be empty"),
    ("ssh_cidrs", "0.0.0.0/0", 'aws.ssh_cidrs: must be an array of CIDR blocks, got string'),
    ("ssh_cidrs", ["203.0.113.7"], "aws.ssh_cidrs[0]: must be a CIDR block with its prefix "
                                   'length, such as "203.0.113.7/32", got "203.0.113.7"'),
    ("ssh_cidrs", ["10.1.2.3/8"],
     'aws.ssh_cidrs[0]: "10.1.2.3/8" has host bits set; did you mean "10.0.0.0/8"?'),
    ("ssh_cidrs", ["2001:db8::1/32"], 'aws.ssh_cidrs[0]: "2001:db8::1/32" has host bits set; '
                                      'did you mean "2001:db8::/32"?'),
    ("ssh_cidrs", ["10.0.0.0/33"], "aws.ssh_cidrs[0]: must be an IPv4 or IPv6 CIDR block"),
    ("ssh_cidrs", ["10.0.0.0/255.0.0.0"], "aws.ssh_cidrs[0]: must be an IPv4 or IPv6 CIDR"),
    ("ssh_cidrs", ["300.1.2.0/24"], "aws.ssh_cidrs[0]: must be an IPv4 or IPv6 CIDR block"),
    ("ssh_cidrs", ["anyone/0"], "aws.ssh_cidrs[0]: must be an IPv4 or IPv6 CIDR block"),
    ("ssh_cidrs", ["10.0.0.0/8", "10.0.0.0/8"],
     'aws.ssh_cidrs[1]: "10.0.0.0/8" is also listed at aws.ssh_cidrs[0]'),
    ("tags", ["team=ml"], 'aws.tags: must be a table of "key" = "value", got array'),
    ("tags", {"aws:owner": "x"}, 'aws.tags."aws:owner": tag keys starting with "aws:" are '
                                 "reserved for AWS"),
    ("tags", {"AWS:owner": "x"}, 'aws.tags."AWS:owner": tag keys starting with "AWS:" are'),
    ("tags", {"composer:run-id": "x"},
     'aws.tags."composer:run-id": tag keys starting with "composer:" are reserved for composer'),
    ("tags", {"k" * 129: "x"}, "aws.tags." + "k" * 129 + ": tag key is 129 characters; AWS "
                               "allows at most 128"),
    ("tags", {"team": "v" * 257}, "aws.tags.team: tag value is 257 characters; AWS allows at "
                                  "most 256"),
    ("tags", {"n": 5}, "aws.tags.n: must be a string; quote it (got integer 5)"),
    ("tags", {"n": {"a": "b"}}, "aws.tags.n: must be a string, got table"),
    ("tags", {"": "x"}, 'aws.tags."": must not be empty'),
    ("tags", {f"t{i}": "x" for i in range(41)}, "aws.tags: has 41 tags; at most 40"),
    ("instance_type", ["g5.xlarge"], "aws.instance_type: unknown key; did you mean "
                                     "'instance_types'?"),
    ("regoin", "us-east-1", "aws.regoin: unknown key; did you mean 'region'?"),
    ("ssh_cidr", ["10.0.0.0/8"], "aws.ssh_cidr: unknown key; did you mean 'ssh_cidrs'?"),
]


@pytest.mark.parametrize(("key", "value", "expected"), AWS_CASES)
def test_aws_field_problem(job_dir: Path, key: str, value: Any, expected: str) -> None:
    found = problems(job_dir, aws_doc(**{key: value}))
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "aws.max_spot_price: must be more than 0, got integer 0"),
     ("0.0", 'aws.max_spot_price: must be more than 0, got string "0.0"'),
     (-1.5, "aws.max_spot_price: must be more than 0, got float -1.5"),
     ("-1", 'aws.max_spot_price: must be a price in USD per instance-hour such as "1.25", got'),
     ("$1", 'aws.max_spot_price: must be a price in USD per instance-hour such as "1.25"'),
     ("1e-3", "aws.max_spot_price: must be a price in USD per instance-hour"),
     (float("inf"), "aws.max_spot_price: must be a price in USD per instance-hour such as "
                    '"1.25", got float inf'),
     (True, 'aws.max_spot_price: must be a price in USD per instance-hour such as "1.25" (a '
            "string or a number), got boolean true")],
)
def test_spot_price_problems(job_dir: Path, value: Any, expected: str) -> None:
    found = problems(job_dir, aws_doc(market="spot", max_spot_price=value))
    assert len(found) == 1 and found[0].startswith(expected), found


def test_many_aws_problems_are_reported_together(job_dir: Path) -> None:
    doc = aws_doc(
        region="us-east-1", zones=["us-west-2a"],
        instance_types=["g5.12xlarge", "g5-xlarge"], image="ubuntu",
        market="spot", max_spot_price="cheap", placement="spreed", efa=1,
        root_volume_gb=0, subnet_id="subnet-1", ssh_cidrs=["1.2.3.4", "::/0"],
        tags={"aws:x": "y"}, instance_type="g5.xlarge",
    )
    doc["cluster"]["nodes"] = 0
    found = problems(job_dir, doc)
    assert [p.split(":")[0] for p in found] == [
        "cluster.nodes", "aws.zones[0]", "aws.instance_types[1]", "aws.image",
        "aws.max_spot_price", "aws.placement", "aws.efa", "aws.root_volume_gb",
        "aws.subnet_id", "aws.ssh_cidrs[0]", 'aws.tags."aws', "aws.instance_type",
    ]
    assert found[-1] == "aws.instance_type: unknown key; did you mean 'instance_types'?"
    with pytest.raises(SpecError) as info:
        parse(job_dir, doc)
    assert "12 problems" in str(info.value)


def test_aws_target_needs_its_section(job_dir: Path) -> None:
    doc = aws_doc()
    del doc["aws"]
    assert problems(job_dir, doc) == [
        "cluster.target: target 'aws' needs an [aws] section; add one "
        "(required keys: region, instance_types, image, ssh_cidrs)"
    ]


def test_empty_aws_section_names_every_required_key(job_dir: Path) -> None:
    doc = aws_doc()
    doc["aws"] = {}
    assert problems(job_dir, doc) == [
        "aws.region: required", "aws.instance_types: required", "aws.image: required",
        "aws.ssh_cidrs: required",
    ]


def test_aws_section_for_another_target_names_the_fix(job_dir: Path) -> None:
    doc = aws_doc()
    doc["cluster"]["target"] = "local"
    assert problems(job_dir, doc) == [
        "aws: is the section of target 'aws', but cluster.target is 'local': "
        'set cluster.target = "aws" or remove [aws]'
    ]


def test_aws_section_is_checked_when_the_target_is_wrong(job_dir: Path) -> None:
    doc = aws_doc(region="nowhere")
    doc["cluster"]["target"] = "amazon"
    paths = [p.split(":")[0] for p in problems(job_dir, doc)]
    assert paths == ["cluster.target", "aws.region"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, "aws: must be a table, got integer 5"), ("us-east-1", 'aws: must be a table, got string')],
)
def test_aws_section_must_be_a_table(job_dir: Path, value: Any, expected: str) -> None:
    doc = aws_doc()
    doc["aws"] = value
    found = problems(job_dir, doc)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_misspelled_section_suggests_aws(job_dir: Path) -> None:
    doc = aws_doc()
    doc["asw"] = doc.pop("aws")
    assert problems(job_dir, doc) == [
        "cluster.target: target 'aws' needs an [aws] section; add one "
        "(required keys: region, instance_types, image, ssh_cidrs)",
        "asw: unknown key; did you mean 'aws'?",
    ]


def test_local_specs_have_no_target_config(job_dir: Path) -> None:
    doc = aws_doc()
    doc["cluster"]["target"] = "local"
    del doc["aws"]
    spec = parse(job_dir, doc)
    assert spec.target_config is None
    assert "aws" not in expanded(spec)


def test_registry_gives_the_section_and_the_node_limit() -> None:
    aws = TARGETS["aws"]
    assert aws.section is AWS and aws.section.target == "aws"
    assert aws.max_nodes == 1000 and TARGETS["local"].max_nodes == 256
    assert aws.modules == ("aws-cluster",)
    assert TARGETS["local"].section is None
    assert AWS.required_keys == ("region", "instance_types", "image", "ssh_cidrs")


aws_values = st.recursive(
    st.one_of(st.booleans(), st.integers(-10, 10**5), st.floats(), st.text(max_size=20),
              st.sampled_from(["us-east-1", "us-east-1a", "g5.xlarge", "ami-01234567",
                               "ssm:/a/b", "spot", "cluster", "10.0.0.0/8", "::/0", "aws:x"])),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from([*AWS.keys, "instance_type", "x"]), aws_values,
                               max_size=5),
       target=st.sampled_from(["aws", "local", "gcp", "mars"]))
def test_random_aws_sections_give_spec_or_spec_error(
    tmp_path_factory: pytest.TempPathFactory, changes: dict[str, Any], target: str
) -> None:
    job_dir = make_job_dir(tmp_path_factory.mktemp("aws"))
    doc = copy.deepcopy(aws_doc())
    doc["aws"].update(changes)
    doc["cluster"]["target"] = target
    try:
        spec = parse(job_dir, doc)
    except SpecError as error:
        assert error.problems and all(p.path for p in error.problems)
        return
    assert target == "aws" and isinstance(spec.target_config, AwsSpec)
    json.dumps(expanded(spec))


@pytest.mark.parametrize(("cidr", "said"), [
    ("0.0.0.0/00", 'write "0.0.0.0/00" as "0.0.0.0/0"'),
    ("2001:DB8::/32", 'write "2001:DB8::/32" as "2001:db8::/32"'),
    ("0::/0", 'write "0::/0" as "::/0"'),
    ("::ffff:0.0.0.0/96", '"::ffff:0.0.0.0/96" is IPv4 written as IPv6; write the IPv4 block '
                          '("0.0.0.0/0")'),
    ("::ffff:203.0.113.0/120", 'is IPv4 written as IPv6; write the IPv4 block ("203.0.113.0/24")'),
])
def test_ssh_cidrs_are_written_one_way_per_block(job_dir: Path, cidr: str, said: str) -> None:
    found = problems(job_dir, aws_doc(ssh_cidrs=[cidr]))
    assert any(p.startswith("aws.ssh_cidrs[0]") and said in p for p in found), found
