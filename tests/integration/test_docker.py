"""Containerized workloads with real docker: a private dockerd (tests/integration/conftest.py),
DOCKER_HOST pointing at it, the runs of test_containers.py again with ``runtime = "docker"``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, Composer
from tests.faults.util import assert_gone, start_up, wait_for
from tests.integration.conftest import IMAGE
from tests.integration.test_containers import container_job, model_sha256
from tests.integration.test_reproduce import refused, up
from tests.integration.test_up import final_json, read_record, write_job

pytestmark = pytest.mark.integration

DRIFT_IMAGE = "localhost/composer-docker-drift-test:latest"
SLEEPER = """
    [job]
    name = "{name}"
    [cluster]
    target = "local"
    nodes = 1
    [run]
    command = ["sleep", "300"]
    [container]
    runtime = "docker"
    image = "{image}"
    [limits]
    max_duration = "{limit}"
"""


def docker(*args: str) -> str:
    """The docker client against DOCKER_HOST (set by the ``docker_host`` fixture)."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True,
                          timeout=120).stdout.strip()


def labelled(run_id: str) -> list[str]:
    return docker("ps", "-aq", "--filter", f"label=composer.run={run_id}").split()


def test_ssh_launcher_in_docker(composer: Composer, docker_host: str, tmp_path: Path) -> None:
    job = container_job(tmp_path / "job", "dkr-ssh", runtime="docker")
    run_id = up(composer, job)
    for rank in (0, 1):
        facts = json.loads(read_record(composer, run_id, f"outputs/node-{rank}/facts.json"))
        assert facts["in_container"] == "docker" and facts["python"] == "/opt/venv/bin/python"
        assert facts["seed"] == "7" and facts["rank"] == str(rank) and facts["data"] == "21"
        assert facts["cwd"].endswith(f"node-{rank}/work/code")
    box = json.loads(read_record(composer, run_id, "lock.json"))["container"]
    image_id = docker("image", "inspect", "--format", "{{.Id}}", IMAGE)
    # A loaded image has no RepoDigests: the lock pins the image Id and says so.
    assert box == {"runtime": "docker", "image": IMAGE, "digest": None, "id": image_id,
                   "ref": image_id, "pinned_by": "id"}
    log = read_record(composer, run_id, "logs/composer.log")
    assert f"container: docker {image_id}" in log and f"DOCKER_HOST={docker_host}" in log
    assert not labelled(run_id)


def test_mpi_launcher_in_docker(composer: Composer, docker_host: str, tmp_path: Path) -> None:
    job = container_job(tmp_path / "job", "dkr-mpi", launcher="mpi", slots=2, source="head",
                        runtime="docker")
    run_id = up(composer, job)
    facts = json.loads(read_record(composer, run_id, "outputs/facts.json"))
    assert facts["in_container"] == "docker" and facts["python"] == "/opt/venv/bin/python"
    assert facts["world"] == 4 and facts["sum"] == 0 + 1 + 2 + 3
    assert not labelled(run_id)


def test_train_container_example_same_model_as_podman(
        composer: Composer, docker_host: str, example_models: dict[str, str]) -> None:
    example = ROOT / "examples" / "train-container"
    run_id = up(composer, example / "job-docker.toml")
    metrics = json.loads(read_record(composer, run_id, "outputs/metrics.json"))
    assert metrics["world_size"] == 4
    assert json.loads(read_record(composer, run_id, "lock.json"))["container"]["runtime"] \
        == "docker"
    if "podman" not in example_models:  # test_containers.py did not run it this session
        example_models["podman"] = model_sha256(composer, up(composer, example / "job.toml"))
    assert model_sha256(composer, run_id) == example_models["podman"]


@pytest.fixture
def drift_image(docker_host: str, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    def build(label: str) -> str:
        context = tmp_path / f"drift-{label}"
        context.mkdir()
        (context / "Dockerfile").write_text(f"FROM {IMAGE}\nLABEL composer.test={label}\n")
        subprocess.run(["docker", "build", "-q", "-t", DRIFT_IMAGE, str(context)],
                       capture_output=True, text=True, check=True, timeout=300,
                       env={**os.environ, "DOCKER_BUILDKIT": "0"})
        return docker("image", "inspect", "--format", "{{.Id}}", DRIFT_IMAGE)

    yield build
    subprocess.run(["docker", "rmi", "-f", DRIFT_IMAGE], capture_output=True, check=False)


def test_rebuilt_image_is_drift_in_docker(composer: Composer, drift_image: Callable[[str], str],
                                          tmp_path: Path) -> None:
    old = drift_image("one")
    job = container_job(tmp_path / "job", "dkr-drift", image=DRIFT_IMAGE, runtime="docker")
    run_id = up(composer, job)
    new = drift_image("two")
    assert new != old
    done = composer.run("reproduce", run_id)
    assert done.returncode == 3, done.stderr[-3000:]
    assert f"image: container.id: {old} -> {new}" in done.stderr
    out = refused(composer, run_id)
    assert {"kind": "image", "name": "container.id", "old": old, "new": new,
            "detail": ""} in out["drift"]


def test_missing_image_refused_before_any_node_in_docker(composer: Composer, docker_host: str,
                                                         tmp_path: Path) -> None:
    job = container_job(tmp_path / "job", "dkr-missing", image="localhost/composer-nope:1",
                        runtime="docker")
    done = composer.run("up", str(job), "--json")
    assert done.returncode == 2, done.stderr[-3000:]
    assert "image localhost/composer-nope:1 is not in docker's local store" in done.stderr
    assert not (composer.home / "work").exists() or not any((composer.home / "work").iterdir())
    assert "run/" not in composer.git("tag", "--list") if composer.runs.exists() else True


def test_no_daemon_refused_naming_docker_host(composer: Composer, tmp_path: Path) -> None:
    if shutil.which("docker") is None:
        pytest.skip("the docker client is not installed (apt-get install docker.io)")
    job = container_job(tmp_path / "job", "dkr-nodaemon", runtime="docker")
    host = f"unix://{tmp_path}/no-daemon.sock"
    done = composer.run("up", str(job), DOCKER_HOST=host)
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"no Docker daemon answers at DOCKER_HOST={host}" in done.stderr
    assert "Traceback" not in done.stderr
    hint = done.stderr.split("composer: hint: ", 1)[1]
    assert "dockerd" in hint and "DOCKER_HOST" in hint
    assert not (composer.home / "work").exists() or not any((composer.home / "work").iterdir())


# -- labelled leftovers: a container outlives its docker client ------------------------------


def test_teardown_removes_a_container_left_running(composer: Composer, docker_host: str,
                                                   tmp_path: Path) -> None:
    """``sleep`` is PID 1 in its container and ignores the SIGHUP/SIGTERM the docker client
    forwards when the run's time is up: the container outlives its client."""
    job = write_job(tmp_path / "job", SLEEPER.format(name="dkr-timeout", image=IMAGE,
                                                     limit="6s"))
    done = composer.run("up", str(job), "--json")
    out = final_json(done.stdout)
    assert out["status"] == "timeout", done.stderr[-3000:]
    assert not labelled(out["run_id"])


@pytest.mark.parametrize("cleanup", ["down", "gc"])
def test_down_and_gc_remove_containers_of_a_killed_run(
        composer: Composer, docker_host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        cleanup: str) -> None:
    job = write_job(tmp_path / "job", SLEEPER.format(name=f"dkr-{cleanup}", image=IMAGE,
                                                     limit="5m"))
    with start_up(composer, job, cleanup) as run:
        run_id = run.work().name
        wait_for(lambda: labelled(run_id), 60, "the run's container", alive=run.proc, log=run.err)
        run.proc.kill()
        run.proc.wait(timeout=30)
    # down and gc may run from a shell where DOCKER_HOST is not set: the run recorded it.
    monkeypatch.delenv("DOCKER_HOST")
    args = ("down", run_id) if cleanup == "down" else ("gc", "--yes")
    done = composer.run(*args, "--json", timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    assert not labelled(run_id)
    assert_gone(composer, run_id)
