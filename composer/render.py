"""Spec + module pins -> a Terraform root module on disk.

The tree is a pure function of its inputs: templates give the structure, the
spec's values go into ``terraform.tfvars.json`` (sorted keys), the modules are
vendored under ``modules/`` with ``modules.json`` naming their versions and
hashes. Rendering the same spec twice gives byte-identical trees. Values that
change per run (run id, addresses, keys) are not part of the tree; they live in
the run's own var file.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from composer.errors import UsageError
from composer.hashing import is_executable, tree_files, tree_sha256
from composer.jsonfile import dump_json
from composer.modules import EXCLUDED, ModulePin, module_path
from composer.paths import templates_dir
from composer.spec import Spec
from composer.targets import get_target


@dataclass(frozen=True)
class Infra:
    """A rendered root module."""

    path: Path
    sha256: str


def spec_tfvars(spec: Spec) -> dict[str, Any]:
    """Every target's spec values, then the target's own (``Target.tfvars``)."""
    common = {
        "job_name": spec.job.name,
        "nodes": spec.cluster.nodes,
        "slots_per_node": spec.cluster.slots_per_node,
        "gpus_per_node": spec.cluster.gpus_per_node,
    }
    return {**common, **get_target(spec.cluster.target).tfvars(spec)}


def _module_key(name: str) -> str:
    """A vendored module's name in the root module: ``cluster`` for ``<target>-cluster``."""
    return "cluster" if name.endswith("-cluster") else name.replace("-", "_")


def _environment(target: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir() / target),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def _write(path: Path, text: str, executable: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.chmod(path, 0o755 if executable else 0o644)


def _vendor(pin: ModulePin, dest: Path) -> None:
    source = module_path(pin.name)
    for file in tree_files(source, exclude=EXCLUDED):
        target = dest / file.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
        os.chmod(target, 0o755 if is_executable(file) else 0o644)


def check_out_dir(out_dir: Path) -> None:
    """Refuse (exit 2, naming the path) anything but a new or empty directory."""
    hint = "render into a new or empty directory"
    if out_dir.is_dir():
        if any(out_dir.iterdir()):
            raise UsageError(f"{out_dir} is not empty", hint=hint)
        return
    if out_dir.exists() or out_dir.is_symlink():
        raise UsageError(f"{out_dir} exists and is not a directory", hint=hint)
    parent = out_dir.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{parent} is not a directory, so {out_dir} cannot be made",
                         hint=hint)
    try:
        out_dir.mkdir(parents=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out_dir}: {exc.strerror}", hint=hint) from exc


def render(spec: Spec, pins: tuple[ModulePin, ...], out_dir: Path) -> Infra:
    """Write the root module for ``spec`` into ``out_dir`` (empty or absent)."""
    check_out_dir(out_dir)
    env = _environment(spec.cluster.target)
    context = {
        "job_name": spec.job.name,
        "modules": [{"name": p.name, "key": _module_key(p.name)} for p in pins],
        "backend": spec.state.backend if spec.state.remote else None,
    }
    for name in sorted(env.list_templates(extensions=["j2"])):
        _write(out_dir / name.removesuffix(".j2"), env.get_template(name).render(context))
    _write(out_dir / "terraform.tfvars.json", dump_json(spec_tfvars(spec)))
    _write(out_dir / "modules.json", dump_json({p.name: p.to_dict() for p in pins}))
    for pin in pins:
        _vendor(pin, out_dir / "modules" / pin.name)
    return Infra(out_dir, tree_sha256(out_dir))
