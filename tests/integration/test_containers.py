"""Containerized workloads with real podman: both launchers, digest pinning, image drift.

The same runs under docker: test_docker.py (helpers shared from here)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, Composer
from tests.integration.conftest import IMAGE
from tests.integration.test_reproduce import refused, up
from tests.integration.test_up import read_record, write_job

pytestmark = pytest.mark.integration

DRIFT_IMAGE = "localhost/composer-drift-test:latest"

PROBE = """
    import json, os, sys
    out = os.environ["COMPOSER_OUTPUT_DIR"]
    engine = "podman" if os.path.exists("/run/.containerenv") else \
        "docker" if os.path.exists("/.dockerenv") else None
    facts = {"in_container": engine, "python": sys.executable,
             "cwd": os.getcwd(), "seed": os.environ.get("SEED"),
             "rank": os.environ.get("COMPOSER_NODE_RANK"),
             "data": open("data/in.txt").read().strip()}
    if len(sys.argv) > 1:
        from mpi4py import MPI
        facts["world"] = MPI.COMM_WORLD.Get_size()
        facts["sum"] = MPI.COMM_WORLD.allreduce(MPI.COMM_WORLD.Get_rank())
    print(json.dumps(facts, sort_keys=True))
    json.dump(facts, open(f"{out}/facts.json", "w"), sort_keys=True)
"""

JOB = """
    [job]
    name = "{name}"
    [cluster]
    target = "local"
    nodes = 2
    slots_per_node = {slots}
    [run]
    launcher = "{launcher}"
    command = {command}
    env = {{ SEED = "7" }}
    [container]
    runtime = "{runtime}"
    image = "{image}"
    [code]
    path = "."
    [inputs]
    "in.txt" = "data/in.txt"
    [outputs]
    paths = ["facts.json"]
    from = "{source}"
"""


def container_job(root: Path, name: str, launcher: str = "ssh", image: str = IMAGE,
                  runtime: str = "podman", slots: int = 1, source: str = "all") -> Path:
    command = '["python", "probe.py", "mpi"]' if launcher == "mpi" else '["python", "probe.py"]'
    body = JOB.format(name=name, launcher=launcher, command=command, image=image,
                      runtime=runtime, slots=slots, source=source)
    job = write_job(root, body, {"probe.py": PROBE})
    (root / "in.txt").write_text("21\n")
    return job


def no_containers_left(run_id: str) -> None:
    left = subprocess.run(["podman", "ps", "-aq", "--filter", f"label=composer.run={run_id}"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert not left, f"containers left by {run_id}: {left}"


def test_ssh_launcher_in_podman(composer: Composer, train_image: str, tmp_path: Path) -> None:
    job = container_job(tmp_path / "job", "ctr-ssh")
    run_id = up(composer, job)
    for rank in (0, 1):
        facts = json.loads(read_record(composer, run_id, f"outputs/node-{rank}/facts.json"))
        assert facts["in_container"] == "podman" and facts["python"] == "/opt/venv/bin/python"
        assert facts["seed"] == "7" and facts["rank"] == str(rank) and facts["data"] == "21"
        assert facts["cwd"].endswith(f"node-{rank}/work/code")
    lock = json.loads(read_record(composer, run_id, "lock.json"))
    box = lock["container"]
    digest = subprocess.run(["podman", "image", "inspect", "--format", "{{.Digest}}", IMAGE],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert box["runtime"] == "podman" and box["image"] == IMAGE and box["digest"] == digest
    assert box["pinned_by"] == "digest"
    assert box["ref"] == f"localhost/composer-train@{digest}"
    assert box["id"].startswith("sha256:")
    log = read_record(composer, run_id, "logs/composer.log")
    assert f"container: podman {box['ref']}" in log
    no_containers_left(run_id)


def test_mpi_launcher_in_podman(composer: Composer, train_image: str, tmp_path: Path) -> None:
    job = container_job(tmp_path / "job", "ctr-mpi", launcher="mpi", slots=2, source="head")
    run_id = up(composer, job)
    facts = json.loads(read_record(composer, run_id, "outputs/facts.json"))
    assert facts["in_container"] == "podman" and facts["python"] == "/opt/venv/bin/python"
    assert facts["world"] == 4 and facts["sum"] == 0 + 1 + 2 + 3
    no_containers_left(run_id)


def model_sha256(composer: Composer, run_id: str) -> str:
    """The sha256 the record's output manifest gives the trained model."""
    manifest = json.loads(read_record(composer, run_id, "manifest.json"))
    return next(f["sha256"] for f in manifest["files"] if f["path"] == "model.npz")


def test_train_container_example(composer: Composer, train_image: str,
                                 example_models: dict[str, str]) -> None:
    run_id = up(composer, ROOT / "examples" / "train-container" / "job.toml")
    example_models["podman"] = model_sha256(composer, run_id)
    lock = json.loads(read_record(composer, run_id, "lock.json"))
    assert lock["container"]["digest"].startswith("sha256:")
    assert "@sha256:" in lock["container"]["ref"]
    metrics = json.loads(read_record(composer, run_id, "outputs/metrics.json"))
    assert metrics["world_size"] == 4
    node_log = read_record(composer, run_id, "logs/node-1.log")
    assert "rank 2/4" in node_log or "rank 3/4" in node_log
    head_log = read_record(composer, run_id, "logs/node-0.log")
    assert "world size 4 on 2 node(s)" in head_log


@pytest.fixture
def drift_image(train_image: str) -> Iterator[callable]:
    def build(label: str) -> str:
        context = ROOT / ".cache" / "drift-test"
        context.mkdir(parents=True, exist_ok=True)
        (context / "Containerfile").write_text(f"FROM {IMAGE}\nLABEL composer.test={label}\n")
        subprocess.run(["podman", "build", "-q", "-t", DRIFT_IMAGE, str(context)],
                       capture_output=True, text=True, check=True)
        return subprocess.run(["podman", "image", "inspect", "--format", "{{.Digest}}",
                               DRIFT_IMAGE], capture_output=True, text=True,
                              check=True).stdout.strip()

    yield build
    subprocess.run(["podman", "rmi", "-f", DRIFT_IMAGE], capture_output=True, check=False)


def test_retagged_image_is_drift(composer: Composer, drift_image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    old = drift_image("one")
    job = container_job(tmp_path / "job", "ctr-drift", image=DRIFT_IMAGE)
    run_id = up(composer, job)
    new = drift_image("two")
    assert new != old
    done = composer.run("reproduce", run_id)
    assert done.returncode == 3, done.stderr[-3000:]
    assert f"image: container.digest: {old} -> {new}" in done.stderr
    out = refused(composer, run_id)
    assert {"kind": "image", "name": "container.digest", "old": old, "new": new,
            "detail": ""} in out["drift"]


def test_missing_image_refused_before_any_node(composer: Composer, train_image: str,
                                               tmp_path: Path) -> None:
    job = container_job(tmp_path / "job", "ctr-missing", image="localhost/composer-nope:1")
    done = composer.run("up", str(job), "--json")
    assert done.returncode == 2, done.stderr[-3000:]
    assert "image localhost/composer-nope:1 is not in podman's local store" in done.stderr
    assert not (composer.home / "work").exists() or not any((composer.home / "work").iterdir())
    assert not composer.runs.exists() or "run/" not in composer.git("tag", "--list")


def test_missing_runtime_refused_before_any_node(composer: Composer, tmp_path: Path) -> None:
    if shutil.which("apptainer"):
        pytest.skip("apptainer is installed here")
    job = container_job(tmp_path / "job", "ctr-noruntime", runtime="apptainer", image="x.sif")
    done = composer.run("up", str(job))
    assert done.returncode == 2, done.stderr[-3000:]
    assert 'container.runtime = "apptainer", but apptainer is not installed here' in done.stderr
    assert not (composer.home / "work").exists() or not any((composer.home / "work").iterdir())
