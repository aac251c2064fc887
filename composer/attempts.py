"""The attempts of one run: where each is made, why it ended, what comes next.

A run is tried in the target's candidates in order (``Target.candidates``: zone and
instance type, best first). An attempt ends in one of:

- ``succeeded`` / ``failed``: the run is over (a workload failure is not retried);
- ``capacity``: apply failed because the cloud had no capacity there
  (``composer/capacity.py``): what the attempt created is destroyed and the next
  candidate is tried; once every candidate has been tried, ``[run] retries`` with
  ``on = ["capacity"]`` starts over from the first, else the run fails (exit 4)
  listing every attempt;
- ``node-lost``: a node stopped answering while the workload ran; with ``[run]
  retries`` ``on = ["node-lost"]`` left, the cluster is torn down and a new one is
  made (in the same candidate, failing over as above), the workload starting again,
  from its checkpoint when ``[run] checkpoint`` names one.

Every attempt is listed in ``result.json`` (``attempts``); the record's infra tree,
pins and outputs are the last attempt's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composer.errors import ComposerError
from composer.result import cap_log
from composer.spec.model import RetrySpec

CAPACITY = "capacity"
NODE_LOST = "node-lost"


@dataclass
class Attempt:
    number: int
    zone: str | None
    type: str | None
    started: float = field(default_factory=time.monotonic)
    outcome: str = "running"
    error: str | None = None
    seconds: float | None = None
    lost_nodes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"attempt": self.number, "zone": self.zone, "type": self.type,
                                "outcome": self.outcome, "error": self.error,
                                "seconds": self.seconds}
        if self.lost_nodes:
            data["lost_nodes"] = list(self.lost_nodes)
        return data

    def where(self) -> str:
        parts = [p for p in (self.zone, self.type) if p]
        return " ".join(parts) if parts else "the only candidate"


class NodeLost(ComposerError):  # noqa: N818 - reads as a state
    """Nodes stopped answering while the workload ran (exit 4)."""

    def __init__(self, nodes: list[str], cause: str) -> None:
        self.nodes = list(nodes)
        noun = "node" if len(nodes) == 1 else "nodes"
        super().__init__(f"lost {noun} {', '.join(nodes)} during the run ({cause})",
                         hint='[run] retries = { max = N, on = ["node-lost"] } starts the '
                              "run again on a new cluster")


class NoCapacityError(ComposerError):
    """Every candidate failed for capacity (exit 4)."""


class Attempts:
    """The candidates, the retry policy and the attempts made so far."""

    def __init__(self, candidates: list[dict[str, Any]],
                 placement: Callable[[dict[str, Any]], dict[str, Any]],
                 policy: RetrySpec) -> None:
        if not candidates:
            raise ValueError("a run needs at least one candidate")
        self.candidates = candidates
        self.placement = placement
        self.policy = policy
        self.index = 0
        self.retries = 0
        self.done: list[Attempt] = []

    @property
    def pins(self) -> dict[str, Any]:
        return self.candidates[self.index]

    @property
    def current(self) -> Attempt:
        return self.done[-1]

    def start(self) -> Attempt:
        where = self.placement(self.pins)
        attempt = Attempt(len(self.done) + 1, where.get("zone"), where.get("type"))
        self.done.append(attempt)
        return attempt

    def end(self, outcome: str, error: str | None = None,
            lost: list[str] | None = None) -> None:
        attempt = self.current
        attempt.outcome, attempt.error = outcome, error
        attempt.seconds = round(time.monotonic() - attempt.started, 3)
        attempt.lost_nodes = list(lost or ())

    def advance(self, reason: str) -> bool:
        """Move on after an attempt that ended for ``reason`` (CAPACITY or NODE_LOST);
        False when the run may not be made again."""
        if reason == CAPACITY and self.index + 1 < len(self.candidates):
            self.index += 1
            return True
        if reason not in self.policy.on or self.retries >= self.policy.max:
            return False
        self.retries += 1
        if reason == CAPACITY:
            self.index = 0  # every candidate was tried: all of them again
        return True

    def to_list(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self.done]

    def exhausted(self) -> NoCapacityError:
        lines = [f"attempt {a.number} in {a.where()}: {a.error}" for a in self.done]
        retry = "" if CAPACITY in self.policy.on else \
            '; [run] retries = { max = N, on = ["capacity"] } tries them all again'
        return NoCapacityError(
            f"no capacity in any candidate zone and type ({len(self.done)} attempts):\n  "
            + "\n  ".join(lines),
            hint="list more zones or types in the target's section, or try later" + retry)


def for_replay(candidates: list[dict[str, Any]], recorded: dict[str, Any],
               placement: Callable[[dict[str, Any]], dict[str, Any]]) -> list[dict[str, Any]]:
    """A reproduction is made where the recorded run was (its zone and type), not failed
    over elsewhere; when today's candidates no longer hold that place, the recorded
    place over today's pins (apply will say whether it still exists)."""
    where = placement(recorded)
    if not any(where.values()):
        return candidates[:1]
    same = [c for c in candidates if placement(c) == where]
    if same:
        return same[:1]
    keys = ("zone", "subnet", "vpc_id", "instance_type", "machine_type", "accelerator")
    return [{**candidates[0], **{k: recorded[k] for k in keys if k in recorded}}]


def settle_last(plan: Attempts, status: str, error: str | None) -> None:
    """The last attempt ends as the run does (succeeded, failed, timeout, interrupted)."""
    if not plan.done:
        return
    last = plan.current
    if last.outcome == "running":
        plan.end(status, error)
    elif last.outcome == "finished":
        last.outcome, last.error = status, error


#: Logs every attempt writes to (the run's own), left in place.
RUN_LOGS = ("composer.log", "terraform.log")


def set_aside(staged: Path, number: int, limit: int) -> list[str]:
    """Attempt ``number``'s node logs (``logs/node-N.log``, ``mpirun.log``) moved to
    ``logs/attempt-N/`` (each cut to ``limit`` bytes, as record.max_log_size says), so
    that ``logs/`` holds the last attempt's; returns the record paths moved."""
    logs = staged / "logs"
    dest = logs / f"attempt-{number}"
    moved = []
    for path in sorted(logs.glob("*.log")):
        if path.name in RUN_LOGS:
            continue
        dest.mkdir(parents=True, exist_ok=True)
        path.rename(dest / path.name)
        cap_log(dest / path.name, limit)
        moved.append(f"logs/{dest.name}/{path.name}")
    return moved
