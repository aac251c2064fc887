"""A JSON file nested past the parser's depth is "not JSON" to the record's README, the
site and diff, never a traceback that loses the page or the command."""

from __future__ import annotations

from pathlib import Path

from composer import diff
from composer.jsonfile import read_object
from composer.records import readme
from composer.site import view

DEEP = '{"k":' * 5000 + "1" + "}" * 5000


def test_deep_json_is_not_json_everywhere_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "outputs" / "metrics.json"
    path.parent.mkdir()
    path.write_text(DEEP)
    assert diff._read_json(path) is None
    assert read_object(path) is None
    assert readme._metrics_file(path.parent, "metrics.json") == "not JSON"
    metrics, problems = view._metrics(tmp_path, '[reproduce]\nmetrics = ["metrics.json"]\n')
    assert metrics == () and problems == ("metrics.json: not JSON",)
