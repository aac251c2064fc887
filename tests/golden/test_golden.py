"""Golden renders: each case's job.toml renders to exactly the tree kept in expected/.

The vendored ``modules/`` subtree and ``modules.json`` are checked against the
module pins instead of stored bytes, so a module edit does not touch the cases.
Set ``COMPOSER_UPDATE_GOLDEN=1`` to rewrite every case's expected/ from the render.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from composer.errors import UsageError
from composer.hashing import tree_sha256
from composer.modules import module_path, pin_module, pins_for_target, target_modules
from composer.render import Infra, render
from composer.spec import Spec, load_spec
from composer.targets import get_target

GOLDEN_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = GOLDEN_DIR.parent.parent
CASES = sorted(p.parent.name for p in GOLDEN_DIR.glob("*/job.toml"))
EXAMPLES = sorted(PROJECT_ROOT.glob("examples/*/job.toml"))
UNCOMPARED = ("modules", "modules.json")
UPDATE = os.environ.get("COMPOSER_UPDATE_GOLDEN") == "1"
AWS_CASES = ("aws-cpu-1", "aws-g5-spot-4", "aws-p4d-efa-16")
GCP_CASES = ("gcp-cpu-1", "gcp-g2-spot-2", "gcp-a3-compact-8")


def _load_case(case: str) -> Spec:
    return load_spec(GOLDEN_DIR / case / "job.toml")


def _render(spec: Spec, out: Path) -> Infra:
    return render(spec, pins_for_target(spec.cluster.target), out)


def _files(root: Path, skip: tuple[str, ...] = ()) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in skip or path.is_dir():
            continue
        found[rel.as_posix()] = path
    return found


def _executable(path: Path) -> bool:
    return bool(path.stat().st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))


def _diff(expected: Path, actual: Path, rel: str) -> str:
    old = expected.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    new = actual.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    lines = difflib.unified_diff(old, new, f"expected/{rel}", f"rendered/{rel}")
    return "".join(lines)


def _tree_differences(expected: Path, actual: Path, skip: tuple[str, ...]) -> list[str]:
    want, got = _files(expected, skip), _files(actual, skip)
    problems = [f"missing from render: {rel}" for rel in sorted(want.keys() - got.keys())]
    problems += [f"not in expected/: {rel}" for rel in sorted(got.keys() - want.keys())]
    for rel in sorted(want.keys() & got.keys()):
        if want[rel].read_bytes() != got[rel].read_bytes():
            problems.append(f"{rel} differs:\n{_diff(want[rel], got[rel], rel)}")
        elif _executable(want[rel]) != _executable(got[rel]):
            problems.append(f"{rel}: executable bit differs")
    return problems


def _update_expected(rendered: Path, expected: Path) -> None:
    shutil.rmtree(expected, ignore_errors=True)
    for rel, path in _files(rendered, UNCOMPARED).items():
        target = expected / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        os.chmod(target, 0o755 if _executable(path) else 0o644)


def _check_vendored_modules(spec: Spec, out: Path) -> None:
    names = target_modules(spec.cluster.target)
    text = (out / "modules.json").read_text(encoding="utf-8")
    listed = json.loads(text)
    assert sorted(listed) == sorted(names)
    for name in names:
        pin = pin_module(name)
        version = (module_path(name) / "VERSION").read_text().strip()
        assert listed[name] == {"version": version, "sha256": pin.sha256}
        assert pin.version == version
        assert tree_sha256(out / "modules" / name) == pin.sha256
    assert text == json.dumps(listed, indent=2, sort_keys=True) + "\n"
    vendored = sorted(p.name for p in (out / "modules").iterdir())
    assert vendored == sorted(names)


def test_cases_exist() -> None:
    assert {"hello-mpi", "ssh-4-nodes", "nodes-256", *AWS_CASES, *GCP_CASES} <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_golden_render(case: str, tmp_path: Path) -> None:
    case_dir = GOLDEN_DIR / case
    spec = _load_case(case)
    out = tmp_path / "out"
    infra = _render(spec, out)
    assert infra.path == out
    _check_vendored_modules(spec, out)
    expected = case_dir / "expected"
    if UPDATE:
        _update_expected(out, expected)
    assert expected.is_dir(), f"{expected} is missing; run with COMPOSER_UPDATE_GOLDEN=1"
    problems = _tree_differences(expected, out, UNCOMPARED)
    assert not problems, (
        f"render of {case} differs from {expected} "
        "(COMPOSER_UPDATE_GOLDEN=1 rewrites it):\n" + "\n".join(problems)
    )


@pytest.mark.parametrize("case", CASES)
def test_golden_tfvars_follow_spec(case: str) -> None:
    spec = _load_case(case)
    tfvars = json.loads((GOLDEN_DIR / case / "expected" / "terraform.tfvars.json").read_text())
    assert tfvars == {
        "job_name": spec.job.name,
        "nodes": spec.cluster.nodes,
        "slots_per_node": spec.cluster.slots_per_node,
        "gpus_per_node": spec.cluster.gpus_per_node,
        **get_target(spec.cluster.target).tfvars(spec),
    }


def test_render_is_deterministic(tmp_path: Path) -> None:
    spec = load_spec(GOLDEN_DIR / "ssh-4-nodes" / "job.toml")
    first = _render(spec, tmp_path / "one")
    second = _render(spec, tmp_path / "two" / "nested")
    assert first.sha256 == second.sha256
    assert first.sha256 == tree_sha256(first.path)
    assert _tree_differences(first.path, second.path, ()) == []
    assert list(_files(first.path)) == list(_files(second.path))
    modes = {rel: stat.S_IMODE(path.stat().st_mode) for rel, path in _files(first.path).items()}
    assert modes == {
        rel: stat.S_IMODE(path.stat().st_mode) for rel, path in _files(second.path).items()
    }


def test_different_specs_render_different_hashes(tmp_path: Path) -> None:
    specs = {case: _load_case(case) for case in CASES}
    hashes = {case: _render(spec, tmp_path / case).sha256 for case, spec in specs.items()}
    assert len(set(hashes.values())) == len(specs)


def test_render_into_empty_existing_dir(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    infra = _render(load_spec(GOLDEN_DIR / "hello-mpi" / "job.toml"), out)
    assert (out / "main.tf").is_file()
    assert infra.sha256 == tree_sha256(out)


def test_render_into_non_empty_dir_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine\n")
    with pytest.raises(UsageError) as info:
        _render(load_spec(GOLDEN_DIR / "hello-mpi" / "job.toml"), out)
    assert str(out) in info.value.message
    assert info.value.hint
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "mine\n"


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("job_toml", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_every_example_renders(job_toml: Path, tmp_path: Path) -> None:
    spec = load_spec(job_toml)
    out = tmp_path / "out"
    infra = _render(spec, out)
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
        text = (out / name).read_text(encoding="utf-8")
        assert f'job "{spec.job.name}"' in text.splitlines()[0]
    tfvars = json.loads((out / "terraform.tfvars.json").read_text())
    assert tfvars["job_name"] == spec.job.name
    assert tfvars["nodes"] == spec.cluster.nodes
    _check_vendored_modules(spec, out)
    assert infra.sha256 == tree_sha256(out)
