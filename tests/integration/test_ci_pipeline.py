"""The CI examples, run here: the GitHub workflow's ``run:`` steps in order, as a runner
would, and the GitLab job's scripts.

A bare git repository stands in for the runs repository's remote, a copy of the starter
example for the checked-out project, and a fresh venv for ``actions/setup-python``. The
package index is the only other stand-in: ``COMPOSER_PACKAGE`` names the wheel built from
this checkout, and pip installs it offline. Every ``run:`` script is executed verbatim
with GitHub's bash (``bash --noprofile --norc -eo pipefail``), the workflow's env, and
``$GITHUB_ENV`` / ``$GITHUB_STEP_SUMMARY`` files carried from step to step. ``uses:``
steps are skipped (their stand-ins are prepared first); ``upload-artifact``'s path is
checked instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, sshd_processes

from .wheel import build_wheel, clean_env, dependencies_dir, fresh_venv

pytestmark = pytest.mark.integration

WORKFLOW = ROOT / "examples" / "ci" / "github-actions.yml"
EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


@dataclass
class Pipeline:
    """One workflow run: what each step exited with, and the files it left."""

    workspace: Path
    summary: Path
    exits: list[tuple[str, int | None]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    artifact: Path | None = None

    def exit_of(self, name: str) -> int | None:
        return next(code for step, code in self.exits if step == name)

    @property
    def failed(self) -> bool:
        return any(code not in (0, None) for _, code in self.exits)


def load() -> dict[str, Any]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow["defaults"]["run"]["shell"] == "bash"
    return workflow


def resolve(value: str, given: dict[str, str]) -> str:
    """``${{ … }}`` expressions of the workflow's env, from what the test gives."""
    def one(match: re.Match[str]) -> str:
        assert match.group(1) in given, f"no stand-in for ${{{{ {match.group(1)} }}}}"
        return given[match.group(1)]

    return EXPRESSION.sub(one, str(value))


def read_env_file(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            found[key] = value
    return found


def run_pipeline(tmp: Path, wheel: Path, deps: Path, remote: Path, project: Path) -> Pipeline:
    workflow = load()
    (job,) = workflow["jobs"].values()
    home, workspace = tmp / "home", tmp / "workspace"
    home.mkdir(parents=True)
    shutil.copytree(project, workspace)  # actions/checkout
    bin_dir = fresh_venv(tmp / "python", deps)  # actions/setup-python
    files = {name: tmp / f"github-{name}" for name in ("env", "summary", "output")}
    for path in files.values():
        path.write_text("")
    runner_temp = tmp / "runner-temp"
    runner_temp.mkdir()
    given = {"vars.RUNS_REMOTE": str(remote), "secrets.RUNS_TOKEN": "",
             "runner.temp": str(runner_temp)}
    env = clean_env(HOME=str(home), GITHUB_ENV=str(files["env"]),
                    GITHUB_STEP_SUMMARY=str(files["summary"]),
                    GITHUB_OUTPUT=str(files["output"]), GITHUB_WORKSPACE=str(workspace),
                    RUNNER_TEMP=str(runner_temp),
                    PIP_NO_INDEX="1", PIP_NO_DEPS="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    env.update({k: resolve(v, given) for k, v in {**workflow["env"],
                                                  **job.get("env", {})}.items()})
    env["COMPOSER_PACKAGE"] = str(wheel)  # the package index's stand-in
    pipeline = Pipeline(workspace, files["summary"])
    for step in job["steps"]:
        name = step.get("name") or step.get("uses")
        condition = step.get("if")
        assert condition in (None, "always()"), f"{name}: no stand-in for if: {condition}"
        if pipeline.failed and condition is None:
            pipeline.exits.append((name, None))
            continue
        if "uses" in step:
            if step["uses"].startswith("actions/upload-artifact@"):
                pipeline.artifact = Path(resolve(step["with"]["path"], given))
            pipeline.exits.append((name, 0))
            continue
        step_env = {**env, **read_env_file(files["env"]),
                    **{k: resolve(v, given) for k, v in step.get("env", {}).items()}}
        script = tmp / "step.sh"
        script.write_text(step["run"])
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail",
                               str(script)], cwd=workspace, env=step_env,
                              capture_output=True, text=True, timeout=600, check=False)
        pipeline.logs.append(f"== {name} (exit {done.returncode})\n{done.stdout}{done.stderr}")
        pipeline.exits.append((name, done.returncode))
    leaked = sshd_processes(str(home))
    assert not leaked, leaked
    return pipeline


def remote_tags(remote: Path) -> list[str]:
    out = subprocess.run(["git", "-C", str(remote), "tag", "--list", "run/*"],
                         capture_output=True, text=True, check=True).stdout
    return sorted(out.split())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("build"))


def test_the_pipeline_runs_reproduces_and_pushes(wheel: Path, tmp_path: Path) -> None:
    deps = dependencies_dir(tmp_path)
    remote = tmp_path / "runs.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    starter = ROOT / "examples" / "starter"

    first = run_pipeline(tmp_path / "night-1", wheel, deps, remote, starter)
    log = "\n".join(first.logs)
    assert not first.failed, log
    assert all(code == 0 for _, code in first.exits), first.exits
    summary = first.summary.read_text()
    assert "| composer up | 0 |" in summary and "| 0 |" in summary
    assert re.search(r"identical: run \S+ reproduces \S+", summary), summary
    tags = remote_tags(remote)
    assert len(tags) == 2, log  # the run and its reproduction
    assert first.artifact is not None
    assert sorted(f"run/{p.name}" for p in first.artifact.iterdir()) == tags

    # The next night the workload has become nondeterministic: the reproduction differs,
    # the pipeline fails at its last step, and both records are pushed all the same.
    changed = tmp_path / "changed"
    shutil.copytree(starter, changed)
    main = changed / "main.py"
    main.write_text(main.read_text().replace("seed=1234 + rank", "seed=os.getpid()"))
    second = run_pipeline(tmp_path / "night-2", wheel, deps, remote, changed)
    log = "\n".join(second.logs)
    final = second.exits[-1]
    assert final[1] == 1, log
    assert all(code == 0 for _, code in second.exits[:-1]), second.exits
    summary = second.summary.read_text()
    assert "| composer reproduce --latest starter | 5 |" in summary, summary
    assert "differs" in summary
    assert "results differ (exit 5)" in second.logs[-1]
    assert len(remote_tags(remote)) == 4, log
    assert second.artifact is not None and len(list(second.artifact.iterdir())) == 2
    assert os.path.isdir(second.workspace / "runs" / tags[0].removeprefix("run/"))


def test_the_gitlab_job_runs_reproduces_and_pushes(wheel: Path, tmp_path: Path) -> None:
    """The GitLab job's before_script and script, in one bash as GitLab's runner does,
    but for the one line that installs OS packages (git and sshd are here already)."""
    config = yaml.safe_load((ROOT / "examples" / "ci" / "gitlab-ci.yml").read_text())
    job = config["composer"]
    lines = [*job["before_script"], *job["script"]]
    skipped = [line for line in lines if line.startswith("apt-get ")]
    assert len(skipped) == 1
    remote = tmp_path / "runs.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    workspace, home = tmp_path / "project", tmp_path / "home"
    shutil.copytree(ROOT / "examples" / "starter", workspace)
    home.mkdir()
    bin_dir = fresh_venv(tmp_path / "python", dependencies_dir(tmp_path))
    env = clean_env(HOME=str(home), CI="true", CI_PIPELINE_SOURCE="schedule",
                    CI_PROJECT_DIR=str(workspace), RUNS_REMOTE=str(remote),
                    PIP_NO_INDEX="1", PIP_NO_DEPS="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    env.update({k: str(v) for k, v in config["variables"].items()})
    env["COMPOSER_PACKAGE"] = str(wheel)
    script = tmp_path / "job.sh"
    script.write_text("set -eo pipefail\n" + "\n".join(
        line for line in lines if line not in skipped) + "\n")
    done = subprocess.run(["bash", "--noprofile", "--norc", str(script)], cwd=workspace,
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert not sshd_processes(str(home))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "composer up exit 0; composer reproduce --latest starter exit 0" in done.stdout
    tags = remote_tags(remote)
    assert len(tags) == 2
    (artifacts,) = job["artifacts"]["paths"]
    records = workspace / artifacts / "records"
    assert sorted(f"run/{p.name}" for p in records.iterdir()) == tags
    verdict = (workspace / artifacts / "reproduce.txt").read_text()
    assert "identical" in verdict
    assert "[node-" not in verdict, "the workload's own lines stay out of the verdict"
