"""composer reproduce: identical re-runs, every drift class refused before any node starts."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from composer.record import RunsRepo
from tests.conftest import ROOT, Composer, sshd_processes
from tests.integration.test_up import final_json, read_record, write_job

pytestmark = pytest.mark.integration

SCRIPT = """
    import json, os, random, sys
    seed = int(os.environ.get("SEED", "0"))
    value = float(open("data/in.txt").read()) * 2
    if os.environ.get("NOISE") == "1":
        value += random.SystemRandom().uniform(-0.001, 0.001)
    out = os.environ["COMPOSER_OUTPUT_DIR"]
    json.dump({"value": value, "seed": seed}, open(f"{out}/metrics.json", "w"), sort_keys=True)
    open(f"{out}/model.bin", "wb").write(bytes(range(seed % 256)))
"""

JOB = """
    [job]
    name = "{name}"
    [cluster]
    target = "local"
    nodes = 2
    [run]
    command = ["python", "work.py"]
    env = {{ SEED = "7", NOISE = "{noise}" }}
    [code]
    path = "."
    [inputs]
    "in.txt" = "data/in.txt"
    [outputs]
    paths = ["metrics.json", "model.bin"]
    from = "head"
    {extra}
"""


def make_job(root: Path, name: str = "repro", noise: str = "0", extra: str = "") -> Path:
    job = write_job(root, JOB.format(name=name, noise=noise, extra=extra), {"work.py": SCRIPT})
    (root / "in.txt").write_text("21\n")
    return job


def up(c: Composer, job: Path, *args: str) -> str:
    done = c.run("up", str(job), "--json", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return final_json(done.stdout)["run_id"]


def refused(c: Composer, ref: str, *args: str, **env: str) -> dict:
    done = c.run("reproduce", ref, "--json", *args, **env)
    assert done.returncode == 3, done.stderr[-3000:]
    out = final_json(done.stdout)
    assert out["verdict"] == "drift" and out["record"] is None
    assert not (c.home / "work").exists() or not any((c.home / "work").iterdir())
    return out


def test_reproduce_train_local_is_identical(composer: Composer) -> None:
    first = up(composer, ROOT / "examples" / "train-local" / "job.toml")
    done = composer.run("reproduce", "--latest", "train-local", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    out = final_json(done.stdout)
    assert out["verdict"] == "identical" and out["reproduces"] == first
    second = out["run_id"]
    assert f"run/{second}" in composer.git("tag", "--list")
    result = json.loads(read_record(composer, second, "result.json"))
    assert result["reproduces"] == first
    verdict = json.loads(read_record(composer, second, "reproduction.json"))
    assert verdict["verdict"] == "identical"
    assert read_record(composer, second, "infra/main.tf") == read_record(composer, first,
                                                                           "infra/main.tf")
    human = composer.run("reproduce", first)
    assert human.returncode == 0
    assert human.stdout.splitlines()[-1].startswith("identical: run ")


def test_code_drift_names_the_file(composer: Composer, tmp_path: Path) -> None:
    job = make_job(tmp_path / "code")
    run_id = up(composer, job)
    (tmp_path / "code" / "work.py").write_text(SCRIPT + "\n# edited\n")
    out = refused(composer, run_id)
    kinds = {d["kind"] for d in out["drift"]}
    assert kinds == {"code"}
    drift = out["drift"][0]
    assert drift["old"] != drift["new"] and "changed work.py" in drift["detail"]


def test_input_drift(composer: Composer, tmp_path: Path) -> None:
    job = make_job(tmp_path / "input")
    run_id = up(composer, job)
    (tmp_path / "input" / "in.txt").write_text("22\n")
    out = refused(composer, run_id)
    assert {d["kind"] for d in out["drift"]} >= {"input"}
    assert any(d["name"] == "inputs.data/in.txt.sha256" for d in out["drift"])


def test_module_drift(composer: Composer, tmp_path: Path) -> None:
    job = make_job(tmp_path / "module")
    run_id = up(composer, job)
    modules = tmp_path / "modules"
    shutil.copytree(ROOT / "modules", modules)
    readme = modules / "local-cluster" / "README.md"
    readme.write_text(readme.read_text() + "\nA local note.\n")
    out = refused(composer, run_id, COMPOSER_MODULES_DIR=str(modules))
    kinds = {d["kind"] for d in out["drift"]}
    assert "module" in kinds and "infra" in kinds
    infra = next(d for d in out["drift"] if d["kind"] == "infra")
    assert "A local note." in infra["detail"]


def test_spec_drift(composer: Composer, tmp_path: Path) -> None:
    job = make_job(tmp_path / "spec")
    run_id = up(composer, job)
    job.write_text(job.read_text().replace("nodes = 2", "nodes = 3"))
    out = refused(composer, run_id)
    spec = next(d for d in out["drift"] if d["kind"] == "spec")
    assert "-nodes = 2" in spec["detail"] and "+nodes = 3" in spec["detail"]


@pytest.mark.parametrize(("section", "kind"), [("terraform", "terraform"),
                                               ("composer", "composer")])
def test_version_drift(composer: Composer, tmp_path: Path, section: str, kind: str) -> None:
    job = make_job(tmp_path / f"version-{kind}")
    run_id = up(composer, job)
    repo = RunsRepo(composer.runs)
    staged = repo.export(run_id, tmp_path / "forged")
    lock = json.loads((staged / "lock.json").read_text())
    lock[section]["version"] = "0.0.1"
    (staged / "lock.json").write_text(json.dumps(lock))
    forged = f"{run_id[:-6]}f0f0f0"
    repo.commit_run(forged, staged, "forged record with another version")
    out = refused(composer, forged)
    drift = next(d for d in out["drift"] if d["kind"] == kind)
    assert drift["old"] == "0.0.1" and drift["new"] != "0.0.1"


def test_allow_drift_runs_and_records_it(composer: Composer, tmp_path: Path) -> None:
    job = make_job(tmp_path / "allowed")
    run_id = up(composer, job)
    (tmp_path / "allowed" / "work.py").write_text(textwrap.dedent(SCRIPT) + "\n# edited\n")
    done = composer.run("reproduce", run_id, "--allow-drift", "--json")
    assert done.returncode == 3, done.stderr[-3000:]
    out = final_json(done.stdout)
    assert out["verdict"] == "drift" and out["record"]
    assert out["outputs"] == "identical", out  # the edit changed no result
    text = composer.run("reproduce", run_id, "--allow-drift")
    assert text.returncode == 3
    assert "  outputs: identical (run anyway with --allow-drift)" in text.stdout
    result = json.loads(read_record(composer, out["run_id"], "result.json"))
    assert result["drift"] and result["drift"][0]["kind"] == "code"
    assert not sshd_processes(out["run_id"])


def test_randomness_differs_and_tolerance_covers_it(composer: Composer, tmp_path: Path) -> None:
    strict = make_job(tmp_path / "noisy", name="noisy", noise="1",
                      extra='[reproduce]\n    metrics = ["metrics.json"]')
    run_id = up(composer, strict)
    done = composer.run("reproduce", run_id, "--json")
    assert done.returncode == 5, done.stderr[-3000:]
    out = final_json(done.stdout)
    assert out["verdict"] == "differs"
    assert [f["path"] for f in out["files"]] == ["metrics.json"]
    assert [m["key"] for m in out["metrics"]] == ["value"] and not out["metrics"][0]["within"]

    tolerant = make_job(tmp_path / "tolerant", name="tolerant", noise="1", extra=(
        '[reproduce]\n    metrics = ["metrics.json"]\n'
        '    tolerance = { value = { abs = 0.01 } }'))
    run_id = up(composer, tolerant)
    done = composer.run("reproduce", run_id, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    out = final_json(done.stdout)
    assert out["verdict"] == "within-tolerance"
    assert out["metrics"][0]["within"] is True
