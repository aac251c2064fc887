"""What the cloud targets (aws, gcp) share: preflight's collected problems, the run's
keys, the warning for a port 22 open to everyone, and gc's actions applied.

Each cloud target keeps its own API calls; this module holds only what does not
depend on the cloud.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from composer.errors import PreflightError, Problem
from composer.targets.base import GcRequest, gc_action


class CloudPreflightError(PreflightError):
    """Every problem a cloud preflight found, one line each (``target``: its name)."""

    target = "cloud"

    def __init__(self, problems: list[Problem], hints: list[str]) -> None:
        self.problems = list(problems)
        if len(problems) == 1:
            message = str(problems[0])
        else:
            lines = "\n".join(f"  {p}" for p in problems)
            message = f"{self.target} preflight: {len(problems)} problems\n{lines}"
        unique = list(dict.fromkeys(hints))
        super().__init__(message, hint="\n  ".join(unique) if unique else None)


def run_keys(work_dir: Path, run_id: str, nodes: int) -> tuple[str, list[Path]]:
    """The run's client key pair (``keys/client``) and one host key pair per node
    (``nodes/node-<rank>/ssh_host_ed25519_key``), under the run's private work dir.
    Returns the client's public line and the private host key files, in rank order."""
    from composer.keys import generate_keypair  # cryptography: only when keys are made

    client_pub = generate_keypair(work_dir / "keys" / "client", f"composer-{run_id}")
    host_keys = []
    for rank in range(nodes):
        path = work_dir / "nodes" / f"node-{rank}" / "ssh_host_ed25519_key"
        generate_keypair(path, f"node-{rank}")
        host_keys.append(path)
    return client_pub, host_keys


def host_key_pair(private_key: Path) -> dict[str, str]:
    """``{private, public}`` from a key ``composer.keys.generate_keypair`` wrote
    (``private_key`` and ``private_key.pub``)."""
    public = private_key.with_name(private_key.name + ".pub").read_text(encoding="utf-8")
    return {"private": private_key.read_text(encoding="utf-8"), "public": public.strip()}


def node_keys(nodes: int, host_keys: Sequence[Path], expires_at_epoch: int) -> list[dict[str, str]]:
    """The run var file's ``host_keys``, after checking there is one per node and the
    expiry is an epoch second (0: none)."""
    if len(host_keys) != nodes:
        raise ValueError(f"{len(host_keys)} host keys for {nodes} nodes")
    if expires_at_epoch < 0:
        raise ValueError(f"expires_at_epoch is {expires_at_epoch}")
    return [host_key_pair(path) for path in host_keys]


def open_to_all(section: str, cidrs: Iterable[str]) -> list[str]:
    """A warning for each ``ssh_cidrs`` block that is every address."""
    return [f"{section}.ssh_cidrs: {cidr} lets every address reach the nodes' port 22 "
            "(they accept only the run's key); narrow it to where composer runs"
            for cidr in cidrs if cidr.endswith("/0")]


def reason(expired: bool, expires_at: Any, run_id: str, live_run_ids: set[str]) -> str:
    """Why a listed resource is garbage ("" when it is not)."""
    reasons = []
    if expired:
        reasons.append(f"expired at {expires_at}")
    if run_id not in live_run_ids:
        reasons.append(f"run {run_id} has no live composer process here")
    return "; ".join(reasons)


def swept(done: list[dict[str, Any]], left_alone: str, run_id: str, where: str,
          hint: str) -> list[str]:
    """The teardown sweep's answer from ``remove``'s results: what was removed; a
    ``ComposerError`` naming what could not be (``left_alone``: a result that is no
    failure, the resource having gone or changed since it was listed)."""
    from composer.errors import ComposerError

    failed = [f"{i['kind']} {i['id']}: {i['error']}" for i in done
              if not i["removed"] and i["error"] != left_alone]
    if failed:
        raise ComposerError(f"resources of run {run_id} still in {where}: " + "; ".join(failed),
                            hint=hint)
    return [f"{item['kind']} {item['id']}" for item in done if item["removed"]]


def act(items: list[dict[str, Any]], ask: GcRequest,
        remove: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    """Give each listed item gc's ``action``; with ``ask.remove``, remove those to go
    (``remove`` returns ``{kind, id, removed, error}`` each) and record ``outcome``."""
    for item in items:
        item["action"] = gc_action(item, ask)
    doomed = [item for item in items if item["action"] == "remove"]
    if not (ask.remove and doomed):
        return
    done = {(i["kind"], i["id"]): i for i in remove(doomed)}
    for item in items:
        result = done.get((item["kind"], item["id"]))
        if result is not None:
            item["outcome"] = "removed" if result["removed"] else "failed"
            item["error"] = result["error"]
