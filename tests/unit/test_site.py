"""composer site's pages, rendered without git or a browser: escaping, the pages'
Content Security Policy, side-by-side diffs, highlighting with and without
Pygments, which runs are compared, and which output directories are refused."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest

from composer.errors import ExitCode, UsageError
from composer.records.read import RunSummary, summary
from composer.site import highlight, html, sidebyside
from composer.site.build import MARKER, check_output, consecutive_pairs
from composer.site.diffpage import diff_page
from composer.site.listing import index_page
from composer.site.runpage import Neighbours, run_page
from composer.site.view import LOG_SHOWN, load_run, read_log
from tests.integration.browser import elements
from tests.unit.site_records import HOSTILE_ID, HOSTILE_JOB, PNG_NAME, hostile_record


def _summary(run_id: str, job: str, started: str, status: str = "succeeded") -> RunSummary:
    return RunSummary(run_id, job, status, 1, 1.0, started, "c" * 40, f"run/{run_id}")


def _no_injection(page: str, scripts: int) -> None:
    found = elements(page)
    ids = [e.attrs.get("id") or "" for e in found]
    assert not [i for i in ids if i.startswith("pwned")], ids
    assert [e.tag for e in found].count("script") == scripts
    assert not [e for e in found if any(k.startswith("on") for k in e.attrs)]


def test_text_escapes_markup_and_shows_control_characters() -> None:
    assert html.text('<a href="x">&\'') == "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
    assert html.text("a\x1b[31mb\x00\tc\r\nd") == "a\\x1b[31mb\\x00\tc\nd"


def _hash(source: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()


def test_the_policy_allows_exactly_the_pages_own_style_and_script() -> None:
    page = html.page("t<", "<p>x</p>", script="void 0;")
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    assert style and script
    policy = re.search(r'Content-Security-Policy" content="([^"]*)"', page)
    assert policy
    assert "default-src 'none'" in policy.group(1)
    assert f"style-src '{_hash(style.group(1))}'" in policy.group(1)
    assert f"script-src '{_hash(script.group(1))}'" in policy.group(1)
    assert "script-src 'none'" in html.page("t", "")
    assert "<title>t&lt;</title>" in page


def test_side_by_side_pairs_removed_and_added_lines() -> None:
    diff = ("--- a/x\n+++ b/x\n@@ -1,4 +1,4 @@\n a\n-b\n---c\n+B\n+++C\n+D\n d\n"
            "\\ No newline at end of file\n")
    rows = sidebyside.rows(diff)
    assert rows[0].kind == "hunk"
    assert (rows[1].left_no, rows[1].left, rows[1].right) == (1, "a", "a")
    changed = [(r.left_no, r.left, r.right_no, r.right) for r in rows if r.kind == "change"]
    assert changed == [(2, "b", 2, "B"), (3, "--c", 3, "++C"), (None, None, 4, "D")]
    assert rows[-2].kind == "same" and rows[-2].left_no == 4 and rows[-2].right_no == 5
    assert rows[-1].left == "\\ No newline at end of file"
    table = sidebyside.table(diff.replace("b\n", "<b id=pwned>\n", 1), "a", "b")
    _no_injection(table, 0)
    assert "&lt;b id=pwned&gt;" in table


def test_a_hostile_record_renders_as_text(tmp_path: Path) -> None:
    root = hostile_record(tmp_path / "rec")
    view = load_run(root, summary(HOSTILE_ID, "c" * 40, (root / "result.json").read_bytes()))
    assert view.summary.job == HOSTILE_JOB
    assert view.images == (PNG_NAME,)
    page = run_page(view, Neighbours(), [(PNG_NAME, f"{HOSTILE_ID}/plot-1.png")])
    _no_injection(page, 0)
    assert [e.attrs["src"] for e in elements(page) if e.tag == "img"] == \
        [f"{HOSTILE_ID}/plot-1.png"]
    assert html.text(HOSTILE_JOB) in page
    assert "\\x1b[31mred" in page and "\\x00" in page
    assert "<svg class=\"series\"" in page
    assert view.metric_problems == ("missing.json: not in the record's outputs",)
    index = index_page([view.summary], {}, [])
    _no_injection(index, 1)
    rows = [e for e in elements(index) if e.tag == "tr" and "data-job" in e.attrs]
    assert [r.attrs["data-job"] for r in rows] == [HOSTILE_JOB]


def test_run_page_without_pygments_is_escaped_plain_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = hostile_record(tmp_path / "rec")
    view = load_run(root, summary(HOSTILE_ID, "c" * 40, (root / "result.json").read_bytes()))
    with_pygments = run_page(view, Neighbours(), [])
    assert highlight.available() and 'class="highlight"' in with_pygments
    monkeypatch.setattr(highlight, "_pygments", lambda: None)
    plain = run_page(view, Neighbours(), [])
    assert 'class="highlight"' not in plain and highlight.css() == ""
    _no_injection(plain, 0)
    assert "# &lt;/pre&gt;&lt;script id=&quot;pwned-infra&quot;&gt;" in plain


def test_a_long_log_shows_its_head_and_tail(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "node-0.log"
    log.parent.mkdir()
    log.write_bytes(b"HEAD\n" + b"x" * (LOG_SHOWN * 2) + b"\nTAIL\n")
    shown = read_log(log, tmp_path)
    assert shown.name == "logs/node-0.log"
    assert shown.body.startswith("HEAD\n") and shown.body.endswith("TAIL\n")
    assert shown.cut == shown.size - LOG_SHOWN and len(shown.body) == LOG_SHOWN + 1


def test_diff_page_escapes_every_section() -> None:
    evil = "<b id=pwned>"
    data = {"a": "r1", "b": "r2", "sections": [
        {"name": "spec", "same": False,
         "diff": f"--- a/job.toml\n+++ b/job.toml\n@@ -1 +1 @@\n-{evil}\n+x\n"},
        {"name": "lock", "same": False, "changes": [{"pin": evil, "old": evil, "new": 1}]},
        {"name": "infra", "same": False, "files": {evil: "(only in old)"}},
        {"name": "facts", "same": False, "node_count": [1, 2], "nodes": [
            {"rank": 1, "only_in": "b", "changes": []},
            {"rank": 0, "only_in": None, "changes": [{"field": evil, "old": evil,
                                                      "new": None}]}]},
        {"name": "environment", "same": False, "recorded": [True, False],
         "changes": [{"field": evil, "old": evil, "new": "2", "nodes": [evil]}]},
        {"name": "results", "same": False,
         "status": [{"field": "status", "old": evil, "new": "failed"}],
         "files": [{"path": evil, "kind": "changed", "old_sha256": "a", "new_sha256": "b",
                    "old_size": 1, "new_size": 2,
                    "diff": f"--- a/{evil}\n+++ b/{evil}\n@@ -1 +1 @@\n-{evil}\n+y\n"}],
         "metrics": [{"file": evil, "key": evil, "old": 1.0, "new": 2.0, "abs_diff": 1.0,
                      "rel_diff": 0.5}]},
    ]}
    page = diff_page(data, _summary("r1", evil, "1"), _summary("r2", evil, "2", evil))
    _no_injection(page, 0)
    assert page.count("&lt;b id=pwned&gt;") >= 12
    assert 'class="sbs"' in page


def test_each_run_is_compared_with_the_previous_run_of_its_job() -> None:
    runs = [_summary("a1", "a", "1"), _summary("b1", "b", "2"), _summary("a2", "a", "3"),
            _summary("x", "", "4"), _summary("y", "", "5"), _summary("a3", "a", "6")]
    assert consecutive_pairs(runs) == [("a1", "a2"), ("a2", "a3")]


def test_output_directories_other_than_new_empty_or_a_site_are_refused(tmp_path: Path) -> None:
    check_output(tmp_path / "new" / "site")
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / MARKER).write_text('{"generator": "composer site"}')
    check_output(earlier)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("mine")
    (tmp_path / "file").write_text("mine")
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    for bad, says in ((tmp_path / "mine", "not empty"), (tmp_path / "file", "not a directory"),
                      (tmp_path / "file" / "x", "is not a directory"),
                      (tmp_path / "link", "symbolic link")):
        with pytest.raises(UsageError) as caught:
            check_output(bad)
        assert caught.value.exit_code == ExitCode.INVALID_INPUT
        assert str(bad) in caught.value.message and says in caught.value.message
        assert MARKER in (caught.value.hint or "")


def test_a_repository_without_runs_gives_an_empty_list(tmp_path: Path) -> None:
    from composer.records.repo import RunsRepo
    from composer.site.build import build_site

    out = tmp_path / "out"
    site = build_site(RunsRepo(tmp_path / "no-runs-yet"), out)
    assert site.runs == () and site.diffs == ()
    assert sorted(p.name for p in out.iterdir()) == ["composer-site.json", "index.html"]
    index = (out / "index.html").read_text()
    assert "0 recorded runs" in index
    _no_injection(index, 1)
    again = build_site(RunsRepo(tmp_path / "no-runs-yet"), out)
    assert again.to_json()["index"] == str(out / "index.html")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
