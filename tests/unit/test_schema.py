"""The spec's JSON Schema and docs/spec.md's field tables: both made from the field
descriptions, both committed and kept current, and the schema agrees with the checker."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

import composer.cli
from composer.spec import SCHEMA, target_sections
from composer.spec import docs as spec_docs
from composer.spec.schema import json_schema, schema_text

ROOT = Path(__file__).resolve().parents[2]
JOBS = sorted([*ROOT.glob("examples/*/job.toml"), *ROOT.glob("tests/golden/*/job.toml")])
AWS_DOC: dict[str, Any] = {
    "job": {"name": "aws-demo"},
    "cluster": {"target": "aws", "nodes": 4, "gpus_per_node": 4},
    "run": {"launcher": "mpi", "command": ["python", "train.py"]},
    "aws": {
        "region": "us-east-1",
        "zones": ["us-east-1a", "us-east-1-bos-1a"],
        "instance_types": ["g5.12xlarge", "g6.12xlarge"],
        "image": "ami-0123456789abcdef0",
        "market": "spot",
        "max_spot_price": "6.5",
        "efa": False,
        "root_volume_gb": 200,
        "subnet_id": "subnet-0123abcd",
        "ssh_cidrs": ["203.0.113.7/32", "2001:db8::/32"],
        "tags": {"team": "ml"},
    },
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def errors(validator: jsonschema.Draft7Validator, doc: dict[str, Any]) -> list[str]:
    return [e.message for e in validator.iter_errors(doc)]


def test_committed_schema_is_current() -> None:
    committed = (ROOT / "composer.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), "composer.schema.json is out of date: run make docs"


def test_schema_command_prints_it() -> None:
    result = CliRunner().invoke(composer.cli.app, ["schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == json_schema()


def test_docs_tables_are_current() -> None:
    text = spec_docs.DOC.read_text(encoding="utf-8")
    assert spec_docs.rewrite(text) == text, "docs/spec.md is out of date: run make docs"
    assert spec_docs.main(["--check"]) == 0


def test_every_table_has_its_block_in_the_docs() -> None:
    text = spec_docs.DOC.read_text(encoding="utf-8")
    for name in spec_docs.tables():
        assert f"<!-- fields: {name} -->" in text, name


def test_docs_rewrite_replaces_only_the_tables() -> None:
    text = "intro\n<!-- fields: code -->\n| stale |\n<!-- /fields -->\nprose\n"
    new = spec_docs.rewrite(text)
    assert new.startswith("intro\n<!-- fields: code -->\n| key | type | default |")
    assert "| `path` | string | `\".\"` |" in new
    assert new.endswith("<!-- /fields -->\nprose\n")


def test_schema_and_checker_know_the_same_keys() -> None:
    properties = json_schema()["properties"]
    sections = {**SCHEMA, **target_sections()}
    assert list(properties) == list(sections)
    for name, section in sections.items():
        if not section.open:
            assert list(properties[name]["properties"]) == list(section.keys), name


@pytest.mark.parametrize("path", JOBS, ids=lambda p: str(p.relative_to(ROOT)))
def test_schema_accepts_our_job_files(validator: jsonschema.Draft7Validator, path: Path) -> None:
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    assert errors(validator, doc) == []


def test_there_are_job_files_to_check() -> None:
    assert len(JOBS) >= 6


def test_schema_accepts_an_aws_spec(validator: jsonschema.Draft7Validator) -> None:
    assert errors(validator, AWS_DOC) == []
    ssm = copy.deepcopy(AWS_DOC)
    ssm["aws"]["image"] = ("ssm:/aws/service/canonical/ubuntu/server/24.04/stable/current/"
                           "amd64/hvm/ebs-gp3/ami-id")
    ssm["aws"]["max_spot_price"] = 1.25
    assert errors(validator, ssm) == []


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("job", "nmae", "x"),  # unknown key
        ("cluster", "nodes", "four"),  # wrong type
        ("cluster", "nodes", True),
        ("cluster", "target", "mars"),
        ("cluster", "target", "gcp"),  # without its [gcp] section
        ("cluster", "nodes", 257),  # local allows 256
        ("run", "launcher", "pbs"),
        ("run", "env", {"SEED": 0}),
        ("run", "env", {"COMPOSER_X": "1"}),
        ("run", "command", []),
        ("outputs", "max_file_size", "12XB"),
        ("outputs", "paths", ["/abs/*"]),
        ("limits", "max_duration", "forever"),
        ("limits", "max_duration", 0),
        ("reproduce", "tolerance", {"loss": {"max": 1}}),
        ("container", "mounts", ["relative:/x"]),
    ],
)
def test_schema_rejects_bad_values(
    validator: jsonschema.Draft7Validator, section: str, key: str, value: Any
) -> None:
    doc = tomllib.loads((ROOT / "examples/hello-mpi/job.toml").read_text(encoding="utf-8"))
    doc.setdefault(section, {})[key] = value
    assert errors(validator, doc), (section, key, value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("region", "US East"),
        ("zones", ["us-east-1"]),
        ("instance_types", []),
        ("instance_types", ["g5"]),
        ("instance_types", ["g5.xlarge", "g5.xlarge"]),
        ("image", "ubuntu-24.04"),
        ("image", "ami-123"),
        ("market", "reserved"),
        ("placement", "spread"),
        ("efa", "yes"),
        ("root_volume_gb", 4),
        ("subnet_id", "subnet-xyz"),
        ("ssh_cidrs", []),
        ("ssh_cidrs", ["anyone"]),
        ("tags", {"aws:owner": "me"}),
        ("tags", {"Composer:run-id": "x"}),
        ("tags", {"n": 5}),
        ("instance_type", ["g5.xlarge"]),
    ],
)
def test_schema_rejects_bad_aws_values(
    validator: jsonschema.Draft7Validator, key: str, value: Any
) -> None:
    doc = copy.deepcopy(AWS_DOC)
    doc["aws"][key] = value
    assert errors(validator, doc), (key, value)


def test_schema_ties_sections_to_targets(validator: jsonschema.Draft7Validator) -> None:
    no_section = copy.deepcopy(AWS_DOC)
    del no_section["aws"]
    assert errors(validator, no_section)
    other_target = copy.deepcopy(AWS_DOC)
    other_target["cluster"]["target"] = "local"
    assert errors(validator, other_target)
    too_many = copy.deepcopy(AWS_DOC)
    too_many["cluster"]["nodes"] = 1001
    assert errors(validator, too_many)
    too_many["cluster"]["nodes"] = 1000
    assert errors(validator, too_many) == []
    on_demand = copy.deepcopy(AWS_DOC)
    on_demand["aws"]["market"] = "on-demand"
    assert errors(validator, on_demand)
    for missing in ("region", "instance_types", "image", "ssh_cidrs"):
        doc = copy.deepcopy(AWS_DOC)
        del doc["aws"][missing]
        assert errors(validator, doc), missing
