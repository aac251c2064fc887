"""Eight `composer up` at once, sharing one composer home and one runs repository."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import Tally
from .util import (
    Finished,
    assert_gone,
    final_json,
    record_json,
    simple_job,
    start_up,
    tags,
    write_job,
)

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration

RUNS = 8


def succeeded(done: Finished) -> str | None:
    """The run id of a run that succeeded and said so on stdout."""
    if done.returncode != 0:
        return None
    try:
        out = final_json(done.stdout)
    except (AssertionError, ValueError):
        return None
    return str(out["run_id"]) if out.get("status") == "succeeded" else None


def test_eight_runs_at_once(composer: Composer, tmp_path: Path, tally: Tally) -> None:
    jobs = [write_job(tmp_path / f"job-{i}", simple_job(f"conc-{i}", 1, ["echo", "ok"]))
            for i in range(RUNS)]
    with ExitStack() as stack:
        ups = [stack.enter_context(start_up(composer, job, f"up-{i}"))
               for i, job in enumerate(jobs)]
        results = [up.finish(timeout=300) for up in ups]
    run_ids = [succeeded(done) for done in results]
    for run_id in run_ids:
        tally("concurrent", run_id is not None)
    failures = [f"run {i} (exit {done.returncode}): {done.stderr[-2000:]}"
                for i, (done, run_id) in enumerate(zip(results, run_ids, strict=True))
                if run_id is None]
    assert not failures, "\n".join(failures)
    ids = [run_id for run_id in run_ids if run_id is not None]
    assert len(set(ids)) == RUNS
    assert sorted(tags(composer)) == sorted(f"run/{r}" for r in ids)
    assert composer.git("rev-list", "--count", "HEAD").strip() == str(RUNS + 1)
    status = composer.git("status", "--porcelain")
    assert status == "", f"the runs repo has uncommitted changes: {status}"
    addresses = []
    for run_id in ids:
        nodes = record_json(composer, run_id, "facts.json")["nodes"]
        assert len(nodes) == 1
        addresses.append(nodes[0]["address"])
        assert record_json(composer, run_id, "result.json")["teardown"]["status"] == "destroyed"
        assert_gone(composer, run_id)
    assert len(set(addresses)) == RUNS, f"nodes shared an address: {json.dumps(addresses)}"
    assert all(a.startswith("127.") for a in addresses)
