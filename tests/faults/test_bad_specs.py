"""Malformed job specs: `composer up` rejects every one with exit 2, naming the field."""

from __future__ import annotations

import copy
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import composer.cli
import composer.run

from .conftest import Tally
from .util import dump_toml

pytestmark = pytest.mark.integration

EXAMPLES = 200
SECTIONS = ("job", "cluster", "run", "code", "inputs", "outputs", "limits", "record", "reproduce")
FIELD_LINE = re.compile(r"^\s+[a-z_]+[.\[:]", re.M)
FILE_LEVEL = ("TOML syntax error", "not valid UTF-8", "cannot parse TOML")
JOB_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
KEYS = {
    "job": ("name", "description"),
    "cluster": ("target", "nodes", "slots_per_node", "gpus_per_node"),
    "run": ("launcher", "command", "env", "secret_env"),
    "code": ("path",),
    "outputs": ("paths", "from", "max_file_size"),
    "limits": ("max_duration",),
    "record": ("repo",),
    "reproduce": ("metrics", "tolerance"),
}
BASE: dict[str, Any] = {
    "job": {"name": "fine"},
    "cluster": {"target": "local", "nodes": 1},
    "run": {"launcher": "ssh", "command": ["python", "main.py"]},
    "code": {"path": "."},
    "inputs": {"data.txt": "data.txt"},
    "outputs": {"paths": ["*.json"]},
}

Doc = dict[str, Any]


@dataclass(frozen=True)
class Mutation:
    """One thing wrong with a spec: what it does, where composer must point."""

    section: str
    field: str
    apply: Callable[[Doc], None]
    label: str

    def __repr__(self) -> str:
        return f"<{self.field}: {self.label}>"


def table(doc: Doc, name: str) -> dict[str, Any]:
    if not isinstance(doc.get(name), dict):
        doc[name] = {}
    section: dict[str, Any] = doc[name]
    return section


def setting(section: str, key: str, value: Any, field: str | None = None) -> Mutation:
    def apply(doc: Doc) -> None:
        table(doc, section)[key] = copy.deepcopy(value)

    return Mutation(section, field or f"{section}.{key}", apply, f"{key} = {value!r}"[:80])


def dropping(section: str, key: str | None = None) -> Mutation:
    def apply(doc: Doc) -> None:
        if key is None:
            doc.pop(section, None)
        else:
            table(doc, section).pop(key, None)

    field = section if key is None else f"{section}.{key}"
    return Mutation(section, field, apply, "missing")


def replacing(section: str, value: Any) -> Mutation:
    def apply(doc: Doc) -> None:
        doc[section] = copy.deepcopy(value)

    return Mutation(section, section, apply, f"{section} = {value!r}"[:80])


big = st.integers(min_value=2**63, max_value=10**40)
wrong_scalar = st.one_of(
    st.booleans(), st.floats(allow_nan=True, allow_infinity=True), st.just([]), st.just({}),
)
shell_names = st.sampled_from([
    "a;rm -rf /", "$(x)", "`id`", "a|b", "a&&b", "a b", "a\nb", "../x", "A", "-lead", "",
    "x" * 64, "héllo", "a'b", 'a"b', "*", "~root", "a\\b", "a>b", "name\x00",
])
bad_names = st.one_of(
    shell_names,
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=70).filter(
        lambda s: not JOB_NAME.fullmatch(s)),
)
lower_key = st.from_regex(r"[a-z_]{1,12}", fullmatch=True)


def unknown_key(section: str) -> st.SearchStrategy[Mutation]:
    allowed = KEYS[section]
    return lower_key.filter(lambda k: k not in allowed).map(
        lambda k: setting(section, k, 1))


job_mutations = st.one_of(
    bad_names.map(lambda v: setting("job", "name", v)),
    st.one_of(st.integers(), wrong_scalar).map(lambda v: setting("job", "name", v)),
    st.just(dropping("job", "name")),
    st.just(dropping("job")),
    st.sampled_from(["job", 5, ["a"]]).map(lambda v: replacing("job", v)),
    unknown_key("job"),
    st.integers().map(lambda v: setting("job", "description", v)),
)
cluster_mutations = st.one_of(
    st.one_of(st.integers(max_value=0), st.integers(min_value=257), big, big.map(lambda n: -n))
    .map(lambda v: setting("cluster", "nodes", v)),
    st.one_of(st.text(max_size=5), wrong_scalar).map(lambda v: setting("cluster", "nodes", v)),
    st.one_of(st.integers(max_value=0), st.integers(min_value=257), big)
    .map(lambda v: setting("cluster", "slots_per_node", v)),
    st.one_of(st.integers(max_value=-1), st.integers(min_value=17))
    .map(lambda v: setting("cluster", "gpus_per_node", v)),
    st.sampled_from(["aws", "gcp", "azure", "", "LOCAL", "local;id", 7])
    .map(lambda v: setting("cluster", "target", v)),
    st.just(dropping("cluster", "nodes")),
    st.just(dropping("cluster", "target")),
    st.just(dropping("cluster")),
    unknown_key("cluster"),
)
run_mutations = st.one_of(
    st.sampled_from([5, {}, [], [""], [1, "x"], ["python", 2], "", "   ", [True], [[]]])
    .map(lambda v: setting("run", "command", v)),
    st.sampled_from(["bash", "", "MPI", "srun", 1]).map(lambda v: setting("run", "launcher", v)),
    st.sampled_from(["A=1", ["A"], 3]).map(lambda v: setting("run", "env", v)),
    st.one_of(
        st.sampled_from(["1X", "COMPOSER_X", "A-B", "A B", "$(id)", ""]),
        st.text(max_size=8).filter(lambda s: not ENV_NAME.fullmatch(s)),
    ).map(lambda name: setting("run", "env", {name: "v"}, "run.env")),
    st.one_of(st.integers(), st.booleans(), st.floats(allow_nan=False))
    .map(lambda v: setting("run", "env", {"GOOD": v}, "run.env")),
    st.sampled_from(["TOKEN", 5, [5], ["1X"], ["COMPOSER_TOKEN"], ["A", "A"], [""]])
    .map(lambda v: setting("run", "secret_env", v)),
    st.just(dropping("run", "command")),
    st.just(dropping("run")),
    unknown_key("run"),
)
code_mutations = st.one_of(
    st.sampled_from(["../..", "..", "/", "/etc", "../../etc", "missing-dir", "data.txt", "",
                     5, True]).map(lambda v: setting("code", "path", v)),
    unknown_key("code"),
)
input_mutations = st.one_of(
    st.sampled_from(["../../etc/passwd", "/etc/passwd", "missing.txt", "..", "sub/../../x"])
    .map(lambda src: setting("inputs", src, "in.txt", "inputs")),
    st.sampled_from(["../x", "/abs", "", ".", "a/../../b", 5, ["x"]])
    .map(lambda dest: setting("inputs", "data.txt", dest, "inputs")),
)
output_mutations = st.one_of(
    st.sampled_from(["*.json", 5, ["/abs/*"], ["../up"], [""], [1]])
    .map(lambda v: setting("outputs", "paths", v)),
    st.sampled_from(["tail", "", "ALL", 0]).map(lambda v: setting("outputs", "from", v)),
    st.one_of(st.integers(max_value=0), st.integers(min_value=10**12 + 1),
              st.sampled_from(["12XB", "-5MB", "1.5B", "", "lots", 1.5, True, "2TB"]))
    .map(lambda v: setting("outputs", "max_file_size", v)),
    unknown_key("outputs"),
)
limit_mutations = st.one_of(
    st.one_of(
        st.integers(max_value=0), st.integers(min_value=7 * 86400 + 1), big,
        st.sampled_from([-1.5, 1e300, float("inf"), float("nan"), "forever", "-5m", "99999999d",
                         "10 minutes", "", True, [], "8d"]),
    ).map(lambda v: setting("limits", "max_duration", v)),
    unknown_key("limits"),
)
other_mutations = st.one_of(
    st.sampled_from(["", 5, []]).map(lambda v: setting("record", "repo", v)),
    st.sampled_from([5, "metrics.json", ["/abs.json"], ["*.json"], ["../m.json"], [""]])
    .map(lambda v: setting("reproduce", "metrics", v)),
    st.sampled_from([{"loss": {"abs": -1}}, {"loss": {"rel": "x"}}, {"loss": {}}, {"loss": 5},
                     {"loss": {"abs": float("inf")}}, {"loss": {"absolute": 1}}])
    .map(lambda v: setting("reproduce", "tolerance", v)),
    lower_key.filter(lambda k: k not in SECTIONS).map(
        lambda k: Mutation(k, k, lambda doc: doc.__setitem__(k, {"x": 1}), "unknown section")),
    st.sampled_from(["cluster", "run", "outputs", "limits"]).flatmap(
        lambda s: st.sampled_from(["x", 1, True, [1]]).map(lambda v: replacing(s, v))),
)
mutations = st.one_of(job_mutations, cluster_mutations, run_mutations, code_mutations,
                      input_mutations, output_mutations, limit_mutations, other_mutations)


@dataclass(frozen=True)
class Corruption:
    """A byte-level defect of the whole file: only a file-level message can describe it."""

    kind: str
    position: float

    def apply(self, data: bytes) -> bytes:
        at = int(len(data) * self.position)
        if self.kind == "non-utf8":
            return data[:at] + b"\xff\xfe\xc3\x28" + data[at:]
        if self.kind == "latin1":
            return data[:at] + "é".encode("latin-1") + data[at:]
        if self.kind == "truncated-string":
            return data + b'x = "never closed\n'
        if self.kind == "duplicate-table":
            return data + b"[twice]\n[twice]\n"
        if self.kind == "deep-nesting":
            return data + b"deep = " + b"[" * 100_000 + b"]" * 100_000 + b"\n"
        if self.kind == "garbage":
            return data[:at] + b"\n= = =\n" + data[at:]
        raise AssertionError(self.kind)


corruptions = st.builds(
    Corruption,
    st.sampled_from(["non-utf8", "latin1", "truncated-string", "duplicate-table",
                     "deep-nesting", "garbage"]),
    st.floats(min_value=0, max_value=1),
)
specs = st.tuples(
    st.lists(mutations, min_size=1, max_size=3, unique_by=lambda m: m.section),
    st.one_of(st.none(), corruptions),
)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("bad-specs")
    (root / "project").mkdir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


def refuse_to_run(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("composer accepted a malformed spec and started a run")


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=specs)
@example(spec=([setting("job", "name", "a;rm -rf /")], None))
@example(spec=([setting("job", "name", "$(x)")], None))
@example(spec=([setting("code", "path", "../..")], None))
@example(spec=([setting("inputs", "../../etc/passwd", "passwd", "inputs")], None))
@example(spec=([setting("cluster", "nodes", 10**30)], None))
@example(spec=([setting("cluster", "nodes", -3)], None))
@example(spec=([dropping("run")], Corruption("non-utf8", 0.5)))
def test_malformed_specs_are_rejected(sandbox: Path, tally: Tally,
                                      spec: tuple[list[Mutation], Corruption | None]) -> None:
    changes, corruption = spec
    doc = copy.deepcopy(BASE)
    for change in changes:
        change.apply(doc)
    data = dump_toml(doc).encode("utf-8")
    if corruption is not None:
        data = corruption.apply(data)
    ok = False
    try:
        check_rejected(sandbox, data, [] if corruption else [c.field for c in changes])
        ok = True
    finally:
        tally("bad specs", ok)


def check_rejected(sandbox: Path, data: bytes, fields: list[str]) -> None:
    case = Path(tempfile.mkdtemp(dir=sandbox / "project"))
    (case / "data.txt").write_text("input\n")
    (case / "main.py").write_text("print('hi')\n")
    (case / "job.toml").write_bytes(data)
    home, runs = sandbox / "home", sandbox / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(composer.run.Run, "execute", refuse_to_run)
        result = CliRunner().invoke(
            composer.cli.app, ["up", str(case / "job.toml")],
            env={"COMPOSER_HOME": str(home), "COMPOSER_RUNS_REPO": str(runs)},
        )
    output = result.output
    shown = f"spec:\n{data.decode('utf-8', 'replace')[:2000]}\noutput:\n{output}"
    assert result.exit_code == 2, f"exit {result.exit_code} ({result.exception!r})\n{shown}"
    assert "Traceback" not in output, shown
    assert FIELD_LINE.search(output) or any(f"  {m}" in output for m in FILE_LEVEL), shown
    for field in fields:
        pattern = rf"^\s+{re.escape(field)}(?=[.\[:])"
        assert re.search(pattern, output, re.M), f"no problem reported at {field}\n{shown}"
    assert not home.exists(), f"a composer home was created\n{shown}"
    assert not runs.exists(), f"a runs repository was created\n{shown}"
    shutil.rmtree(case)


def test_every_example_was_counted(tally: Tally) -> None:
    ok, total = tally.checks.get("bad specs", (0, 0))
    if total == 0:
        pytest.skip("the malformed-spec test did not run")
    assert total >= EXAMPLES, f"only {total} malformed specs were tried"
    assert ok == total
