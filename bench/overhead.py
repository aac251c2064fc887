"""``composer up`` of examples/hello-mpi at N nodes, and the same work done by hand.

The bare baseline generates the keys, writes the sshd configs, starts the sshds,
waits for TCP, ships the job directory to every node, writes the hostfile and
the pinned ssh wrapper, runs composer's own mpirun command line over ssh on
node 0, hashes the outputs and stops the sshds: no Terraform, no paramiko, no
record.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.bare import BareCluster, BareError, pick_addresses, session_env
from composer import launch
from composer.targets.local import LocalTarget

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello-mpi"
RUN_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ComposerRun:
    run_id: str
    wall_s: float
    stages: dict[str, float]
    duration_s: float

    @property
    def record_s(self) -> float:
        """Wall time outside every stage: start-up, preflight, the record's commit."""
        return max(0.0, self.wall_s - sum(self.stages.values()))

    def shares(self) -> dict[str, float]:
        parts = {**self.stages, "record": self.record_s}
        return {name: seconds / self.wall_s for name, seconds in parts.items()}


def write_job(directory: Path, nodes: int) -> Path:
    """examples/hello-mpi with ``nodes`` nodes of one slot each; returns its job.toml."""
    if directory.exists():
        shutil.rmtree(directory)
    shutil.copytree(HELLO, directory, ignore=shutil.ignore_patterns("__pycache__", "outputs"))
    job = directory / "job.toml"
    text = job.read_text()
    text = re.sub(r"(?m)^nodes\s*=.*$", f"nodes = {nodes}", text)
    text = re.sub(r"(?m)^slots_per_node\s*=.*$", "slots_per_node = 1", text)
    job.write_text(text)
    return job


def user_environment() -> dict[str, str]:
    """This environment with bytecode writing on, as a user's installed composer has it
    (an environment that turns it off would compile composer's sources at every start)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def composer_argv() -> list[str]:
    script = Path(sys.executable).parent / "composer"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "composer"]


class ComposerJobs:
    """Runs ``composer up`` with its own COMPOSER_HOME and runs repository."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.home = root / "home"
        self.runs = root / "runs"
        self.env = {
            **user_environment(), "COMPOSER_HOME": str(self.home),
            "COMPOSER_RUNS_REPO": str(self.runs), "COMPOSER_LOCAL_PORT": str(port),
        }

    def up(self, job: Path) -> ComposerRun:
        t0 = time.monotonic()
        done = subprocess.run(
            [*composer_argv(), "up", str(job), "--json"], cwd=job.parent, env=self.env,
            capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False,
        )
        wall = time.monotonic() - t0
        lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
        try:
            out = json.loads(lines[-1])
        except (IndexError, ValueError):
            out = {}
        if done.returncode != 0 or out.get("status") != "succeeded":
            raise RuntimeError(
                f"composer up {job} exited {done.returncode}: {done.stderr.strip()[-1500:]}"
            )
        run_id = str(out["run_id"])
        shown = subprocess.run(
            ["git", "-C", str(self.runs), "show", f"run/{run_id}:{run_id}/result.json"],
            capture_output=True, text=True, check=True,
        )
        result = json.loads(shown.stdout)
        stages = {k: float(v) for k, v in result.get("stages", {}).items()}
        return ComposerRun(run_id, wall, stages, float(result.get("duration_s") or 0.0))


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def baseline(root: Path, job_dir: Path, nodes: int, port: int) -> float:
    """Wall seconds of the whole bare run: keys to stopped sshds."""
    addresses = pick_addresses(nodes, port)
    t0 = time.monotonic()
    cluster = BareCluster(root, addresses, port, session_env())
    with cluster:
        cluster.create()
        cluster.start()
        for node in cluster.nodes:
            shutil.copytree(job_dir, node.work / "code")
        head = cluster.nodes[0]
        hostfile = cluster.hostfile(head.work / "hostfile")
        wrapper = cluster.ssh_wrapper(head.directory / "ssh-wrapper")
        env = {
            **cluster.env, "COMPOSER_RUN_ID": f"bench-{nodes}",
            "COMPOSER_NUM_NODES": str(nodes),
            "COMPOSER_NODE_ADDRS": ",".join(n.address for n in cluster.nodes),
            "COMPOSER_HEAD_ADDR": head.address, "COMPOSER_HOSTFILE": str(hostfile),
        }
        argv = launch.mpirun_argv(
            launch.mpirun_path(), str(hostfile), str(wrapper), nodes, list(env),
            LocalTarget().mpi_args(), ["python", "hello.py"], as_root=cluster.user == "root",
        )
        done = subprocess.run(
            cluster.ssh_argv(0, f"{launch.env_prefix(env)} {shlex.join(argv)}"),
            stdin=subprocess.DEVNULL, capture_output=True, timeout=RUN_TIMEOUT_S, check=False,
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).decode(errors="replace").strip()[-1500:]
            raise BareError(f"bare mpirun at {nodes} nodes exited {done.returncode}: {tail}")
        outputs = sorted(p for n in cluster.nodes for p in (n.work / "outputs").glob("hello-*"))
        if len(outputs) != nodes:
            raise BareError(f"bare run at {nodes} nodes wrote {len(outputs)} outputs")
        for path in outputs:
            _sha256(path)
    return time.monotonic() - t0
