"""composer show's text: labels apart from their values, stages in pipeline order."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from composer.errors import UsageError
from composer.records.view import STAGE_ORDER, format_show, ordered_stages, readme_path

RUN = "20260101-000000-abcdef"


def shown(files: list[str] | None = None, **result: object) -> dict:
    return {"run_id": RUN, "tag": f"run/{RUN}", "commit": "a" * 40,
            "files": files if files is not None else ["README.md", "result.json"],
            "result": result}


def test_every_label_is_apart_from_its_value() -> None:
    text = format_show(shown(job="j", status="succeeded", exit_code=0, duration_s=4.119,
                             started_at="2026-01-01T00:00:00+00:00", nodes=2,
                             error="x" * 10, teardown={"status": "destroyed"},
                             stages={"run": 1, "render": 0.5}),
                       readme="/r/README.md")
    head, files = text.split("\nfiles\n")
    labels = {}
    for line in head.splitlines():
        match = re.fullmatch(r"([a-z_]+)( {2,})(\S.*)", line)
        assert match, f"label and value run together: {line!r}"
        labels[match[1]] = (len(match[1]) + len(match[2]), match[3])
    assert len({column for column, _ in labels.values()}) == 1, "one column of values"
    assert labels["exit_code"][1] == "0" and labels["duration_s"][1] == "4.119"
    assert labels["started_at"][1].startswith("2026-") and labels["readme"][1] == "/r/README.md"
    assert labels["stages"][1] == "render 0.50s, run 1.00s"
    assert files.splitlines() == ["  README.md", "  result.json"]


def test_stages_are_in_pipeline_order_unknown_ones_last() -> None:
    stages = {name: 1.0 for name in reversed(STAGE_ORDER)} | {"zz": 1.0, "aa": 2.0}
    assert [n for n, _ in ordered_stages(stages)] == [*STAGE_ORDER, "aa", "zz"]


def test_control_characters_in_a_record_are_shown_escaped() -> None:
    text = format_show(shown(files=["a\x1b[2Jb"], job="x\ny"))
    assert "\x1b" not in text and "job  x\\ny" in text and "a\\x1b[2Jb" in text


def test_readme_path(tmp_path: Path) -> None:
    data = shown()
    assert readme_path(tmp_path, data) is None, "committed, but not in the work tree"
    with pytest.raises(UsageError, match="not in the runs repository's work tree") as raised:
        readme_path(tmp_path, data, required=True)
    assert f"git -C {tmp_path} show run/{RUN}:{RUN}/README.md" in (raised.value.hint or "")
    (tmp_path / RUN).mkdir()
    (tmp_path / RUN / "README.md").write_text("# x\n")
    assert readme_path(tmp_path, data, required=True) == tmp_path / RUN / "README.md"
    old = shown(files=["result.json"])
    assert readme_path(tmp_path, old) is None
    with pytest.raises(UsageError, match="has no README.md"):
        readme_path(tmp_path, old, required=True)


def test_a_failed_recovered_and_priced_run_says_so() -> None:
    text = format_show(shown(
        status="failed", exit_code=3, composer_exit_code=1, failed_node="node-1",
        attempts=[{"outcome": "node-lost"}, {"outcome": "failed"}], lost_nodes=["node-1"],
        cost={"estimate": 2.5, "spend": 0.75, "currency": "USD"}))
    lines = dict(line.split(None, 1) for line in text.splitlines()
                 if line and not line.startswith(" ") and " " in line)
    assert lines["composer_exit_code"] == "1" and lines["failed_node"] == "node-1"
    assert lines["attempts"] == "2 (node-lost, failed); lost node-1"
    assert lines["cost"] == "0.75 USD (spent)"
