"""The GCP examples: they validate and render offline, with no Google Cloud project or
credentials, and carry copies of the local examples' files (a job ships only what lies in
its own directory) that stay equal to their originals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import composer.cli
from composer.targets.gcp.spec import PROJECT_ENV

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GCP_EXAMPLES = ("gcp-mpi", "gcp-train-gpu")


@pytest.fixture(autouse=True)
def no_cloud_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The examples name their project; nothing of this machine's setup may count."""
    for name in (PROJECT_ENV, "GOOGLE_APPLICATION_CREDENTIALS", "COMPOSER_GCE_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(("copy", "original"), [
    ("gcp-mpi/hello.py", "hello-mpi/hello.py"),
    ("gcp-train-gpu/train.py", "train-container/train.py"),
    ("gcp-train-gpu/data/train.csv", "train-container/data/train.csv"),
])
def test_gcp_example_files_equal_their_originals(copy: str, original: str) -> None:
    assert (EXAMPLES / copy).read_bytes() == (EXAMPLES / original).read_bytes()


@pytest.mark.parametrize("name", GCP_EXAMPLES)
def test_gcp_example_validates(name: str) -> None:
    result = CliRunner().invoke(
        composer.cli.app, ["validate", str(EXAMPLES / name / "job.toml"), "--json"])
    assert result.exit_code == 0, result.output
    spec = json.loads(result.stdout)["spec"]
    assert spec["cluster"]["target"] == "gcp"
    gcp = spec["gcp"]
    assert gcp["project"] == "my-project" and gcp["region"] == "us-central1"
    assert gcp["ssh_cidrs"] == ["203.0.113.7/32"]
    assert gcp["placement"] == "compact"  # two nodes


def test_gpu_example_uses_gpus_that_come_with_the_machine_type() -> None:
    result = CliRunner().invoke(
        composer.cli.app, ["validate", str(EXAMPLES / "gcp-train-gpu" / "job.toml"), "--json"])
    assert result.exit_code == 0, result.output
    spec = json.loads(result.stdout)["spec"]
    assert spec["cluster"]["gpus_per_node"] == 1
    assert spec["gcp"]["accelerator"] is None
    assert all(t.startswith("g2-") for t in spec["gcp"]["machine_types"])
    assert spec["gcp"]["provisioning"] == "spot"
    assert spec["container"]["gpus"] is True


@pytest.mark.parametrize("name", GCP_EXAMPLES)
def test_gcp_example_renders(name: str, tmp_path: Path) -> None:
    out = tmp_path / "tf"
    result = CliRunner().invoke(
        composer.cli.app, ["render", str(EXAMPLES / name / "job.toml"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    tfvars = json.loads((out / "terraform.tfvars.json").read_text(encoding="utf-8"))
    assert tfvars["job_name"] == name
    assert tfvars["project"] == "my-project" and tfvars["region"] == "us-central1"
    assert tfvars["ssh_cidrs"] == ["203.0.113.7/32"]
    assert (out / "main.tf").is_file()


def test_validate_json_errors_carry_the_hint(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    text = (EXAMPLES / "gcp-mpi" / "job.toml").read_text(encoding="utf-8")
    job.write_text(text.replace('project = "my-project"\n', ""), encoding="utf-8")
    result = CliRunner().invoke(composer.cli.app, ["validate", str(job), "--json"])
    assert result.exit_code == 2, result.output
    said = json.loads(result.stdout)
    assert said["valid"] is False and "hint" in said
    assert any(p["path"] == "gcp.project" for p in said["problems"])


@pytest.mark.parametrize(("args", "hint"), [
    (["--project", "p"], "add --target gcp"),
    (["--region", "us-east-1"], "add --target aws"),
])
def test_gc_flags_of_one_target_name_that_target(args: list[str], hint: str) -> None:
    result = CliRunner().invoke(composer.cli.app, ["gc", *args, "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["hint"].startswith(hint)
