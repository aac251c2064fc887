"""Which pages a site has, and writing them in place of an earlier site.

``build_site`` reads every ``run/<id>`` of the runs repository once (``git
archive`` of its tagged commit), writes ``index.html``, ``runs/<id>.html`` (its
plots under ``runs/<id>/``) and ``diffs/<a>..<b>.html`` for each run and the run
before it of the same job, and for each pair asked for, into a new directory
beside the target that then replaces it. The output depends only on the
repository's runs (and the Pygments version): no time, host or path is written,
so the same repository gives the same bytes.

The target must be missing, empty, or a site this command wrote (it holds
``composer-site.json``); anything else is refused, never overwritten.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composer.diff import diff_exported
from composer.errors import UsageError
from composer.records.read import RunSummary
from composer.records.repo import RunsRepo
from composer.site import highlight
from composer.site.diffpage import diff_page
from composer.site.listing import index_page
from composer.site.runpage import Neighbours, run_page
from composer.site.view import RunView, load_run

MARKER = "composer-site.json"
GENERATOR = "composer site"
SCHEMA_VERSION = 1
HINT = ("give -o a new or empty directory, or one an earlier composer site wrote "
        f"(it holds {MARKER})")


@dataclass(frozen=True)
class Site:
    """What ``build_site`` wrote."""

    path: Path
    runs: tuple[str, ...]
    diffs: tuple[tuple[str, str], ...]
    highlighting: str

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "index": str(self.path / "index.html"),
            "runs": [{"run_id": r, "page": str(self.path / "runs" / f"{r}.html")}
                     for r in self.runs],
            "diffs": [{"a": a, "b": b, "page": str(self.path / "diffs" / f"{a}..{b}.html")}
                      for a, b in self.diffs],
            "highlighting": self.highlighting,
        }


def _is_site(path: Path) -> bool:
    try:
        marker = json.loads((path / MARKER).read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("generator") == GENERATOR


def check_output(out: Path) -> None:
    """Refuse (exit 2) an output that is not missing, empty, or an earlier site."""
    if out.is_symlink():
        raise UsageError(f"-o {out}: is a symbolic link; name the directory itself", hint=HINT)
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out}: exists and is not a directory", hint=HINT)
    if out.is_dir():
        try:
            entries = any(out.iterdir())
        except OSError as exc:
            raise UsageError(f"-o {out}: cannot be read: {exc.strerror}", hint=HINT) from exc
        if entries and not _is_site(out):
            raise UsageError(f"-o {out}: not empty, and not a site composer site wrote",
                             hint=HINT)
        return
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"-o {out}: {parent} is not a directory", hint=HINT)


def consecutive_pairs(runs: Sequence[RunSummary]) -> list[tuple[str, str]]:
    """Each run with the run before it of the same job (runs in start order)."""
    last: dict[str, str] = {}
    pairs = []
    for s in runs:
        if s.job and s.job in last:
            pairs.append((last[s.job], s.run_id))
        if s.job:
            last[s.job] = s.run_id
    return pairs


def _neighbours(runs: Sequence[RunSummary], pairs: Sequence[tuple[str, str]],
                known: frozenset[str]) -> dict[str, Neighbours]:
    by_job: dict[str, list[str]] = {}
    for s in runs:
        by_job.setdefault(s.job, []).append(s.run_id)
    found = {}
    for s in runs:
        same = by_job[s.job] if s.job else [s.run_id]
        at = same.index(s.run_id)
        found[s.run_id] = Neighbours(
            previous=same[at - 1] if at > 0 else None,
            next=same[at + 1] if at + 1 < len(same) else None,
            diffs=tuple(p for p in pairs if s.run_id in p),
            known=known,
        )
    return found


def _write(path: Path, body: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body.encode("utf-8") if isinstance(body, str) else body)


def _run_pages(stage: Path, views: dict[str, tuple[RunView, Path]],
               near: dict[str, Neighbours]) -> None:
    for run_id, (view, root) in views.items():
        images = []
        for index, name in enumerate(view.images, start=1):
            target = f"{run_id}/plot-{index}{Path(name).suffix.lower()}"
            _write(stage / "runs" / target, (root / name).read_bytes())
            images.append((name, target))
        _write(stage / "runs" / f"{run_id}.html", run_page(view, near[run_id], images))


def _place(stage: Path, out: Path) -> None:
    """Put the finished ``stage`` where ``out`` is; an earlier site there goes."""
    old = out.parent / f".{out.name}.old-{secrets.token_hex(6)}"
    if out.exists():
        os.rename(out, old)
    try:
        os.rename(stage, out)
    except OSError:
        if old.exists():
            os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _marker(site: Site) -> str:
    data = {"generator": GENERATOR, "schema_version": SCHEMA_VERSION,
            "runs": list(site.runs), "diffs": [list(p) for p in site.diffs],
            "highlighting": site.highlighting}
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _pairs(repo: RunsRepo, runs: Sequence[RunSummary],
           asked: Sequence[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    auto = consecutive_pairs(runs)
    extra: list[tuple[str, str]] = []
    for ref_a, ref_b in asked:
        pair = (repo.resolve(ref_a), repo.resolve(ref_b))
        if pair not in auto and pair not in extra:
            extra.append(pair)
    return auto, extra


def _render(stage: Path, repo: RunsRepo, runs: Sequence[RunSummary],
            pairs: Sequence[tuple[str, str]]) -> None:
    """Every run page and diff page of the site into ``stage``."""
    by_id = {s.run_id: s for s in runs}
    near = _neighbours(runs, pairs, frozenset(by_id))
    with tempfile.TemporaryDirectory(prefix="composer-site-") as tmp:
        roots = {s.run_id: repo.export(s.run_id, Path(tmp) / s.run_id) for s in runs}
        views = {s.run_id: (load_run(roots[s.run_id], s), roots[s.run_id]) for s in runs}
        _run_pages(stage, views, near)
        for a, b in pairs:
            data = diff_exported(a, roots[a], b, roots[b])
            _write(stage / "diffs" / f"{a}..{b}.html", diff_page(data, by_id[a], by_id[b]))


def build_site(repo: RunsRepo, out: Path, asked: Sequence[tuple[str, str]] = ()) -> Site:
    """Write the site of ``repo``'s runs into ``out``; ``asked`` adds diff pages."""
    out = Path(os.path.abspath(out))
    check_output(out)
    runs = repo.list_runs()
    auto, extra = _pairs(repo, runs, asked)
    style = f"pygments {_pygments_version()}" if highlight.available() else "none"
    site = Site(out, tuple(s.run_id for s in runs), tuple(auto + extra), style)
    stage: Path | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.site-", dir=out.parent))
        os.chmod(stage, 0o755)
        _render(stage, repo, runs, site.diffs)
        _write(stage / "index.html", index_page(runs, {b: a for a, b in auto}, extra))
        _write(stage / MARKER, _marker(site))
        _place(stage, out)
    except OSError as exc:
        raise UsageError(f"cannot write the site {out}: {exc.strerror or exc}",
                         hint="check that -o's directory and its parent are writable") from exc
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
    return site


def _pygments_version() -> str:
    from importlib.metadata import version

    return version("pygments")
