"""composer init: a new project from a shipped example, never over existing files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from composer.cli import app
from composer.starter import examples
from tests.conftest import ROOT

JOB_EXAMPLES = sorted(p.parent.name for p in (ROOT / "examples").glob("*/job.toml"))


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_every_example_is_listed() -> None:
    code, out = cli("init", "--list", "--json")
    assert code == 0, out
    listed = {e["name"]: e["description"] for e in json.loads(out)["examples"]}
    assert set(JOB_EXAMPLES) <= set(listed)
    assert "ci" in listed
    assert all(listed[name] for name in JOB_EXAMPLES), "an example without a description"
    assert [e.name for e in examples()] == sorted(listed)


@pytest.mark.parametrize("name", JOB_EXAMPLES)
def test_each_example_starts_a_valid_project(name: str, tmp_path: Path) -> None:
    target = tmp_path / "new" / "project"
    code, out = cli("init", str(target), "--example", name, "--json")
    assert code == 0, out
    written = json.loads(out)
    source = ROOT / "examples" / name
    expected = sorted(p.relative_to(source).as_posix() for p in source.rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts)
    assert sorted(written["files"]) == expected
    assert written["job"] == str(target / "job.toml")
    job = (target / "job.toml").read_text()
    assert "#:schema ../" not in job  # the checkout's schema path means nothing here
    code, out = cli("validate", str(target / "job.toml"))
    assert code == 0, out


def test_the_default_is_the_starter(tmp_path: Path) -> None:
    code, out = cli("init", str(tmp_path / "p"))
    assert code == 0, out
    assert (tmp_path / "p" / "main.py").read_text() == \
        (ROOT / "examples" / "starter" / "main.py").read_text()
    assert "composer validate" in out and "composer up" in out


def test_nothing_existing_is_overwritten(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("mine\n")
    code, out = cli("init", str(tmp_path))
    assert code == 2, out
    assert "main.py" in out
    assert (tmp_path / "main.py").read_text() == "mine\n"
    assert not (tmp_path / "job.toml").exists(), "init wrote some files before refusing"


def test_an_unknown_example_names_the_known_ones(tmp_path: Path) -> None:
    code, out = cli("init", str(tmp_path), "--example", "nope")
    assert code == 2
    assert "no example named 'nope'" in out and "starter" in out


def test_a_file_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    code, out = cli("init", str(tmp_path / "f"))
    assert code == 2 and "not a directory" in out
