"""What each node is: hostname, CPUs, memory, GPUs, MPI, OS, kernel."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from composer.remote import Session

#: Seconds the facts script may take on one node.
TIMEOUT = 60

SCRIPT = r"""
echo "hostname=$(hostname)"
echo "cpus=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
echo "memory_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)"
echo "kernel=$(uname -sr)"
echo "arch=$(uname -m)"
if [ -r /etc/os-release ]; then . /etc/os-release; echo "os=${PRETTY_NAME:-$NAME}"; fi
echo "mpi=$(mpirun --version 2>/dev/null | head -n 1)"
echo "python=$(python3 --version 2>&1 | head -n 1)"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null |
    while IFS= read -r line; do echo "gpu=$line"; done
fi
echo "node_addr=${COMPOSER_NODE_ADDR:-}"
"""


def parse_facts(text: str) -> dict[str, Any]:
    facts: dict[str, Any] = {"gpus": []}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if key == "gpu":
            name, _, rest = value.partition(",")
            driver, _, memory = rest.partition(",")
            facts["gpus"].append(
                {"name": name.strip(), "driver": driver.strip(), "memory": memory.strip()}
            )
        elif key in ("cpus", "memory_kb"):
            facts[key] = int(value) if value.isdigit() else None
        else:
            facts[key] = value or None
    return facts


def command(env_path: str | None = None) -> str:
    """The shell line that runs the facts script; PATH is the caller's: data for the
    node's shell, one quoted word like every argument."""
    prefix = f"PATH={shlex.quote(env_path)} " if env_path else ""
    return f"{prefix}sh -c {shlex.quote(SCRIPT)}"


def of_node(session: Session, text: str) -> dict[str, Any]:
    """The facts the script printed on ``session``'s node, with the node's identity."""
    facts = parse_facts(text)
    facts.update(rank=session.node.rank, name=session.node.name, address=session.node.address)
    return facts


def gather(session: Session, env_path: str | None = None) -> dict[str, Any]:
    return of_node(session, session.check(command(env_path), timeout=TIMEOUT))

