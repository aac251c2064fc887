"""A collect that fails midway leaves a record with nothing unhashed in it: what was
read is dropped and the record's own manifest is written, so a ``manifest.json`` the
workload wrote among its outputs is never read as the record's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from composer import collect as collect_mod
from composer.records import manifest as manifests
from composer.spec import OutputsSpec


def test_a_collect_that_fails_leaves_no_unhashed_output(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    staged = tmp_path / "record"
    fake = {"schema_version": 1, "files": [{"path": "model.npz", "size": 1,
                                             "sha256": "0" * 64, "committed": True}]}

    def half_then_fail(sessions: Any, patterns: Any, dest: Path, *args: Any,
                       **kwargs: Any) -> Any:
        dest.mkdir(parents=True)
        (dest / "manifest.json").write_text(json.dumps(fake))  # the workload's own
        (dest / "weights.bin").write_bytes(b"w")
        raise OSError("the node went away")

    monkeypatch.setattr(collect_mod, "collect", half_then_fail)
    with pytest.raises(OSError, match="went away"):
        collect_mod.collect_outputs([], OutputsSpec(paths=("**",)), staged)
    assert not (staged / "outputs").exists()
    assert json.loads((staged / manifests.MANIFEST).read_text())["files"] == []
    assert not manifests.is_legacy(staged)
    assert manifests.load(staged)["files"] == []
