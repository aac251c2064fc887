"""The workload's Python environment: probed per node, recorded, pinned, compared.

``envprobe.py`` runs with the interpreter the workload's ``python`` resolves to
(the workload's own environment: the target's ``session_env`` plus ``[run] env``)
and prints the interpreter, every installed distribution, the CUDA/cuDNN/NCCL and
framework versions the libraries report, the MPI library and the variables that
change numerical results. A containerized run asks the pinned image once instead.

The record keeps ``environment.json``: one entry per distinct environment, each
node naming its entry, so identical nodes share one; nodes that differ are
flagged. ``lock.json`` pins the sorted package set's sha256 (one, or one per node
when they differ). ``compare`` names what changed between two records, for
``composer reproduce`` (drift class ``environment``) and ``composer diff``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from composer import containers
from composer.records.guard import terminal_text

if TYPE_CHECKING:
    from composer.spec import Spec

ENV_FILE = "environment.json"
SCHEMA_VERSION = 1
PROBE_TIMEOUT = 300
PROBE_SOURCE = Path(__file__).with_name("envprobe.py").read_text(encoding="utf-8")
# The workload's `python`, else python3: the interpreter the probe runs with.
# A workload that needs no Python must not fail here: an error is printed as the result.
LAUNCH = (
    'py=$(command -v python || command -v python3) || '
    '{ echo \'{"error": "neither python nor python3 is on the PATH"}\'; exit 0; }; '
    '"$py" -c "$1" 2>&1 || echo \'{"error": "the probe failed"}\''
)
# What an sshd session on a local node starts with besides session_env (see local target).
LOGIN_VARS = ("HOME", "USER", "LOGNAME", "SHELL")
# Fields that say where, not what: shown by diff, never drift.
NOT_DRIFT = frozenset({"python.executable", "mpi.library", "mpi.via"})
ASKED_ONCE = frozenset({"error", "python.version"})


@dataclass(frozen=True)
class Environment:
    """One probed environment (the probe's JSON, typed)."""

    python: dict[str, Any]
    packages: dict[str, str]
    libraries: dict[str, str] = field(default_factory=dict)
    mpi: dict[str, Any] | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: Why nothing could be asked (no Python on the PATH, a probe that failed).
    error: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Environment:
        return cls(dict(data.get("python") or {}), dict(data.get("packages") or {}),
                   dict(data.get("libraries") or {}), data.get("mpi") or None,
                   dict(data.get("env") or {}), data.get("error") or None)

    @property
    def packages_sha256(self) -> str:
        """sha256 of the sorted ``name==version`` lines: the lock's one-step pin."""
        text = "".join(f"{n}=={v}\n" for n, v in sorted(self.packages.items()))
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        data = {"python": self.python, "packages": self.packages, "libraries": self.libraries,
                "mpi": self.mpi, "env": self.env, "packages_sha256": self.packages_sha256}
        return data if self.error is None else {**data, "error": self.error}

    @property
    def key(self) -> str:
        """Identity of the whole environment (nodes with equal keys share an entry)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def fields(self) -> dict[str, Any]:
        """Every compared value by dotted name: ``packages.numpy``, ``python.version``...
        (an environment that could not be asked has only its error)."""
        if self.error is not None:
            return {"error": self.error}
        out: dict[str, Any] = {f"python.{k}": v for k, v in self.python.items()}
        out.update({f"packages.{k}": v for k, v in self.packages.items()})
        out.update({f"libraries.{k}": v for k, v in self.libraries.items()})
        out.update({f"mpi.{k}": v for k, v in (self.mpi or {}).items()})
        out.update({f"env.{k}": v for k, v in self.env.items()})
        return out


@dataclass(frozen=True)
class Change:
    """One value that differs; ``nodes`` empty when it differs on every node."""

    field: str
    old: Any
    new: Any
    nodes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "old": self.old, "new": self.new, "nodes": list(self.nodes)}

    def describe(self) -> str:
        """One line for a terminal or log: names and versions come from the nodes'
        metadata, so control characters in them are escaped."""
        return terminal_text(self._text())

    def _text(self) -> str:
        if self.field.startswith("packages."):
            name = self.field.removeprefix("packages.")
            if self.old is None:
                text = f"package {name}: added ({self.new})"
            elif self.new is None:
                text = f"package {name}: removed (was {self.old})"
            else:
                text = f"package {name}: {self.old} -> {self.new}"
        else:
            text = f"{self.field}: {_shown(self.old)} -> {_shown(self.new)}"
        return text + (f" [{', '.join(self.nodes)}]" if self.nodes else "")


def _shown(value: Any) -> str:
    return "(none)" if value is None else str(value)


@dataclass(frozen=True)
class EnvironmentRecord:
    """``environment.json``: each node's environment; ``source`` "nodes" or "image"."""

    source: str
    nodes: dict[str, Environment]
    image: str | None = None

    @property
    def uniform(self) -> bool:
        return len({e.key for e in self.nodes.values()}) <= 1

    def differences(self) -> list[Change]:
        """What differs between the nodes of this run (empty when they agree)."""
        if self.uniform:
            return []
        first = min(self.nodes.items(), key=_rank_order)[1]
        base = {n: first for n in self.nodes}
        return compare(EnvironmentRecord(self.source, base), self)

    def to_dict(self) -> dict[str, Any]:
        entries = {e.key: e.to_dict() for e in self.nodes.values()}
        data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION, "source": self.source, "image": self.image,
            "nodes": {name: e.key for name, e in sorted(self.nodes.items(), key=_rank_order)},
            "environments": entries, "uniform": self.uniform,
        }
        if not self.uniform:
            data["differences"] = [c.describe() for c in self.differences()]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnvironmentRecord:
        entries = {k: Environment.from_dict(v) for k, v in (data.get("environments") or {}).items()}
        nodes = {name: entries[key] for name, key in (data.get("nodes") or {}).items()
                 if key in entries}
        return cls(str(data.get("source") or "nodes"), nodes, data.get("image"))

    def lock_pin(self) -> dict[str, Any]:
        """``lock.json`` "environment": the package-set hash, one when every node shares it."""
        hashes = {name: e.packages_sha256 for name, e in sorted(self.nodes.items(),
                                                                 key=_rank_order)}
        pin: dict[str, Any] = {"source": self.source}
        if len(set(hashes.values())) <= 1:
            pin["packages_sha256"] = next(iter(hashes.values()), None)
        else:
            pin["packages_sha256"] = None
            pin["nodes"] = hashes
        return pin

    def warnings(self) -> list[str]:
        failed: dict[str, list[str]] = {}
        for name, e in sorted(self.nodes.items(), key=_rank_order):
            if e.error is not None:
                failed.setdefault(e.error, []).append(name)
        lines = [f"the environment could not be asked on {', '.join(names)}: {error}"
                 for error, names in failed.items()]
        if self.uniform:
            return lines
        groups: dict[str, list[str]] = {}
        for name, e in sorted(self.nodes.items(), key=_rank_order):
            groups.setdefault(e.key, []).append(name)
        sets = "; ".join(", ".join(names) for names in groups.values())
        lines.append(f"the nodes' Python environments differ ({sets}): a common cause of MPI "
                     "failures; environment.json lists what differs")
        lines += [f"  {c.describe()}" for c in self.differences()[:20]]
        return lines


def _rank_order(item: tuple[str, Any]) -> tuple[int, str]:
    name = item[0]
    suffix = name.rsplit("-", 1)[-1]
    return (int(suffix) if suffix.isdigit() else 1 << 30, name)


def load(root: Path) -> EnvironmentRecord | None:
    """A record's ``environment.json`` (None: a record made before it existed)."""
    path = root / ENV_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return EnvironmentRecord.from_dict(data) if isinstance(data, dict) else None


def compare(old: EnvironmentRecord, new: EnvironmentRecord) -> list[Change]:
    """Every value that differs on the nodes both records have, node by node; a change
    on every one of them is listed once. (A node only one side has is no change of
    environment: facts says which nodes each run had.)"""
    names = sorted(set(old.nodes) & set(new.nodes), key=lambda n: _rank_order((n, None)))
    seen: dict[tuple[str, str, str], list[str]] = {}
    for name in names:
        a, b = old.nodes[name].fields(), new.nodes[name].fields()
        if (old.nodes[name].error is None) != (new.nodes[name].error is None):
            # asked on one side only: the error and the interpreter, not every package
            a, b = ({k: v for k, v in f.items() if k in ASKED_ONCE} for f in (a, b))
        for key in sorted(a.keys() | b.keys()):
            if a.get(key) != b.get(key):
                ident = (key, json.dumps(a.get(key)), json.dumps(b.get(key)))
                seen.setdefault(ident, []).append(name)
    changes = []
    for (key, old_text, new_text), where in seen.items():
        nodes = () if len(where) == len(names) else tuple(where)
        changes.append(Change(key, json.loads(old_text), json.loads(new_text), nodes))
    return sorted(changes, key=lambda c: (c.field, c.nodes))


def drift_changes(old: EnvironmentRecord, new: EnvironmentRecord) -> list[Change]:
    """The changes ``reproduce`` refuses for: all but where the interpreter lives."""
    return [c for c in compare(old, new) if c.field not in NOT_DRIFT]


# -- probing -------------------------------------------------------------------------


def workload_env(session_env: Mapping[str, str], spec: Spec) -> dict[str, str]:
    """The environment the workload's command starts with (less composer's own variables)."""
    return {**session_env, **dict(spec.run.env)}


def probe_argv() -> list[str]:
    return ["/bin/sh", "-c", LAUNCH, "composer-envprobe", PROBE_SOURCE]


def parse(text: str) -> Environment:
    """The probe's result; an ``error`` one (with the output's tail) when it had none."""
    lines = text.strip().splitlines()
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith("{"):
            try:
                data = json.loads(lines[index])
            except ValueError:
                break
            if isinstance(data, dict) and "error" not in data:
                return Environment.from_dict(data)
            if isinstance(data, dict):
                return failed(str(data["error"]), "\n".join(lines[:index]))
            break
    return failed("the probe printed no result", text)


def failed(why: str, output: str) -> Environment:
    """An environment that could not be asked (it names no node: nodes that failed
    alike share one entry in the record)."""
    tail = output.strip()[-500:]
    return Environment({}, {}, error=why + (f": {tail}" if tail else ""))


def probe_local(env: Mapping[str, str]) -> Environment:
    """This machine's, as a local node would see it: a login's variables plus ``env``."""
    full = {k: os.environ[k] for k in LOGIN_VARS if k in os.environ}
    full.update(env)
    return _probe_subprocess(probe_argv(), full)


def image_argv(runtime: str, ref: str, names: Sequence[str],
               options: containers.RuntimeOptions) -> list[str]:
    """The engine's command that runs the probe in ``ref`` with ``names`` passed in."""
    if runtime == "apptainer":
        return ["apptainer", "exec", ref, *probe_argv()]
    run = containers.ContainerRun(runtime, ref, env=tuple(sorted(names)), options=options)
    # the workload's own options (OCI runtime, ulimits), without its mounts
    return [*containers._oci_argv(runtime, run, False), *probe_argv()]


def probe_image(runtime: str, ref: str, env: Mapping[str, str],
                options: containers.RuntimeOptions) -> Environment:
    """The image's environment, asked once in one container as the workload starts."""
    host_only = {"PATH", "VIRTUAL_ENV", *containers.CLIENT_ENV.get(runtime, ())}
    names = [n for n in env if n not in host_only]
    full = {**os.environ, **{n: env[n] for n in names}}
    return _probe_subprocess(image_argv(runtime, ref, names, options), full)


def _probe_subprocess(argv: list[str], env: Mapping[str, str]) -> Environment:
    try:
        done = subprocess.run(argv, env=dict(env), capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return failed(f"the probe could not run ({exc})", "")
    if done.returncode != 0:  # the engine itself failed
        return failed(f"exit {done.returncode}", done.stderr + done.stdout)
    return parse(done.stdout + done.stderr)


def record_image(node_names: Sequence[str], image: Mapping[str, Any], env: Mapping[str, str],
                 options: containers.RuntimeOptions) -> EnvironmentRecord:
    found = probe_image(str(image["runtime"]), str(image["ref"]), env, options)
    return EnvironmentRecord("image", {name: found for name in node_names}, str(image["ref"]))
