"""``composer gc`` for AWS: instances and security groups in moto; placement groups,
which moto does not implement, through a botocore hook or botocore's Stubber."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from composer.targets.aws import gc
from tests.unit.aws_fakes import (
    REGION,
    FakePlacementGroups,
    StubbedSession,
    aws_env,  # noqa: F401 - fixture
    stubbed_client,
)

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

NOW = datetime(2030, 1, 2, 12, 0, tzinfo=UTC)
PAST = "2030-01-02T11:00:00Z"
FUTURE = "2030-01-03T00:00:00Z"
AMI = "ami-760aaa0f"


def tags(run_id: str | None, expires: str = "none", **extra: str) -> list[dict[str, str]]:
    found = {gc.RUN_TAG: run_id, gc.JOB_TAG: "demo", gc.EXPIRES_TAG: expires} if run_id else {}
    found.update(extra)
    return [{"Key": k, "Value": v} for k, v in found.items()]


@pytest.fixture
def session(aws_env: None) -> Iterator[Any]:  # noqa: F811
    with moto.mock_aws():
        yield boto3.Session(region_name=REGION)


def launch(ec2: Any, tag_list: list[dict[str, str]]) -> str:
    spec = [{"ResourceType": "instance", "Tags": tag_list}] if tag_list else []
    answer = ec2.run_instances(ImageId=AMI, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                               TagSpecifications=spec)
    return str(answer["Instances"][0]["InstanceId"])


def group(ec2: Any, name: str, tag_list: list[dict[str, str]]) -> str:
    spec = [{"ResourceType": "security-group", "Tags": tag_list}] if tag_list else []
    return str(ec2.create_security_group(GroupName=name, Description=name,
                                         TagSpecifications=spec)["GroupId"])


@pytest.fixture
def world(session: Any) -> dict[str, Any]:
    """Tagged and untagged resources of live, dead and expired runs."""
    ec2 = session.client("ec2", region_name=REGION)
    ids = {
        "dead": launch(ec2, tags("dead1")),
        "live": launch(ec2, tags("live1", FUTURE)),
        "expired": launch(ec2, tags("live2", PAST)),
        "untagged": launch(ec2, []),
        "job-only": launch(ec2, [{"Key": gc.JOB_TAG, "Value": "demo"}]),
        "finished": launch(ec2, tags("dead2")),
        "sg-dead": group(ec2, "composer-dead1", tags("dead1")),
        "sg-live": group(ec2, "composer-live1", tags("live1")),
        "sg-untagged": group(ec2, "someone-elses", [{"Key": "Name", "Value": "x"}]),
    }
    ec2.terminate_instances(InstanceIds=[ids["finished"]])
    pgs = FakePlacementGroups(session, [
        {"GroupName": "composer-dead1", "GroupId": "pg-0dead", "State": "available",
         "Strategy": "cluster", "Tags": tags("dead1")},
        {"GroupName": "untagged-pg", "GroupId": "pg-0other", "State": "available",
         "Strategy": "cluster", "Tags": []},  # an API that ignored the tag filter
    ])
    return {"ec2": ec2, "ids": ids, "pgs": pgs}


def test_scan_lists_only_tagged_resources_of_dead_or_expired_runs(
        session: Any, world: dict[str, Any]) -> None:
    ids = world["ids"]
    found = gc.scan(session, REGION, {"live1", "live2"}, NOW)
    assert [(i["kind"], i["id"], i["run_id"], i["reason"]) for i in found] == [
        ("instance", ids["dead"], "dead1", "run dead1 has no live composer process here"),
        ("instance", ids["expired"], "live2", f"expired at {PAST}"),
        ("security-group", ids["sg-dead"], "dead1", "run dead1 has no live composer process here"),
        ("placement-group", "pg-0dead", "dead1", "run dead1 has no live composer process here"),
    ]
    assert found[0] == {"kind": "instance", "id": ids["dead"], "name": "", "region": REGION,
                        "run_id": "dead1", "job": "demo", "expires_at": "none",
                        "state": "running", "reason": found[0]["reason"], "expired": False}
    assert [i["expired"] for i in found] == [False, True, False, False]


def test_both_reasons_are_given(session: Any, world: dict[str, Any]) -> None:
    found = gc.scan(session, REGION, set(), NOW)
    expired = [i for i in found if i["id"] == world["ids"]["expired"]]
    assert expired[0]["reason"] == \
        f"expired at {PAST}; run live2 has no live composer process here"


def test_remove_deletes_instances_first_and_leaves_the_rest(
        session: Any, world: dict[str, Any]) -> None:
    ec2, ids, pgs = world["ec2"], world["ids"], world["pgs"]
    found = gc.scan(session, REGION, {"live1", "live2"}, NOW)
    removed = gc.remove(session, found, timeout=30)
    assert [(i["id"], i["removed"], i["error"]) for i in removed] == \
        [(i["id"], True, None) for i in found]
    assert pgs.calls == ["TerminateInstances", "DeleteSecurityGroup",
                         "DeletePlacementGroup composer-dead1"]
    states = {i["InstanceId"]: i["State"]["Name"]
              for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    assert states[ids["dead"]] == states[ids["expired"]] == "terminated"
    assert {states[ids[k]] for k in ("live", "untagged", "job-only")} == {"running"}
    groups = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    assert ids["sg-dead"] not in groups
    assert {ids["sg-live"], ids["sg-untagged"]} <= groups
    assert [g["GroupName"] for g in pgs.groups] == ["untagged-pg"]
    assert gc.scan(session, REGION, {"live1", "live2"}, NOW) == []


def test_remove_leaves_a_resource_that_lost_its_tag(session: Any, world: dict[str, Any]) -> None:
    ec2, ids = world["ec2"], world["ids"]
    found = [i for i in gc.scan(session, REGION, {"live1", "live2"}, NOW)
             if i["id"] == ids["dead"]]
    ec2.delete_tags(Resources=[ids["dead"]], Tags=[{"Key": gc.RUN_TAG}])
    (result,) = gc.remove(session, found, timeout=30)
    assert (result["removed"], result["error"]) == (False, gc.LEFT_ALONE)
    instance = ec2.describe_instances(InstanceIds=[ids["dead"]])["Reservations"][0]
    assert instance["Instances"][0]["State"]["Name"] == "running"


def test_an_item_of_another_run_is_not_removed(session: Any, world: dict[str, Any]) -> None:
    ec2, ids = world["ec2"], world["ids"]
    forged = {"kind": "instance", "id": ids["live"], "name": "", "region": REGION,
              "run_id": "dead1", "job": None, "expires_at": None, "state": "running"}
    (result,) = gc.remove(session, [forged], timeout=30)
    assert result["removed"] is False
    instance = ec2.describe_instances(InstanceIds=[ids["live"]])["Reservations"][0]
    assert instance["Instances"][0]["State"]["Name"] == "running"


def test_leftovers_of_one_run(session: Any, world: dict[str, Any]) -> None:
    ids = world["ids"]
    found = gc.leftovers_of(session, REGION, "dead1")
    assert [(i["kind"], i["id"]) for i in found] == [
        ("instance", ids["dead"]), ("security-group", ids["sg-dead"]),
        ("placement-group", "pg-0dead")]
    assert gc.leftovers_of(session, REGION, "dead2") == []  # terminated: nothing left


@pytest.mark.parametrize(("text", "expected"), [
    ("none", None), ("", None), (None, None), ("soon", None),
    ("2030-01-02T11:00:00Z", datetime(2030, 1, 2, 11, 0, tzinfo=UTC)),
    ("2030-01-02T13:00:00+02:00", datetime(2030, 1, 2, 11, 0, tzinfo=UTC)),
    ("2030-01-02T11:00:00", datetime(2030, 1, 2, 11, 0, tzinfo=UTC)),
])
def test_expiry(text: str | None, expected: datetime | None) -> None:
    assert gc.expiry(text) == expected


def test_an_unreadable_expiry_does_not_expire() -> None:
    item = {"run_id": "r1", "expires_at": "tomorrow"}
    assert gc.reason(item, {"r1"}, NOW) == ""
    past = (NOW - gc.EXPIRY_GRACE - timedelta(seconds=1)).isoformat()
    assert gc.reason({**item, "expires_at": past}, {"r1"}, NOW).startswith("expired at ")


# -- placement groups through botocore's Stubber ------------------------------------------

TAG_FILTER = [{"Name": "tag-key", "Values": [gc.RUN_TAG]}]
STATES = {"Name": "instance-state-name", "Values": list(gc.PRESENT_STATES)}


def stubbed_ec2(session: Any) -> tuple[StubbedSession, Any]:
    ec2, stub = stubbed_client(session, "ec2")
    return StubbedSession(session, {"ec2": ec2}), stub


def expect_empty_listings(stub: Any) -> None:
    stub.add_response("describe_instances", {"Reservations": []},
                      {"Filters": [*TAG_FILTER, STATES]})
    stub.add_response("describe_launch_templates", {"LaunchTemplates": []},
                      {"Filters": TAG_FILTER})
    stub.add_response("describe_security_groups", {"SecurityGroups": []},
                      {"Filters": TAG_FILTER})


def test_placement_groups_are_checked_for_the_tag_and_deleted(aws_env: None) -> None:  # noqa: F811
    stubbed, stub = stubbed_ec2(boto3.Session(region_name=REGION))
    tagged = {"GroupName": "composer-r1", "GroupId": "pg-01", "State": "available",
              "Strategy": "cluster", "Tags": tags("r1", PAST)}
    untagged = {"GroupName": "hand-made", "GroupId": "pg-02", "State": "available",
                "Strategy": "cluster", "Tags": [{"Key": "Name", "Value": "x"}]}
    expect_empty_listings(stub)
    stub.add_response("describe_placement_groups", {"PlacementGroups": [tagged, untagged]},
                      {"Filters": TAG_FILTER})
    name_filter = [{"Name": "group-name", "Values": ["composer-r1"]}, *TAG_FILTER]
    stub.add_response("describe_placement_groups", {"PlacementGroups": [tagged]},
                      {"Filters": name_filter})
    stub.add_response("delete_placement_group", {}, {"GroupName": "composer-r1"})
    with stub:
        found = gc.scan(stubbed, REGION, {"r1"}, NOW)
        assert [(i["kind"], i["id"], i["name"], i["reason"]) for i in found] == [
            ("placement-group", "pg-01", "composer-r1", f"expired at {PAST}")]
        (result,) = gc.remove(stubbed, found, timeout=5)
        assert (result["removed"], result["error"]) == (True, None)
        stub.assert_no_pending_responses()


def test_a_placement_group_listing_that_fails_is_a_warning(aws_env: None) -> None:  # noqa: F811
    stubbed, stub = stubbed_ec2(boto3.Session(region_name=REGION))
    expect_empty_listings(stub)
    stub.add_client_error("describe_placement_groups", service_error_code="InternalError",
                          service_message="not implemented", http_status_code=400)
    warnings: list[str] = []
    with stub:
        assert gc.scan(stubbed, REGION, set(), NOW, warnings) == []
    assert warnings == ["placement groups in us-east-1 not listed: AWS ec2 "
                        "DescribePlacementGroups failed: InternalError: not implemented"]


def test_a_group_still_in_use_is_retried(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr(gc, "WAIT_DELAY_S", 0.01)
    stubbed, stub = stubbed_ec2(boto3.Session(region_name=REGION))
    item = {"kind": "security-group", "id": "sg-01", "name": "composer-r1", "region": REGION,
            "run_id": "r1", "job": None, "expires_at": None, "state": ""}
    stub.add_response("describe_security_groups", {"SecurityGroups": [
        {"GroupId": "sg-01", "GroupName": "composer-r1", "Tags": tags("r1")}]},
        {"Filters": [{"Name": "group-id", "Values": ["sg-01"]}, *TAG_FILTER]})
    stub.add_client_error("delete_security_group", service_error_code="DependencyViolation",
                          service_message="resource sg-01 has a dependent object",
                          expected_params={"GroupId": "sg-01"})
    stub.add_response("delete_security_group", {}, {"GroupId": "sg-01"})
    with stub:
        (result,) = gc.remove(stubbed, [item], timeout=5)
        stub.assert_no_pending_responses()
    assert result["removed"] is True


def test_an_efa_clusters_launch_template_is_collected_after_its_instances(
        session: Any) -> None:
    ec2 = session.client("ec2", region_name=REGION)

    def template(name: str, tag_list: list[dict[str, str]]) -> str:
        spec = [{"ResourceType": "launch-template", "Tags": tag_list}] if tag_list else []
        answer = ec2.create_launch_template(
            LaunchTemplateName=name, LaunchTemplateData={"ImageId": AMI},
            TagSpecifications=spec)
        return str(answer["LaunchTemplate"]["LaunchTemplateId"])

    mine, untagged = template("efa-dead", tags("dead9")), template("someone-elses", [])
    node = launch(ec2, tags("dead9"))
    FakePlacementGroups(session, [])  # moto has none
    found = gc.scan(session, REGION, set(), NOW, [])
    kinds = [(item["kind"], item["id"]) for item in found]
    assert (gc.LAUNCH_TEMPLATE, mine) in kinds
    assert untagged not in {item["id"] for item in found}
    assert kinds.index((gc.INSTANCE, node)) < kinds.index((gc.LAUNCH_TEMPLATE, mine))

    done = gc.remove(session, [i for i in found if i["run_id"] == "dead9"], timeout=30)
    assert all(item["removed"] for item in done), done
    left = {t["LaunchTemplateId"] for t in ec2.describe_launch_templates()["LaunchTemplates"]}
    assert left == {untagged}


def test_expired_means_past_the_tag_and_the_nodes_own_grace() -> None:
    just_past = {"run_id": "r", "expires_at": (NOW - timedelta(minutes=5)).isoformat()}
    long_past = {"run_id": "r", "expires_at": (NOW - timedelta(minutes=31)).isoformat()}
    assert not gc.expired(just_past, NOW)  # the nodes may still be collecting
    assert gc.expired(long_past, NOW)
    assert not gc.expired({"run_id": "r", "expires_at": "none"}, NOW)


def test_the_action_goes_by_the_expiry_not_by_words_in_a_tag() -> None:
    from composer.targets.base import GcRequest, gc_action

    ask = GcRequest("us-east-1", {})
    item = {"run_id": "r expired at never", "expires_at": "none"}
    item = {**item, "reason": gc.reason(item, set(), NOW), "expired": gc.expired(item, NOW)}
    assert "expired at" in item["reason"]  # the run id says so, the tag does not
    assert gc_action(item, ask).startswith("skip (not started here")
