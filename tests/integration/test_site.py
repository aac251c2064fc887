"""composer site over a runs repository of real runs (two of one job, one failed) and a
hostile record written by composer's own record writer, looked at in a real headless
Chromium: every page loads without a console message, the list shows every run and
filters, nothing injected becomes markup, and a run page's screenshot is kept."""

from __future__ import annotations

import importlib.util
import json
import os
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from composer.record import RunsRepo
from tests.conftest import ROOT, Composer, sshd_processes
from tests.integration import browser
from tests.integration.test_up import final_json, write_job
from tests.unit.site_records import HOSTILE_ID, HOSTILE_JOB, hostile_record

pytestmark = pytest.mark.integration

SCRIPT = """
    import json, os, pathlib, sys
    out = pathlib.Path(os.environ["COMPOSER_OUTPUT_DIR"])
    n = int(os.environ["COMPOSER_NUM_NODES"])
    print("training on", n, "node(s) <b>not bold</b>")
    losses = [1.0 / (n * (i + 1)) for i in range(8)]
    (out / "metrics.json").write_text(json.dumps({"loss": losses, "acc": 0.5 + n / 10}))
    sys.exit(int(os.environ.get("FAIL", "0")))
"""

JOB = """
    [job]
    name = "{name}"
    [cluster]
    target = "local"
    nodes = {nodes}
    [run]
    launcher = "ssh"
    command = ["python", "train.py"]
    env = {{ FAIL = "{fail}" }}
    [code]
    path = "src"
    [outputs]
    paths = ["metrics.json"]
    from = "head"
    [reproduce]
    metrics = ["metrics.json"]
"""

SCREENSHOT = ROOT / ".cache" / "test-artifacts" / "site" / "run-page.png"


@dataclass(frozen=True)
class Runs:
    composer: Composer
    ok: tuple[str, str]
    failed: str

    @property
    def all(self) -> list[str]:
        return sorted([*self.ok, self.failed, HOSTILE_ID])


def _up(c: Composer, directory: Path, name: str, nodes: int, fail: int) -> str:
    job = write_job(directory / name, JOB.format(name=name, nodes=nodes, fail=fail))
    (directory / name / "src").mkdir(exist_ok=True)
    (directory / name / "src" / "train.py").write_text(textwrap.dedent(SCRIPT))
    done = c.run("up", str(job), "--json")
    assert done.returncode == (1 if fail else 0), done.stderr[-3000:]
    return str(final_json(done.stdout)["run_id"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    tmp = tmp_path_factory.mktemp("site")
    c = Composer(home=tmp / "home", runs=tmp / "runs", cwd=tmp)
    try:
        first = _up(c, tmp, "site-train", 1, 0)
        second = _up(c, tmp, "site-train", 2, 0)
        failed = _up(c, tmp, "site-fail", 1, 3)
        staged = hostile_record(tmp / "staged")
        RunsRepo(c.runs).commit_run(HOSTILE_ID, staged, f"Record run {HOSTILE_ID}")
        yield Runs(c, (first, second), failed)
    finally:
        assert not sshd_processes(str(c.home))


@pytest.fixture(scope="module")
def site(runs: Runs) -> Path:
    out = runs.composer.cwd / "site"
    done = runs.composer.run("site", "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    answer = final_json(done.stdout)
    assert answer["path"] == str(out) and answer["index"] == str(out / "index.html")
    assert sorted(r["run_id"] for r in answer["runs"]) == runs.all
    assert [(d["a"], d["b"]) for d in answer["diffs"]] == [runs.ok]
    assert answer["highlighting"].startswith("pygments ")
    for page in [answer["index"], *(r["page"] for r in answer["runs"]),
                 *(d["page"] for d in answer["diffs"])]:
        assert Path(page).is_file(), page
    return out


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> browser.Chromium:
    exe = browser.find()
    if exe is None:
        pytest.skip("the browser tests need Chromium (apt-get install chromium)")
    return browser.Chromium(exe, tmp_path_factory.mktemp("chromium"))


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_same_repository_gives_the_same_bytes(runs: Runs, site: Path) -> None:
    again = runs.composer.cwd / "again"
    done = runs.composer.run("site", "-o", str(again))
    assert done.returncode == 0, done.stderr
    assert "4 run pages, 1 diff pages" in done.stdout
    assert _tree(again) == _tree(site)
    (again / "runs" / "stale.html").write_text("from an earlier site")
    done = runs.composer.run("site", "-o", str(again))
    assert done.returncode == 0, done.stderr
    assert _tree(again) == _tree(site)
    assert [p.name for p in again.parent.iterdir() if p.name.startswith(".again")] == []


def test_refusals_are_exit_2_with_one_json_object(runs: Runs) -> None:
    mine = runs.composer.cwd / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    done = runs.composer.run("site", "-o", str(mine), "--json")
    assert done.returncode == 2, done.stderr
    answer = final_json(done.stdout)
    assert str(mine) in answer["error"] and "composer-site.json" in answer["hint"]
    assert (mine / "notes.txt").read_text() == "keep me"
    done = runs.composer.run("site", "-o", str(runs.composer.cwd / "x"), "--diff", "nope",
                             runs.failed, "--json")
    assert done.returncode == 2 and "no recorded run matches 'nope'" in done.stderr
    assert not (runs.composer.cwd / "x").exists()
    assert "Traceback" not in done.stderr


def test_a_pair_asked_for_gets_a_diff_page(runs: Runs) -> None:
    out = runs.composer.cwd / "paired"
    done = runs.composer.run("site", "-o", str(out), "--diff", runs.ok[0], f"run/{runs.failed}",
                             "--json")
    assert done.returncode == 0, done.stderr
    pairs = [(d["a"], d["b"]) for d in final_json(done.stdout)["diffs"]]
    assert pairs == [runs.ok, (runs.ok[0], runs.failed)]
    page = (out / "diffs" / f"{runs.ok[0]}..{runs.failed}.html").read_text()
    assert "site-train" in page and "site-fail" in page and 'class="sbs"' in page
    assert f"{runs.ok[0]} .. {runs.failed}" in (out / "index.html").read_text()


def test_the_list_shows_every_run_and_filters(chromium: browser.Chromium, runs: Runs,
                                              site: Path) -> None:
    loaded = chromium.load(site / "index.html")
    assert loaded.console == []
    rows = [e for e in browser.elements(loaded.dom) if e.tag == "tr" and "data-job" in e.attrs]
    assert len(rows) == len(runs.all)
    assert sorted(r.attrs["data-job"] or "" for r in rows) == sorted(
        ["site-train", "site-train", "site-fail", HOSTILE_JOB])
    assert all("hidden" not in r.attrs for r in rows)
    for run_id in runs.all:
        assert f'href="runs/{run_id}.html"' in loaded.dom
    form = next(e for e in browser.elements(loaded.dom) if e.attrs.get("id") == "filters")
    assert "hidden" not in form.attrs, "the script shows the filters"
    filtered = chromium.load(site / "index.html", "?job=site-train&status=succeeded")
    assert filtered.console == []
    rows = [e for e in browser.elements(filtered.dom) if e.tag == "tr" and "data-job" in e.attrs]
    shown = [r.attrs["data-job"] for r in rows if "hidden" not in r.attrs]
    assert shown == ["site-train", "site-train"]
    assert '<span id="shown">2</span>' in filtered.dom


def test_run_and_diff_pages_load_cleanly(chromium: browser.Chromium, runs: Runs,
                                         site: Path) -> None:
    ok = chromium.load(site / "runs" / f"{runs.ok[1]}.html")
    assert ok.console == []
    for text in ("site-train", "metrics.json", "node-0", "node-1", "wait_for_ssh",
                 "infra/main.tf", "logs/node-0.log", "&lt;b&gt;not bold&lt;/b&gt;",
                 f"diffs/{runs.ok[0]}..{runs.ok[1]}.html", 'class="series"',
                 'class="highlight"'):
        assert text in ok.dom, text
    if importlib.util.find_spec("matplotlib") is not None:  # the record's README plots
        images = [e.attrs["src"] for e in browser.elements(ok.dom) if e.tag == "img"]
        assert images == [f"{runs.ok[1]}/plot-1.png"]
        assert (site / "runs" / runs.ok[1] / "plot-1.png").read_bytes()[:4] == b"\x89PNG"
    diff = chromium.load(site / "diffs" / f"{runs.ok[0]}..{runs.ok[1]}.html")
    assert diff.console == []
    assert 'class="sbs"' in diff.dom and "nodes = 2" in diff.dom


def test_a_hostile_record_injects_nothing(chromium: browser.Chromium, site: Path) -> None:
    loaded = chromium.load(site / "runs" / f"{HOSTILE_ID}.html")
    assert loaded.console == [], "a script or style ran or was blocked"
    found = browser.elements(loaded.dom)
    ids = [e.attrs.get("id") or "" for e in found]
    assert not [i for i in ids if i.startswith("pwned")], ids
    assert [e.tag for e in found].count("script") == 0
    images = [e.attrs["src"] for e in found if e.tag == "img"]
    assert images == [f"{HOSTILE_ID}/plot-1.png"]
    assert (site / "runs" / HOSTILE_ID / "plot-1.png").read_bytes().startswith(b"\x89PNG")
    assert "&lt;script id=\"pwned-job\"&gt;" in loaded.dom


def test_a_run_page_screenshot_is_kept(chromium: browser.Chromium, runs: Runs,
                                       site: Path) -> None:
    png = chromium.screenshot(site / "runs" / f"{runs.ok[1]}.html", SCREENSHOT)
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2400)
    print(f"screenshot of a run page: {png}")
    assert json.loads((site / "composer-site.json").read_text())["runs"] == sorted(
        runs.all, key=lambda r: (r != HOSTILE_ID, r))
    assert os.access(png, os.R_OK)
