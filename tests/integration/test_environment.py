"""Environment provenance with real runs: what the nodes' Python had, pinned and checked.

The throwaway environment is a venv made here without pip; packages go in and out
with this interpreter's pip (``pip --python``) from wheels written here, so no
index is needed. The job's nodes use it the way a user would point a workload at
an environment: ``[run] env`` puts its ``bin`` first on PATH (and sets VIRTUAL_ENV),
so the workload's ``python`` is that venv's; the probe asks the same ``python``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import platform
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from composer import containers
from composer import reproduce as reproduce_mod
from composer.diff import diff_runs, format_diff
from composer.record import RunsRepo
from composer.run import RunOptions
from tests.conftest import Composer, sshd_processes
from tests.integration.conftest import IMAGE
from tests.integration.test_reproduce import refused, up
from tests.integration.test_up import read_record, record_files, write_job

pytestmark = pytest.mark.integration

JOB = """
    [job]
    name = "{name}"
    [cluster]
    target = "local"
    nodes = 2
    [run]
    command = {command}
    env = {env}
    {extra}
"""


def job(root: Path, name: str, command: str, env: str, extra: str = "") -> Path:
    return write_job(root, JOB.format(name=name, command=command, env=env, extra=extra))


def record_json(c: Composer, run_id: str, name: str) -> dict:
    return json.loads(read_record(c, run_id, name))


def only_environment(env_json: dict) -> dict:
    assert env_json["uniform"] is True
    assert len(set(env_json["nodes"].values())) == 1
    (entry,) = env_json["environments"].values()
    return entry


def wheel(directory: Path, name: str, version: str) -> Path:
    """A pure-Python wheel of one module, written by hand (no build backend)."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: composer-tests\n"
                         "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    lines = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest())
        lines.append(f"{path},sha256={digest.rstrip(b'=').decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*lines, f"{info}/RECORD,,"]) + "\n"
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return path


def pip(venv: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                           "--disable-pip-version-check", "-q", *args, ],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_run_records_the_nodes_environment(composer: Composer, tmp_path: Path) -> None:
    run_id = up(composer, job(tmp_path / "job", "env-numpy",
                              '["python", "-c", "import numpy"]',
                              '{ OMP_NUM_THREADS = "1", SEED = "3" }'))
    env_json = record_json(composer, run_id, "environment.json")
    assert env_json["source"] == "nodes" and sorted(env_json["nodes"]) == ["node-0", "node-1"]
    entry = only_environment(env_json)
    assert entry["packages"]["numpy"] == metadata.version("numpy")
    assert entry["packages"]["paramiko"] == metadata.version("paramiko")
    assert entry["python"] == {"executable": sys.executable, "version": platform.python_version(),
                               "implementation": platform.python_implementation()}
    assert entry["env"] == {"OMP_NUM_THREADS": "1"}  # the numerics variables only
    assert entry["mpi"]["implementation"] == "Open MPI" and entry["mpi"]["via"] == "mpi4py"
    lock = record_json(composer, run_id, "lock.json")
    assert lock["environment"] == {"source": "nodes",
                                   "packages_sha256": entry["packages_sha256"]}
    assert "python" in record_json(composer, run_id, "facts.json")["nodes"][0]


def test_changed_venv_is_drift_before_any_node(composer: Composer, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    venv, wheels = tmp_path / "venv", tmp_path / "wheels"
    wheels.mkdir()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    pip(venv, "install", "--no-index", str(wheel(wheels, "tinypkg", "1.0")))
    env = f'{{ PATH = "{venv}/bin:/usr/bin:/bin", VIRTUAL_ENV = "{venv}" }}'
    path = job(tmp_path / "job", "env-venv",
               '["python", "-c", "import sys; print(sys.executable)"]', env)
    first = up(composer, path)
    entry = only_environment(record_json(composer, first, "environment.json"))
    assert entry["python"]["executable"] == str(venv / "bin" / "python")
    assert entry["packages"] == {"tinypkg": "1.0"}

    pip(venv, "install", "--no-index", str(wheel(wheels, "extra_pkg", "0.1")))
    pip(venv, "uninstall", "-y", "tinypkg")
    out = refused(composer, first)  # exit 3, no record, no work dir: no node started
    assert not sshd_processes(str(composer.home))
    done = composer.run("reproduce", first)
    assert "environment: packages.tinypkg: 1.0 -> -" in done.stderr
    assert "environment: packages.extra-pkg: - -> 0.1" in done.stderr
    assert out["verdict"] == "drift"

    # Where nodes exist only once the re-run made them (cloud targets), the same
    # check runs right after facts: refused before the workload, torn down, recorded.
    monkeypatch.setenv("COMPOSER_HOME", str(composer.home))
    monkeypatch.setattr(reproduce_mod, "environment_checked_before", lambda spec: False)
    late = reproduce_mod.reproduce(first, RunOptions(runs_repo=composer.runs))
    assert late["exit_code"] == 3 and late["verdict"] == "drift" and late["status"] == "failed"
    assert {d["name"] for d in late["drift"]} == {"packages.tinypkg", "packages.extra-pkg"}
    result = record_json(composer, late["run_id"], "result.json")
    assert result["stage"] == "facts" and result["composer_exit_code"] == 3
    assert result["teardown"]["status"] == "destroyed"
    assert {d["kind"] for d in result["drift"]} == {"environment"}
    assert not [f for f in record_files(composer, late["run_id"]) if f.startswith("logs/node-")]
    assert not sshd_processes(str(composer.home))

    second = up(composer, path)
    d = diff_runs(RunsRepo(composer.runs), first, second)
    section = next(s for s in d["sections"] if s["name"] == "environment")
    assert not section["same"]
    text = format_diff(d)
    assert "package tinypkg: removed (was 1.0)" in text
    assert "package extra-pkg: added (0.1)" in text
    assert "environment.packages_sha256" in text  # the lock's pin moved too


def test_container_run_records_the_image(composer: Composer, tmp_path: Path,
                                         train_image: str) -> None:
    run_id = up(composer, job(tmp_path / "job", "env-image", '["python", "-c", "import numpy"]',
                              '{ OMP_NUM_THREADS = "2" }',
                              f'[container]\nruntime = "podman"\nimage = "{IMAGE}"'))
    env_json = record_json(composer, run_id, "environment.json")
    lock = record_json(composer, run_id, "lock.json")
    assert env_json["source"] == "image" and env_json["image"] == lock["container"]["ref"]
    entry = only_environment(env_json)
    ref = lock["container"]["ref"]
    options = containers.probe("podman", ref, composer.home / "container-probe.json")
    engine = containers._oci_argv("podman", containers.ContainerRun("podman", ref,
                                                                    options=options), False)
    asked = subprocess.run(
        [*engine, "python", "-c", "import sys, numpy; print(sys.executable, numpy.__version__)"],
        capture_output=True, text=True, timeout=120, check=True).stdout.split()
    assert [entry["python"]["executable"], entry["packages"]["numpy"]] == asked
    assert entry["env"] == {"OMP_NUM_THREADS": "2"}
    assert lock["environment"] == {"source": "image",
                                   "packages_sha256": entry["packages_sha256"]}
