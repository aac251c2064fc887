"""Environment provenance without processes: the probe's pieces, records, pins, comparison."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest

from composer import containers, envprobe
from composer.diff import environment_section, format_diff
from composer.environment import (
    ENV_FILE,
    Change,
    Environment,
    EnvironmentRecord,
    compare,
    drift_changes,
    image_argv,
    load,
    parse,
    workload_env,
)
from composer.reproduce import Drift, DriftError, env_drifts
from composer.spec import parse_spec


def env(packages: dict[str, str], executable: str = "/venv/bin/python",
        **extra: dict) -> Environment:
    return Environment({"executable": executable, "version": "3.11.7",
                        "implementation": "CPython"}, dict(packages), **extra)


def nodes(*envs: Environment) -> EnvironmentRecord:
    return EnvironmentRecord("nodes", {f"node-{i}": e for i, e in enumerate(envs)})


def test_names_are_normalized_as_pep_503() -> None:
    assert envprobe.normalize("Foo_Bar.baz") == "foo-bar-baz"
    assert envprobe.normalize("typing_extensions") == "typing-extensions"


def test_packages_come_from_importlib_metadata() -> None:
    found = envprobe.packages()
    assert found["pytest"] == metadata.version("pytest")
    assert list(found) == sorted(found)


def test_packages_read_as_the_email_parser_reads_them() -> None:
    """The quick header read gives every installed distribution's name and version just
    as ``dist.metadata`` (the email parser) does."""
    slow: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            slow.setdefault(envprobe.normalize(name), dist.version)
    assert len(slow) > 20 and envprobe.packages() == dict(sorted(slow.items()))


ODD_METADATA = [
    "Metadata-Version: 2.1\nName: Foo_Bar\nVersion: 1.0+local\n\nName: not-this\n",
    "Metadata-Version: 2.1\nName: foo\n\nVersion: 9\n",  # a description's line
    "Summary: a\n  folded: Name: no\nName:  spaced \nVersion: 2\n",
    "Summary: x\x0cName: evil\nName: real\nVersion: 1\n",
    "Name: a\u2028Version: 9\n",
    "Name : spaced\nVersion: 1\n",
    "Name: foo\n\tcontinued\nVersion: 3\n",
    "Name: crlf\r\nVersion: 4\r\n",
    "Name:\nVersion: 5\n",
    "Version: 6\n",
]


@pytest.mark.parametrize("text", ODD_METADATA)
def test_name_and_version_are_what_the_email_parser_reads(tmp_path: Path, text: str) -> None:
    info = tmp_path / "x-1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(text, encoding="utf-8", newline="")
    dist = metadata.PathDistribution(info)
    want = (dist.metadata["Name"] if dist.metadata else None, dist.version)
    assert envprobe.name_version(dist) == want


def test_an_egg_is_read_from_its_pkg_info(tmp_path: Path) -> None:
    info = tmp_path / "egg.egg-info"
    info.mkdir()
    (info / "PKG-INFO").write_text("Name: egg\nVersion: 0.1\n")
    assert envprobe.name_version(metadata.PathDistribution(info)) == ("egg", "0.1")
    assert envprobe.name_version(metadata.PathDistribution(tmp_path / "none")) == (None, None)


def test_numerics_variables_by_name_and_prefix() -> None:
    environ = {"OMP_NUM_THREADS": "4", "MKL_CBWR": "AVX2", "OPENBLAS_CORETYPE": "Haswell",
               "PYTHONHASHSEED": "0", "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "HOME": "/root",
               "NVIDIA_TF32_OVERRIDE": "0", "TF_DETERMINISTIC_OPS": "1", "SECRET": "x",
               "NCCL_SOCKET_IFNAME": "eth0"}
    assert set(envprobe.numerics_env(environ)) == {
        "OMP_NUM_THREADS", "MKL_CBWR", "OPENBLAS_CORETYPE", "PYTHONHASHSEED",
        "CUBLAS_WORKSPACE_CONFIG", "NVIDIA_TF32_OVERRIDE", "TF_DETERMINISTIC_OPS"}


def test_cuda_and_nccl_version_codes() -> None:
    assert envprobe._cuda_text(12040) == "12.4" and envprobe._cuda_text(11080) == "11.8"
    assert envprobe._cuda_text(None) is None
    assert envprobe._nccl_text(22105) == "2.21.5" and envprobe._nccl_text(2708) == "2.7.8"
    assert envprobe._nccl_text(0) is None


def test_missing_libraries_report_nothing() -> None:
    assert envprobe._c_version(("libcomposer-no-such.so.1",), "cuDriverGetVersion") is None
    assert envprobe.frameworks({}) == {}


@pytest.mark.parametrize(("text", "name", "version"), [
    ("Open MPI v5.0.3, package: Open MPI x Distribution, ident: 5.0.3, repo rev: v5.0.3\x00",
     "Open MPI", "5.0.3"),
    ("mpirun (Open MPI) 4.1.6\n\nReport bugs to https://www.open-mpi.org/community/help/",
     "Open MPI", "4.1.6"),
    ("MPICH Version:\t4.1.2\nMPICH Release date:\tWed Jun  7 15:22:45 CDT 2023", "MPICH", "4.1.2"),
    ("Intel(R) MPI Library 2021.10 for Linux* OS", "Intel MPI", "2021.10"),
])
def test_mpi_library_lines(text: str, name: str, version: str) -> None:
    found = envprobe._mpi_of(text)
    assert found is not None
    assert (found["implementation"], found["version"]) == (name, version)
    assert "\x00" not in found["library"]


def test_identical_nodes_share_one_entry_and_one_pin() -> None:
    one = env({"numpy": "1.26.4", "tinypkg": "1.0"})
    record = nodes(one, env({"numpy": "1.26.4", "tinypkg": "1.0"}))
    data = record.to_dict()
    assert data["uniform"] is True and "differences" not in data
    assert list(data["environments"]) == [one.key]
    assert data["nodes"] == {"node-0": one.key, "node-1": one.key}
    assert record.lock_pin() == {"source": "nodes", "packages_sha256": one.packages_sha256}
    assert record.warnings() == []
    assert EnvironmentRecord.from_dict(json.loads(json.dumps(data))) == record


def test_package_hash_is_of_the_sorted_set() -> None:
    a = env({"b": "2", "a": "1"})
    b = env({"a": "1", "b": "2"}, executable="/elsewhere/python")
    assert a.packages_sha256 == b.packages_sha256 and a.key != b.key
    assert env({"a": "1", "b": "3"}).packages_sha256 != a.packages_sha256


def test_nodes_that_differ_are_flagged() -> None:
    record = nodes(env({"numpy": "1.26.4"}), env({"numpy": "2.0.0"}), env({"numpy": "1.26.4"}))
    data = record.to_dict()
    assert data["uniform"] is False and len(data["environments"]) == 2
    assert data["differences"] == ["package numpy: 1.26.4 -> 2.0.0 [node-1]"]
    pin = record.lock_pin()
    assert pin["packages_sha256"] is None
    assert pin["nodes"]["node-0"] == pin["nodes"]["node-2"] != pin["nodes"]["node-1"]
    warning = "\n".join(record.warnings())
    assert "differ (node-0, node-2; node-1)" in warning and "package numpy" in warning


def test_compare_names_packages_added_removed_changed() -> None:
    old = nodes(env({"numpy": "1.26.4", "gone": "1.0"}), env({"numpy": "1.26.4", "gone": "1.0"}))
    new = nodes(env({"numpy": "2.0.0", "new-pkg": "0.1"}, env={"OMP_NUM_THREADS": "2"}),
                env({"numpy": "2.0.0", "new-pkg": "0.1", "gone": "1.0"}))
    changes = {c.field: c for c in compare(old, new)}
    assert set(changes) == {"packages.numpy", "packages.new-pkg", "packages.gone",
                            "env.OMP_NUM_THREADS"}
    assert changes["packages.numpy"] == Change("packages.numpy", "1.26.4", "2.0.0")
    assert changes["packages.gone"] == Change("packages.gone", "1.0", None, ("node-0",))
    assert changes["packages.new-pkg"].describe() == "package new-pkg: added (0.1)"
    assert changes["packages.gone"].describe() == "package gone: removed (was 1.0) [node-0]"
    assert changes["env.OMP_NUM_THREADS"].describe() == \
        "env.OMP_NUM_THREADS: (none) -> 2 [node-0]"


def test_drift_leaves_out_where_the_interpreter_lives() -> None:
    old = nodes(env({"a": "1"}, executable="/one/bin/python"))
    new = nodes(env({"a": "1"}, executable="/two/bin/python"))
    assert [c.field for c in compare(old, new)] == ["python.executable"]
    assert drift_changes(old, new) == []
    (drift,) = env_drifts(old, nodes(env({}, executable="/one/bin/python")))
    assert (drift.kind, drift.name, drift.old, drift.new) == ("environment", "packages.a",
                                                              "1", None)
    message = DriftError("r1", [drift]).message
    assert "drift in environment" in message and "packages.a: 1 -> -" in message


def test_nodes_only_one_side_has_are_not_an_environment_change() -> None:
    same = env({"a": "1"})
    assert compare(nodes(same, same), nodes(same, same, same, same)) == []


def test_probe_output_is_parsed_or_explained() -> None:
    text = "motd line\n" + json.dumps({"python": {"version": "3.12.1"}, "packages": {"a": "1"},
                                       "libraries": {}, "mpi": None, "env": {}}) + "\n"
    assert parse(text).packages == {"a": "1"}
    silent = parse("Segmentation fault\n")
    assert silent.error == "the probe printed no result: Segmentation fault"
    failed = parse('  File "<string>", line 10\nSyntaxError: invalid syntax\n'
                   '{"error": "the probe failed"}\n')
    assert failed.error is not None and failed.error.startswith("the probe failed: ")
    assert "SyntaxError" in failed.error and failed.packages == {}


def test_an_environment_that_could_not_be_asked_is_recorded_not_fatal() -> None:
    ok = env({"numpy": "1.26.4"})
    missing = Environment({}, {}, error="neither python nor python3 is on the PATH")
    record = nodes(ok, missing)
    assert record.to_dict()["environments"][missing.key]["error"] == missing.error
    assert EnvironmentRecord.from_dict(record.to_dict()) == record
    assert record.warnings()[0] == \
        f"the environment could not be asked on node-1: {missing.error}"
    # compared as one change, not every package removed
    assert compare(nodes(ok, ok), record) == [
        Change("error", None, missing.error, ("node-1",)),
        Change("python.version", "3.11.7", None, ("node-1",))]


def test_workload_env_is_session_env_then_run_env(tmp_path: Path) -> None:
    text = ('[job]\nname = "e"\n[cluster]\ntarget = "local"\nnodes = 1\n[run]\n'
            'command = ["python"]\nenv = { PATH = "/v/bin:/bin", OMP_NUM_THREADS = "1" }\n')
    spec = parse_spec(text, tmp_path / "job.toml")
    assert workload_env({"PATH": "/usr/bin", "SHLVL": "1"}, spec) == {
        "PATH": "/v/bin:/bin", "SHLVL": "1", "OMP_NUM_THREADS": "1"}


def test_image_probe_runs_as_the_workload_starts() -> None:
    options = containers.RuntimeOptions("runc", (("nofile", 1024, 1024),))
    argv = image_argv("podman", "img@sha256:1", ["OMP_NUM_THREADS"], options)
    assert argv[:7] == ["podman", "run", "--rm", "--network", "host", "--runtime", "runc"]
    assert "--ulimit" in argv and argv[argv.index("-e"):][:2] == ["-e", "OMP_NUM_THREADS"]
    assert argv[argv.index("img@sha256:1") + 1:][:2] == ["/bin/sh", "-c"]
    assert not any("COMPOSER_WORK_DIR" in word for word in argv)
    assert image_argv("apptainer", "/x.sif", [], options)[:3] == ["apptainer", "exec", "/x.sif"]


def write_record(root: Path, record: EnvironmentRecord | None) -> Path:
    root.mkdir(parents=True)
    if record is not None:
        (root / ENV_FILE).write_text(json.dumps(record.to_dict()))
    return root


def test_diff_section(tmp_path: Path) -> None:
    a = write_record(tmp_path / "a", nodes(env({"numpy": "1.26.4"}), env({"numpy": "1.26.4"})))
    b = write_record(tmp_path / "b", nodes(env({"numpy": "2.0.0"}), env({"numpy": "2.0.0"})))
    old = write_record(tmp_path / "old", None)
    assert load(old) is None and load(a) is not None
    section = environment_section(a, b)
    assert not section["same"] and section["changes"] == [
        {"field": "packages.numpy", "old": "1.26.4", "new": "2.0.0", "nodes": []}]
    assert environment_section(a, a)["same"] and environment_section(old, old)["same"]
    text = format_diff({"a": "ra", "b": "rb", "sections": [section, environment_section(old, a)]})
    assert "== environment ==\npackage numpy: 1.26.4 -> 2.0.0\n" in text
    assert "environment.json: not recorded in a" in text


def test_names_and_versions_from_a_node_are_escaped_for_the_terminal() -> None:
    evil = "evil\x1b]0;PWNED\x07\x1b[2J"
    old = nodes(env({evil: "1.0\x1b[31mRED"}))
    new = nodes(env({evil: "2.0\x1b]52;c;ZWNobyBwd25lZA==\x07"}))
    [change] = compare(old, new)
    shown = change.describe()
    assert "\x1b" not in shown and "\x07" not in shown
    assert "\\x1b" in shown  # escaped, still readable
    drift = env_drifts(old, new)[0].describe()
    assert "\x1b" not in drift and "\x07" not in drift



def test_composer_diff_escapes_package_names(tmp_path: Path) -> None:
    evil = "evil\x1b]0;PWNED\x07"
    a = write_record(tmp_path / "a", nodes(env({evil: "1.0"})))
    b = write_record(tmp_path / "b", nodes(env({evil: "2.0\x1b[31m"})))
    text = format_diff({"a": "ra", "b": "rb", "sections": [environment_section(a, b)]})
    assert "package evil\\x1b]0;PWNED\\x07: 1.0 -> 2.0\\x1b[31m" in text
    assert "\x1b" not in text and "\x07" not in text


def test_hidden_and_line_breaking_characters_are_escaped_too() -> None:
    said = Drift("environment", "packages.a\u202eb", "1\u200b", "2\x85x",
                 "line one\x85still one\u2028same").describe()
    assert said.count("\n") == 1, said  # the drift line, then its one detail line
    for hidden in ("\u202e", "\u200b", "\x85", "\u2028"):
        assert hidden not in said
    assert "\\u202e" in said and "\\x85" in said
