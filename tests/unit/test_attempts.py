"""Capacity errors read from the providers' texts, the attempts' policy, the spec's
[run] retries and checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from composer.attempts import CAPACITY, NODE_LOST, Attempts, for_replay, set_aside, settle_last
from composer.capacity import capacity_error
from composer.errors import ExitCode, SpecError
from composer.spec import load_spec
from composer.spec.model import RetrySpec
from composer.targets.base import Target
from composer.targets.local import LocalTarget
from tests.faults.capacity_driver import TEXTS

# -- capacity errors --------------------------------------------------------------------


@pytest.mark.parametrize(("name", "code"), [
    ("aws", "InsufficientInstanceCapacity"),
    ("aws-old", "InsufficientInstanceCapacity"),
    ("aws-unsupported", "Unsupported"),
    ("aws-spot-price", "SpotMaxPriceTooLow"),
    ("gce", "ZONE_RESOURCE_POOL_EXHAUSTED"),
    ("gce-code", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"),
    ("gce-stockout", "GCE_STOCKOUT"),
])
def test_the_providers_capacity_errors_are_recognised(name: str, code: str) -> None:
    assert capacity_error([f"Error: {TEXTS[name]}"]) == code


def test_other_errors_are_not_capacity() -> None:
    assert capacity_error([f"Error: {TEXTS['aws-ami']}"]) is None
    assert capacity_error([f"Error: {TEXTS['gce-quota']}"]) is None
    # "Unsupported" only as the API's error code, not as a word
    assert capacity_error(["Error: Unsupported argument\n  An argument named \"zone\" is "
                           "not expected here."]) is None
    assert capacity_error([]) is None


def test_a_quota_is_capacity_for_spot_nodes_only() -> None:
    text = [f"Error: {TEXTS['gce-spot-quota']}"]
    assert capacity_error(text) is None
    assert capacity_error(text, spot=True) == "QUOTA_EXCEEDED (PREEMPTIBLE_NVIDIA_L4_GPUS)"
    assert capacity_error(["MaxSpotInstanceCountExceeded: Max spot instance count "
                           "exceeded"], spot=True) == "MaxSpotInstanceCountExceeded"


# -- the policy -------------------------------------------------------------------------


def plan(zones: list[str], retries: RetrySpec = RetrySpec()) -> Attempts:
    pins = {"zone": zones[0], "instance_type": "g5.xlarge", "ami_id": "ami-1",
            "candidates": [{"zone": z, "instance_type": "g5.xlarge"} for z in zones]}
    target = LocalTarget()
    return Attempts(Target.candidates(target, None, pins), target.placement,  # type: ignore[arg-type]
                    retries)


def test_capacity_moves_through_the_candidates_then_stops() -> None:
    p = plan(["a", "b"])
    assert p.start().zone == "a" and p.pins["ami_id"] == "ami-1"
    p.end(CAPACITY, "no room")
    assert p.advance(CAPACITY)
    assert p.start().zone == "b"
    p.end(CAPACITY, "no room either")
    assert not p.advance(CAPACITY)
    error = p.exhausted()
    assert error.exit_code == ExitCode.INFRA_FAILED
    assert "attempt 1 in a g5.xlarge: no room" in error.message
    assert "attempt 2 in b g5.xlarge: no room either" in error.message
    assert 'on = ["capacity"]' in (error.hint or "")


def test_retries_on_capacity_start_over_from_the_first_candidate() -> None:
    p = plan(["a", "b"], RetrySpec(1, ("capacity",)))
    for _ in range(2):
        p.start()
        p.end(CAPACITY)
        assert p.advance(CAPACITY)
    assert p.start().zone == "a"  # the one retry: every candidate again
    p.end(CAPACITY)
    assert p.advance(CAPACITY) and p.start().zone == "b"
    p.end(CAPACITY)
    assert not p.advance(CAPACITY)


def test_a_lost_node_is_retried_only_when_asked_and_stays_in_its_candidate() -> None:
    assert not plan(["a", "b"]).advance(NODE_LOST)
    p = plan(["a", "b"], RetrySpec(2, ("node-lost",)))
    p.start()
    p.end(CAPACITY)
    assert p.advance(CAPACITY)  # failover needs no retries
    for _ in range(2):
        assert p.start().zone == "b"
        p.end(NODE_LOST, "lost", ["node-1"])
        assert p.advance(NODE_LOST)
    p.start()
    p.end(NODE_LOST, "lost", ["node-0"])
    assert not p.advance(NODE_LOST)
    listed = p.to_list()
    assert [a["outcome"] for a in listed] == ["capacity", "node-lost", "node-lost", "node-lost"]
    assert listed[1]["lost_nodes"] == ["node-1"] and "lost_nodes" not in listed[0]


def test_the_last_attempt_ends_as_the_run_does() -> None:
    p = plan(["a"])
    p.start()
    p.end("finished")
    seconds = p.current.seconds
    settle_last(p, "failed", "node-0 exited with 3")
    assert (p.current.outcome, p.current.error, p.current.seconds) == \
        ("failed", "node-0 exited with 3", seconds)


def test_a_reproduction_is_made_where_the_run_was() -> None:
    target = LocalTarget()
    today = [{"zone": z, "instance_type": "g5.xlarge", "ami_id": "ami-2"} for z in "abc"]
    assert for_replay(today, {"zone": "b", "instance_type": "g5.xlarge"},
                      target.placement) == [today[1]]
    gone: dict[str, Any] = {"zone": "d", "instance_type": "g5.xlarge", "subnet": "s-d"}
    assert for_replay(today, gone, target.placement) == [
        {"zone": "d", "instance_type": "g5.xlarge", "ami_id": "ami-2", "subnet": "s-d"}]
    assert for_replay([{}], {}, target.placement) == [{}]  # the local target


def test_local_target_has_one_candidate() -> None:
    target = LocalTarget()
    assert target.candidates(None, {}) == [{}]  # type: ignore[arg-type]
    assert target.placement({}) == {"zone": None, "type": None}


def test_an_attempts_node_logs_are_set_aside(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("composer.log", "terraform.log", "node-0.log", "mpirun.log"):
        (logs / name).write_text("x" * 1000)
    assert set_aside(tmp_path, 1, 200) == ["logs/attempt-1/mpirun.log",
                                           "logs/attempt-1/node-0.log"]
    assert sorted(p.name for p in logs.glob("*.log")) == ["composer.log", "terraform.log"]
    assert (logs / "attempt-1" / "node-0.log").stat().st_size < 1000


# -- the spec ---------------------------------------------------------------------------


def spec_with(tmp_path: Path, run_lines: str) -> Any:
    job = tmp_path / "job.toml"
    job.write_text('[job]\nname = "r"\n[cluster]\ntarget = "local"\nnodes = 2\n'
                   f'[run]\ncommand = "true"\n{run_lines}\n')
    return load_spec(job)


def test_retries_and_checkpoint_default_to_none(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, "")
    assert spec.run.retries == RetrySpec(0, ()) and spec.run.checkpoint is None


def test_retries_and_checkpoint_are_read(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, 'retries = { max = 3, on = ["capacity", "node-lost"] }\n'
                               'checkpoint = "./out/ckpt/"')
    assert spec.run.retries == RetrySpec(3, ("node-lost", "capacity"))
    assert spec.run.checkpoint == "out/ckpt"


@pytest.mark.parametrize(("lines", "problem"), [
    ("retries = 2", "run.retries: must be a table, got integer 2"),
    ('retries = { on = ["node-lost"] }', "run.retries.max: required"),
    ("retries = { max = 1 }", "run.retries.on: required"),
    ('retries = { max = 101, on = [] }', "run.retries.max"),
    ('retries = { max = 1, on = ["node-lsot"] }', "did you mean 'node-lost'?"),
    ('retries = { max = 1, on = ["capacity", "capacity"] }', 'on[1]: "capacity" is listed twice'),
    ('retries = { max = 1, on = [], tries = 2 }', "run.retries.tries: unknown key"),
    ('checkpoint = "/ckpt"', "run.checkpoint: must be relative"),
    ('checkpoint = "a/../../b"', "run.checkpoint: must stay inside"),
    ('checkpoint = "./"', "run.checkpoint: must name a directory"),
    ('checkpoint = ""', "run.checkpoint"),
])
def test_bad_retries_and_checkpoints_are_named(tmp_path: Path, lines: str, problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        spec_with(tmp_path, lines)
    assert problem in caught.value.message
