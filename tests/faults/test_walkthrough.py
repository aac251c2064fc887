"""What a new user meets on the command line: one JSON object per command, a kept
cluster that says how to reach it, a reproducible example, diffs that show what
changed, and errors that name the path instead of a traceback."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from composer.record import RunsRepo
from tests.conftest import ROOT, Composer, sshd_processes

from .conftest import Tally
from .util import final_json, record_json, simple_job, write_job

pytestmark = pytest.mark.integration

HELLO = ROOT / "examples" / "hello-mpi"


def one_object(done: subprocess.CompletedProcess[str]) -> dict:
    """stdout parsed whole: exactly one JSON object, nothing else."""
    data = json.loads(done.stdout)
    assert isinstance(data, dict), f"stdout is not one JSON object: {done.stdout!r}"
    return data


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


# -- --json: one object from every command -----------------------------------


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Composer, str]]:
    """A composer home and runs repo holding one small recorded run."""
    tmp = tmp_path_factory.mktemp("json")
    c = Composer(home=tmp / "home", runs=tmp / "runs", cwd=tmp)
    job = write_job(tmp / "job", simple_job("jsoned", 1, ["true"]))
    done = c.run("up", str(job), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    yield c, final_json(done.stdout)["run_id"]
    assert not sshd_processes(str(c.home))


BAD_SPEC = {"job": {"name": "bad"}, "cluster": {"target": "local", "nodes": 0},
            "run": {"lancher": "mpi", "command": ["true"]}}


def _version(c: Composer, run_id: str, tmp: Path) -> tuple[list[str], int]:
    return ["version", "--json"], 0


def _render(c: Composer, run_id: str, tmp: Path) -> tuple[list[str], int]:
    return ["render", str(HELLO / "job.toml"), "-o", str(tmp / "infra"), "--json"], 0


def _render_bad(c: Composer, run_id: str, tmp: Path) -> tuple[list[str], int]:
    (tmp / "taken").write_text("mine\n")
    return ["render", str(HELLO / "job.toml"), "-o", str(tmp / "taken"), "--json"], 2


def _runs(c: Composer, run_id: str, tmp: Path) -> tuple[list[str], int]:
    return ["runs", "--json"], 0


def _show(c: Composer, run_id: str, tmp: Path) -> tuple[list[str], int]:
    return ["show", run_id, "--json"], 0


def _diff(c: Composer, run_id: str, tmp: Path) -> tuple[list[str], int]:
    return ["diff", run_id, run_id, "--json"], 0


def _gc(c: Composer, run_id: str, tmp: Path) -> tuple[list[str], int]:
    return ["gc", "--json"], 0


def _gc_yes(c: Composer, run_id: str, tmp: Path) -> tuple[list[str], int]:
    return ["gc", "--yes", "--json"], 0


def _validate(c: Composer, run_id: str, tmp: Path) -> tuple[list[str], int]:
    return ["validate", str(HELLO / "job.toml"), "--json"], 0


def _up_bad(c: Composer, run_id: str, tmp: Path) -> tuple[list[str], int]:
    job = write_job(tmp / "bad", BAD_SPEC)
    return ["up", str(job), "--json"], 2


def _down_unknown(c: Composer, run_id: str, tmp: Path) -> tuple[list[str], int]:
    return ["down", "20000101-nope", "--json"], 2


def _reproduce_unknown(c: Composer, run_id: str, tmp: Path) -> tuple[list[str], int]:
    return ["reproduce", "nope", "--json"], 2


def _show_without_run(c: Composer, run_id: str, tmp: Path) -> tuple[list[str], int]:
    return ["show", "--json"], 2


def _push_no_remote(c: Composer, run_id: str, tmp: Path) -> tuple[list[str], int]:
    return ["push", "--json"], 2


def _init(c: Composer, run_id: str, tmp: Path) -> tuple[list[str], int]:
    return ["init", str(tmp / "project"), "--json"], 0


def _init_taken(c: Composer, run_id: str, tmp: Path) -> tuple[list[str], int]:
    (tmp / "job.toml").write_text("mine\n")
    return ["init", str(tmp), "--json"], 2


def _site(c: Composer, run_id: str, tmp: Path) -> tuple[list[str], int]:
    return ["site", "-o", str(tmp / "site"), "--json"], 0


def _site_taken(c: Composer, run_id: str, tmp: Path) -> tuple[list[str], int]:
    (tmp / "mine").mkdir()
    (tmp / "mine" / "notes.txt").write_text("mine\n")
    return ["site", "-o", str(tmp / "mine"), "--json"], 2


COMMANDS = {
    "version": _version, "render": _render, "render-taken": _render_bad, "runs": _runs,
    "show": _show, "diff": _diff, "gc": _gc, "gc-yes": _gc_yes, "validate": _validate,
    "up-bad-spec": _up_bad, "down-unknown": _down_unknown,
    "reproduce-unknown": _reproduce_unknown, "show-without-run": _show_without_run,
    "push-no-remote": _push_no_remote, "init": _init, "init-taken": _init_taken,
    "site": _site, "site-taken": _site_taken,
}


@pytest.mark.parametrize("case", sorted(COMMANDS))
def test_json_is_one_object(case: str, recorded: tuple[Composer, str], tmp_path: Path,
                            tally: Tally) -> None:
    c, run_id = recorded
    with tally.check("walkthrough"):
        argv, code = COMMANDS[case](c, run_id, tmp_path)
        done = c.run(*argv, timeout=120)
        assert done.returncode == code, done.stderr[-3000:]
        no_traceback(done)
        data = one_object(done)
        if code:
            assert data["exit_code"] == code and data["error"]
        if case == "runs":
            assert [r["run_id"] for r in data["runs"]] == [run_id]
        if case.startswith("gc"):
            assert data["runs"] == []
        if case == "version":
            assert data["version"]
        if case == "render":
            assert data["path"] == str(tmp_path / "infra") and len(data["sha256"]) == 64
            assert (tmp_path / "infra" / "main.tf").is_file()


def test_up_json_bad_spec_lists_problems_like_validate(recorded: tuple[Composer, str],
                                                      tmp_path: Path, tally: Tally) -> None:
    c, _ = recorded
    with tally.check("walkthrough"):
        job = write_job(tmp_path / "bad", BAD_SPEC)
        up = c.run("up", str(job), "--json")
        checked = c.run("validate", str(job), "--json")
        assert up.returncode == checked.returncode == 2
        problems = one_object(checked)["problems"]
        got = one_object(up)
        assert got["problems"] == problems
        assert {p["path"] for p in problems} == {"cluster.nodes", "run.lancher"}
        assert got["status"] == "invalid" and got["run_id"] is None and got["exit_code"] == 2


# -- render -o: an existing file or a non-empty directory ---------------------


@pytest.mark.parametrize("shape", ["file", "non-empty dir", "under a file"])
def test_render_into_something_taken(shape: str, tmp_path: Path, tally: Tally,
                                     composer: Composer) -> None:
    with tally.check("walkthrough"):
        taken = tmp_path / "taken"
        if shape == "non-empty dir":
            taken.mkdir()
            (taken / "keep.txt").write_text("mine\n")
        else:
            taken.write_text("mine\n")
        out = taken / "infra" if shape == "under a file" else taken
        done = composer.run("render", str(HELLO / "job.toml"), "-o", str(out))
        assert done.returncode == 2, done.stderr
        no_traceback(done)
        assert str(taken) in done.stderr
        assert "composer: hint:" in done.stderr
        if shape == "non-empty dir":
            assert [p.name for p in taken.iterdir()] == ["keep.txt"]
        else:
            assert taken.read_text() == "mine\n"


# -- a kept cluster: where its nodes are, and composer ssh --------------------


def test_keep_says_how_to_reach_nodes_and_ssh_gets_there(composer: Composer, tmp_path: Path,
                                                         tally: Tally) -> None:
    with tally.check("walkthrough"):
        job = write_job(tmp_path / "kept", simple_job("kept", 2, ["true"]))
        done = composer.run("up", str(job), "--keep", "--json")
        assert done.returncode == 0, done.stderr[-3000:]
        run_id = final_json(done.stdout)["run_id"]
        try:
            inventory = json.loads((composer.home / "work" / run_id / "inventory.json")
                                   .read_text())
            for node in inventory:
                assert f"{node['address']}:{node['port']}" in done.stderr
            assert f"composer ssh {run_id} node-1" in done.stderr

            hi = composer.run("ssh", run_id, "node-1", "--", "echo", "hi", timeout=60)
            assert hi.returncode == 0, hi.stderr
            assert hi.stdout == "hi\n"
            where = composer.run("ssh", run_id[:15], "1", "--", "sh", "-c",
                                 'echo "$COMPOSER_NODE_RANK $(pwd)"', timeout=60)
            assert where.returncode == 0, where.stderr
            rank, cwd = where.stdout.split()
            assert rank == "1" and cwd == inventory[1]["work_dir"]
            status = composer.run("ssh", run_id, "--", "sh", "-c", "exit 7", timeout=60)
            assert status.returncode == 7

            missing = composer.run("ssh", run_id, "node-9", "--", "true")
            assert missing.returncode == 2 and "node-9" in missing.stderr
            assert "node-0, node-1" in missing.stderr
            no_traceback(missing)
        finally:
            down = composer.run("down", run_id, "--json", timeout=120)
        assert down.returncode == 0, down.stderr
        assert one_object(down)["teardown"]["status"] == "destroyed"
        assert not sshd_processes(run_id)

        gone = composer.run("ssh", run_id, "node-1", "--", "echo", "hi")
        assert gone.returncode == 2
        assert run_id in gone.stderr and "no live cluster" in gone.stderr
        no_traceback(gone)


def test_ssh_to_a_run_that_never_kept_its_cluster(composer: Composer, tmp_path: Path,
                                                  tally: Tally) -> None:
    with tally.check("walkthrough"):
        done = composer.run("ssh", "20990101-000000-abcdef")
        assert done.returncode == 2
        assert "20990101-000000-abcdef" in done.stderr
        no_traceback(done)


# -- hello-mpi reproduces; --latest picks originals; diffs show text ----------


def forge(c: Composer, run_id: str, tmp: Path, edit: dict[str, str]) -> str:
    """A copy of a record with some output texts changed (manifest kept in step)."""
    repo = RunsRepo(c.runs)
    staged = repo.export(run_id, tmp / "forged")
    manifest = json.loads((staged / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] in edit:
            data = edit[entry["path"]].encode()
            (staged / "outputs" / entry["path"]).write_bytes(data)
            entry.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    (staged / "manifest.json").write_text(json.dumps(manifest))
    forged = f"{run_id[:-6]}f0f0f0"
    repo.commit_run(forged, staged, "a record with an edited output")
    return forged


def test_hello_mpi_reproduces_and_diffs_show_text(composer: Composer, tmp_path: Path,
                                                   tally: Tally) -> None:
    with tally.check("walkthrough"):
        first = composer.run("up", str(HELLO / "job.toml"), "--json")
        assert first.returncode == 0, first.stderr[-3000:]
        original = final_json(first.stdout)["run_id"]

        again = composer.run("reproduce", "--latest", "hello-mpi", "--json")
        assert again.returncode == 0, again.stdout + again.stderr[-3000:]
        verdict = one_object(again)
        assert verdict["verdict"] == "identical", verdict
        assert verdict["reproduces"] == original and verdict["files"] == []
        copy = verdict["run_id"]
        assert record_json(composer, copy, "result.json")["reproduces"] == original

        # --latest must pick the original, not the newer reproduction: a drifted
        # job file makes reproduce stop before anything starts and name its target.
        moved = tmp_path / "hello"
        shutil.copytree(HELLO, moved)
        (moved / "job.toml").write_text((moved / "job.toml").read_text() + "# moved\n")
        refused = composer.run("reproduce", "--latest", "hello-mpi", "--job",
                               str(moved / "job.toml"), "--json")
        assert refused.returncode == 3, refused.stderr[-3000:]
        assert one_object(refused)["reproduces"] == original

        name = "node-0/hello-rank-0.json"
        old = json.loads(composer.git("show", f"run/{original}:{original}/outputs/{name}"))
        edited = json.dumps({**old, "allreduce": 99}, sort_keys=True) + "\n"
        forged = forge(composer, original, tmp_path, {name: edited})
        shown = composer.run("diff", original, forged)
        assert shown.returncode == 0, shown.stderr
        assert f"--- a/{name}" in shown.stdout and f"+++ b/{name}" in shown.stdout
        assert f"-{json.dumps(old, sort_keys=True)}" in shown.stdout
        assert f"+{edited.strip()}" in shown.stdout
        data = one_object(composer.run("diff", original, forged, "--json"))
        results = next(s for s in data["sections"] if s["name"] == "results")
        [change] = results["files"]
        assert change["path"] == name and '"allreduce": 99' in change["diff"]


# -- the workload's environment is what docs/spec.md says ---------------------

ENV_SCRIPT = """\
import json, os, pathlib
rank = os.environ.get("OMPI_COMM_WORLD_RANK") or os.environ["COMPOSER_NODE_RANK"]
seen = {k: v for k, v in os.environ.items() if k.startswith("COMPOSER_")}
seen["cwd"] = os.getcwd()
out = pathlib.Path(os.environ["COMPOSER_OUTPUT_DIR"])
(out / f"env-{rank}.json").write_text(json.dumps(seen))
"""


def documented_variables() -> set[str]:
    text = (ROOT / "docs" / "spec.md").read_text()
    section = text.split("## The workload's environment", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(COMPOSER_[A-Z_]+)` \|", section, re.M))


@pytest.mark.parametrize("launcher", ["ssh", "mpi"])
def test_workload_environment_is_documented(launcher: str, composer: Composer, tmp_path: Path,
                                            tally: Tally) -> None:
    with tally.check("walkthrough"):
        doc = simple_job(f"env-{launcher}", 2, ["python", "env.py"],
                         run={"launcher": launcher}, code={"path": "."},
                         outputs={"paths": ["env-*.json"], "from": "all"})
        job = write_job(tmp_path / launcher, doc, {"env.py": ENV_SCRIPT})
        done = composer.run("up", str(job), "--json")
        assert done.returncode == 0, done.stderr[-3000:]
        run_id = final_json(done.stdout)["run_id"]
        documented = documented_variables()
        assert "COMPOSER_OUTPUT_DIR" in documented
        expected = documented if launcher == "mpi" else documented - {"COMPOSER_HOSTFILE"}
        expected -= {"COMPOSER_CHECKPOINT_DIR"}  # set only with [run] checkpoint
        for rank in (0, 1):
            seen = record_json(composer, run_id, f"outputs/node-{rank}/env-{rank}.json")
            assert set(seen) - {"cwd"} == expected
            assert seen["COMPOSER_NODE_RANK"] == str(rank)
            assert seen["cwd"] == f"{seen['COMPOSER_WORK_DIR']}/code"
            assert seen["COMPOSER_OUTPUT_DIR"] == f"{seen['COMPOSER_WORK_DIR']}/outputs"
            assert seen["COMPOSER_NODE_ADDRS"].split(",")[rank] == seen["COMPOSER_NODE_ADDR"]
