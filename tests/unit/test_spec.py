"""Tests of the job spec: parsing, validation messages, expansion and robustness."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import tempfile
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from composer.errors import Problem, SpecError
from composer.spec import (
    SCHEMA,
    ClusterSpec,
    CodeSpec,
    InputSpec,
    JobSection,
    LimitsSpec,
    OutputsSpec,
    RecordSpec,
    ReproduceSpec,
    RunSpec,
    Spec,
    Tolerance,
    expanded,
    load_spec,
    parse_duration,
    parse_size,
    parse_spec,
)

DELETE = object()
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_str(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    return key if BARE_KEY.fullmatch(key) else toml_str(key)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value)
    if isinstance(value, str):
        return toml_str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    items = (f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
    return "{" + ", ".join(items) + "}"


def toml_dumps(doc: dict[str, Any]) -> str:
    """A TOML document: scalars first, then one [table] per dict value."""
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for name, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{toml_key(name)}]")
            lines.extend(f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


def make_job_dir(root: Path) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data" / "train.csv").write_text("x,y\n1,2\n")
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "train.py").write_text("print('hi')\n")
    (root / "cfg.json").write_text("{}\n")
    return root


def valid_doc() -> dict[str, Any]:
    return {
        "job": {"name": "hello-mpi", "description": "a test job"},
        "cluster": {"target": "local", "nodes": 4, "slots_per_node": 2, "gpus_per_node": 1},
        "run": {
            "launcher": "mpi",
            "command": ["python", "src/train.py", "--epochs", "3"],
            "env": {"SEED": "0", "ALPHA": "0.5"},
        },
        "code": {"path": "src"},
        "inputs": {"data/train.csv": "data/train.csv", "cfg.json": "./extra//cfg.json"},
        "outputs": {"paths": ["model.npy", "*.json"], "from": "head", "max_file_size": "1MB"},
        "limits": {"max_duration": "1h30m"},
        "record": {"repo": "runs"},
        "reproduce": {
            "metrics": ["metrics.json", "eval/scores.json"],
            "tolerance": {
                "final_loss": {"abs": 1e-6},
                "eval.accuracy": {"rel": 0.01},
                "losses[3]": {"abs": 0.1, "rel": 0.001},
            },
        },
    }


def minimal_doc() -> dict[str, Any]:
    return {
        "job": {"name": "tiny"},
        "cluster": {"target": "local", "nodes": 1},
        "run": {"command": "echo hi"},
    }


def problems_of(job_dir: Path, doc: dict[str, Any] | str) -> list[str]:
    text = doc if isinstance(doc, str) else toml_dumps(doc)
    with pytest.raises(SpecError) as info:
        parse_spec(text, job_dir / "job.toml")
    assert all(isinstance(p, Problem) for p in info.value.problems)
    return [str(p) for p in info.value.problems]


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    return make_job_dir(tmp_path / "job")


def test_full_spec_round_trip(job_dir: Path) -> None:
    text = toml_dumps(valid_doc())
    (job_dir / "job.toml").write_text(text)
    spec = load_spec(job_dir / "job.toml")
    assert spec == Spec(
        job=JobSection("hello-mpi", "a test job"),
        cluster=ClusterSpec("local", 4, 2, 1),
        run=RunSpec(
            "mpi",
            ("python", "src/train.py", "--epochs", "3"),
            (("ALPHA", "0.5"), ("SEED", "0")),
        ),
        code=CodeSpec(job_dir.resolve() / "src"),
        inputs=(
            InputSpec(job_dir.resolve() / "data" / "train.csv", "data/train.csv"),
            InputSpec(job_dir.resolve() / "cfg.json", "extra/cfg.json"),
        ),
        outputs=OutputsSpec(("model.npy", "*.json"), "head", 1_000_000),
        limits=LimitsSpec(5400.0, defaulted=False),
        record=RecordSpec("runs"),
        source=job_dir.resolve() / "job.toml",
        base_dir=job_dir.resolve(),
        text=text,
        reproduce=ReproduceSpec(
            ("metrics.json", "eval/scores.json"),
            (
                Tolerance("eval.accuracy", 0.0, 0.01),
                Tolerance("final_loss", 1e-6, 0.0),
                Tolerance("losses[3]", 0.1, 0.001),
            ),
        ),
    )


def test_expanded_full(job_dir: Path) -> None:
    spec = parse_spec(toml_dumps(valid_doc()), job_dir / "job.toml")
    data = expanded(spec)
    assert data == {
        "cluster": {"gpus_per_node": 1, "nodes": 4, "slots_per_node": 2, "target": "local"},
        "code": {"path": "src"},
        "container": {"gpus": False, "image": None, "mounts": [], "runtime": "none"},
        "inputs": [
            {"dest": "data/train.csv", "source": "data/train.csv"},
            {"dest": "extra/cfg.json", "source": "cfg.json"},
        ],
        "job": {"description": "a test job", "name": "hello-mpi"},
        "limits": {"max_cost": None, "max_duration": 5400.0},
        "outputs": {"from": "head", "max_file_size": 1_000_000, "paths": ["model.npy", "*.json"]},
        "record": {"max_log_size": 2_000_000, "repo": "runs"},
        "reproduce": {
            "metrics": ["metrics.json", "eval/scores.json"],
            "tolerance": {
                "eval.accuracy": {"abs": 0.0, "rel": 0.01},
                "final_loss": {"abs": 1e-6, "rel": 0.0},
                "losses[3]": {"abs": 0.1, "rel": 0.001},
            },
        },
        "run": {
            "command": ["python", "src/train.py", "--epochs", "3"],
            "env": {"ALPHA": "0.5", "SEED": "0"},
            "secret_env": [],
            "fail_fast": True,
            "health": True,
            "launcher": "mpi",
            "retries": {"max": 0, "on": []},
            "checkpoint": None,
        },
    }
    assert list(data) == sorted(data)
    assert all(list(v) == sorted(v) for v in data.values() if isinstance(v, dict))
    assert json.loads(json.dumps(data)) == data


def test_expanded_is_machine_independent(tmp_path: Path) -> None:
    first = make_job_dir(tmp_path / "a")
    second = make_job_dir(tmp_path / "b" / "deeper")
    text = toml_dumps(valid_doc())
    assert expanded(parse_spec(text, first / "job.toml")) == expanded(
        parse_spec(text, second / "job.toml")
    )


def test_defaults_filled(job_dir: Path) -> None:
    spec = parse_spec(toml_dumps(minimal_doc()), job_dir / "job.toml")
    assert spec.job == JobSection("tiny", "")
    assert spec.cluster == ClusterSpec("local", 1, 1, 0)
    assert spec.run == RunSpec("ssh", "echo hi", ())
    assert spec.code == CodeSpec(None)
    assert spec.inputs == ()
    assert spec.outputs == OutputsSpec((), "all", 50_000_000)
    assert spec.limits == LimitsSpec(24 * 3600.0, defaulted=True)
    assert spec.run.fail_fast is True
    assert spec.record.max_log_size == 2_000_000
    assert spec.record == RecordSpec(None)
    assert spec.reproduce == ReproduceSpec((), ())
    assert expanded(spec) == {
        "cluster": {"gpus_per_node": 0, "nodes": 1, "slots_per_node": 1, "target": "local"},
        "code": {"path": None},
        "container": {"gpus": False, "image": None, "mounts": [], "runtime": "none"},
        "inputs": [],
        "job": {"description": "", "name": "tiny"},
        "limits": {"max_cost": None, "max_duration": 86400.0},
        "outputs": {"from": "all", "max_file_size": 50_000_000, "paths": []},
        "record": {"max_log_size": 2_000_000, "repo": None},
        "reproduce": {"metrics": [], "tolerance": {}},
        "run": {"command": "echo hi", "env": {}, "fail_fast": True, "health": True,
                "launcher": "ssh", "secret_env": [], "retries": {"max": 0, "on": []},
                "checkpoint": None},
    }


def test_empty_code_section_means_job_directory(job_dir: Path) -> None:
    doc = minimal_doc() | {"code": {}}
    spec = parse_spec(toml_dumps(doc), job_dir / "job.toml")
    assert spec.code.path == job_dir.resolve()
    assert expanded(spec)["code"] == {"path": "."}


def test_absolute_paths_inside_job_directory_are_allowed(job_dir: Path) -> None:
    doc = minimal_doc()
    doc["code"] = {"path": str(job_dir / "src")}
    doc["inputs"] = {str(job_dir / "cfg.json"): "cfg.json"}
    spec = parse_spec(toml_dumps(doc), job_dir / "job.toml")
    assert expanded(spec)["code"] == {"path": "src"}
    assert expanded(spec)["inputs"] == [{"dest": "cfg.json", "source": "cfg.json"}]


def test_spec_is_immutable(job_dir: Path) -> None:
    spec = parse_spec(toml_dumps(minimal_doc()), job_dir / "job.toml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.job = JobSection("other")  # type: ignore[misc]


def test_all_problems_reported_together(job_dir: Path) -> None:
    text = """
[job]
name = "demo"

[cluster]
target = "local"
nodes = 0

[run]
lancher = "mpi"
command = ["python", "train.py"]
"""
    with pytest.raises(SpecError) as info:
        parse_spec(text, job_dir / "job.toml")
    error = info.value
    assert [p.path for p in error.problems] == ["cluster.nodes", "run.lancher"]
    assert str(error.problems[0]) == "cluster.nodes: must be at least 1, got 0"
    assert str(error.problems[1]) == "run.lancher: unknown key; did you mean 'launcher'?"
    assert error.source == str((job_dir / "job.toml").resolve())
    assert "2 problems" in str(error)
    assert "did you mean 'launcher'" in str(error)


def test_problems_follow_schema_order(job_dir: Path) -> None:
    doc = {
        "zzz": 1,
        "reproduce": {"metrics": "m.json"},
        "record": {"repo": 5},
        "limits": {"max_duration": "never"},
        "outputs": {"from": "tail"},
        "run": {"command": []},
        "cluster": {"target": "mars", "nodes": "four"},
        "job": {"name": "Bad Name"},
    }
    paths = [p.split(":")[0] for p in problems_of(job_dir, doc)]
    assert paths == [
        "job.name",
        "cluster.target",
        "cluster.nodes",
        "run.command",
        "outputs.from",
        "limits.max_duration",
        "record.repo",
        "reproduce.metrics",
        "zzz",
    ]


FIELD_CASES = [
    ("job", "name", DELETE, "job.name: required"),
    ("job", "name", "Hello_World", "job.name: must be 1-63 characters of a-z, 0-9 and '-'"),
    ("job", "name", "-lead", "job.name: must be 1-63 characters"),
    ("job", "name", "a" * 64, "job.name: must be 1-63 characters"),
    ("job", "name", 5, "job.name: must be a string, got integer 5"),
    ("job", "description", ["x"], "job.description: must be a string, got array"),
    ("cluster", "target", DELETE, "cluster.target: required"),
    ("cluster", "target", "aws", "cluster.target: target 'aws' needs an [aws] section; add one"),
    ("cluster", "target", "gcp", "cluster.target: target 'gcp' needs a [gcp] section; add one"),
    ("cluster", "target", "locl", "cluster.target: must be one of 'local', 'aws', 'gcp', got"),
    ("cluster", "target", 1, "cluster.target: must be a string, got integer 1"),
    ("cluster", "nodes", DELETE, "cluster.nodes: required"),
    ("cluster", "nodes", "four", 'cluster.nodes: must be an integer, got string "four"'),
    ("cluster", "nodes", True, "cluster.nodes: must be an integer, got boolean true"),
    ("cluster", "nodes", 2.0, "cluster.nodes: must be an integer, got float 2.0"),
    ("cluster", "nodes", {"a": 1}, "cluster.nodes: must be an integer, got table"),
    ("cluster", "nodes", -3, "cluster.nodes: must be at least 1, got -3"),
    ("cluster", "nodes", 257, "cluster.nodes: must be at most 256 for target 'local', got 257"),
    ("cluster", "nodes", 10**30, "cluster.nodes: must be at most 256 for target 'local'"),
    ("cluster", "slots_per_node", 0, "cluster.slots_per_node: must be at least 1, got 0"),
    ("cluster", "slots_per_node", 257, "cluster.slots_per_node: must be at most 256, got 257"),
    (
        "cluster",
        "slots_per_node",
        "2",
        'cluster.slots_per_node: must be an integer, got string "2"',
    ),
    ("cluster", "gpus_per_node", -1, "cluster.gpus_per_node: must be at least 0, got -1"),
    ("cluster", "gpus_per_node", 17, "cluster.gpus_per_node: must be at most 16, got 17"),
    ("cluster", "gpus_per_node", False, "cluster.gpus_per_node: must be an integer, got boolean"),
    ("run", "launcher", "pbs", "run.launcher: must be one of 'ssh', 'mpi', got \"pbs\""),
    (
        "run",
        "launcher",
        "mpii",
        "run.launcher: must be one of 'ssh', 'mpi', got \"mpii\"; did you mean 'mpi'?",
    ),
    ("run", "launcher", ["mpi"], "run.launcher: must be a string, got array"),
    ("run", "command", DELETE, "run.command: required"),
    ("run", "command", [], "run.command: must not be empty"),
    ("run", "command", "", "run.command: must not be empty"),
    ("run", "command", "   ", "run.command: must not be empty"),
    ("run", "command", [""], "run.command[0]: must not be empty"),
    ("run", "command", ["python", 3], "run.command[1]: must be a string, got integer 3"),
    ("run", "command", 5, "run.command: must be an array of strings or a string, got integer 5"),
    (
        "run",
        "command",
        {"a": "b"},
        "run.command: must be an array of strings or a string, got table",
    ),
    ("run", "env", "SEED=0", 'run.env: must be a table of NAME = "value", got string "SEED=0"'),
    ("run", "env", {"SEED": 0}, "run.env.SEED: must be a string; quote it (got integer 0)"),
    ("run", "env", {"RATE": 0.5}, "run.env.RATE: must be a string; quote it (got float 0.5)"),
    ("run", "env", {"DEBUG": True}, "run.env.DEBUG: must be a string; quote it (got boolean true)"),
    ("run", "env", {"LIST": ["a"]}, "run.env.LIST: must be a string, got array"),
    (
        "run",
        "env",
        {"COMPOSER_RUN": "x"},
        "run.env.COMPOSER_RUN: names starting with COMPOSER_ are reserved",
    ),
    ("run", "env", {"1BAD": "x"}, "run.env.1BAD: invalid name"),
    ("run", "env", {"A.B": "x"}, 'run.env."A.B": invalid name'),
    ("code", "path", 3, "code.path: must be a string, got integer 3"),
    ("code", "path", "", "code.path: must not be empty"),
    ("outputs", "paths", "*.npy", 'outputs.paths: must be an array of strings, got string "*.npy"'),
    (
        "outputs",
        "paths",
        ["a", "/abs/*.npy"],
        'outputs.paths[1]: must be a relative glob, got "/abs/*.npy"',
    ),
    ("outputs", "paths", ["../up.txt"], "outputs.paths[0]: must be a relative glob without '..'"),
    ("outputs", "paths", ["a/../../b"], "outputs.paths[0]: must be a relative glob without '..'"),
    ("outputs", "paths", [""], "outputs.paths[0]: must not be empty"),
    ("outputs", "paths", [7], "outputs.paths[0]: must be a string, got integer 7"),
    ("outputs", "from", "tail", "outputs.from: must be one of 'all', 'head', got \"tail\""),
    ("outputs", "from", 1, "outputs.from: must be a string, got integer 1"),
    ("outputs", "max_file_size", "big", 'outputs.max_file_size: invalid size "big"'),
    ("outputs", "max_file_size", 0, "outputs.max_file_size: must be between 1 byte and 1TB"),
    ("outputs", "max_file_size", -5, "outputs.max_file_size: size must not be negative"),
    ("outputs", "max_file_size", "2TB", "outputs.max_file_size: must be between 1 byte and 1TB"),
    (
        "outputs",
        "max_file_size",
        1.5,
        'outputs.max_file_size: must be a size such as "50MB" or a number of bytes, got float 1.5',
    ),
    ("outputs", "max_file_size", True, "outputs.max_file_size: must be a size such as"),
    ("limits", "max_duration", "soon", 'limits.max_duration: invalid duration "soon"'),
    (
        "limits",
        "max_duration",
        0,
        "limits.max_duration: must be more than 0 and at most 7d, got integer 0",
    ),
    ("limits", "max_duration", -1, "limits.max_duration: duration must not be negative"),
    (
        "limits",
        "max_duration",
        "8d",
        'limits.max_duration: must be more than 0 and at most 7d, got string "8d"',
    ),
    ("limits", "max_duration", math.inf, "limits.max_duration: duration must be a finite number"),
    ("limits", "max_duration", True, 'limits.max_duration: must be a duration such as "10m"'),
    (
        "limits",
        "max_duration",
        [60],
        'limits.max_duration: must be a duration such as "10m", a number of seconds, or "none" '
        "for no limit, got array",
    ),
    ("record", "repo", 1, "record.repo: must be a string, got integer 1"),
    ("record", "repo", "", "record.repo: must not be empty"),
    ("job", "nmae", "x", "job.nmae: unknown key; did you mean 'name'?"),
    ("cluster", "node", 2, "cluster.node: unknown key; did you mean 'nodes'?"),
    ("code", "pth", ".", "code.pth: unknown key; did you mean 'path'?"),
    ("outputs", "form", "all", "outputs.form: unknown key; did you mean 'from'?"),
    ("limits", "timeout", 5, "limits.timeout: unknown key"),
    ("record", "repos", "x", "record.repos: unknown key; did you mean 'repo'?"),
    (
        "reproduce",
        "metrics",
        "metrics.json",
        'reproduce.metrics: must be an array of strings, got string "metrics.json"',
    ),
    ("reproduce", "metrics", [3], "reproduce.metrics[0]: must be a string, got integer 3"),
    ("reproduce", "metrics", ["  "], "reproduce.metrics[0]: must not be empty"),
    (
        "reproduce",
        "metrics",
        ["/out/metrics.json"],
        'reproduce.metrics[0]: must be a relative path, got "/out/metrics.json"',
    ),
    (
        "reproduce",
        "metrics",
        ["a/../metrics.json"],
        "reproduce.metrics[0]: must not contain '..': \"a/../metrics.json\"",
    ),
    (
        "reproduce",
        "metrics",
        ["metrics.json", "*.json"],
        'reproduce.metrics[1]: must name one file, without * ? [ ]: "*.json"',
    ),
    ("reproduce", "metrics", ["m?.json"], "reproduce.metrics[0]: must name one file"),
    ("reproduce", "metrics", ["m[0].json"], "reproduce.metrics[0]: must name one file"),
    ("reproduce", "metrics", ["./"], 'reproduce.metrics[0]: must name a file, got "./"'),
    (
        "reproduce",
        "metrics",
        ["scores.csv"],
        'reproduce.metrics[0]: "scores.csv" is not among the collected outputs (outputs.paths)',
    ),
    (
        "reproduce",
        "metrics",
        ["metrics.json", "./metrics.json"],
        'reproduce.metrics[1]: "metrics.json" is also listed at reproduce.metrics[0]',
    ),
    (
        "reproduce",
        "tolerance",
        [1e-6],
        "reproduce.tolerance: must be a table of metric = { abs = ..., rel = ... }, got array",
    ),
    (
        "reproduce",
        "tolerance",
        {"loss": 0.1},
        "reproduce.tolerance.loss: must be a table such as { abs = 1e-6, rel = 0.01 }, got float",
    ),
    ("reproduce", "tolerance", {"loss": {}}, "reproduce.tolerance.loss: empty table; give abs"),
    (
        "reproduce",
        "tolerance",
        {"loss": {"abs": 0.1, "rle": 0.1}},
        "reproduce.tolerance.loss.rle: unknown key; did you mean 'rel'?",
    ),
    ("reproduce", "tolerance", {"loss": {"max": 1}}, "reproduce.tolerance.loss.max: unknown key"),
    (
        "reproduce",
        "tolerance",
        {"loss": {"abs": -0.5}},
        "reproduce.tolerance.loss.abs: must be at least 0, got float -0.5",
    ),
    (
        "reproduce",
        "tolerance",
        {"loss": {"rel": -1}},
        "reproduce.tolerance.loss.rel: must be at least 0, got integer -1",
    ),
    (
        "reproduce",
        "tolerance",
        {"loss": {"abs": True}},
        "reproduce.tolerance.loss.abs: must be a number, got boolean true",
    ),
    (
        "reproduce",
        "tolerance",
        {"loss": {"rel": "1%"}},
        'reproduce.tolerance.loss.rel: must be a number, got string "1%"',
    ),
    (
        "reproduce",
        "tolerance",
        {"loss": {"abs": math.inf}},
        "reproduce.tolerance.loss.abs: must be a finite number, got float inf",
    ),
    (
        "reproduce",
        "tolerance",
        {"loss": {"abs": math.nan}},
        "reproduce.tolerance.loss.abs: must be a finite number, got float nan",
    ),
    (
        "reproduce",
        "tolerance",
        {"loss": {"abs": 10**400}},
        "reproduce.tolerance.loss.abs: must be a finite number, got integer 1000",
    ),
    ("reproduce", "tolerance", {"": {"abs": 1}}, 'reproduce.tolerance."": must not be empty'),
    (
        "reproduce",
        "tolerance",
        {"a\x00b": {"abs": 1}},
        'reproduce.tolerance."a\\u0000b": must not contain NUL characters',
    ),
    (
        "reproduce",
        "tolerance",
        {"eval": {"accuracy": {"rel": 0.01}}},
        'reproduce.tolerance.eval.accuracy: unknown key; to name metric "eval.accuracy",'
        ' quote it: "eval.accuracy" = { abs = ... }',
    ),
    ("reproduce", "metric", ["m.json"], "reproduce.metric: unknown key; did you mean 'metrics'?"),
    ("reproduce", "tolerances", {}, "reproduce.tolerances: unknown key; did you mean 'tolerance'?"),
]


@pytest.mark.parametrize(("section", "key", "value", "expected"), FIELD_CASES)
def test_field_problem(job_dir: Path, section: str, key: str, value: Any, expected: str) -> None:
    doc = valid_doc()
    if value is DELETE:
        del doc[section][key]
    else:
        doc[section][key] = value
    problems = problems_of(job_dir, doc)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


def test_aws_target_allows_more_nodes_and_needs_its_section(job_dir: Path) -> None:
    doc = valid_doc()
    doc["cluster"].update(target="aws", nodes=1000)
    assert problems_of(job_dir, doc) == [
        "cluster.target: target 'aws' needs an [aws] section; add one "
        "(required keys: region, instance_types, image, ssh_cidrs)"
    ]
    doc["cluster"]["nodes"] = 1001
    assert "cluster.nodes: must be at most 1000 for target 'aws', got 1001" in problems_of(
        job_dir, doc
    )


@pytest.mark.parametrize(
    ("doc_change", "expected"),
    [
        ({"job": DELETE}, ["job: required section"]),
        ({"cluster": DELETE}, ["cluster: required section"]),
        ({"run": DELETE}, ["run: required section"]),
        ({"job": "x"}, ['job: must be a table, got string "x"']),
        ({"outputs": [1]}, ["outputs: must be a table, got array"]),
        ({"inputs": 3}, ["inputs: must be a table, got integer 3"]),
        ({"recrod": {"repo": "x"}}, ["recrod: unknown key; did you mean 'record'?"]),
        ({"reproduce": "metrics.json"}, ['reproduce: must be a table, got string "metrics.json"']),
        ({"reprodcue": {}}, ["reprodcue: unknown key; did you mean 'reproduce'?"]),
        ({"zzz": {}}, ["zzz: unknown key"]),
    ],
)
def test_section_problems(job_dir: Path, doc_change: dict[str, Any], expected: list[str]) -> None:
    doc = valid_doc()
    for name, value in doc_change.items():
        if value is DELETE:
            del doc[name]
        else:
            doc[name] = value
    assert problems_of(job_dir, doc) == expected


def test_code_path_problems(tmp_path: Path, job_dir: Path) -> None:
    base = job_dir.resolve()
    cases = {
        "..": f"code.path: resolves to {base.parent}, outside the job directory {base}",
        str(tmp_path): f"code.path: resolves to {tmp_path.resolve()}, outside the job directory",
        "missing": f"code.path: directory not found: {base / 'missing'}",
        "cfg.json": f"code.path: not a directory: {base / 'cfg.json'}",
    }
    for raw, expected in cases.items():
        doc = valid_doc()
        doc["code"]["path"] = raw
        problems = problems_of(job_dir, doc)
        assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_input_problems(tmp_path: Path, job_dir: Path) -> None:
    base = job_dir.resolve()
    (tmp_path / "secret.txt").write_text("s")
    (job_dir / "link.txt").symlink_to(tmp_path / "secret.txt")
    doc = minimal_doc()
    doc["inputs"] = {
        "data/x.csv": "x.csv",
        "../secret.txt": "s1",
        "link.txt": "s2",
        "data": "d",
        "cfg.json": "/etc/cfg.json",
        "data/train.csv": "a/../../b",
        "src/train.py": ".",
        "./cfg.json": 3,
        "ok_1": {"a": 1},
    }
    outside = f"outside the job directory {base}"
    assert problems_of(job_dir, doc) == [
        f'inputs."data/x.csv": file not found: {base}/data/x.csv',
        f'inputs."../secret.txt": resolves to {tmp_path.resolve()}/secret.txt, {outside}',
        f'inputs."link.txt": resolves to {tmp_path.resolve()}/secret.txt, {outside}',
        f"inputs.data: not a regular file: {base}/data",
        'inputs."cfg.json": destination must be relative, got "/etc/cfg.json"',
        'inputs."data/train.csv": destination must not contain \'..\': "a/../../b"',
        'inputs."src/train.py": destination must name a file, got "."',
        'inputs."./cfg.json": must be a string, got integer 3',
        "inputs.ok_1: file not found: " + str(base / "ok_1"),
        "inputs.ok_1: must be a string, got table",
    ]


REPRODUCE_TOML = """
[job]
name = "again"

[cluster]
target = "local"
nodes = 2

[run]
command = "python train.py"

[outputs]
paths = ["metrics.json", "eval/*.json"]

[reproduce]
metrics = ["node-0/metrics.json", "./node-1//eval/scores.json"]

[reproduce.tolerance]
final_loss = { abs = 1e-6 }
"eval.accuracy" = { rel = 0.01 }
"losses[3]" = { abs = 0.1, rel = 0.001 }
steps = { abs = 2, rel = 0 }
"""


def test_reproduce_section_as_documented(job_dir: Path) -> None:
    spec = parse_spec(REPRODUCE_TOML, job_dir / "job.toml")
    assert spec.reproduce == ReproduceSpec(
        ("node-0/metrics.json", "node-1/eval/scores.json"),
        (
            Tolerance("eval.accuracy", 0.0, 0.01),
            Tolerance("final_loss", 1e-6, 0.0),
            Tolerance("losses[3]", 0.1, 0.001),
            Tolerance("steps", 2.0, 0.0),
        ),
    )
    assert all(type(t.abs) is float and type(t.rel) is float for t in spec.reproduce.tolerance)
    assert expanded(spec)["reproduce"] == {
        "metrics": ["node-0/metrics.json", "node-1/eval/scores.json"],
        "tolerance": {
            "eval.accuracy": {"abs": 0.0, "rel": 0.01},
            "final_loss": {"abs": 1e-6, "rel": 0.0},
            "losses[3]": {"abs": 0.1, "rel": 0.001},
            "steps": {"abs": 2.0, "rel": 0.0},
        },
    }


def test_reproduce_tolerance_for() -> None:
    again = ReproduceSpec(
        ("metrics.json",),
        (Tolerance("eval.accuracy", rel=0.01), Tolerance("loss", 1e-6), Tolerance("x", 1, 2)),
    )
    assert again.tolerance_for("eval.accuracy") == (0.0, 0.01)
    assert again.tolerance_for("loss") == (1e-6, 0.0)
    assert again.tolerance_for("x") == (1, 2)
    assert again.tolerance_for("eval") == (0.0, 0.0)
    assert again.tolerance_for("losses[3]") == (0.0, 0.0)
    assert ReproduceSpec().tolerance_for("loss") == (0.0, 0.0)
    assert Tolerance("k") == Tolerance("k", 0.0, 0.0)


def test_spec_without_reproduce_argument_gets_an_empty_one(job_dir: Path) -> None:
    spec = parse_spec(toml_dumps(minimal_doc()), job_dir / "job.toml")
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(Spec)}
    del fields["reproduce"]
    assert Spec(**fields) == spec
    assert Spec(**fields).reproduce == ReproduceSpec()
    # Fields added later come last, with defaults, so positional callers keep working.
    names = [f.name for f in dataclasses.fields(Spec)]
    assert names[-4:] == ["reproduce", "container", "target_config", "state"]


def test_empty_reproduce_section(job_dir: Path) -> None:
    doc = minimal_doc() | {"reproduce": {}}
    spec = parse_spec(toml_dumps(doc), job_dir / "job.toml")
    assert spec.reproduce == ReproduceSpec()
    assert expanded(spec)["reproduce"] == {"metrics": [], "tolerance": {}}


def test_reproduce_tolerance_numbers(job_dir: Path) -> None:
    doc = minimal_doc()
    doc["reproduce"] = {
        "tolerance": {
            "z": {"rel": 0},
            "big": {"abs": 10**30},
            "neg_zero": {"abs": -0.0},
            "a b": {"abs": 0.5},
            "λ": {"rel": 1.5},
        }
    }
    spec = parse_spec(toml_dumps(doc), job_dir / "job.toml")
    assert spec.reproduce.tolerance == (
        Tolerance("a b", 0.5, 0.0),
        Tolerance("big", 1e30, 0.0),
        Tolerance("neg_zero", 0.0, 0.0),
        Tolerance("z", 0.0, 0.0),
        Tolerance("λ", 0.0, 1.5),
    )
    assert math.copysign(1.0, spec.reproduce.tolerance_for("neg_zero")[0]) == 1.0
    assert json.dumps(expanded(spec)["reproduce"])


@pytest.mark.parametrize(
    ("source", "paths", "metric", "collected"),
    [
        ("head", ["metrics.json"], "metrics.json", True),
        ("head", ["*.json"], "eval/metrics.json", True),
        ("head", ["metrics.json"], "node-0/metrics.json", False),
        ("head", ["node-*/metrics.json"], "node-0/metrics.json", True),
        ("head", ["Metrics.json"], "metrics.json", False),
        ("all", ["metrics.json"], "node-0/metrics.json", True),
        ("all", ["metrics.json"], "node-12/metrics.json", True),
        ("all", ["metrics.json"], "metrics.json", False),
        ("all", ["eval/*.json"], "node-3/eval/a.json", True),
        ("all", ["metrics.json"], "node-x/metrics.json", False),
        ("all", ["metrics.json"], "node-/metrics.json", False),
        ("all", ["metrics.json"], "a/node-0/metrics.json", False),
        ("all", ["metrics.json"], "node-0/node-1/metrics.json", False),
        ("all", ["*.npy"], "node-0/metrics.json", False),
        ("all", [], "node-0/metrics.json", False),
    ],
)
def test_reproduce_metrics_must_be_collected(
    job_dir: Path, source: str, paths: list[str], metric: str, collected: bool
) -> None:
    doc = minimal_doc()
    doc["outputs"] = {"paths": paths, "from": source}
    doc["reproduce"] = {"metrics": [metric]}
    text = toml_dumps(doc)
    if collected:
        assert parse_spec(text, job_dir / "job.toml").reproduce.metrics == (metric,)
    elif source == "all" and "/" not in metric:
        assert problems_of(job_dir, text) == [
            f'reproduce.metrics[0]: "{metric}" is never in a record with outputs.from = "all": '
            f'each node\'s files are under node-<rank>/, e.g. "node-0/{metric}" '
            '(or collect from = "head")'
        ]
    else:
        assert problems_of(job_dir, text) == [
            f'reproduce.metrics[0]: "{metric}" is not among the collected outputs (outputs.paths)'
        ]


def test_reproduce_metrics_default_outputs_collect_nothing(job_dir: Path) -> None:
    doc = minimal_doc() | {"reproduce": {"metrics": ["metrics.json", "node-0/m.json"]}}
    missing = "is not among the collected outputs (outputs.paths)"
    assert problems_of(job_dir, doc) == [
        f'reproduce.metrics[0]: "metrics.json" {missing}',
        f'reproduce.metrics[1]: "node-0/m.json" {missing}',
    ]


@pytest.mark.parametrize(
    "outputs",
    [
        {"paths": ["/abs.json"]},
        {"paths": "metrics.json"},
        {"paths": ["metrics.json"], "from": "tail"},
        {"paths": ["metrics.json"], "pths": ["x.json"]},
        ["metrics.json"],
    ],
)
def test_reproduce_metrics_not_judged_while_outputs_have_problems(
    job_dir: Path, outputs: Any
) -> None:
    doc = minimal_doc()
    doc["outputs"] = outputs
    doc["reproduce"] = {"metrics": ["other.json", "*.json"]}
    problems = problems_of(job_dir, doc)
    assert all(p.startswith("outputs") for p in problems[:-1]), problems
    assert problems[-1].startswith("reproduce.metrics[1]: must name one file"), problems


def test_reproduce_problems_all_reported(job_dir: Path) -> None:
    text = """
[job]
name = "again"

[cluster]
target = "local"
nodes = 1

[run]
command = "true"

[outputs]
paths = ["*.json"]
from = "head"

[reproduce]
metrics = ["metrics.json", "model.npy", "../x.json", "metrics.json"]
compare = "all"

[reproduce.tolerance]
eval.accuracy = { rel = 0.01 }
loss = { abs = -1, rell = 2 }
acc = 0.5
"""
    assert problems_of(job_dir, text) == [
        'reproduce.metrics[1]: "model.npy" is not among the collected outputs (outputs.paths)',
        "reproduce.metrics[2]: must not contain '..': \"../x.json\"",
        'reproduce.metrics[3]: "metrics.json" is also listed at reproduce.metrics[0]',
        'reproduce.tolerance.eval.accuracy: unknown key; to name metric "eval.accuracy",'
        ' quote it: "eval.accuracy" = { abs = ... }',
        "reproduce.tolerance.loss.abs: must be at least 0, got integer -1",
        "reproduce.tolerance.loss.rell: unknown key; did you mean 'rel'?",
        "reproduce.tolerance.acc: must be a table such as { abs = 1e-6, rel = 0.01 },"
        " got float 0.5",
        "reproduce.compare: unknown key",
    ]


def test_duplicate_input_destination(job_dir: Path) -> None:
    doc = minimal_doc()
    doc["inputs"] = {"cfg.json": "same/file", "data/train.csv": "./same//file"}
    assert problems_of(job_dir, doc) == [
        'inputs."data/train.csv": destination "same/file" is also used by inputs."cfg.json"'
    ]


def test_inputs_sorted_by_destination(job_dir: Path) -> None:
    doc = minimal_doc()
    doc["inputs"] = {"data/train.csv": "z.csv", "cfg.json": "a.json"}
    spec = parse_spec(toml_dumps(doc), job_dir / "job.toml")
    assert [item.dest for item in spec.inputs] == ["a.json", "z.csv"]


def test_relative_source_resolves_against_cwd(
    job_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(job_dir)
    spec = parse_spec(toml_dumps(valid_doc()), Path("job.toml"))
    assert spec.source == job_dir.resolve() / "job.toml"
    assert spec.base_dir == job_dir.resolve()


def test_load_spec_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.toml")
    assert "file not found" in str(info.value)
    assert info.value.source == str(tmp_path.resolve() / "nope.toml")


def test_load_spec_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(tmp_path)


def test_load_spec_rejects_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_bytes(b'[job]\nname = "caf\xe9"\n')
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert len(info.value.problems) == 1
    assert "UTF-8" in str(info.value)
    assert "0xe9 on line 2" in str(info.value)


def test_load_spec_accepts_byte_order_mark(job_dir: Path) -> None:
    path = job_dir / "job.toml"
    text = "\ufeff" + toml_dumps(minimal_doc())
    path.write_text(text, encoding="utf-8")
    assert load_spec(path).text == text


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('[job]\nname = "x"\nnodes = = 3\n', 3),
        ('[job]\nname = "x"\n[cluster\n', 3),
        ('[job]\nname = "unterminated\n', 2),
        ('[job]\nname = "x"\nname = "y"\n', 3),
    ],
)
def test_toml_syntax_error_has_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "job.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert len(info.value.problems) == 1
    message = str(info.value.problems[0])
    assert message.startswith("TOML syntax error: ")
    assert f"line {line}" in message


def test_toml_error_at_end_of_document_gets_a_line(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, '[job]\nname = "x"\nvalue = ')
    assert len(problems) == 1 and "line 3" in problems[0]


def test_deeply_nested_toml_is_a_spec_error(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "a = " + "[" * 5000 + "]" * 5000)
    assert problems[0].startswith("cannot parse TOML")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90.0),
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1d2h3m4s", 93784.0),
        ("1h 30m", 5400.0),
        ("1.5h", 5400.0),
        ("45", 45.0),
        ("0.5", 0.5),
        (45, 45.0),
        (2.5, 2.5),
        (0, 0.0),
    ],
)
def test_parse_duration(value: str | int | float, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    ["", "s", "h30", "1x", "-5", "1h1h", "30m1h", "1e3", "nan", True, -1, math.nan, math.inf, None],
)
def test_parse_duration_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("50MB", 50_000_000),
        ("1GB", 1_000_000_000),
        ("512KB", 512_000),
        ("1024", 1024),
        ("10B", 10),
        ("1KiB", 1024),
        ("2MiB", 2 * 1024**2),
        ("1GiB", 1024**3),
        ("1TB", 10**12),
        ("1.5MB", 1_500_000),
        ("50 mb", 50_000_000),
        (1024, 1024),
        (0, 0),
    ],
)
def test_parse_size(value: str | int, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize(
    "value", ["", "MB", "5XB", "1.5B", "-1", "1e3", "ten", -1, True, 1.5, None]
)
def test_parse_size_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(value)


@given(st.integers(0, 10**6), st.integers(0, 59), st.integers(0, 59))
def test_parse_duration_units_add_up(hours: int, minutes: int, seconds: int) -> None:
    assert parse_duration(f"{hours}h{minutes}m{seconds}s") == hours * 3600 + minutes * 60 + seconds


@given(st.integers(0, 10**12))
def test_parse_size_integers(n: int) -> None:
    assert parse_size(n) == parse_size(str(n)) == n
    assert parse_size(f"{n}KiB") == n * 1024


KEYS = sorted({k for s in SCHEMA.values() for k in s.keys} | set(SCHEMA)) + [
    "lancher",
    "data/train.csv",
    "COMPOSER_X",
    "SEED",
    "",
    "a.b",
    "abs",
    "rel",
    "eval.accuracy",
    "losses[3]",
]
key_strategy = st.one_of(st.sampled_from(KEYS), st.text(max_size=12))
scalar_strategy = st.one_of(
    st.none().map(lambda _: "local"),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["ssh", "mpi", "all", "head", ".", "..", "/", "src", "10m", "50MB", "a/../b"]),
    st.sampled_from(["metrics.json", "node-0/metrics.json", "node-1/eval.json", "*.json"]),
    st.dates(),
    st.datetimes(),
    st.times(),
)
value_strategy = st.recursive(
    scalar_strategy,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(key_strategy, children, max_size=4)
    ),
    max_leaves=12,
)
doc_strategy = st.dictionaries(
    key_strategy,
    st.one_of(st.dictionaries(key_strategy, value_strategy, max_size=6), value_strategy),
    max_size=9,
)
mutation_strategy = st.lists(
    st.tuples(
        st.sampled_from([*SCHEMA, "recrod"]),
        st.one_of(st.none(), key_strategy),
        st.one_of(st.just(DELETE), value_strategy),
    ),
    min_size=1,
    max_size=4,
)

FUZZ = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_job_dir(tmp_path_factory.mktemp("fuzz"))


def parse_or_error(text: str, source: Path) -> Spec | SpecError:
    try:
        spec = parse_spec(text, source)
    except SpecError as error:
        assert error.problems
        assert str(error)
        return error
    json.dumps(expanded(spec))
    return spec


def nan_free(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isnan(value)
    if isinstance(value, list):
        return all(nan_free(v) for v in value)
    if isinstance(value, dict):
        return all(nan_free(v) for v in value.values())
    return True


@FUZZ
@given(doc=doc_strategy)
def test_random_documents_give_spec_or_spec_error(fuzz_dir: Path, doc: dict[str, Any]) -> None:
    text = toml_dumps(doc)
    if nan_free(doc):
        assert tomllib.loads(text) == doc
    parse_or_error(text, fuzz_dir / "job.toml")


@FUZZ
@given(mutations=mutation_strategy)
def test_mutated_valid_documents_give_spec_or_spec_error(
    fuzz_dir: Path, mutations: list[tuple[str, str | None, Any]]
) -> None:
    doc = copy.deepcopy(valid_doc())
    for section, key, value in mutations:
        table = doc.setdefault(section, {})
        if key is None:
            doc[section] = {} if value is DELETE else value
        elif isinstance(table, dict) and value is DELETE:
            table.pop(key, None)
        elif isinstance(table, dict):
            table[key] = value
    parse_or_error(toml_dumps(doc), fuzz_dir / "job.toml")


@FUZZ
@given(
    text=st.text(alphabet=st.sampled_from("[]{}=\"'.,#\n abc-_=1") | st.characters(), max_size=200)
)
def test_random_text_gives_spec_or_spec_error(fuzz_dir: Path, text: str) -> None:
    parse_or_error(text, fuzz_dir / "job.toml")


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes_give_spec_or_spec_error(fuzz_dir: Path, data: bytes) -> None:
    with tempfile.TemporaryDirectory(dir=fuzz_dir) as folder:
        path = Path(folder) / "job.toml"
        path.write_bytes(data)
        try:
            load_spec(path)
        except SpecError as error:
            assert error.problems


finite = st.floats(min_value=0, max_value=1e300, allow_nan=False, allow_infinity=False)


@settings(FUZZ, max_examples=100)
@given(
    bounds=st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda k: k.strip() and "\x00" not in k),
        st.fixed_dictionaries({}, optional={"abs": finite, "rel": finite}).filter(bool),
        max_size=6,
    )
)
def test_valid_tolerances_round_trip(fuzz_dir: Path, bounds: dict[str, dict[str, float]]) -> None:
    doc = minimal_doc() | {"reproduce": {"tolerance": bounds}}
    again = parse_spec(toml_dumps(doc), fuzz_dir / "job.toml").reproduce
    assert [t.key for t in again.tolerance] == sorted(bounds)
    for key, given_bounds in bounds.items():
        assert again.tolerance_for(key) == (
            given_bounds.get("abs", 0.0),
            given_bounds.get("rel", 0.0),
        )


# -- [container] ----------------------------------------------------------------


def test_container_section_parsed_and_expanded(job_dir: Path) -> None:
    doc = minimal_doc() | {"container": {
        "runtime": "podman", "image": "localhost/x:latest", "gpus": True,
        "mounts": ["/data:/data:ro", "/scratch:/mnt//s/"],
    }}
    spec = parse_spec(toml_dumps(doc), job_dir / "job.toml")
    box = spec.container
    assert box.enabled and box.runtime == "podman" and box.image == "localhost/x:latest"
    assert box.gpus is True
    assert [m.text() for m in box.mounts] == ["/data:/data:ro", "/scratch:/mnt/s"]
    assert expanded(spec)["container"] == {
        "gpus": True, "image": "localhost/x:latest",
        "mounts": ["/data:/data:ro", "/scratch:/mnt/s"], "runtime": "podman",
    }


def test_container_defaults_to_none(job_dir: Path) -> None:
    spec = parse_spec(toml_dumps(minimal_doc() | {"container": {}}), job_dir / "job.toml")
    assert not spec.container.enabled and spec.container.image is None


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"runtime": "podmn", "image": "x"},
         "container.runtime: must be one of 'podman', 'docker', 'apptainer', 'none', "
         "got \"podmn\"; did you mean 'podman'?"),
        ({"runtime": "podman"}, "container.image: required with runtime = \"podman\""),
        ({"image": "x"}, "container.runtime: is 'none' (the default), so container.image would "
                         "not be used; choose one of 'podman', 'docker', 'apptainer'"),
        ({"runtime": "docker", "image": ""}, "container.image: must not be empty"),
        ({"runtime": "docker", "image": "a b"}, "container.image: must not contain spaces"),
        ({"runtime": "docker", "image": "x", "gpus": "yes"},
         "container.gpus: must be a boolean (true or false), got string \"yes\""),
        ({"runtime": "docker", "image": "x", "mounts": "/a:/b"},
         'container.mounts: must be an array of "host:container[:ro]" strings'),
        ({"runtime": "docker", "image": "x", "mounts": ["/a"]},
         'container.mounts[0]: must be "host:container" or "host:container:ro"'),
        ({"runtime": "docker", "image": "x", "mounts": ["/a:/b:rox"]},
         "container.mounts[0]: mode must be 'ro' or 'rw', got \"rox\"; did you mean 'ro'?"),
        ({"runtime": "docker", "image": "x", "mounts": ["a:/b"]},
         "container.mounts[0]: both paths must be absolute"),
        ({"runtime": "docker", "image": "x", "mounts": ["/a:/b", "/c:/b/"]},
         "container.mounts[1]: container path \"/b\" is also mounted by container.mounts[0]"),
        ({"runtime": "docker", "image": "x", "imag": "y"},
         "container.imag: unknown key; did you mean 'image'?"),
    ],
)
def test_container_problems(job_dir: Path, table: dict, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(toml_dumps(minimal_doc() | {"container": table}), job_dir / "job.toml")
    lines = [str(p) for p in info.value.problems]
    assert any(line.startswith(expected) for line in lines), lines


def test_container_problems_come_after_run(job_dir: Path) -> None:
    doc = minimal_doc() | {"container": {"runtime": "x"}}
    doc["run"] = {"command": "x", "launcher": "sssh"}
    doc["code"] = {"path": "missing"}
    with pytest.raises(SpecError) as info:
        parse_spec(toml_dumps(doc), job_dir / "job.toml")
    paths = [p.path for p in info.value.problems]
    assert paths.index("run.launcher") < paths.index("container.runtime") < paths.index("code.path")


def test_limits_none_and_new_fields(job_dir: Path) -> None:
    doc = minimal_doc()
    doc["limits"] = {"max_duration": "none"}
    doc["run"]["fail_fast"] = False
    doc["record"] = {"max_log_size": "10MB"}
    spec = parse_spec(toml_dumps(doc), job_dir / "job.toml")
    assert spec.limits == LimitsSpec(None, defaulted=False)
    assert spec.run.fail_fast is False
    assert spec.record.max_log_size == 10_000_000
    doc["run"]["fail_fast"] = "yes"
    assert problems_of(job_dir, doc) == [
        'run.fail_fast: must be a boolean (true or false), got string "yes"'
    ]


def test_run_health_defaults_on_and_can_be_turned_off(job_dir: Path) -> None:
    doc = minimal_doc()
    assert parse_spec(toml_dumps(doc), job_dir / "job.toml").run.health is True
    doc["run"]["health"] = False
    spec = parse_spec(toml_dumps(doc), job_dir / "job.toml")
    assert spec.run.health is False
    assert expanded(spec)["run"]["health"] is False
    doc["run"]["health"] = "no"
    assert problems_of(job_dir, doc) == [
        'run.health: must be a boolean (true or false), got string "no"'
    ]


def test_a_path_that_is_not_a_spec_file_gets_a_hint_of_its_own(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as missing:
        load_spec(tmp_path / "nope.toml")
    assert "file not found" in missing.value.message
    assert missing.value.hint is not None and "job spec" in missing.value.hint
    (tmp_path / "job.toml").write_text("")
    with pytest.raises(SpecError) as folder:
        load_spec(tmp_path)
    assert folder.value.hint == f"did you mean {tmp_path / 'job.toml'}?"
