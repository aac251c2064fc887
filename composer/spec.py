"""The job spec: a TOML file describing one run, and its validation.

``load_spec`` and ``parse_spec`` either return a fully resolved, immutable ``Spec``
or raise ``SpecError`` listing every problem found, each at a dotted path such as
``cluster.nodes``. ``expanded`` gives the resolved spec as machine-independent data.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any

from composer.errors import Problem, SpecError


@dataclass(frozen=True)
class SectionSchema:
    """The keys one top-level table accepts (``open`` tables accept any key)."""

    keys: tuple[str, ...] = ()
    required_keys: tuple[str, ...] = ()
    required: bool = False
    open: bool = False


SCHEMA: Mapping[str, SectionSchema] = MappingProxyType(
    {
        "job": SectionSchema(("name", "description"), ("name",), required=True),
        "cluster": SectionSchema(
            ("target", "nodes", "slots_per_node", "gpus_per_node"),
            ("target", "nodes"),
            required=True,
        ),
        "run": SectionSchema(
            ("launcher", "command", "env", "secret_env", "fail_fast"), ("command",), required=True
        ),
        "container": SectionSchema(("image", "runtime", "mounts", "gpus")),
        "code": SectionSchema(("path",)),
        "inputs": SectionSchema(open=True),
        "outputs": SectionSchema(("paths", "from", "max_file_size")),
        "limits": SectionSchema(("max_duration",)),
        "record": SectionSchema(("repo", "max_log_size")),
        "reproduce": SectionSchema(("metrics", "tolerance")),
    }
)

TARGETS = ("local", "aws", "gcp")
AVAILABLE_TARGETS = ("local",)
MAX_NODES: Mapping[str, int] = MappingProxyType({"local": 256, "aws": 1000, "gcp": 1000})
LAUNCHERS = ("ssh", "mpi")
CONTAINER_RUNTIMES = ("podman", "docker", "apptainer", "none")
MOUNT_MODES = ("ro", "rw")
OUTPUT_SOURCES = ("all", "head")
DEFAULT_MAX_FILE_SIZE = 50_000_000
DEFAULT_MAX_LOG_SIZE = 2_000_000
DEFAULT_MAX_DURATION = 24 * 3600.0
NO_LIMIT = "none"
LARGEST_FILE_SIZE = 10**12
LONGEST_DURATION = 7 * 86400.0
TOLERANCE_KEYS = ("abs", "rel")

_JOB_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_NODE_PREFIX = re.compile(r"node-[0-9]+/")
_WILDCARDS = frozenset("*?[]")
_NUMBER = r"\d{1,30}(?:\.\d{1,30})?"
_DURATION = re.compile(rf"(?:({_NUMBER})d)?(?:({_NUMBER})h)?(?:({_NUMBER})m)?(?:({_NUMBER})s)?")
_DURATION_UNITS = (86400, 3600, 60, 1)
_SIZE = re.compile(rf"({_NUMBER})\s*([a-z]*)")
_SIZE_UNITS: Mapping[str, int] = MappingProxyType(
    {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
     "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
)  # fmt: skip
_MISSING: Any = object()
_Table = Mapping[str, Any]


@dataclass(frozen=True)
class JobSection:
    name: str
    description: str = ""


@dataclass(frozen=True)
class ClusterSpec:
    target: str
    nodes: int
    slots_per_node: int = 1
    gpus_per_node: int = 0


@dataclass(frozen=True)
class RunSpec:
    """``command`` is an argv tuple (run without a shell) or a string for ``sh -c``."""

    launcher: str
    command: tuple[str, ...] | str
    env: tuple[tuple[str, str], ...] = ()
    secret_env: tuple[str, ...] = ()
    fail_fast: bool = True


@dataclass(frozen=True)
class MountSpec:
    """``host:container[:ro]``: a host directory or file, mounted at an absolute path."""

    host: str
    container: str
    read_only: bool = False

    def text(self) -> str:
        return f"{self.host}:{self.container}" + (":ro" if self.read_only else "")


@dataclass(frozen=True)
class ContainerSpec:
    """Run the workload in ``image`` with ``runtime``; ``runtime = "none"`` runs on the host."""

    runtime: str = "none"
    image: str | None = None
    mounts: tuple[MountSpec, ...] = ()
    gpus: bool = False

    @property
    def enabled(self) -> bool:
        return self.runtime != "none"


@dataclass(frozen=True)
class CodeSpec:
    path: Path | None


@dataclass(frozen=True)
class InputSpec:
    source: Path
    dest: str


@dataclass(frozen=True)
class OutputsSpec:
    paths: tuple[str, ...] = ()
    from_: str = "all"
    max_file_size: int = DEFAULT_MAX_FILE_SIZE


@dataclass(frozen=True)
class LimitsSpec:
    """``max_duration`` in seconds (None: written as ``"none"``, no limit); ``defaulted``
    when the spec did not say and the default applies (composer prints it)."""

    max_duration: float | None = DEFAULT_MAX_DURATION
    defaulted: bool = True


@dataclass(frozen=True)
class RecordSpec:
    repo: str | None = None
    max_log_size: int = DEFAULT_MAX_LOG_SIZE


@dataclass(frozen=True)
class Tolerance:
    """How far metric ``key`` may move between runs: absolute and relative bounds.

    ``key`` is a flattened path inside a metrics JSON file: nested objects joined
    with ``.``, list items as ``[i]`` (``eval.accuracy``, ``losses[3]``).
    """

    key: str
    abs: float = 0.0
    rel: float = 0.0


@dataclass(frozen=True)
class ReproduceSpec:
    """Which JSON outputs ``composer reproduce`` compares, and how closely."""

    metrics: tuple[str, ...] = ()
    tolerance: tuple[Tolerance, ...] = ()

    def tolerance_for(self, key: str) -> tuple[float, float]:
        """``(abs, rel)`` for metric ``key``; ``(0.0, 0.0)`` (exact) when none is given."""
        for item in self.tolerance:
            if item.key == key:
                return item.abs, item.rel
        return 0.0, 0.0


@dataclass(frozen=True)
class Spec:
    job: JobSection
    cluster: ClusterSpec
    run: RunSpec
    code: CodeSpec
    inputs: tuple[InputSpec, ...]
    outputs: OutputsSpec
    limits: LimitsSpec
    record: RecordSpec
    source: Path
    base_dir: Path
    text: str
    reproduce: ReproduceSpec = field(default_factory=ReproduceSpec)
    container: ContainerSpec = field(default_factory=ContainerSpec)
    #: The target's own section (``[aws]`` -> ``AwsSpec``); None for targets without one.
    target_config: Any = None


def parse_duration(value: str | int | float) -> float:
    """Seconds in ``"90s"``, ``"10m"``, ``"1h30m"``, ``"2d"``, ``"45"`` or a number."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"invalid duration {value!r}: expected a string or a number")
    if isinstance(value, str):
        seconds = _duration_text(value)
    else:
        try:
            seconds = float(value)
        except OverflowError:
            raise ValueError("duration is too large") from None
    if not math.isfinite(seconds):
        raise ValueError(f"duration must be a finite number of seconds, got {value!r}")
    if seconds < 0:
        raise ValueError(f"duration must not be negative, got {value!r}")
    return seconds


def _duration_text(value: str) -> float:
    compact = "".join(value.lower().split())
    if re.fullmatch(_NUMBER, compact):
        return float(compact)
    match = _DURATION.fullmatch(compact)
    if not compact or match is None:
        raise ValueError(
            f'invalid duration {_quote(value)}: use seconds ("45") or units d, h, m, s'
            ' such as "90s", "10m", "1h30m"'
        )
    return sum(
        float(n) * unit for n, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if n
    )


def parse_size(value: str | int) -> int:
    """Bytes in ``"50MB"``, ``"512KB"``, ``"1GiB"``, ``"1024"`` or an integer."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"invalid size {value!r}: expected a string or an integer")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must not be negative, got {_clip(str(value))}")
        return value
    match = _SIZE.fullmatch(value.strip().lower())
    if match is None or match.group(2) not in _SIZE_UNITS:
        raise ValueError(
            f'invalid size {_quote(value)}: use bytes ("1024") or a number with a unit'
            " B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)"
        )
    amount = Fraction(match.group(1)) * _SIZE_UNITS[match.group(2)]
    if amount.denominator != 1:
        raise ValueError(f"size {_quote(value)} is not a whole number of bytes")
    return int(amount)


def load_spec(path: Path | str) -> Spec:
    """Read and validate a job spec file; raise ``SpecError`` for any problem."""
    source = _absolute(Path(path))
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        raise _fatal(source, f"file not found: {source}",
                     "give the path of a job spec (job.toml); examples/ holds some") from None
    except IsADirectoryError:
        found = source / "job.toml"
        hint = (f"did you mean {found}?" if found.is_file()
                else "give the path of a job spec file (job.toml), not a directory")
        raise _fatal(source, f"is a directory, not a job spec file: {source}", hint) from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise _fatal(source, f"cannot read {source}: {reason}",
                     "check the file's permissions") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _fatal(
            source,
            f"not valid UTF-8: byte 0x{data[exc.start]:02x} on line {line}; save the file as UTF-8",
        ) from None
    return parse_spec(text, source)


def parse_spec(text: str, source: Path | str) -> Spec:
    """Validate spec ``text``; relative paths in it start at ``source``'s folder."""
    source = _absolute(Path(source))
    data = _parse_toml(text, source)
    check = _Checker(source.parent)
    spec = check.spec(data, source, text)
    if check.problems or spec is None:
        raise SpecError(str(source), check.problems)
    return spec


def expanded(spec: Spec) -> dict[str, Any]:
    """The resolved spec as JSON-able data, paths relative to ``spec.base_dir``."""
    run, out, code, again = spec.run, spec.outputs, spec.code.path, spec.reproduce
    command = run.command if isinstance(run.command, str) else list(run.command)
    data = {
        "job": asdict(spec.job),
        "cluster": asdict(spec.cluster),
        "run": {"launcher": run.launcher, "command": command, "env": dict(run.env),
                "secret_env": list(run.secret_env), "fail_fast": run.fail_fast},
        "code": {"path": None if code is None else _relative(code, spec.base_dir)},
        "inputs": [
            {"source": _relative(item.source, spec.base_dir), "dest": item.dest}
            for item in spec.inputs
        ],
        "outputs": {
            "paths": list(out.paths),
            "from": out.from_,
            "max_file_size": out.max_file_size,
        },
        "limits": {"max_duration": spec.limits.max_duration},
        "record": asdict(spec.record),
        "container": {
            "runtime": spec.container.runtime,
            "image": spec.container.image,
            "mounts": [m.text() for m in spec.container.mounts],
            "gpus": spec.container.gpus,
        },
        "reproduce": {
            "metrics": list(again.metrics),
            "tolerance": {t.key: {"abs": t.abs, "rel": t.rel} for t in again.tolerance},
        },
    }
    return _sort_keys(data)


class _Checker:
    """Reads a parsed TOML document, collecting every problem it finds."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def spec(self, data: _Table, source: Path, text: str) -> Spec | None:
        job = self.job(self.section(data, "job"))
        cluster = self.cluster(self.section(data, "cluster"))
        run = self.run(self.section(data, "run"))
        container = self.container(self.section(data, "container"))
        code = self.code(self.section(data, "code"))
        inputs = self.inputs(self.section(data, "inputs"))
        count = len(self.problems)
        outputs = self.outputs(self.section(data, "outputs"))
        collected = outputs if len(self.problems) == count else None
        limits = self.limits(self.section(data, "limits"))
        record = self.record(self.section(data, "record"))
        reproduce = self.reproduce(self.section(data, "reproduce"), collected)
        self.unknown(data, "", tuple(SCHEMA))
        if self.problems or job is None or cluster is None or run is None:
            return None
        parts = (job, cluster, run, code, inputs, outputs, limits, record)
        return Spec(*parts, source=source, base_dir=self.base_dir, text=text, reproduce=reproduce,
                    container=container)

    def section(self, data: _Table, name: str) -> _Table | None:
        if name not in data:
            if SCHEMA[name].required:
                self.add(name, "required section")
            return None
        if not isinstance(data[name], dict):
            self.add(name, f"must be a table, got {_describe(data[name])}")
            return None
        return data[name]

    def get(self, table: _Table, section: str, key: str) -> tuple[Any, str]:
        path = f"{section}.{key}"
        if key not in table and key in SCHEMA[section].required_keys:
            self.add(path, "required")
        return table.get(key, _MISSING), path

    def unknown(self, table: _Table, prefix: str, allowed: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                self.add(_join(prefix, key), "unknown key" + _suggest(key, allowed))

    def job(self, table: _Table | None) -> JobSection | None:
        if table is None:
            return None
        name_value, name_path = self.get(table, "job", "name")
        name = self.string(name_value, name_path)
        if name is not None and not _JOB_NAME.fullmatch(name):
            rule = "must be 1-63 characters of a-z, 0-9 and '-', not starting with '-'"
            name = self.add(name_path, f"{rule}, got {_quote(name)}")
        description = self.string(*self.get(table, "job", "description"), default="")
        self.unknown(table, "job", SCHEMA["job"].keys)
        if name is None or description is None:
            return None
        return JobSection(name, description)

    def cluster(self, table: _Table | None) -> ClusterSpec | None:
        if table is None:
            return None
        target_value, target_path = self.get(table, "cluster", "target")
        target = self.choice(target_value, target_path, TARGETS)
        if target is not None and target not in AVAILABLE_TARGETS:
            self.add(target_path, f"target '{target}' is not available yet; use 'local'")
        high = MAX_NODES.get(target or "", max(MAX_NODES.values()))
        where = f" for target '{target}'" if target in MAX_NODES else ""
        nodes = self.integer(*self.get(table, "cluster", "nodes"), 1, high, where=where)
        slots = self.integer(*self.get(table, "cluster", "slots_per_node"), 1, 256, 1)
        gpus = self.integer(*self.get(table, "cluster", "gpus_per_node"), 0, 16, 0)
        self.unknown(table, "cluster", SCHEMA["cluster"].keys)
        if target is None or nodes is None or slots is None or gpus is None:
            return None
        return ClusterSpec(target, nodes, slots, gpus)

    def run(self, table: _Table | None) -> RunSpec | None:
        if table is None:
            return None
        launcher = self.choice(*self.get(table, "run", "launcher"), LAUNCHERS, "ssh")
        command = self.command(*self.get(table, "run", "command"))
        env = self.env(*self.get(table, "run", "env"))
        secrets = self.secret_names(*self.get(table, "run", "secret_env"), env or ())
        fail_fast = self.boolean(*self.get(table, "run", "fail_fast"), True)
        self.unknown(table, "run", SCHEMA["run"].keys)
        if launcher is None or command is None or env is None or secrets is None:
            return None
        return RunSpec(launcher, command, env, secrets, fail_fast)

    def secret_names(
        self, value: Any, path: str, env: tuple[tuple[str, str], ...]
    ) -> tuple[str, ...] | None:
        if value is _MISSING:
            return ()
        if not isinstance(value, list):
            return self.add(path, f"must be an array of variable names, got {_describe(value)}")
        count = len(self.problems)
        names: list[str] = []
        plain = {name for name, _ in env}
        for i, raw in enumerate(value):
            where = f"{path}[{i}]"
            name = self.string(raw, where, nonempty=True)
            if name is None:
                continue
            if not _ENV_NAME.fullmatch(name):
                self.add(where, "invalid name; use A-Z, a-z, 0-9 and '_', not a digit first")
            elif name.startswith("COMPOSER_"):
                self.add(where, "names starting with COMPOSER_ are reserved")
            elif name in plain:
                self.add(where, f"{name} is also in run.env; a secret's value comes only "
                                "from composer's environment")
            elif name in names:
                self.add(where, f"{name} is listed twice")
            else:
                names.append(name)
        return tuple(sorted(names)) if len(self.problems) == count else None

    def command(self, value: Any, path: str) -> tuple[str, ...] | str | None:
        if value is _MISSING or isinstance(value, str):
            return self.string(value, path, nonempty=True)
        if not isinstance(value, list):
            expected = "must be an array of strings or a string"
            return self.add(path, f"{expected}, got {_describe(value)}")
        if not value:
            return self.add(path, "must not be empty")
        argv = [self.string(arg, f"{path}[{i}]", nonempty=i == 0) for i, arg in enumerate(value)]
        strings = tuple(arg for arg in argv if arg is not None)
        return strings if len(strings) == len(argv) else None

    def env(self, value: Any, path: str) -> tuple[tuple[str, str], ...] | None:
        if value is _MISSING:
            return ()
        if not isinstance(value, dict):
            expected = 'must be a table of NAME = "value"'
            return self.add(path, f"{expected}, got {_describe(value)}")
        count = len(self.problems)
        pairs = []
        for name, raw in value.items():
            where = _join(path, name)
            if not _ENV_NAME.fullmatch(name):
                self.add(where, "invalid name; use A-Z, a-z, 0-9 and '_', not a digit first")
            elif name.startswith("COMPOSER_"):
                self.add(where, "names starting with COMPOSER_ are reserved")
            if isinstance(raw, (bool, int, float)):
                self.add(where, f"must be a string; quote it (got {_describe(raw)})")
            elif (text := self.string(raw, where)) is not None:
                pairs.append((name, text))
        return tuple(sorted(pairs)) if len(self.problems) == count else None

    def container(self, table: _Table | None) -> ContainerSpec:
        if table is None:
            return ContainerSpec()
        runtime_value, runtime_path = self.get(table, "container", "runtime")
        runtime = self.choice(runtime_value, runtime_path, CONTAINER_RUNTIMES, "none")
        image_value, image_path = self.get(table, "container", "image")
        image = self.string(image_value, image_path, nonempty=True)
        if image is not None and (image != image.strip() or any(c.isspace() for c in image)):
            image = self.add(image_path, f"must not contain spaces, got {_quote(image)}")
        if runtime is not None and runtime != "none" and image_value is _MISSING:
            self.add(image_path, f'required with runtime = "{runtime}"')
        if runtime == "none" and image is not None:
            engines = ", ".join(f"'{r}'" for r in CONTAINER_RUNTIMES if r != "none")
            self.add(runtime_path, f"is 'none' (the default), so container.image would not be "
                                   f"used; choose one of {engines}")
        mounts = self.mounts(*self.get(table, "container", "mounts"))
        gpus = self.boolean(*self.get(table, "container", "gpus"), False)
        self.unknown(table, "container", SCHEMA["container"].keys)
        return ContainerSpec(runtime or "none", image, mounts, gpus)

    def mounts(self, value: Any, path: str) -> tuple[MountSpec, ...]:
        if value is _MISSING:
            return ()
        if not isinstance(value, list):
            expected = 'must be an array of "host:container[:ro]" strings'
            self.add(path, f"{expected}, got {_describe(value)}")
            return ()
        mounts: list[MountSpec] = []
        targets: dict[str, str] = {}
        for i, item in enumerate(value):
            where = f"{path}[{i}]"
            text = self.string(item, where, nonempty=True)
            if text is None:
                continue
            parts = text.split(":")
            if len(parts) not in (2, 3) or not all(parts[:2]):
                self.add(where, f'must be "host:container" or "host:container:ro", '
                                f"got {_quote(text)}")
                continue
            if len(parts) == 3 and parts[2] not in MOUNT_MODES:
                self.add(where, f"mode must be 'ro' or 'rw', got {_quote(parts[2])}"
                                + _suggest(parts[2], MOUNT_MODES))
                continue
            host, inside = parts[0], parts[1]
            if not host.startswith("/") or not inside.startswith("/"):
                self.add(where, f"both paths must be absolute, got {_quote(text)}")
                continue
            inside = "/" + "/".join(p for p in inside.split("/") if p not in ("", "."))
            if inside in targets:
                self.add(where, f"container path {_quote(inside)} is also mounted by "
                                f"{targets[inside]}")
                continue
            targets[inside] = where
            mounts.append(MountSpec(host, inside, len(parts) == 3 and parts[2] == "ro"))
        return tuple(mounts)

    def code(self, table: _Table | None) -> CodeSpec:
        if table is None:
            return CodeSpec(None)
        value, path = self.get(table, "code", "path")
        raw = self.string(value, path, default=".", nonempty=True)
        resolved = None if raw is None else self.local_path(raw, path, directory=True)
        self.unknown(table, "code", SCHEMA["code"].keys)
        return CodeSpec(resolved)

    def inputs(self, table: _Table | None) -> tuple[InputSpec, ...]:
        items: list[InputSpec] = []
        users: dict[str, str] = {}
        for key, value in (table or {}).items():
            path = _join("inputs", key)
            raw = self.string(key, path, nonempty=True)
            source = None if raw is None else self.local_path(raw, path, False)
            dest = self.dest(value, path)
            if dest is not None and dest in users:
                self.add(path, f"destination {_quote(dest)} is also used by {users[dest]}")
            elif dest is not None:
                users[dest] = path
                if source is not None:
                    items.append(InputSpec(source, dest))
        return tuple(sorted(items, key=lambda item: item.dest))

    def dest(self, value: Any, path: str) -> str | None:
        text = self.string(value, path, nonempty=True)
        if text is None:
            return None
        parts = [part for part in text.split("/") if part not in ("", ".")]
        if text.startswith("/"):
            return self.add(path, f"destination must be relative, got {_quote(text)}")
        if ".." in parts:
            return self.add(path, f"destination must not contain '..': {_quote(text)}")
        if not parts:
            return self.add(path, f"destination must name a file, got {_quote(text)}")
        return "/".join(parts)

    def outputs(self, table: _Table | None) -> OutputsSpec:
        if table is None:
            return OutputsSpec()
        paths = self.globs(*self.get(table, "outputs", "paths"))
        source = self.choice(*self.get(table, "outputs", "from"), OUTPUT_SOURCES, "all")
        size = self.size(*self.get(table, "outputs", "max_file_size"), DEFAULT_MAX_FILE_SIZE)
        self.unknown(table, "outputs", SCHEMA["outputs"].keys)
        return OutputsSpec(paths, source or "all", size)

    def globs(self, value: Any, path: str) -> tuple[str, ...]:
        if value is _MISSING:
            return ()
        if not isinstance(value, list):
            self.add(path, f"must be an array of strings, got {_describe(value)}")
            return ()
        globs = []
        for i, item in enumerate(value):
            where = f"{path}[{i}]"
            text = self.string(item, where, nonempty=True)
            if text is not None and text.startswith("/"):
                self.add(where, f"must be a relative glob, got {_quote(text)}")
            elif text is not None and ".." in text.split("/"):
                self.add(where, f"must be a relative glob without '..': {_quote(text)}")
            elif text is not None:
                globs.append(text)
        return tuple(globs)

    def boolean(self, value: Any, path: str, default: bool) -> bool:
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.add(path, f"must be a boolean (true or false), got {_describe(value)}")
            return default
        return value

    def size(self, value: Any, path: str, default: int) -> int:
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            expected = 'must be a size such as "50MB" or a number of bytes'
            self.add(path, f"{expected}, got {_describe(value)}")
            return default
        try:
            size = parse_size(value)
        except ValueError as exc:
            self.add(path, str(exc))
            return default
        if not 1 <= size <= LARGEST_FILE_SIZE:
            self.add(path, f"must be between 1 byte and 1TB, got {_describe(value)}")
        return size

    def limits(self, table: _Table | None) -> LimitsSpec:
        if table is None:
            return LimitsSpec()
        value, path = self.get(table, "limits", "max_duration")
        seconds = None
        if value == NO_LIMIT:
            self.unknown(table, "limits", SCHEMA["limits"].keys)
            return LimitsSpec(None, defaulted=False)
        if value is _MISSING:
            self.unknown(table, "limits", SCHEMA["limits"].keys)
            return LimitsSpec()
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            if value is not _MISSING:
                expected = ('must be a duration such as "10m", a number of seconds, '
                            'or "none" for no limit')
                self.add(path, f"{expected}, got {_describe(value)}")
        else:
            try:
                seconds = parse_duration(value)
            except ValueError as exc:
                self.add(path, str(exc))
        if seconds is not None and not 0 < seconds <= LONGEST_DURATION:
            self.add(path, f"must be more than 0 and at most 7d, got {_describe(value)}")
        self.unknown(table, "limits", SCHEMA["limits"].keys)
        return LimitsSpec(seconds, defaulted=False)

    def record(self, table: _Table | None) -> RecordSpec:
        if table is None:
            return RecordSpec()
        repo = self.string(*self.get(table, "record", "repo"), nonempty=True)
        log_size = self.size(*self.get(table, "record", "max_log_size"), DEFAULT_MAX_LOG_SIZE)
        self.unknown(table, "record", SCHEMA["record"].keys)
        return RecordSpec(repo, log_size)

    def reproduce(self, table: _Table | None, collected: OutputsSpec | None) -> ReproduceSpec:
        """``collected`` is None when [outputs] has problems of its own."""
        if table is None:
            return ReproduceSpec()
        metrics = self.metrics(*self.get(table, "reproduce", "metrics"), collected)
        tolerance = self.tolerances(*self.get(table, "reproduce", "tolerance"))
        self.unknown(table, "reproduce", SCHEMA["reproduce"].keys)
        return ReproduceSpec(metrics, tolerance)

    def metrics(self, value: Any, path: str, collected: OutputsSpec | None) -> tuple[str, ...]:
        if value is _MISSING:
            return ()
        if not isinstance(value, list):
            self.add(path, f"must be an array of strings, got {_describe(value)}")
            return ()
        listed: dict[str, str] = {}
        for i, item in enumerate(value):
            where = f"{path}[{i}]"
            name = self.output_file(item, where)
            if name is None:
                continue
            if name in listed:
                self.add(where, f"{_quote(name)} is also listed at {listed[name]}")
                continue
            listed[name] = where
            if collected is not None and not _collectable(name, collected):
                missing = "is not among the collected outputs (outputs.paths)"
                self.add(where, f"{_quote(name)} {missing}")
            elif (collected is not None and collected.from_ == "all"
                    and not _NODE_PREFIX.match(name)):
                self.add(where, f'{_quote(name)} is never in a record with outputs.from = '
                                f'"all": each node\'s files are under node-<rank>/, e.g. '
                                f'{_quote("node-0/" + name)} (or collect from = "head")')
        return tuple(listed)

    def output_file(self, value: Any, path: str) -> str | None:
        text = self.string(value, path, nonempty=True)
        if text is None:
            return None
        parts = [part for part in text.split("/") if part not in ("", ".")]
        if text.startswith("/"):
            return self.add(path, f"must be a relative path, got {_quote(text)}")
        if ".." in parts:
            return self.add(path, f"must not contain '..': {_quote(text)}")
        if _WILDCARDS.intersection(text):
            return self.add(path, f"must name one file, without * ? [ ]: {_quote(text)}")
        if not parts:
            return self.add(path, f"must name a file, got {_quote(text)}")
        return "/".join(parts)

    def tolerances(self, value: Any, path: str) -> tuple[Tolerance, ...]:
        if value is _MISSING:
            return ()
        if not isinstance(value, dict):
            expected = "must be a table of metric = { abs = ..., rel = ... }"
            self.add(path, f"{expected}, got {_describe(value)}")
            return ()
        items = []
        for key, bounds in value.items():
            where = _join(path, key)
            name = self.string(key, where, nonempty=True)
            checked = self.bounds(bounds, where, key)
            if name is not None and checked is not None:
                items.append(Tolerance(name, *checked))
        return tuple(sorted(items, key=lambda item: item.key))

    def bounds(self, value: Any, path: str, key: str) -> tuple[float, float] | None:
        if not isinstance(value, dict):
            expected = "must be a table such as { abs = 1e-6, rel = 0.01 }"
            return self.add(path, f"{expected}, got {_describe(value)}")
        if not value:
            return self.add(path, "empty table; give abs, rel or both")
        count = len(self.problems)
        absolute = self.tolerance_value(value.get("abs", _MISSING), _join(path, "abs"))
        relative = self.tolerance_value(value.get("rel", _MISSING), _join(path, "rel"))
        for inner, item in value.items():
            if inner in TOLERANCE_KEYS:
                continue
            message = "unknown key" + _suggest(inner, TOLERANCE_KEYS)
            if isinstance(item, dict):
                dotted = json.dumps(f"{key}.{inner}", ensure_ascii=False)
                message += f"; to name metric {dotted}, quote it: {dotted} = {{ abs = ... }}"
            self.add(_join(path, inner), message)
        if len(self.problems) != count or absolute is None or relative is None:
            return None
        return absolute, relative

    def tolerance_value(self, value: Any, path: str) -> float | None:
        if value is _MISSING:
            return 0.0
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return self.add(path, f"must be a number, got {_describe(value)}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            return self.add(path, f"must be a finite number, got {_describe(value)}")
        if number < 0:
            return self.add(path, f"must be at least 0, got {_describe(value)}")
        return number + 0.0

    def string(
        self, value: Any, path: str, default: str | None = None, nonempty: bool = False
    ) -> str | None:
        if value is _MISSING:
            return default
        if not isinstance(value, str):
            return self.add(path, f"must be a string, got {_describe(value)}")
        if "\x00" in value:
            return self.add(path, "must not contain NUL characters")
        if nonempty and not value.strip():
            return self.add(path, "must not be empty")
        return value

    def integer(
        self,
        value: Any,
        path: str,
        low: int,
        high: int,
        default: int | None = None,
        where: str = "",
    ) -> int | None:
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            return self.add(path, f"must be an integer, got {_describe(value)}")
        if value < low:
            return self.add(path, f"must be at least {low}, got {_clip(str(value))}")
        if value > high:
            return self.add(path, f"must be at most {high}{where}, got {_clip(str(value))}")
        return value

    def choice(
        self,
        value: Any,
        path: str,
        choices: tuple[str, ...],
        default: str | None = None,
    ) -> str | None:
        text = self.string(value, path, default)
        if text is None or text in choices:
            return text
        options = ", ".join(f"'{choice}'" for choice in choices)
        message = f"must be one of {options}, got {_quote(text)}"
        return self.add(path, message + _suggest(text, choices))

    def local_path(self, raw: str, path: str, directory: bool) -> Path | None:
        kind = "directory" if directory else "file"
        try:
            resolved = (self.base_dir / raw).resolve()
            if not resolved.is_relative_to(self.base_dir):
                where = f"outside the job directory {self.base_dir}"
                return self.add(path, f"resolves to {resolved}, {where}")
            if not resolved.exists():
                return self.add(path, f"{kind} not found: {resolved}")
            if not (resolved.is_dir() if directory else resolved.is_file()):
                what = "directory" if directory else "regular file"
                return self.add(path, f"not a {what}: {resolved}")
        except (OSError, RuntimeError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            return self.add(path, f"cannot use {kind} {_quote(raw)}: {reason}")
        return resolved


def _parse_toml(text: str, source: Path) -> dict[str, Any]:
    body = text.removeprefix("\ufeff")
    try:
        return tomllib.loads(body)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        if "(at end of document)" in message:
            line = body.count("\n") + 1
            column = len(body) - body.rfind("\n")
            message = message.replace("end of document", f"line {line}, column {column}")
        raise _fatal(source, f"TOML syntax error: {message}") from None
    except (ValueError, RecursionError) as exc:
        raise _fatal(source, f"cannot parse TOML: {_clip(str(exc))}") from None


def output_matches(rel: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``outputs.paths`` collect the output at ``rel`` (relative to the output
    directory): a pattern matches the path itself or a directory it lies in, so
    ``"ckpt"`` (or ``"ckpt/"``) collects every file under ``ckpt/``."""
    parts = rel.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(c, p.rstrip("/") or p) for p in patterns for c in candidates)


def _collectable(name: str, outputs: OutputsSpec) -> bool:
    """Whether ``outputs.paths`` collect ``name``, a path as listed in the manifest."""
    node = _NODE_PREFIX.match(name) if outputs.from_ == "all" else None
    rel = name[node.end() :] if node else name
    return output_matches(rel, outputs.paths)


def _fatal(source: Path, message: str, hint: str | None = None) -> SpecError:
    error = SpecError(str(source), [Problem("", message)])
    if hint is not None:
        error.hint = hint
    return error


def _absolute(path: Path) -> Path:
    for make in (path.resolve, path.absolute):
        try:
            return make()
        except (OSError, RuntimeError, ValueError):
            continue
    return path


def _relative(path: Path, base_dir: Path) -> str:
    try:
        return path.relative_to(base_dir).as_posix()
    except ValueError:
        return Path(os.path.relpath(path, base_dir)).as_posix()


def _sort_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sort_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sort_keys(item) for item in value]
    return value


def _suggest(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word[:100], choices, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _join(prefix: str, key: str) -> str:
    name = key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)
    return f"{prefix}.{name}" if prefix else name


def _quote(text: str) -> str:
    return json.dumps(_clip(text), ensure_ascii=False)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {_clip(str(value))}"
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, str):
        return f"string {_quote(value)}"
    if isinstance(value, (datetime, date, time)):
        return f"{type(value).__name__} {value.isoformat()}"
    return {dict: "table", list: "array"}.get(type(value), type(value).__name__)
