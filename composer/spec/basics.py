"""``[job]``, ``[cluster]`` and ``[run]``: what runs, on how many nodes of which target."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from composer.spec.check import Checker, Table
from composer.spec.fields import MISSING, Section, boolean, choice, integer, other, string
from composer.spec.model import ClusterSpec, JobSection, RetrySpec, RunSpec
from composer.spec.text import describe, join, quote

if TYPE_CHECKING:
    from composer.targets.base import Target

#: Targets that are recognised but not available yet: named so as to say so.
PLANNED_TARGETS: tuple[str, ...] = ()
LAUNCHERS = ("ssh", "mpi")
RETRY_ON = ("node-lost", "capacity")
MAX_RETRIES = 100
ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_ENV_NAME = re.compile(ENV_NAME)
_ENV_SCHEMA = {"pattern": f"^(?!COMPOSER_){ENV_NAME}$"}


def registered_targets() -> dict[str, type[Target]]:
    """The target registry (imported here, not at module level: targets import the spec)."""
    from composer.targets import TARGETS

    return dict(TARGETS)


def target_names() -> tuple[str, ...]:
    return (*registered_targets(), *PLANNED_TARGETS)


def most_nodes() -> int:
    return max(target.max_nodes for target in registered_targets().values())


def _target_text() -> str:
    names = [f'`"{name}"`' for name in registered_targets()]
    planned = " and ".join(f'`"{name}"`' for name in PLANNED_TARGETS)
    text = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
    return text + (f"; {planned} is recognised but not available yet" if planned else "")


def _nodes_text() -> str:
    return ", ".join(f"1–{cls.max_nodes} for `{name}`"
                     for name, cls in registered_targets().items())


JOB = Section("job", "The job: its name and what it is for.", required=True, fields=(
    string("name", "1–63 characters of `a-z`, `0-9`, `-`; must not start with `-`",
           required=True, pattern="[a-z0-9][a-z0-9-]{0,62}"),
    string("description", "", default=""),
))
CLUSTER = Section("cluster", "The cluster to create: where, and how many nodes.", required=True,
                  fields=(
    choice("target", _target_text, lambda: tuple(registered_targets()), required=True),
    integer("nodes", _nodes_text, 1, most_nodes, required=True),
    integer("slots_per_node", "1–256; MPI slots per node", 1, 256, default=1),
    integer("gpus_per_node", "0–16", 0, 16, default=0),
))
RUN = Section("run", "The command to launch on the nodes.", required=True, fields=(
    choice("launcher", '`"ssh"` or `"mpi"`', LAUNCHERS, default="ssh"),
    other("command", "array of strings, or string",
          "not empty; an array runs without a shell, a string with `sh -c`",
          {"anyOf": [{"type": "string", "pattern": r"\S"},
                     {"type": "array", "minItems": 1, "items": {"type": "string"}}]},
          required=True),
    other("env", "table of strings", "variable names `[A-Za-z_][A-Za-z0-9_]*`, not starting "
          "with `COMPOSER_`; string values; see below",
          {"type": "object", "propertyNames": _ENV_SCHEMA,
           "additionalProperties": {"type": "string"}}, default={}),
    other("secret_env", "array of variable names", "names whose values come from composer's "
          "environment, none also in `env`; see below",
          {"type": "array", "uniqueItems": True, "items": {"type": "string", **_ENV_SCHEMA}},
          default=[]),
    boolean("fail_fast", "ssh launcher: stop every node when one fails; see below", True),
    other("retries", "table", "`max`: 0–100 starts again; `on`: any of "
          + " and ".join(f'`"{r}"`' for r in RETRY_ON) + "; see below",
          {"type": "object", "required": ["max", "on"], "additionalProperties": False,
           "properties": {"max": {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES},
                          "on": {"type": "array", "uniqueItems": True,
                                 "items": {"enum": list(RETRY_ON)}}}},
          shown_default="none"),
    string("checkpoint", "a directory relative to the workload's working directory, "
           "carried to the next attempt's head; see below", shown_default="none",
           nonempty=True),
    boolean("health", "check the cluster before the workload starts (every node reaches "
            "every other, the GPUs asked for, with mpi an allreduce); see below", True),
))


def check_job(c: Checker, table: Table | None) -> JobSection | None:
    if table is None:
        return None
    name_value, name_path = c.get(table, JOB, "name")
    name = c.string(name_value, name_path)
    if name is not None and not re.fullmatch(JOB.field("name").pattern or "", name):
        rule = "must be 1-63 characters of a-z, 0-9 and '-', not starting with '-'"
        name = c.add(name_path, f"{rule}, got {quote(name)}")
    description = c.value(table, JOB, "description")
    c.unknown_keys(table, JOB)
    if name is None or description is None:
        return None
    return JobSection(name, description)


def check_cluster(c: Checker, table: Table | None) -> ClusterSpec | None:
    if table is None:
        return None
    targets = registered_targets()
    target_value, target_path = c.get(table, CLUSTER, "target")
    target = c.choice(target_value, target_path, target_names())
    if target in PLANNED_TARGETS:
        usable = " or ".join(f"'{name}'" for name in targets)
        c.add(target_path, f"target '{target}' is not available yet; use {usable}")
    chosen = targets.get(target or "")
    high = chosen.max_nodes if chosen else most_nodes()
    where = f" for target '{target}'" if chosen else ""
    nodes = c.integer(*c.get(table, CLUSTER, "nodes"), 1, high, where=where)
    slots = c.value(table, CLUSTER, "slots_per_node")
    gpus = c.value(table, CLUSTER, "gpus_per_node")
    c.unknown_keys(table, CLUSTER)
    if target is None or nodes is None or slots is None or gpus is None:
        return None
    return ClusterSpec(target, nodes, slots, gpus)


def check_run(c: Checker, table: Table | None) -> RunSpec | None:
    if table is None:
        return None
    launcher = c.value(table, RUN, "launcher")
    command = _command(c, *c.get(table, RUN, "command"))
    env = _env(c, *c.get(table, RUN, "env"))
    secrets = _secret_names(c, *c.get(table, RUN, "secret_env"), env or ())
    fail_fast = c.value(table, RUN, "fail_fast")
    retries = _retries(c, *c.get(table, RUN, "retries"))
    checkpoint = _checkpoint(c, *c.get(table, RUN, "checkpoint"))
    health = c.value(table, RUN, "health")
    c.unknown_keys(table, RUN)
    if launcher is None or command is None or env is None or secrets is None or \
            retries is None or checkpoint is False:
        return None
    return RunSpec(launcher, command, env, secrets, fail_fast, retries, checkpoint or None,
                   health)


def _retries(c: Checker, value: Any, path: str) -> RetrySpec | None:
    """``retries = { max = N, on = ["node-lost", "capacity"] }``."""
    if value is MISSING:
        return RetrySpec()
    example = 'write it as retries = { max = 2, on = ["node-lost", "capacity"] }'
    if not isinstance(value, dict):
        return c.add(path, f"must be a table, got {describe(value)}; {example}")
    count = c.count()
    c.unknown(value, path, ("max", "on"))
    most = c.integer(value.get("max", MISSING), join(path, "max"), 0, MAX_RETRIES)
    if "max" not in value:
        c.add(join(path, "max"), f"required: how many times the run may start again; {example}")
    on = value.get("on", MISSING)
    reasons: list[str] = []
    if on is MISSING:
        c.add(join(path, "on"), f"required: what starts the run again; {example}")
    elif not isinstance(on, list):
        c.add(join(path, "on"), f"must be an array, got {describe(on)}; {example}")
    else:
        for i, raw in enumerate(on):
            reason = c.choice(raw, f"{join(path, 'on')}[{i}]", RETRY_ON)
            if reason in reasons:
                c.add(f"{join(path, 'on')}[{i}]", f"{quote(reason)} is listed twice")
            elif reason is not None:
                reasons.append(reason)
    if c.count() != count or most is None:
        return None
    return RetrySpec(most, tuple(r for r in RETRY_ON if r in reasons))


def _checkpoint(c: Checker, value: Any, path: str) -> str | bool | None:
    """A relative directory without ``..``, normalised (``"ckpt/"`` -> ``"ckpt"``);
    False after a problem."""
    text = c.string(value, path, None, nonempty=True) if value is not MISSING else None
    if value is MISSING:
        return None
    if text is None:
        return False
    parts = [p for p in text.split("/") if p not in ("", ".")]
    why = None
    if text.startswith("/") or text.startswith("~"):
        why = "must be relative to the workload's working directory, not absolute"
    elif ".." in parts:
        why = "must stay inside the workload's working directory (no '..')"
    elif not parts:
        why = 'must name a directory, e.g. "ckpt/"'
    elif any(ord(ch) < 0x20 for ch in text):
        why = "must not hold control characters"
    if why is not None:
        c.add(path, f"{why}, got {quote(text)}")
        return False
    return "/".join(parts)


def _secret_names(
    c: Checker, value: Any, path: str, env: tuple[tuple[str, str], ...]
) -> tuple[str, ...] | None:
    if value is MISSING:
        return ()
    if not isinstance(value, list):
        return c.add(path, f"must be an array of variable names, got {describe(value)}")
    count = c.count()
    names: list[str] = []
    plain = {name for name, _ in env}
    for i, raw in enumerate(value):
        where = f"{path}[{i}]"
        name = c.string(raw, where, nonempty=True)
        if name is None:
            continue
        if not _ENV_NAME.fullmatch(name):
            c.add(where, "invalid name; use A-Z, a-z, 0-9 and '_', not a digit first")
        elif name.startswith("COMPOSER_"):
            c.add(where, "names starting with COMPOSER_ are reserved")
        elif name in plain:
            c.add(where, f"{name} is also in run.env; a secret's value comes only "
                         "from composer's environment")
        elif name in names:
            c.add(where, f"{name} is listed twice")
        else:
            names.append(name)
    return tuple(sorted(names)) if c.count() == count else None


def _command(c: Checker, value: Any, path: str) -> tuple[str, ...] | str | None:
    if value is MISSING or isinstance(value, str):
        return c.string(value, path, nonempty=True)
    if not isinstance(value, list):
        expected = "must be an array of strings or a string"
        return c.add(path, f"{expected}, got {describe(value)}")
    if not value:
        return c.add(path, "must not be empty")
    argv = [c.string(arg, f"{path}[{i}]", nonempty=i == 0) for i, arg in enumerate(value)]
    strings = tuple(arg for arg in argv if arg is not None)
    return strings if len(strings) == len(argv) else None


def _env(c: Checker, value: Any, path: str) -> tuple[tuple[str, str], ...] | None:
    if value is MISSING:
        return ()
    if not isinstance(value, dict):
        expected = 'must be a table of NAME = "value"'
        return c.add(path, f"{expected}, got {describe(value)}")
    count = c.count()
    pairs = []
    for name, raw in value.items():
        where = join(path, name)
        if not _ENV_NAME.fullmatch(name):
            c.add(where, "invalid name; use A-Z, a-z, 0-9 and '_', not a digit first")
        elif name.startswith("COMPOSER_"):
            c.add(where, "names starting with COMPOSER_ are reserved")
        if isinstance(raw, (bool, int, float)):
            c.add(where, f"must be a string; quote it (got {describe(raw)})")
        elif (text := c.string(raw, where)) is not None:
            pairs.append((name, text))
    return tuple(sorted(pairs)) if c.count() == count else None
