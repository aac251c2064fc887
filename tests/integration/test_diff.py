"""composer diff: two real runs of one job at 2 and 4 nodes, compared section by section."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from composer.diff import diff_runs, format_diff
from composer.record import RunsRepo
from tests.conftest import Composer
from tests.integration.test_up import final_json, write_job

pytestmark = pytest.mark.integration

SCRIPT = """
    import json, os, pathlib
    n = int(os.environ["COMPOSER_NUM_NODES"])
    out = pathlib.Path(os.environ["COMPOSER_OUTPUT_DIR"])
    metrics = {"nodes": n, "loss": 1.0 / n, "ok": True, "fixed": 7}
    (out / "metrics.json").write_text(json.dumps(metrics, sort_keys=True))
"""

JOB = """
    [job]
    name = "diffed"
    [cluster]
    target = "local"
    nodes = {nodes}
    [run]
    launcher = "ssh"
    command = ["python", "metrics.py"]
    [code]
    path = "src"
    [outputs]
    paths = ["metrics.json"]
    from = "head"
"""


def run_job(c: Composer, directory: Path, nodes: int) -> str:
    job = write_job(directory, JOB.replace("{nodes}", str(nodes)))
    done = c.run("up", str(job), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    return final_json(done.stdout)["run_id"]


def two_runs(c: Composer, tmp_path: Path) -> tuple[str, str]:
    directory = tmp_path / "job"
    (directory / "src").mkdir(parents=True)
    (directory / "src" / "metrics.py").write_text(textwrap.dedent(SCRIPT))
    return run_job(c, directory, 2), run_job(c, directory, 4)


def sections(d: dict) -> dict[str, dict]:
    return {s["name"]: s for s in d["sections"]}


def test_diff_two_and_four_nodes(composer: Composer, tmp_path: Path) -> None:
    run_a, run_b = two_runs(composer, tmp_path)
    repo = RunsRepo(composer.runs)
    d = diff_runs(repo, f"run/{run_a}", run_b)
    assert d["a"] == run_a and d["b"] == run_b
    assert [s["name"] for s in d["sections"]] == ["spec", "lock", "infra", "facts",
                                                  "environment", "results"]
    assert json.loads(json.dumps(d, sort_keys=True)) == d
    by = sections(d)

    spec = by["spec"]
    assert not spec["same"]
    assert spec["diff"].startswith("--- a/job.toml\n+++ b/job.toml\n")
    assert "-nodes = 2\n" in spec["diff"] and "+nodes = 4\n" in spec["diff"]

    lock = by["lock"]
    assert [c["pin"] for c in lock["changes"]] in ([], ["infra.sha256"])
    for change in lock["changes"]:
        assert change["old"] != change["new"]

    infra = by["infra"]
    assert not infra["same"]
    assert set(infra["files"]) == {"terraform.tfvars.json"}
    tfvars = infra["files"]["terraform.tfvars.json"]
    assert '-  "nodes": 2,' in tfvars and '+  "nodes": 4,' in tfvars

    facts = by["facts"]
    assert not facts["same"]
    assert facts["node_count"] == [2, 4]
    assert [(n["rank"], n["only_in"]) for n in facts["nodes"]] == [(2, "b"), (3, "b")]

    results = by["results"]
    assert not results["same"]
    assert results["status"] == []
    assert [(f["path"], f["kind"]) for f in results["files"]] == [("metrics.json", "changed")]
    metrics = {m["key"]: m for m in results["metrics"]}
    assert set(metrics) == {"nodes", "loss"}
    assert (metrics["nodes"]["old"], metrics["nodes"]["new"]) == (2.0, 4.0)
    assert (metrics["loss"]["old"], metrics["loss"]["new"]) == (0.5, 0.25)
    assert all(m["file"] == "metrics.json" and not m["within"] for m in metrics.values())

    text = format_diff(d)
    headers = [f"== {name} ==" for name in ("spec", "lock", "infra", "facts", "environment",
                                            "results")]
    positions = [text.index(h) for h in headers]
    assert positions == sorted(positions)
    assert "-nodes = 2" in text and "+nodes = 4" in text
    assert "node-2: only in b" in text and "node-3: only in b" in text
    assert "nodes: 2 -> 4" in text
    assert "metrics.json loss: 0.5 -> 0.25" in text

    same = diff_runs(repo, run_a, run_a)
    assert same["a"] == same["b"] == run_a
    assert all(s["same"] for s in same["sections"]), same
    same_text = format_diff(same)
    assert same_text.count("\nsame\n") == 6
