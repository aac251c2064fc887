"""``composer ssh RUN [NODE] [-- COMMAND...]``: a shell on a node of a live cluster.

The run is found by its work dir (an id or a unique prefix); its inventory
names the nodes. OpenSSH gets the run's own key and a known_hosts file that
holds only the nodes' pinned host keys, so it connects to the nodes composer
created or to nothing.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path

from composer import sshopts
from composer.down import find_work_dir
from composer.errors import UsageError
from composer.paths import work_root
from composer.procs import node_processes
from composer.remote import Node, known_hosts
from composer.state import RunState

INVENTORY = "inventory.json"
KNOWN_HOSTS = "known_hosts"


def load_nodes(work: Path) -> list[Node]:
    data = json.loads((work / INVENTORY).read_text())
    return [Node.from_output(item) for item in data]


def live_nodes(ref: str) -> tuple[str, Path, list[Node]]:
    """The run id, work dir and nodes of a run whose cluster is up; exit 2 otherwise."""
    hint = "composer up JOB --keep keeps a cluster after its run"
    name, root = ref.removeprefix("run/"), work_root()
    if not root.is_dir() or not any(p.name.startswith(name) for p in root.iterdir()):
        raise UsageError(f"run {name} has no live cluster (no work dir in {root})", hint=hint)
    work = find_work_dir(ref)
    state = RunState.load(work)
    if state.destroyed or not state.applied or not (work / INVENTORY).is_file():
        raise UsageError(f"run {state.run_id} has no live cluster", hint=hint)
    if not node_processes(work):
        raise UsageError(
            f"run {state.run_id} has no live cluster: none of its nodes is running",
            hint=f"composer down {state.run_id} cleans up what is left",
        )
    return state.run_id, work, load_nodes(work)


def pick_node(nodes: list[Node], name: str | None) -> Node:
    """``node-<rank>``, a bare rank, or (by default) the head node."""
    if name is None:
        return nodes[0]
    for node in nodes:
        if name in (node.name, str(node.rank)):
            return node
    names = ", ".join(n.name for n in nodes)
    raise UsageError(f"the run has no node '{name}'", hint=f"its nodes: {names}")


def known_hosts_file(work: Path, nodes: list[Node]) -> Path:
    """A known_hosts holding only the run's pinned host keys, kept in its work dir."""
    path = work / KNOWN_HOSTS
    text = known_hosts(nodes)
    tmp = path.with_name(f".{KNOWN_HOSTS}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def remote_line(command: list[str]) -> str | None:
    """The line the node's shell runs: in the node's work dir, each argument quoted."""
    if not command:
        return None
    return f'cd "$COMPOSER_WORK_DIR" && exec {shlex.join(command)}'


def ssh_argv(work: Path, nodes: list[Node], node: Node, user: str, command: list[str],
             interactive: bool) -> list[str]:
    """OpenSSH to ``node``: the run's key, only the pinned host keys, no prompts."""
    known = known_hosts_file(work, nodes)
    argv = ["ssh", *sshopts.options(work / "keys" / "client", known, node.port)]
    line = remote_line(command)
    if line is None and interactive:
        # An interactive shell (not a login shell: that could reset PATH),
        # started in the node's work dir (code/, outputs/).
        argv += ["-t", f"{user}@{node.address}",
                 'cd "$COMPOSER_WORK_DIR" && exec "${SHELL:-/bin/sh}" -i']
        return argv
    argv += [f"{user}@{node.address}", "--"]
    if line is not None:
        argv.append(line)
    return argv


def prepare(ref: str, node_name: str | None, command: list[str], user: str,
            interactive: bool) -> list[str]:
    """The OpenSSH argv for ``composer ssh``; exit 2 without a live cluster or ssh."""
    if shutil.which("ssh") is None:
        raise UsageError("no ssh client on PATH", hint="install OpenSSH's client (openssh-client)")
    _, work, nodes = live_nodes(ref)
    node = pick_node(nodes, node_name)
    return ssh_argv(work, nodes, node, user, command, interactive)

