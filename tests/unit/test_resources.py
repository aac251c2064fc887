"""Where modules, templates and examples come from; a broken installation is exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from composer import resources
from composer.cli import app
from composer.errors import ExitCode, PreflightError
from tests.conftest import ROOT


def test_a_checkout_reads_its_own_trees(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSER_MODULES_DIR", raising=False)
    for kind in resources.KINDS:
        found = resources.locate(kind)
        assert found.path == ROOT / kind and found.source == resources.FROM_SOURCE


def test_package_data_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSER_MODULES_DIR", raising=False)
    share = tmp_path / "_share"
    monkeypatch.setattr(resources, "_packaged",
                        lambda kind: share / kind if (share / kind).is_dir() else None)
    (share / "templates").mkdir(parents=True)
    assert resources.locate("templates") == resources.Location(
        "templates", share / "templates", resources.FROM_PACKAGE)
    assert resources.locate("modules").source == resources.FROM_SOURCE


def test_the_modules_override_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPOSER_MODULES_DIR", str(tmp_path))
    assert resources.locate("modules") == resources.Location(
        "modules", tmp_path, resources.FROM_ENV)
    with pytest.raises(PreflightError) as caught:
        resources.check_installation("local", ("local-cluster",))
    assert "COMPOSER_MODULES_DIR" in caught.value.message
    assert caught.value.exit_code == ExitCode.INVALID_INPUT


def test_missing_trees_are_a_broken_installation(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSER_MODULES_DIR", raising=False)
    monkeypatch.setattr(resources, "_packaged", lambda kind: None)
    monkeypatch.setattr(resources, "SOURCE_TREE", tmp_path)
    assert resources.locate("modules").source == resources.MISSING
    with pytest.raises(PreflightError) as caught:
        resources.check_installation("local", ("local-cluster",))
    assert "installation is broken" in caught.value.message
    assert caught.value.hint == resources.REINSTALL
    (tmp_path / "templates" / "local").mkdir(parents=True)
    with pytest.raises(PreflightError, match="module 'local-cluster' not found"):
        resources.check_installation("local", ("local-cluster",))


def test_version_says_where_everything_comes_from() -> None:
    result = CliRunner().invoke(app, ["version", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["package"] == str(ROOT / "composer")
    assert data["modules"]["path"] == str(ROOT / "modules")
    assert {data[k]["source"] for k in resources.KINDS} == {"source tree"}
    text = CliRunner().invoke(app, ["version"]).output
    assert f"modules    {ROOT / 'modules'} (source tree)" in text


# -- another project's `composer` package in the way ---------------------------------------


def entry(pythonpath: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``composer-runs ARGS`` through its entry module, with ``pythonpath`` first."""
    return subprocess.run([sys.executable, "-m", "composer_runs", *args], cwd=pythonpath,
                          env={"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60, check=False)


def test_mosaicml_composer_on_the_path_is_named(tmp_path: Path) -> None:
    fake = tmp_path / "composer"
    fake.mkdir()
    # Never run: composer_runs reads it and sees no composer-runs marker.
    (fake / "__init__.py").write_text("raise SystemExit('imported the foreign package')\n")
    done = entry(tmp_path, "version")
    assert done.returncode == 2, done.stderr
    assert "imported the foreign package" not in done.stderr
    assert f"{fake} is another project's" in done.stderr
    assert "mosaicml" in done.stderr and "pipx install composer-runs" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_namespace_package_is_named(tmp_path: Path) -> None:
    (tmp_path / "composer").mkdir()  # no __init__.py: what half an uninstall leaves
    done = entry(tmp_path, "version")
    assert done.returncode == 2 and "not a regular package" in done.stderr


def test_ours_mixed_with_theirs_is_named(tmp_path: Path) -> None:
    mixed = tmp_path / "composer"
    mixed.mkdir()
    (mixed / "__init__.py").write_text((ROOT / "composer" / "__init__.py").read_text())
    (mixed / "cli").mkdir()  # MosaicML's composer/cli/ package over our cli.py
    (mixed / "cli" / "__init__.py").write_text("")
    done = entry(tmp_path, "version")
    assert done.returncode == 2, done.stderr
    assert "does not load" in done.stderr and "Traceback" not in done.stderr


def test_ours_starts() -> None:
    done = entry(ROOT, "--version")
    assert done.returncode == 0 and done.stdout.startswith("composer ")
