"""A record's README.md: its sections, and user text that cannot break it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from composer.records import plots, readme
from composer.records.guard import FORBIDDEN_CONTENT, terminal_text
from composer.records.mdtext import code, table, word

RUN_ID = "20260101-000000-abcdef"
OLD_RUN = "20251231-000000-123456"

HOSTILE = [
    "a|b|c",
    "x`y``z",
    "`starts and ends`",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](https://evil.example/)",
    "![img](https://evil.example/x.png)",
    "https://evil.example/path",
    "www.evil.example",
    "line\nbreak | second",
    "carriage\rreturn",
    "esc\x1b[31mred",
    "**bold** _em_ ~~strike~~",
    "# heading",
    "back\\slash\\|pipe",
    "&lt;entity&gt; &amp;",
    "trailing backslash\\",
    f"key {FORBIDDEN_CONTENT.decode()} name",
]


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")


def make_record(root: Path, *, job: str = "demo", outputs: list[str] | None = None,
                metrics: dict[str, Any] | None = None, metric_names: list[str] | None = None,
                reproduction: dict[str, Any] | None = None,
                stages: dict[str, float] | None = None) -> Path:
    outputs = outputs if outputs is not None else ["node-0/metrics.json"]
    metric_names = metric_names if metric_names is not None else ["node-0/metrics.json"]
    _write(root / "job.toml",
           f"[job]\nname = {json.dumps(job)}\n\n"
           f"[reproduce]\nmetrics = {json.dumps(metric_names)}\n")
    _write(root / "result.json", {
        "run_id": RUN_ID, "job": job, "status": "failed", "stage": "run", "nodes": 2,
        "launcher": "mpi", "engine": "embedded", "exit_code": 3, "workload_exit_code": 3,
        "composer_exit_code": 1, "failed_node": "node-1", "failed_rank": 2,
        "error": "rank 2 on node-1 exited with 3",
        "stages": stages if stages is not None else {
            "run": 2.0, "apply": 1.0, "destroy": 0.5, "render": 0.1, "wait_for_ssh": 0.2,
            "custom": 9.0},
        "teardown": {"status": "destroyed"}, "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": "2026-01-01T00:00:04+00:00", "duration_s": 4.25,
        "composer_version": "0.1.0",
        **({"reproduces": OLD_RUN} if reproduction else {}),
    })
    _write(root / "facts.json", {"nodes": [
        {"rank": r, "name": f"node-{r}", "hostname": "host", "address": f"127.0.0.{r + 1}",
         "cpus": 4, "memory_kb": 8 << 20, "os": "Debian", "kernel": "Linux 6", "arch": "x86_64",
         "mpi": "Open MPI 5", "python": "Python 3.11",
         "gpus": [{"name": "H100", "driver": "550", "memory": "80 GiB"}] if r else []}
        for r in (1, 0)]})
    files = [{"path": p, "node": "node-0", "size": 10 + i, "sha256": f"{i:064x}",
              "committed": True} for i, p in enumerate(outputs)]
    files.append({"path": "node-0/big.bin", "node": "node-0", "size": 5 << 20,
                  "committed": False, "withheld": "over max_file_size (5242880 > 1 bytes)"})
    _write(root / "manifest.json", {"schema_version": 1, "files": files})
    for name, value in (metrics or {}).items():
        _write(root / "outputs" / name, value)
    if reproduction is not None:
        _write(root / "reproduction.json", reproduction)
    (root / "logs").mkdir(exist_ok=True)
    (root / "logs" / "composer.log").write_text("x\n")
    return root


def tokens(text: str) -> list[Any]:
    md = MarkdownIt("commonmark").enable("table")
    flat = []
    for token in md.parse(text):
        flat.append(token)
        flat.extend(token.children or [])
    return flat


def table_shapes(text: str) -> list[tuple[int, list[int]]]:
    """(header cells, [cells per body row]) for each table Markdown parses."""
    shapes: list[tuple[int, list[int]]] = []
    head, rows, cells, in_head = 0, [], 0, False
    for t in MarkdownIt("commonmark").enable("table").parse(text):
        if t.type == "thead_open":
            in_head = True
        elif t.type == "thead_close":
            in_head = False
        elif t.type == "tr_open":
            cells = 0
        elif t.type in ("th_open", "td_open"):
            cells += 1
        elif t.type == "tr_close":
            if in_head:
                head = cells
            else:
                rows.append(cells)
        elif t.type == "table_close":
            shapes.append((head, rows))
            head, rows = 0, []
    return shapes


# -- escaping ------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_a_code_span_shows_the_text_and_only_the_text(text: str) -> None:
    cell = code(text)
    md = f"| a | b |\n|---|---|\n| {cell} | end |\n"
    assert table_shapes(md) == [(2, [2])], md
    spans = [t for t in tokens(md) if t.type == "code_inline"]
    assert len(spans) == 1, md
    shown = spans[0].content
    assert "\n" not in shown and "\r" not in shown and "\x1b" not in shown
    visible = text.replace("\n", "\\n").replace("\r", "\\r").replace("\x1b", "\\x1b")
    if FORBIDDEN_CONTENT.decode() in text:
        assert FORBIDDEN_CONTENT.decode() not in shown
    else:
        # (a table unescapes \| before the code span is read)
        assert shown == visible, (shown, visible)


def test_word_lets_plain_values_through_and_quotes_the_rest() -> None:
    assert word("succeeded") == "succeeded"
    assert word(3) == "3"
    assert word("2026-01-01T00:00:00+00:00") == "2026-01-01T00:00:00+00:00"
    for text in ("www.evil.example", "<b>", "a b", "_x_", "[x](y)"):
        assert word(text).startswith("`"), text


def test_a_table_refuses_a_cell_that_would_break_it() -> None:
    with pytest.raises(ValueError, match="unsafe table cell"):
        table(("a",), [("x | y",)])
    with pytest.raises(ValueError, match="unsafe table cell"):
        table(("a",), [("x\ny",)])


def test_hostile_names_cannot_break_the_readme(tmp_path: Path) -> None:
    names = [f"node-0/{n}" for n in HOSTILE]
    metrics = {"node-0/metrics.json": {n: 1.5 for n in HOSTILE} | {"loss": [3, 2, 1]}}
    root = make_record(tmp_path, job="<b>job</b> | [x](http://evil.example)", outputs=names,
                       metrics=metrics,
                       metric_names=["node-0/metrics.json", "node-0/<i>missing|</i>.json"])
    text = readme.render_readme(root)
    parsed = tokens(text)
    assert not [t for t in parsed if t.type in ("html_inline", "html_block")], text
    assert not [t for t in parsed if t.type == "image"], "no plot was drawn, none is shown"
    links = [t.attrGet("href") for t in parsed if t.type == "link_open"]
    assert all(not str(h).startswith(("http", "www", "javascript")) for h in links), links
    for head, rows in table_shapes(text):
        assert rows and all(n == head for n in rows), (head, rows)
    spans = {t.content for t in parsed if t.type == "code_inline"}
    for name in names:
        if FORBIDDEN_CONTENT.decode() not in name:
            assert terminal_text(name) in spans, name
    assert FORBIDDEN_CONTENT.decode() not in text
    assert "not in the record's outputs" in text


# -- sections --------------------------------------------------------------------


def test_sections_of_a_failed_run(tmp_path: Path) -> None:
    root = make_record(tmp_path, metrics={"node-0/metrics.json": {
        "acc": 0.9, "eval": {"f1": 0.5, "tags": ["a"]}, "loss": [2.0, 1.0, 0.5]}})
    text = readme.render_readme(root)
    for heading in ("# Run 20260101-000000-abcdef: `demo`", "## Nodes", "## Stages",
                    "## Outputs", "## Metrics", "## In this record"):
        assert heading in text, heading
    assert "**failed** (workload exit code 1" not in text
    assert ("**failed** (workload exit code 3, composer exit code 1, failed first: rank 2 on "
            "`node-1`)") in text
    assert "| **error** | `rank 2 on node-1 exited with 3` (at run) |" in text
    stages = [line.split("|")[1].strip() for line in text.split("## Stages")[1]
              .split("##")[0].splitlines() if line.startswith("| ") and "stage" not in line]
    assert stages == ["render", "apply", "wait_for_ssh", "run", "destroy", "custom",
                      "**total**"], stages
    nodes = text.split("## Nodes")[1].split("##")[0]
    assert nodes.index("`node-0`") < nodes.index("`node-1`")
    assert "8.0 GiB" in nodes and "`H100 80 GiB, driver 550`" in nodes
    outputs = text.split("## Outputs")[1].split("##")[0]
    assert f"`{0:064x}`" in outputs and "| 10 B |" in outputs
    assert "withheld: `over max_file_size (5242880 > 1 bytes)`" in outputs
    assert "1 withheld (listed, not committed)" in outputs
    metrics = text.split("## Metrics")[1]
    assert "| `acc` | 0.9 |" in metrics and "| `eval.f1` | 0.5 |" in metrics
    assert "| `eval.tags[0]` | `a` |" in metrics
    assert "| `loss` | 3 values, last 0.5 (min 0.5, max 2) |" in metrics
    assert "- [`result.json`](result.json)" in text
    assert "[`composer.log`](logs/composer.log)" in text
    assert "reproduction" not in text.lower().split("## in this record")[0]
    assert readme.render_readme(root) == text, "the same record gives the same README"


def test_a_reproduction_shows_its_verdict(tmp_path: Path) -> None:
    verdict = {"verdict": "differs", "outputs": "differs", "reproduces": OLD_RUN,
               "status": {"old": "succeeded", "new": "failed"},
               "drift": [{"kind": "spec", "name": "run.command", "old": "a", "new": "b|c"}],
               "files": [{"path": "node-0/<x>.txt", "kind": "changed", "old_sha256": "aa",
                          "new_sha256": "bb"}],
               "metrics": [{"file": "m.json", "key": "loss", "old": 1.0, "new": 1.5,
                            "abs_diff": 0.5, "within": False}]}
    text = readme.render_readme(make_record(tmp_path, reproduction=verdict))
    assert f"| **reproduces** | [{OLD_RUN}](../{OLD_RUN}/README.md) |" in text
    assert "| **verdict** | **differs** |" in text
    part = text.split("## Reproduction")[1].split("## Nodes")[0]
    assert "Status: succeeded → failed." in part
    assert "| `spec` | `run.command` | `a` | ``b\\|c`` |" in part or \
        "| `spec` | `run.command` | `a` | `b\\|c` |" in part
    assert "| `node-0/<x>.txt` | changed | `aa` | `bb` |" in part
    assert "| `m.json` | `loss` | 1 | 1.5 | 0.5 | **no** |" in part
    for head, rows in table_shapes(text):
        assert all(n == head for n in rows)


def test_a_record_with_little_in_it_still_reads(tmp_path: Path) -> None:
    _write(tmp_path / "result.json", {"run_id": RUN_ID, "status": "abandoned",
                                      "job": "j", "stage": "apply"})
    text = readme.render_readme(tmp_path)
    assert "# Run 20260101-000000-abcdef: `j`" in text and "**abandoned**" in text
    assert "No outputs were collected." in text
    assert "## Nodes" not in text and "## Metrics" not in text


def test_series_are_plotted_or_the_readme_says_how(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = {"node-0/metrics.json": {"loss": [3.0, 2.0, 1.0], "acc": [0.1, 0.5]}}
    root = make_record(tmp_path / "a", metrics=metrics)
    monkeypatch.setattr(plots, "available", lambda: False)
    readme.write_readme(root)
    text = (root / "README.md").read_text()
    assert not (root / "plots").exists()
    assert "2 series are not plotted" in text and plots.INSTALL_HINT in text
    monkeypatch.undo()
    if not plots.available():
        pytest.skip("matplotlib is not installed (the plots extra)")
    root = make_record(tmp_path / "b", metrics=metrics)
    readme.write_readme(root)
    text = (root / "README.md").read_text()
    drawn = sorted(p.relative_to(root).as_posix() for p in (root / "plots").iterdir())
    assert len(drawn) == 2 and all(p.endswith(".png") for p in drawn)
    images = [t.attrGet("src") for t in tokens(text) if t.type == "image"]
    assert sorted(images) == drawn
    assert plots.INSTALL_HINT not in text


def test_add_readme_never_costs_the_record(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_record(tmp_path)
    said: list[str] = []

    def broken(data: Any) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(readme, "render_readme", broken)
    assert readme.add_readme(root, said.append) is False
    assert not (root / "README.md").exists()
    assert said and "README.md was not written: RuntimeError: boom" in said[0]


def test_a_run_that_recovered_shows_its_attempts(tmp_path: Path) -> None:
    root = make_record(tmp_path / "r")
    result = json.loads((root / "result.json").read_text())
    result["attempts"] = [
        {"zone": "us-east-1a", "type": "g5.xlarge", "outcome": "node-lost", "seconds": 61.5,
         "error": "lost node node-1 | during the run", "lost_nodes": ["node-1"]},
        {"zone": "us-east-1b", "type": "g5.xlarge", "outcome": "succeeded", "seconds": 90.0}]
    result["lost_nodes"] = ["node-1"]
    (root / "result.json").write_text(json.dumps(result))
    text = readme.render_readme(root)
    section = text.split("## Attempts")[1].split("\n## ")[0]
    assert "tried 2 time(s)" in section
    assert "| 1 | `us-east-1a` | `g5.xlarge` | `node-lost` | `node-1` |" in section
    assert "| 2 | `us-east-1b` | `g5.xlarge` | `succeeded` |" in section
    assert "## Attempts" not in readme.render_readme(make_record(tmp_path / "plain"))
