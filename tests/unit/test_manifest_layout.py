"""Where a record keeps composer's manifest: ``manifest.json`` at its root; records made
before keep ``outputs/manifest.json``, and both are read."""

from __future__ import annotations

import json
from pathlib import Path

from composer.diff import results_section
from composer.record import load_manifest


def entry(path: str, sha: str) -> dict[str, object]:
    return {"path": path, "node": "node-0", "size": 1, "sha256": sha, "committed": True}


def write(root: Path, files: dict[str, object]) -> Path:
    for name, value in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value))
    return root


def test_a_workloads_own_manifest_is_compared_as_an_output(tmp_path: Path) -> None:
    a = write(tmp_path / "a", {
        "manifest.json": {"files": [entry("manifest.json", "aa")]},
        "outputs/manifest.json": {"epochs": 1},
    })
    b = write(tmp_path / "b", {
        "manifest.json": {"files": [entry("manifest.json", "bb")]},
        "outputs/manifest.json": {"epochs": 2},
    })
    assert load_manifest(a)["files"][0]["sha256"] == "aa"
    section = results_section(a, b)
    assert [f["path"] for f in section["files"]] == ["manifest.json"]
    assert [(m["file"], m["key"]) for m in section["metrics"]] == [("manifest.json", "epochs")]


def test_records_of_the_old_layout_are_still_read(tmp_path: Path) -> None:
    a = write(tmp_path / "a", {"outputs/manifest.json": {"files": [entry("m.json", "aa")]},
                               "outputs/m.json": {"loss": 1}})
    b = write(tmp_path / "b", {"outputs/manifest.json": {"files": [entry("m.json", "bb")]},
                               "outputs/m.json": {"loss": 2}})
    assert load_manifest(a)["files"][0]["sha256"] == "aa"
    section = results_section(a, b)
    assert [f["path"] for f in section["files"]] == ["m.json"]
    assert [m["file"] for m in section["metrics"]] == ["m.json"]


def test_no_manifest_reads_as_empty(tmp_path: Path) -> None:
    assert load_manifest(tmp_path) == {"schema_version": 1, "files": []}
