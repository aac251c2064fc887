"""Reading a job spec: the file, its TOML, every section in order, then ``Spec``."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from types import MappingProxyType
from typing import Any

from composer.errors import Problem, SpecError
from composer.spec.basics import CLUSTER, JOB, RUN, check_cluster, check_job, check_run
from composer.spec.check import Checker, Table
from composer.spec.fields import Section
from composer.spec.files import CODE, CONTAINER, INPUTS, check_code, check_container, check_inputs
from composer.spec.model import ClusterSpec, Spec
from composer.spec.results import (
    LIMITS,
    OUTPUTS,
    RECORD,
    REPRODUCE,
    check_limits,
    check_outputs,
    check_record,
    check_reproduce,
)
from composer.spec.state import STATE, check_state
from composer.spec.state import expand as expand_state
from composer.spec.text import clip

#: The sections every spec may have, in the order problems are reported. A target's own
#: section (``[aws]``) comes from the target registry: see ``target_sections``.
SCHEMA: Mapping[str, Section] = MappingProxyType({
    s.name: s for s in (JOB, CLUSTER, RUN, CONTAINER, CODE, INPUTS, OUTPUTS, LIMITS, RECORD,
                        REPRODUCE, STATE)
})


def target_sections() -> dict[str, Section]:
    """Each registered target's own section, by section name."""
    from composer.spec.basics import registered_targets

    found = {}
    for name, target in registered_targets().items():
        section = getattr(target, "section", None)
        if section is not None:
            assert section.target == name, f"{name}'s section is for {section.target}"
            found[section.name] = section
    return found


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


def parse_spec(text: str, source: Path | str, check_paths: bool = True,
               environ: Mapping[str, str] | None = None) -> Spec:
    """Validate spec ``text``; relative paths in it start at ``source``'s folder.
    ``check_paths=False``: a recorded spec read where its code and inputs are not.
    ``environ``: the environment defaults come from (default: this process's)."""
    source = _absolute(Path(source))
    data = _parse_toml(text, source)
    check = Checker(source.parent, check_paths, environ)
    spec = _spec(check, data, source, text)
    if check.problems or spec is None:
        raise SpecError(str(source), check.problems)
    return spec


def _spec(c: Checker, data: Table, source: Path, text: str) -> Spec | None:
    job = check_job(c, c.section(data, JOB))
    cluster = check_cluster(c, c.section(data, CLUSTER))
    run = check_run(c, c.section(data, RUN))
    container = check_container(c, c.section(data, CONTAINER))
    code = check_code(c, c.section(data, CODE))
    inputs = check_inputs(c, c.section(data, INPUTS))
    count = c.count()
    outputs = check_outputs(c, c.section(data, OUTPUTS))
    collected = outputs if c.count() == count else None
    limits = check_limits(c, c.section(data, LIMITS))
    record = check_record(c, c.section(data, RECORD))
    reproduce = check_reproduce(c, c.section(data, REPRODUCE), collected)
    state = check_state(c, c.section(data, STATE))
    sections = target_sections()
    config = _target_config(c, data, sections, cluster)
    c.unknown(data, "", (*SCHEMA, *sections))
    if c.problems or job is None or cluster is None or run is None:
        return None
    parts = (job, cluster, run, code, inputs, outputs, limits, record)
    return Spec(*parts, source=source, base_dir=c.base_dir, text=text, reproduce=reproduce,
                container=container, target_config=config, state=state)


def _target_config(
    c: Checker, data: Table, sections: dict[str, Section], cluster: ClusterSpec | None
) -> Any:
    """Check each target section present; the chosen target's config (None without one)."""
    target = _written_target(data)
    config = None
    for name, section in sections.items():
        owner = section.target
        if target == owner and name not in data:
            required = ", ".join(section.required_keys)
            article = "an" if name[0] in "aeiou" else "a"
            c.add("cluster.target", f"target '{owner}' needs {article} [{name}] section; add "
                                    f"one (required keys: {required})")
        elif name in data and target is not None and target != owner:
            c.add(name, f"is the section of target '{owner}', but cluster.target is "
                        f"'{target}': set cluster.target = \"{owner}\" or remove [{name}]")
        elif (table := c.section(data, section)) is not None and section.check is not None:
            checked = section.check(c, table, cluster)
            config = checked if target == owner else config
    return config


def _written_target(data: Table) -> str | None:
    """``cluster.target`` when it names a known target, else None."""
    from composer.spec.basics import target_names

    cluster = data.get("cluster")
    target = cluster.get("target") if isinstance(cluster, dict) else None
    return target if isinstance(target, str) and target in target_names() else None


def expanded(spec: Spec) -> dict[str, Any]:
    """The resolved spec as JSON-able data, paths relative to ``spec.base_dir``."""
    run, out, code, again = spec.run, spec.outputs, spec.code.path, spec.reproduce
    command = run.command if isinstance(run.command, str) else list(run.command)
    data = {
        "job": asdict(spec.job),
        "cluster": asdict(spec.cluster),
        "run": {"launcher": run.launcher, "command": command, "env": dict(run.env),
                "secret_env": list(run.secret_env), "fail_fast": run.fail_fast,
                "retries": {"max": run.retries.max, "on": list(run.retries.on)},
                "checkpoint": run.checkpoint,
                "health": run.health},
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
        "limits": {"max_duration": spec.limits.max_duration,
                   "max_cost": spec.limits.max_cost},
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
    if spec.state.remote:  # a spec without [state] expands as before it existed
        data["state"] = expand_state(spec.state)
    for name, section in target_sections().items():
        if section.target == spec.cluster.target and spec.target_config is not None:
            assert section.expand is not None, f"[{name}] has no expand"
            data[name] = section.expand(spec.target_config)
    return _sort_keys(data)


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
        raise _fatal(source, f"cannot parse TOML: {clip(str(exc))}") from None


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
