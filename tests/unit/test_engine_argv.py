"""Terraform command lines, diagnostics and engine selection."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from composer.engine import (
    Engine,
    apply_args,
    diagnostics_of,
    init_args,
    make_engine,
    output_args,
    version_args,
)
from composer.errors import ExitCode, PreflightError, TerraformError


def test_init_args() -> None:
    assert init_args() == ["init", "-input=false", "-no-color"]


def test_apply_args() -> None:
    args = apply_args(["a.tfvars.json", "run.tfvars.json"], parallelism=17)
    assert args[0] == "apply"
    assert "-destroy" not in args
    for flag in (
        "-auto-approve",
        "-input=false",
        "-no-color",
        "-json",
        "-parallelism=17",
        "-lock-timeout=60s",
    ):
        assert args.count(flag) == 1, flag
    assert [a for a in args if a.startswith("-var-file=")] == [
        "-var-file=a.tfvars.json",
        "-var-file=run.tfvars.json",
    ]
    assert args[-2:] == ["-var-file=a.tfvars.json", "-var-file=run.tfvars.json"]
    assert all(a.startswith("-") for a in args[1:])


def test_apply_args_destroy_puts_flag_right_after_apply() -> None:
    plain = apply_args(["x.json"], parallelism=3)
    args = apply_args(["x.json"], parallelism=3, destroy=True)
    assert args[:2] == ["apply", "-destroy"]
    assert args.count("-destroy") == 1
    assert [a for a in args if a != "-destroy"] == plain


def test_apply_args_keep_var_file_order_and_allow_none() -> None:
    files = [f"f{i}.json" for i in (3, 1, 2)]
    args = apply_args(files, parallelism=1)
    assert [a.removeprefix("-var-file=") for a in args if a.startswith("-var-file=")] == files
    assert not [a for a in apply_args([], parallelism=1) if a.startswith("-var-file")]


def test_output_and_version_args() -> None:
    assert output_args() == ["output", "-json", "-no-color"]
    assert version_args() == ["version", "-json"]


def _diagnostic(severity: str, summary: str, detail: str = "", address: str = "") -> str:
    diag: dict[str, object] = {"severity": severity, "summary": summary, "detail": detail}
    if address:
        diag["address"] = address
        diag["range"] = {"filename": "main.tf", "start": {"line": 3, "column": 1, "byte": 20}}
    return json.dumps(
        {
            "@level": severity,
            "@message": f"{severity.title()}: {summary}",
            "@module": "terraform.ui",
            "@timestamp": "2024-05-01T10:00:00.000000Z",
            "diagnostic": diag,
            "type": "diagnostic",
        }
    )


def test_diagnostics_of_json_lines() -> None:
    stdout = "\n".join(
        [
            json.dumps(
                {
                    "@level": "info",
                    "@message": "Terraform 1.8.5",
                    "type": "version",
                    "terraform": "1.8.5",
                    "ui": "1.2",
                }
            ),
            json.dumps(
                {
                    "@level": "info",
                    "@message": "module.cluster.terraform_data.node[0]: Creating...",
                    "type": "apply_start",
                    "hook": {},
                }
            ),
            _diagnostic("warning", "Deprecated attribute", "use something else"),
            _diagnostic(
                "error",
                "local-exec provisioner error",
                "Error running command 'node.sh start': exit status 1. Output: sshd not found\n\n",
                "module.cluster.terraform_data.node[1]",
            ),
            "not json {",
            "{broken json",
            _diagnostic("error", "Invalid value for variable", "port must be between 1 and 65535."),
        ]
    )
    assert diagnostics_of(stdout, "ignored stderr") == [
        "Error: local-exec provisioner error (module.cluster.terraform_data.node[1])\n"
        "  Error running command 'node.sh start': exit status 1. Output: sshd not found",
        "Error: Invalid value for variable\n  port must be between 1 and 65535.",
    ]


def test_diagnostics_of_error_without_detail_or_address() -> None:
    assert diagnostics_of(_diagnostic("error", "Boom"), "") == ["Error: Boom"]


def test_diagnostics_of_falls_back_to_stderr() -> None:
    stderr = "\n\u2577\n\u2502 Error: Failed to read variables file\n\u2575\n\n"
    assert diagnostics_of("Initializing modules...\n", stderr) == [stderr.strip()]
    only_warnings = _diagnostic("warning", "Something odd")
    assert diagnostics_of(only_warnings, "Error: plain\n") == ["Error: plain"]


def test_diagnostics_of_nothing() -> None:
    assert diagnostics_of("", "") == []
    assert diagnostics_of(_diagnostic("warning", "Only a warning"), "  \n") == []


def test_make_engine_rejects_unknown_name() -> None:
    with pytest.raises(PreflightError) as info:
        make_engine("nope")
    assert "nope" in info.value.message
    assert info.value.hint is not None
    for name in ("embedded", "terraform", "tofu"):
        assert name in info.value.hint
    assert info.value.exit_code == ExitCode.INVALID_INPUT


@pytest.mark.parametrize("name", ["terraform", "tofu"])
def test_make_engine_binary_missing_from_path(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(PreflightError) as info:
        make_engine(name)
    assert f"'{name}'" in info.value.message
    assert "PATH" in info.value.message
    assert info.value.hint is not None and "embedded" in info.value.hint


def test_make_engine_binary_found_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = tmp_path / "bin" / "tofu"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", str(binary.parent))
    engine = make_engine("tofu")
    assert engine.name == "tofu"
    assert engine.prefix == [str(binary)]


def test_make_engine_embedded_runs_the_worker_module() -> None:
    engine = make_engine("embedded")
    assert engine.name == "embedded"
    assert engine.prefix == [sys.executable, "-m", "composer.tfworker"]


def test_engine_env_drops_tf_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPOSER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TF_LOG", "TRACE")
    monkeypatch.setenv("TF_VAR_port", "22")
    env = Engine("fake", ["true"], Path(sys.executable)).env()
    assert "TF_LOG" not in env and "TF_VAR_port" not in env
    assert env["TF_IN_AUTOMATION"] == "1"
    assert env["TF_INPUT"] == "0"
    assert env["CHECKPOINT_DISABLE"] == "1"
    config = Path(env["TF_CLI_CONFIG_FILE"])
    assert config == tmp_path / "home" / "terraform.rc"
    assert config.read_text() == "disable_checkpoint = true\n"


FAKE_TERRAFORM = """
import json, sys
args = sys.argv[1:]
print(json.dumps({"type": "version", "@message": "fake"}))
if args[0] == "apply":
    print(json.dumps({"type": "diagnostic", "diagnostic": {
        "severity": "error", "summary": "Bad thing", "detail": "it broke",
        "address": "terraform_data.x"}}))
    sys.exit(1)
sys.stderr.write("args=" + " ".join(args) + "\\n")
"""


@pytest.fixture
def fake_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("COMPOSER_HOME", str(tmp_path / "home"))
    return Engine("fake", [sys.executable, "-c", FAKE_TERRAFORM], Path(sys.executable))


def test_engine_run_collects_output(fake_engine: Engine, tmp_path: Path) -> None:
    result = fake_engine.run(init_args(), cwd=tmp_path)
    assert result.returncode == 0
    assert result.stderr == "args=init -input=false -no-color\n"
    assert json.loads(result.stdout) == {"type": "version", "@message": "fake"}


def test_engine_run_raises_terraform_error_with_diagnostics(
    fake_engine: Engine, tmp_path: Path
) -> None:
    with pytest.raises(TerraformError) as info:
        fake_engine.apply(tmp_path, ["a.json"], parallelism=2)
    assert info.value.command == "apply"
    assert info.value.returncode == 1
    assert info.value.diagnostics == ["Error: Bad thing (terraform_data.x)\n  it broke"]
    assert info.value.message.startswith("terraform apply failed (exit 1):\n")
    unchecked = fake_engine.run(apply_args([], 1), cwd=tmp_path, check=False)
    assert unchecked.returncode == 1
    assert unchecked.diagnostics == ("Error: Bad thing (terraform_data.x)\n  it broke",)
