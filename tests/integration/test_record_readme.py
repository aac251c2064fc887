"""A real run's README.md: committed with the record, readable, updated by down."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conftest import Composer, sshd_processes

pytestmark = pytest.mark.integration

WORKLOAD = r"""
set -e
if [ "$COMPOSER_NODE_RANK" = 0 ]; then
  printf '{"loss": [2.5, 1.7, 1.2, 0.9], "acc": 0.91, "eval": {"name": "a|b"}}' \
    > "$COMPOSER_OUTPUT_DIR/metrics.json"
fi
echo hi > "$COMPOSER_OUTPUT_DIR/x|y<b>.txt"
"""


def test_a_run_commits_a_readme_and_down_updates_it(composer: Composer, tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "work.sh").write_text(WORKLOAD)
    (job_dir / "job.toml").write_text(textwrap.dedent("""\
        [job]
        name = "readme-demo"

        [cluster]
        target = "local"
        nodes = 2

        [run]
        launcher = "ssh"
        command = ["sh", "work.sh"]

        [code]
        path = "."

        [outputs]
        paths = ["*"]

        [reproduce]
        metrics = ["node-0/metrics.json"]
        """))
    done = composer.run("up", str(job_dir / "job.toml"), "--keep", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = json.loads(done.stdout)["run_id"]
    try:
        listed = composer.git("ls-tree", "-r", "--name-only", f"run/{run_id}", "--",
                              f"{run_id}/").split()
        assert f"{run_id}/README.md" in listed
        text = composer.git("show", f"run/{run_id}:{run_id}/README.md")
        assert text.startswith(f"# Run {run_id}: `readme-demo`\n")
        assert "| **status** | **succeeded** (workload exit code 0, composer exit code 0) |" \
            in text
        assert "| **teardown** | kept |" in text
        nodes = text.split("## Nodes")[1].split("\n## ")[0]
        assert "| `node-0` |" in nodes and "| `node-1` |" in nodes
        stages = [line.split("|")[1].strip() for line in
                  text.split("## Stages")[1].split("\n## ")[0].splitlines()
                  if line.startswith("| ") and line != "| stage | time |"]
        assert stages == ["render", "init", "apply", "wait_for_ssh", "facts", "health", "stage",
                          "run", "collect", "**total**"], stages
        manifest = json.loads(composer.git("show", f"run/{run_id}:{run_id}/manifest.json"))
        for entry in manifest["files"]:
            assert f"`{entry['sha256']}`" in text
        assert "| ``node-0/x\\|y<b>.txt`` |" in text or "| `node-0/x\\|y<b>.txt` |" in text
        metrics = text.split("## Metrics")[1]
        assert "| `loss` | 4 values, last 0.9 (min 0.9, max 2.5) |" in metrics
        assert "| `acc` | 0.91 |" in metrics and "| `eval.name` | `a\\|b` |" in metrics
        plots = [name for name in listed if name.startswith(f"{run_id}/plots/")]
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            assert not plots and "composer-runs[plots]" in metrics
        else:
            assert len(plots) == 1 and plots[0].endswith(".png")
            assert f"]({plots[0].removeprefix(run_id + '/')})" in metrics

        opened = composer.run("show", run_id, "--open")
        assert opened.returncode == 0, opened.stderr
        path = Path(opened.stdout.strip())
        assert path == composer.runs / run_id / "README.md" and path.read_text() == text
        as_json = json.loads(composer.run("show", run_id, "--json").stdout)
        assert as_json["readme"] == str(path) and "README.md" in as_json["files"]
    finally:
        downed = composer.run("down", run_id, timeout=120)
    assert downed.returncode == 0, downed.stderr
    assert not sshd_processes(run_id)
    after = composer.git("show", f"run/{run_id}:{run_id}/README.md")
    assert "| **teardown** | destroyed |" in after and "| **teardown** | kept |" not in after
    changed = subprocess.run(["git", "-C", str(composer.runs), "show", "--name-only",
                              "--format=", f"run/{run_id}"], capture_output=True, text=True,
                             check=True).stdout.split()
    assert sorted(changed) == [f"{run_id}/README.md", f"{run_id}/result.json"]
