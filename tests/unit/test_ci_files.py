"""The example CI pipelines are valid for GitHub Actions and GitLab CI (offline schemas)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

CI = ROOT / "examples" / "ci"
CHECK = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
FILES = {"github-actions.yml": "vendor.github-workflows", "gitlab-ci.yml": "vendor.gitlab-ci"}


def check(path: Path, schema: str) -> subprocess.CompletedProcess[str]:
    if CHECK is None:
        pytest.fail("check-jsonschema is missing: pip install -e '.[dev]'")
    return subprocess.run([CHECK, "--builtin-schema", schema, str(path)], capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize("name", sorted(FILES))
def test_the_file_validates(name: str) -> None:
    done = check(CI / name, FILES[name])
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", sorted(FILES))
def test_the_check_can_fail(name: str, tmp_path: Path) -> None:
    broken = tmp_path / name
    text = (CI / name).read_text()
    key = "    steps:\n" if name == "github-actions.yml" else "  script:\n"
    assert key in text
    broken.write_text(text.replace(key, key.replace(":", "s:"), 1))
    assert check(broken, FILES[name]).returncode != 0


def test_the_github_file_uses_current_actions() -> None:
    text = (CI / "github-actions.yml").read_text()
    for action in ("actions/checkout@v5", "actions/setup-python@v6",
                   "actions/upload-artifact@v6"):
        assert action in text
    assert "schedule:" in text and "workflow_dispatch:" in text
    assert "$GITHUB_STEP_SUMMARY" in text


def test_the_gitlab_file_runs_scheduled_and_by_hand() -> None:
    text = (CI / "gitlab-ci.yml").read_text()
    assert '$CI_PIPELINE_SOURCE == "schedule"' in text
    assert '$CI_PIPELINE_SOURCE == "web"' in text
