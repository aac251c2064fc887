"""``composer gc`` for GCP against the Compute Engine fake: labelled instances,
firewall rules and resource policies named for a run."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from composer.state import RunState
from composer.targets import TARGETS
from composer.targets.base import GcRequest, gc_action
from composer.targets.gcp import gc
from composer.targets.gcp.session import make_clients
from tests.unit import gce_world as w
from tests.unit.gce_specs import Gce, gce_fixture  # noqa: F401 - fixture

pytest.importorskip("google.cloud.compute_v1")

NOW = datetime(2030, 1, 2, 12, 0, tzinfo=UTC)
PAST = "2030-01-02t11-45-00z"  # within the grace (30 min): not yet expired
LONG_PAST = "2030-01-02t10-00-00z"  # more than GRACE_SECONDS (30 min) ago
FUTURE = "2030-01-03t00-00-00z"
ZONE, OTHER_ZONE = "us-central1-a", "europe-west4-b"


@pytest.fixture
def world(gce: Gce) -> dict[str, Any]:
    """Resources of dead, live and expired runs, and others composer never made."""
    world = gce.world
    policy = w.add_policy(world, "us-central1", "composer-dead1-placement",
                          w.facts("dead1"))
    w.add_instance(world, ZONE, "composer-dead1-node-0", w.labels("dead1"),
                   policies=(policy["selfLink"],))
    w.add_instance(world, OTHER_ZONE, "composer-dead1-node-1", w.labels("dead1"),
                   status="TERMINATED")
    w.add_instance(world, ZONE, "composer-live1-node-0", w.labels("live1", FUTURE))
    w.add_instance(world, ZONE, "composer-live2-node-0", w.labels("live2", LONG_PAST))
    w.add_instance(world, ZONE, "composer-live3-node-0", w.labels("live3", PAST))
    w.add_instance(world, ZONE, "composer-lookalike", w.labels(None))
    w.add_firewall(world, "composer-dead1-ssh", w.facts("dead1"))
    w.add_firewall(world, "composer-dead1-internal", w.facts("dead1"))
    w.add_firewall(world, "composer-live1-ssh", w.facts("live1", FUTURE))
    w.add_firewall(world, "default-allow-ssh", "Allow SSH from anywhere")
    # Names that look like composer's but whose description names another run, or none.
    w.add_firewall(world, "composer-dead1-copied", w.facts("other9"))
    w.add_firewall(world, "composer-dead2-ssh", "")
    w.add_policy(world, "europe-west4", "composer-dead3-placement", "made by hand")
    return {"world": world, "clients": make_clients(w.PROJECT)}


def test_scan_lists_only_what_carries_a_run_id_of_a_dead_or_expired_run(
        world: dict[str, Any]) -> None:
    warnings: list[str] = []
    found = gc.scan(world["clients"], w.PROJECT, {"live1", "live2", "live3"}, NOW, warnings)
    assert warnings == []
    assert [(i["kind"], i["id"], i["reason"]) for i in found] == [
        ("instance", "composer-dead1-node-1", "run dead1 has no live composer process here"),
        ("instance", "composer-dead1-node-0", "run dead1 has no live composer process here"),
        ("instance", "composer-live2-node-0", f"expired at {LONG_PAST}"),
        ("firewall", "composer-dead1-internal", "run dead1 has no live composer process here"),
        ("firewall", "composer-dead1-ssh", "run dead1 has no live composer process here"),
        ("resource-policy", "composer-dead1-placement",
         "run dead1 has no live composer process here"),
    ]
    assert found[1] == {"kind": "instance", "id": "composer-dead1-node-0",
                        "project": w.PROJECT, "zone": ZONE, "run_id": "dead1", "job": "demo",
                        "expires_at": "none", "state": "RUNNING",
                        "reason": found[1]["reason"], "expired": False}
    assert found[3]["network"] == "default" and found[5]["region"] == "us-central1"
    assert [i["expired"] for i in found] == [False, False, True, False, False, False]


def test_expiry_waits_out_the_grace() -> None:
    assert gc.expiry("2030-01-02t11-00-00z") == datetime(2030, 1, 2, 11, tzinfo=UTC)
    assert gc.expiry("none") is None and gc.expiry("2030-01-02T11:00:00Z") is None
    item = {"run_id": "r", "expires_at": PAST}
    assert not gc.expired(item, NOW)
    assert gc.expired({**item, "expires_at": LONG_PAST}, NOW)


def test_gc_action_of_live_kept_and_expired_items(world: dict[str, Any]) -> None:
    found = gc.scan(world["clients"], w.PROJECT, set(), NOW)
    ask = GcRequest(None, {"dead1": (False, True), "live1": (True, False)},
                    project=w.PROJECT)
    actions = {(i["kind"], i["id"]): gc_action(i, ask) for i in found}
    assert actions[("instance", "composer-dead1-node-0")] == \
        "skip (kept; --include-kept removes it)"
    assert actions[("instance", "composer-live1-node-0")] == "skip (running)"
    assert actions[("instance", "composer-live2-node-0")] == "remove"  # expired
    assert actions[("instance", "composer-live3-node-0")] == \
        "skip (not started here, not expired; --include-others removes it)"


def test_remove_deletes_instances_first_then_firewalls_and_policies(
        world: dict[str, Any]) -> None:
    fake, clients = world["world"], world["clients"]
    found = gc.scan(clients, w.PROJECT, {"live1", "live2", "live3"}, NOW)
    fake.log.clear()
    removed = gc.remove(clients, found, timeout=30)
    assert [(i["id"], i["removed"], i["error"]) for i in removed] == \
        [(i["id"], True, None) for i in found]
    deletions = [line for line in fake.log if line.startswith("delete ")]
    assert deletions == [
        "delete instance composer-dead1-node-1", "delete instance composer-dead1-node-0",
        "delete instance composer-live2-node-0", "delete firewall composer-dead1-internal",
        "delete firewall composer-dead1-ssh",
        "delete resource-policy composer-dead1-placement"]
    # Each resource was looked up again right before its deletion.
    gets = [i for i, line in enumerate(fake.log)
            if line == f"GET /compute/v1/projects/{w.PROJECT}/zones/{ZONE}/instances/"
                       "composer-dead1-node-0"]
    assert gets and gets[0] < fake.log.index(
        f"DELETE /compute/v1/projects/{w.PROJECT}/zones/{ZONE}/instances/composer-dead1-node-0")
    assert sorted(fake.instances[ZONE]) == ["composer-live1-node-0", "composer-live3-node-0",
                                            "composer-lookalike"]
    assert sorted(fake.firewalls) == ["composer-dead1-copied", "composer-dead2-ssh",
                                      "composer-live1-ssh", "default-allow-ssh"]
    assert list(fake.resource_policies["europe-west4"]) == ["composer-dead3-placement"]
    assert gc.scan(clients, w.PROJECT, {"live1", "live2", "live3"}, NOW) == []


def test_what_changed_since_the_scan_is_left_alone(world: dict[str, Any]) -> None:
    fake, clients = world["world"], world["clients"]
    found = gc.scan(clients, w.PROJECT, {"live1", "live2", "live3"}, NOW)
    fake.instances[ZONE]["composer-dead1-node-0"]["labels"] = {"team": "other"}
    del fake.instances[OTHER_ZONE]["composer-dead1-node-1"]
    fake.firewalls["composer-dead1-ssh"]["description"] = "taken over by hand"
    started = time.monotonic()
    done = {i["id"]: (i["removed"], i["error"]) for i in gc.remove(clients, found, timeout=3)}
    assert time.monotonic() - started < 10
    assert done["composer-dead1-node-0"] == (False, gc.LEFT_ALONE)
    assert done["composer-dead1-node-1"] == (False, gc.LEFT_ALONE)
    assert done["composer-dead1-ssh"] == (False, gc.LEFT_ALONE)
    assert done["composer-live2-node-0"] == (True, None)
    assert "composer-dead1-node-0" in fake.instances[ZONE]
    assert "composer-dead1-ssh" in fake.firewalls
    # The policy is still used by the instance that was left alone: it fails, not hangs.
    removed, error = done["composer-dead1-placement"]
    assert not removed and "is already being used by 'composer-dead1-node-0'" in error


def test_a_failed_operation_is_reported(world: dict[str, Any]) -> None:
    fake, clients = world["world"], world["clients"]
    fake.failing_deletes.add("composer-dead1-ssh")
    left = gc.leftovers_of(clients, w.PROJECT, "us-central1", "dead1")
    assert [(i["kind"], i["id"]) for i in left] == [
        ("instance", "composer-dead1-node-1"), ("instance", "composer-dead1-node-0"),
        ("firewall", "composer-dead1-internal"), ("firewall", "composer-dead1-ssh"),
        ("resource-policy", "composer-dead1-placement")]
    done = {i["id"]: i for i in gc.remove(clients, left, timeout=30)}
    assert not done["composer-dead1-ssh"]["removed"]
    assert done["composer-dead1-ssh"]["error"].startswith(
        "delete operation-") and "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE" in \
        done["composer-dead1-ssh"]["error"]
    assert all(i["removed"] for name, i in done.items() if name != "composer-dead1-ssh")
    assert [i["id"] for i in gc.leftovers_of(clients, w.PROJECT, "us-central1", "dead1")] \
        == ["composer-dead1-ssh"]


def test_an_endpoint_that_refuses_the_label_filter_is_listed_whole(
        world: dict[str, Any]) -> None:
    world["world"].refuse_filters = True
    found = gc.scan(world["clients"], w.PROJECT, {"live1", "live2", "live3"}, NOW)
    assert [i["id"] for i in found if i["kind"] == "instance"] == [
        "composer-dead1-node-1", "composer-dead1-node-0", "composer-live2-node-0"]


def test_pages_are_followed(world: dict[str, Any]) -> None:
    world["world"].page_size = 1
    found = gc.scan(world["clients"], w.PROJECT, {"live1", "live2", "live3"}, NOW)
    assert len(found) == 6


def test_policies_that_cannot_be_listed_are_a_warning(world: dict[str, Any]) -> None:
    world["world"].failing["/aggregated/resourcePolicies"] = (
        403, "forbidden", "Required 'compute.resourcePolicies.list' permission")
    warnings: list[str] = []
    found = gc.scan(world["clients"], w.PROJECT, set(), NOW, warnings)
    assert {i["kind"] for i in found} == {"instance", "firewall"}
    assert warnings == [f"resource policies of {w.PROJECT} not listed: Compute Engine "
                        "resourcePolicies.aggregatedList failed: 403 Required "
                        "'compute.resourcePolicies.list' permission"]


# -- composer gc --target gcp, through the CLI ------------------------------------------

DEAD_PID = 2 ** 22 + 7  # above Linux's largest pid: no such process


def composer_gc(*args: str) -> tuple[int, str, str]:
    from typer.testing import CliRunner

    import composer.cli

    done = CliRunner().invoke(composer.cli.app, ["gc", "--target", "gcp", *args])
    return done.exit_code, done.stdout, done.stderr


def run_here(home: Path, run_id: str, keep: bool, pid: int) -> None:
    """A work dir of this machine's, as composer up leaves it."""
    work = home / "work" / run_id
    work.mkdir(parents=True)
    RunState(run_id=run_id, job="j", engine="embedded", runs_repo=str(home / "runs"),
             pid=pid, started_at="2026-01-01T00:00:00Z", stage="run", applied=True,
             committed=True, keep=keep, target="gcp").save(work)


@pytest.fixture
def cli_world(gce: Gce, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    if "gcp" not in TARGETS:
        pytest.skip("the gcp target is not registered in composer.targets")
    home = tmp_path / "composer-home"
    monkeypatch.setenv("COMPOSER_HOME", str(home))
    fake = gce.world
    for run_id, expires in (("run-died", "none"), ("run-kept", "none"), ("run-live", "none"),
                            ("run-ci", FUTURE_REAL), ("run-old", "2001-01-01t00-00-00z")):
        w.add_instance(fake, ZONE, f"composer-{run_id}-node-0", w.labels(run_id, expires))
    w.add_firewall(fake, "composer-run-died-ssh", w.facts("run-died"))
    w.add_instance(fake, ZONE, "not-composers", w.labels(None))
    run_here(home, "run-died", keep=False, pid=DEAD_PID)
    run_here(home, "run-kept", keep=True, pid=DEAD_PID)
    run_here(home, "run-live", keep=False, pid=os.getppid())  # a live process, not this one
    return {"world": fake, "home": home}


FUTURE_REAL = "2999-01-01t00-00-00z"


def test_composer_gc_target_gcp_lists_then_removes_only_what_is_over(
        cli_world: dict[str, Any]) -> None:
    fake = cli_world["world"]
    code, out, err = composer_gc("--project", w.PROJECT, "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert listed["target"] == "gcp" and listed["project"] == w.PROJECT
    actions = {(r["kind"], r["id"]): r["action"] for r in listed["resources"]}
    assert actions == {
        ("instance", "composer-run-ci-node-0"):
            "skip (not started here, not expired; --include-others removes it)",
        ("instance", "composer-run-died-node-0"): "remove",
        ("instance", "composer-run-kept-node-0"): "skip (kept; --include-kept removes it)",
        ("instance", "composer-run-old-node-0"): "remove",
        ("firewall", "composer-run-died-ssh"): "remove",
    }, actions

    code, out, _err = composer_gc("--project", w.PROJECT)
    assert code == 0
    assert "instance composer-run-died-node-0  run=run-died" in out
    assert f"composer gc --target gcp --project {w.PROJECT} --yes" in out
    assert len(fake.instances[ZONE]) == 6 and "composer-run-died-ssh" in fake.firewalls

    code, out, err = composer_gc("--project", w.PROJECT, "--yes", "--json")
    assert code == 0, err
    outcomes = {r["id"]: r.get("outcome") for r in json.loads(out)["resources"]}
    assert outcomes == {"composer-run-ci-node-0": None, "composer-run-died-node-0": "removed",
                        "composer-run-kept-node-0": None, "composer-run-old-node-0": "removed",
                        "composer-run-died-ssh": "removed"}
    assert sorted(fake.instances[ZONE]) == ["composer-run-ci-node-0", "composer-run-kept-node-0",
                                            "composer-run-live-node-0", "not-composers"]
    assert "composer-run-died-ssh" not in fake.firewalls


def test_composer_gc_target_gcp_needs_a_project(cli_world: dict[str, Any]) -> None:
    code, out, _err = composer_gc("--json")
    assert code == 2
    assert "--project" in json.loads(out)["error"]


def test_composer_gc_target_gcp_without_credentials_exits_2(
        cli_world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSER_GCE_ENDPOINT")
    code, out, _err = composer_gc("--project", w.PROJECT, "--json")
    assert code == 2
    assert json.loads(out)["error"].startswith("no Google Cloud credentials found")


def test_composer_gc_target_gcp_takes_and_reports_the_project_of_the_environment(
        cli_world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", w.PROJECT)
    code, out, err = composer_gc("--json")
    assert code == 0, err
    assert json.loads(out)["project"] == w.PROJECT


def test_a_label_or_description_alone_does_not_make_a_resource_composer_s(
        gce: Gce) -> None:
    """A VM made from a composer node's template keeps its labels, not its name; a rule
    whose description names a run is not that run's unless the module named it."""
    fake = gce.world
    w.add_instance(fake, ZONE, "team-db-1", {**w.labels("teamdb", "2020-01-01t00-00-00z"),
                                               "env": "prod"})
    w.add_firewall(fake, "composer-prod-allow-web", w.facts("prod", "2020-01-01t00-00-00z"))
    w.add_instance(fake, ZONE, "composer-old-node-0", w.labels("old", "2020-01-01t00-00-00z"))
    found = gc.scan(make_clients(w.PROJECT), w.PROJECT, set(), NOW, [])
    assert [(i["kind"], i["id"]) for i in found] == [("instance", "composer-old-node-0")]
