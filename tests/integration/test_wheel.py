"""composer as a user gets it: the wheel, installed into a fresh venv away from the checkout.

The same check a user would make: build the wheel, install it, start a project from a
shipped example in a temporary directory, ``composer up`` it on the local target, read
the record. Nothing of the checkout is importable there (``clean_env``, the cwd, a venv
that links only composer's dependencies).
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from composer.modules import pin_module
from tests.conftest import ROOT, sshd_processes

from .wheel import build_wheel, checkout_files, clean_env, dependencies_dir, fresh_venv, install

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def deps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dependencies_dir(tmp_path_factory.mktemp("deps"))


def new_install(where: Path, wheel: Path, deps: Path) -> Path:
    bin_dir = fresh_venv(where / "venv", deps)
    install(bin_dir, wheel)
    return bin_dir


def run(bin_dir: Path, *args: str, cwd: Path, home: Path,
        **extra: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(HOME=str(home), COMPOSER_HOME=str(home / ".composer"), **extra)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_the_wheel_carries_every_data_file(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        infos = {info.filename: info for info in zf.infolist()}
    shipped = [name for name in checkout_files()
               if name.split("/")[0] in ("modules", "templates", "examples")]
    assert shipped
    missing = [name for name in shipped if f"composer/_share/{name}" not in infos]
    assert not missing, f"not in the wheel: {missing}"
    assert "composer_runs/__init__.py" in infos
    node_sh = infos["composer/_share/modules/local-cluster/scripts/node.sh"]
    assert (node_sh.external_attr >> 16) & stat.S_IXUSR, "node.sh lost its executable bit"
    with zipfile.ZipFile(wheel) as zf:
        entry_points = next(n for n in infos if n.endswith("entry_points.txt"))
        text = zf.read(entry_points).decode()
    assert "composer = composer_runs:main" in text
    assert "composer-runs = composer_runs:main" in text


def test_an_installed_composer_runs_a_new_project(wheel: Path, deps: Path,
                                                   tmp_path: Path) -> None:
    bin_dir = new_install(tmp_path, wheel, deps)
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    done = run(bin_dir, "composer", "version", "--json", cwd=work, home=home)
    assert done.returncode == 0, done.stderr
    where = json.loads(done.stdout)
    site = str(tmp_path / "venv")
    assert where["package"].startswith(site), where
    for kind in ("modules", "templates", "examples"):
        assert where[kind]["source"] == "package", where
        assert where[kind]["path"].startswith(site), where
        assert str(ROOT) not in where[kind]["path"]

    done = run(bin_dir, "composer-runs", "init", "project", cwd=work, home=home)
    assert done.returncode == 0, done.stderr
    project = work / "project"
    assert sorted(p.name for p in project.iterdir()) == ["README.md", "job.toml", "main.py"]
    done = run(bin_dir, "composer", "validate", "job.toml", cwd=project, home=home)
    assert done.returncode == 0, done.stdout + done.stderr

    try:
        done = run(bin_dir, "composer", "up", "job.toml", "--json", cwd=project, home=home)
    finally:
        leaked = sshd_processes(str(home))
    assert not leaked, leaked
    assert done.returncode == 0, done.stderr[-4000:]
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "succeeded"
    run_id = outcome["run_id"]
    runs = project / "runs"
    assert Path(outcome["record"]) == runs / run_id

    def show(rev: str) -> str:
        return subprocess.run(["git", "-C", str(runs), "show", rev], capture_output=True,
                              text=True, check=True).stdout

    lock = json.loads(show(f"run/{run_id}:{run_id}/lock.json"))
    # The module the installed composer used is the checkout's, byte for byte.
    assert lock["modules"]["local-cluster"]["sha256"] == pin_module("local-cluster").sha256
    metrics = json.loads(show(f"run/{run_id}:{run_id}/outputs/metrics.json"))
    assert metrics["nodes"] == 2 and 3.0 < metrics["pi_estimate"] < 3.3


def test_a_broken_installation_stops_before_a_run(wheel: Path, deps: Path,
                                                  tmp_path: Path) -> None:
    bin_dir = new_install(tmp_path, wheel, deps)
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    assert run(bin_dir, "composer", "init", str(project), cwd=tmp_path, home=home).returncode == 0
    site = json.loads(run(bin_dir, "composer", "version", "--json", cwd=tmp_path,
                          home=home).stdout)["package"]
    shutil.rmtree(Path(site) / "_share" / "templates")
    done = run(bin_dir, "composer", "version", "--json", cwd=tmp_path, home=home)
    assert json.loads(done.stdout)["templates"]["source"] == "missing"

    done = run(bin_dir, "composer", "up", "job.toml", cwd=project, home=home)
    assert done.returncode == 2, done.stderr
    assert "installation is broken" in done.stderr and "reinstall" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (project / "runs").exists(), "a broken installation made a record"
    assert not (home / ".composer" / "work").exists(), "a broken installation made a run"

    shutil.rmtree(Path(site) / "_share" / "modules" / "local-cluster")
    modules = tmp_path / "my-modules"
    shutil.copytree(ROOT / "modules", modules)
    done = run(bin_dir, "composer", "version", "--json", cwd=tmp_path, home=home,
               COMPOSER_MODULES_DIR=str(modules))
    assert json.loads(done.stdout)["modules"] == {"path": str(modules),
                                                  "source": "COMPOSER_MODULES_DIR"}


def test_another_composer_package_is_named_not_a_traceback(wheel: Path, deps: Path,
                                                           tmp_path: Path) -> None:
    bin_dir = new_install(tmp_path, wheel, deps)
    fake = tmp_path / "mosaicml" / "composer"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('"""MosaicML Composer."""\n__version__ = "0.30.0"\n')
    (fake / "cli").mkdir()
    (fake / "cli" / "__init__.py").write_text("")
    for command in ("composer", "composer-runs"):
        done = run(bin_dir, command, "version", cwd=tmp_path, home=tmp_path,
                   PYTHONPATH=str(fake.parent))
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert str(fake) in done.stderr
        assert "composer-runs" in done.stderr and "mosaicml" in done.stderr
        assert "pipx install composer-runs" in done.stderr
