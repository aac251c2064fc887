"""composer up end to end: real sshd nodes, embedded Terraform, mpirun, a git runs repo."""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, Composer, sshd_processes

pytestmark = pytest.mark.integration

EXAMPLES = ROOT / "examples"


def write_job(directory: Path, body: str, files: dict[str, str] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {}).items():
        (directory / name).write_text(textwrap.dedent(text))
    job = directory / "job.toml"
    job.write_text(textwrap.dedent(body))
    return job


def final_json(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout must hold exactly one JSON line, got: {stdout!r}"
    return json.loads(lines[0])


def record_files(c: Composer, run_id: str) -> list[str]:
    out = c.git("ls-tree", "-r", "--name-only", f"run/{run_id}", "--", f"{run_id}/")
    return [line.removeprefix(f"{run_id}/") for line in out.splitlines()]


def read_record(c: Composer, run_id: str, name: str) -> str:
    return c.git("show", f"run/{run_id}:{run_id}/{name}")


def test_hello_mpi_end_to_end(composer: Composer) -> None:
    done = composer.run("up", str(EXAMPLES / "hello-mpi" / "job.toml"), "--json")
    assert done.returncode == 0, done.stderr
    out = final_json(done.stdout)
    assert out["status"] == "succeeded" and out["exit_code"] == 0
    run_id = out["run_id"]
    stat = composer.git("show", "--stat", "--format=%s", f"run/{run_id}")
    for name in ("infra/main.tf", "lock.json", "facts.json", "manifest.json",
                 "result.json"):
        assert f"{run_id}/{name}" in stat or name.split("/")[-1] in stat
    files = record_files(composer, run_id)
    for name in ("infra/main.tf", "infra/variables.tf", "infra/outputs.tf", "infra/versions.tf",
                 "infra/terraform.tfvars.json", "lock.json", "facts.json", "job.toml",
                 "manifest.json", "result.json", "logs/terraform.log",
                 "logs/composer.log"):
        assert name in files, f"{name} missing from {files}"
    assert not [f for f in files if f.endswith((".tfstate", ".tfplan")) or "/.terraform/" in f]
    result = json.loads(read_record(composer, run_id, "result.json"))
    assert result["teardown"]["status"] == "destroyed"
    assert set(result["stages"]) >= {"render", "init", "apply", "wait_for_ssh", "facts",
                                     "health", "stage", "run", "collect", "destroy"}
    manifest = json.loads(read_record(composer, run_id, "manifest.json"))
    paths = sorted(f["path"] for f in manifest["files"])
    assert paths == [f"node-{r // 2}/hello-rank-{r}.json" for r in range(4)]
    # the health gate: every pair of nodes, and an allreduce across the 4 ranks
    health = json.loads(read_record(composer, run_id, "health.json"))
    assert health["status"] == "passed", health
    pairs = health["mesh"]["pairs"]
    # one machine's nodes: the head probes every other node (composer/health.py)
    assert set(pairs) == {"node-0"} and health["mesh"]["pairs_checked"] == 1
    assert pairs["node-0"]["node-1"] > 0
    facts = json.loads(read_record(composer, run_id, "facts.json"))["nodes"]
    assert [f["name"] for f in facts] == ["node-0", "node-1"]
    assert "probed_on" not in facts[0] and facts[1]["probed_on"] == "node-0"
    assert facts[1]["address"] != facts[0]["address"] and facts[1]["cpus"] == facts[0]["cpus"]
    assert health["gpus"] == {"status": "passed", "requested": 0,
                              "nodes": {"node-0": health["gpus"]["nodes"]["node-0"],
                                        "node-1": health["gpus"]["nodes"]["node-1"]}}
    mpi = health["mpi"]
    assert mpi["status"] == "passed" and mpi["ranks"] == 4 and mpi["sum"] == 10, mpi
    assert mpi["allreduce_us"] > 0 and mpi["seconds"] > 0
    assert "[health] mesh: 1 pair reached from the head (one machine)" in done.stderr
    lock = json.loads(read_record(composer, run_id, "lock.json"))
    assert lock["modules"]["local-cluster"]["sha256"]
    assert lock["terraform"]["engine"] == "embedded" and lock["terraform"]["version"]
    assert lock["code"]["content_sha256"]
    assert not sshd_processes(run_id)
    assert f"run/{run_id}" in composer.git("tag", "--list")
    assert not (composer.home / "work" / run_id).exists()


def test_train_local_is_bit_identical_across_runs(composer: Composer) -> None:
    job = str(EXAMPLES / "train-local" / "job.toml")
    runs = []
    for _ in range(2):
        done = composer.run("up", job, "--json")
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(final_json(done.stdout)["run_id"])
    hashes = []
    for run_id in runs:
        facts = json.loads(read_record(composer, run_id, "facts.json"))["nodes"]
        addresses = {n["address"] for n in facts}
        assert len(addresses) == 4 and all(a.startswith("127.") for a in addresses)
        for rank in range(4):
            log = read_record(composer, run_id, f"logs/node-{rank}.log")
            assert log.strip(), f"node-{rank} of {run_id} wrote no log"
        manifest = json.loads(read_record(composer, run_id, "manifest.json"))
        by_path = {f["path"]: f for f in manifest["files"]}
        assert set(by_path) == {"model.npz", "metrics.json"}
        hashes.append(by_path["model.npz"]["sha256"])
        metrics = json.loads(read_record(composer, run_id, "outputs/metrics.json"))
        assert metrics["world_size"] == 8
    assert hashes[0] == hashes[1]


def test_failing_workload_is_recorded_and_torn_down(composer: Composer, tmp_path: Path) -> None:
    job = write_job(tmp_path / "fail", """
        [job]
        name = "fails"
        [cluster]
        target = "local"
        nodes = 2
        [run]
        command = "if [ \\"$COMPOSER_NODE_RANK\\" = 1 ]; then exit 3; fi"
    """)
    done = composer.run("up", str(job), "--json")
    assert done.returncode == 1, done.stderr
    out = final_json(done.stdout)
    assert out["status"] == "failed" and out["exit_code"] == 1
    result = json.loads(read_record(composer, out["run_id"], "result.json"))
    assert result["status"] == "failed"
    assert result["exit_code"] == 3
    assert result["failed_node"] == "node-1"
    assert result["teardown"]["status"] == "destroyed"
    assert not sshd_processes(out["run_id"])


def test_ssh_launcher_environment(composer: Composer, tmp_path: Path) -> None:
    script = """
        import json, os, pathlib
        keys = ["COMPOSER_RUN_ID", "COMPOSER_NODE_RANK", "COMPOSER_NUM_NODES",
                "COMPOSER_NODE_ADDRS", "COMPOSER_HEAD_ADDR", "COMPOSER_OUTPUT_DIR", "GREETING"]
        env = {k: os.environ.get(k) for k in keys}
        env["cwd_has_code"] = pathlib.Path("show_env.py").exists()
        env["input"] = pathlib.Path("data/in.txt").read_text()
        out = pathlib.Path(os.environ["COMPOSER_OUTPUT_DIR"])
        (out / "env.json").write_text(json.dumps(env, sort_keys=True))
    """
    (tmp_path / "job3" / "data").mkdir(parents=True)
    (tmp_path / "job3" / "data" / "src.txt").write_text("input-bytes\n")
    job = write_job(tmp_path / "job3", """
        [job]
        name = "ssh-env"
        [cluster]
        target = "local"
        nodes = 3
        [run]
        launcher = "ssh"
        command = ["python", "show_env.py"]
        env = { GREETING = "hello world; $(not run) `nor this`" }
        [code]
        path = "."
        [inputs]
        "data/src.txt" = "data/in.txt"
        [outputs]
        paths = ["*.json"]
    """, {"show_env.py": script})
    done = composer.run("up", str(job), "--json")
    assert done.returncode == 0, done.stderr
    run_id = final_json(done.stdout)["run_id"]
    envs = [json.loads(read_record(composer, run_id, f"outputs/node-{r}/env.json"))
            for r in range(3)]
    addrs = envs[0]["COMPOSER_NODE_ADDRS"].split(",")
    assert len(set(addrs)) == 3
    for rank, env in enumerate(envs):
        assert env["COMPOSER_RUN_ID"] == run_id
        assert env["COMPOSER_NODE_RANK"] == str(rank)
        assert env["COMPOSER_NUM_NODES"] == "3"
        assert env["COMPOSER_HEAD_ADDR"] == addrs[0]
        assert env["COMPOSER_OUTPUT_DIR"].endswith(f"node-{rank}/work/outputs")
        assert env["GREETING"] == "hello world; $(not run) `nor this`"
        assert env["cwd_has_code"] is True
        assert env["input"] == "input-bytes\n"


def test_sigint_during_workload(composer: Composer, tmp_path: Path) -> None:
    job = write_job(tmp_path / "slow", """
        [job]
        name = "slow"
        [cluster]
        target = "local"
        nodes = 2
        [run]
        command = "echo started; sleep 60"
    """)
    proc = subprocess.Popen(composer.argv("up", str(job), "--json"), cwd=composer.cwd,
                            env=composer.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    log_seen = False
    while time.monotonic() < deadline and not log_seen:
        time.sleep(0.2)
        logs = composer.home.glob("work/*/record/logs/node-*.log")
        log_seen = any(p.read_text().strip() for p in logs)
    assert log_seen, "the workload never started"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    out = final_json(stdout)
    assert out["status"] == "interrupted"
    result = json.loads(read_record(composer, out["run_id"], "result.json"))
    assert result["status"] == "interrupted" and result["stage"] == "run"
    assert result["teardown"]["status"] == "destroyed"
    assert not sshd_processes(out["run_id"])


def test_max_duration_stops_the_workload(composer: Composer, tmp_path: Path) -> None:
    job = write_job(tmp_path / "long", """
        [job]
        name = "too-long"
        [cluster]
        target = "local"
        nodes = 1
        [run]
        command = "sleep 120"
        [limits]
        max_duration = "2s"
    """)
    started = time.monotonic()
    done = composer.run("up", str(job), "--json")
    assert time.monotonic() - started < 60
    assert done.returncode == 1, done.stderr
    out = final_json(done.stdout)
    assert out["status"] == "timeout"
    result = json.loads(read_record(composer, out["run_id"], "result.json"))
    assert "max_duration" in result["error"]
    assert result["teardown"]["status"] == "destroyed"
    assert not sshd_processes(out["run_id"])


def test_invalid_spec_runs_nothing(composer: Composer, tmp_path: Path) -> None:
    job = write_job(tmp_path / "bad", """
        [job]
        name = "bad"
        [cluster]
        target = "local"
        nodes = 0
        [run]
        lancher = "mpi"
        command = ["true"]
    """)
    for args in (("validate", str(job)), ("up", str(job))):
        done = composer.run(*args)
        assert done.returncode == 2
        assert "cluster.nodes: must be at least 1" in done.stderr
        assert "run.lancher: unknown key; did you mean 'launcher'?" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (composer.home / "work").exists()
    assert not composer.runs.exists()


def test_keep_then_down(composer: Composer, tmp_path: Path) -> None:
    job = write_job(tmp_path / "kept", """
        [job]
        name = "kept"
        [cluster]
        target = "local"
        nodes = 2
        [run]
        command = ["true"]
    """)
    done = composer.run("up", str(job), "--keep", "--json")
    assert done.returncode == 0, done.stderr
    run_id = final_json(done.stdout)["run_id"]
    assert f"composer down {run_id}" in done.stderr
    assert len(sshd_processes(run_id)) == 2
    result = json.loads(read_record(composer, run_id, "result.json"))
    assert result["teardown"]["status"] == "kept"
    down = composer.run("down", run_id[:15], "--json")
    assert down.returncode == 0, down.stderr
    assert json.loads(down.stdout)["teardown"]["status"] == "destroyed"
    assert not sshd_processes(run_id)
    assert not (composer.home / "work" / run_id).exists()


def test_runs_and_show(composer: Composer, tmp_path: Path) -> None:
    job = write_job(tmp_path / "listed", """
        [job]
        name = "listed"
        [cluster]
        target = "local"
        nodes = 1
        [run]
        command = ["true"]
    """)
    done = composer.run("up", str(job), "--json")
    run_id = final_json(done.stdout)["run_id"]
    table = composer.run("runs")
    assert table.returncode == 0
    header, row = table.stdout.splitlines()[:2]
    assert header.split() == ["RUN", "JOB", "STATUS", "NODES", "DURATION", "COST", "STARTED",
                              "CLUSTER"]
    assert row.split()[:4] == [run_id, "listed", "succeeded", "1"]
    assert row.split()[5:7] == ["0", "USD"]  # the local target costs nothing
    listed = json.loads(composer.run("runs", "--json").stdout)["runs"]
    assert listed[0]["cost"] == {"estimate": 0.0, "spend": 0.0, "currency": "USD"}
    show = composer.run("show", run_id[:17])
    assert show.returncode == 0 and "result.json" in show.stdout and "succeeded" in show.stdout
    missing = composer.run("show", "nope")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


@pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v terraform"], capture_output=True)
                    .returncode != 0, reason="no terraform binary on PATH")
def test_terraform_binary_engine(composer: Composer, tmp_path: Path) -> None:
    job = write_job(tmp_path / "cli", """
        [job]
        name = "cli-engine"
        [cluster]
        target = "local"
        nodes = 1
        [run]
        command = ["true"]
    """)
    done = composer.run("up", str(job), "--engine", "terraform", "--json")
    assert done.returncode == 0, done.stderr
    run_id = final_json(done.stdout)["run_id"]
    lock = json.loads(read_record(composer, run_id, "lock.json"))
    assert lock["terraform"]["engine"] == "terraform"
    assert "terraform.rc" not in done.stderr and "Warning" not in done.stderr


def test_apply_failure_reaches_the_user(composer: Composer, tmp_path: Path) -> None:
    broken = tmp_path / "broken-sshd"
    broken.write_text("#!/bin/sh\necho 'bind to port 22022 failed: Address already in use' >&2\n"
                      "exit 255\n")
    broken.chmod(0o755)
    job = write_job(tmp_path / "apply-fails", """
        [job]
        name = "apply-fails"
        [cluster]
        target = "local"
        nodes = 2
        [run]
        command = ["true"]
    """)
    done = composer.run("up", str(job), "--json", COMPOSER_SSHD=str(broken))
    assert done.returncode == 4, done.stderr
    assert "Address already in use" in done.stderr
    assert "local-exec provisioner error" in done.stderr
    out = final_json(done.stdout)
    result = json.loads(read_record(composer, out["run_id"], "result.json"))
    assert result["status"] == "failed" and result["stage"] == "apply"
    assert result["teardown"]["status"] == "destroyed"
    assert not sshd_processes(out["run_id"])
    assert not (composer.home / "work" / out["run_id"]).exists()


def test_missing_sshd_is_a_clear_preflight_error(composer: Composer, tmp_path: Path) -> None:
    job = write_job(tmp_path / "no-sshd", """
        [job]
        name = "no-sshd"
        [cluster]
        target = "local"
        nodes = 1
        [run]
        command = ["true"]
    """)
    done = composer.run("up", str(job), COMPOSER_SSHD=str(tmp_path / "absent"))
    assert done.returncode == 2
    assert "apt-get install openssh-server" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (composer.home / "work").exists()


def test_kill_9_then_down_records_abandoned(composer: Composer, tmp_path: Path) -> None:
    job = write_job(tmp_path / "killed", """
        [job]
        name = "killed"
        [cluster]
        target = "local"
        nodes = 2
        [run]
        command = "echo started; sleep 120"
    """)
    proc = subprocess.Popen(composer.argv("up", str(job)), cwd=composer.cwd, env=composer.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        logs = list(composer.home.glob("work/*/record/logs/node-*.log"))
        if any(p.read_text().strip() for p in logs):
            break
        time.sleep(0.2)
    proc.kill()
    proc.wait(timeout=30)
    run_id = next((composer.home / "work").iterdir()).name
    assert len(sshd_processes(run_id)) == 2
    done = composer.run("down", run_id, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["teardown"]["status"] == "destroyed"
    assert not sshd_processes(run_id)
    result = json.loads(read_record(composer, run_id, "result.json"))
    assert result["status"] == "abandoned" and result["stage"] == "run"
    assert f"run/{run_id}" in composer.git("tag", "--list")
    assert not (composer.home / "work" / run_id).exists()
