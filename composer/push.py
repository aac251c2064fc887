"""``composer push``: the runs repository's new records to its remote, safely.

Many pipelines push records into one runs repository, each from its own clone. A push
that another pipeline beat is rejected by git; composer then fetches, replays its own
commits on top of the remote branch and tries again, a bounded number of times with
jittered backoff. It never force-pushes: the branch only moves forward and no tag is
ever moved on the remote.

Replaying is conflict-free by construction: every run lives in its own top-level
directory ``<run_id>/``, so a run's commit is rebuilt as the remote tip's tree with that
directory set to the commit's (plumbing: ``ls-tree``, ``mktree``, ``commit-tree``; no
work tree involved). composer's own top-level files (the repository's README and
.gitignore, written by each clone's first commit) are kept as the remote has them.
A run directory that both sides changed is a conflict and stops the push; run ids are
unique, so only a hand edit causes one.

Nothing local changes until the remote has accepted the push; then the local branch
follows (``git reset --keep``) and the run tags move to the replayed commits. A push
that fails leaves every record committed and tagged locally (exit 6, ``PushError``), to
be pushed later with ``composer push``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from composer.errors import ComposerError, ExitCode, UsageError
from composer.records.git import git, identity
from composer.records.names import TAG_PREFIX, is_run_id
from composer.records.repo import RunsRepo

DEFAULT_REMOTE = "origin"
ATTEMPTS = 10
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 10.0
# Where the remote's run tags are fetched to, away from the local tags.
MIRROR = "refs/composer/remotes"
REJECTED = ("[rejected]", "[remote rejected]", "fetch first", "non-fast-forward",
            "failed to update ref", "cannot lock ref", "stale info")

Entry = tuple[str, str, str]  # (mode, type, object) of a top-level tree entry


class PushError(ComposerError):
    """The records could not be pushed; they are still committed and tagged locally."""

    exit_code = ExitCode.PUSH_FAILED


@dataclass(frozen=True)
class PushResult:
    remote: str
    url: str
    branch: str
    commit: str
    runs: tuple[str, ...]
    attempts: int
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"remote": self.remote, "url": self.url, "branch": self.branch,
                "commit": self.commit, "runs": list(self.runs), "attempts": self.attempts,
                "warnings": list(self.warnings), "pushed": True}


@dataclass
class _Plan:
    """One attempt: the commit to push, the tags to create, the local updates after."""

    head: str
    new_head: str
    remote_tip: str | None
    tags: dict[str, str] = field(default_factory=dict)  # run id -> commit to push
    moved: dict[str, str] = field(default_factory=dict)  # local run tags to move
    remote_only: dict[str, str] = field(default_factory=dict)  # remote tags missing here
    warnings: list[str] = field(default_factory=list)


def later_hint(repo: RunsRepo, remote: str) -> str:
    return (f"every record is committed and tagged in {repo.path}; nothing was lost. "
            f"Push later with: composer push --runs-repo {repo.path} --remote {remote}")


def check_remote(repo: RunsRepo, remote: str) -> tuple[str, str]:
    """The remote's URL and the branch to push; UsageError (exit 2) when either is missing."""
    if not (repo.path / ".git").exists():
        raise UsageError(
            f"no runs repository at {repo.describe()} to push from",
            hint="clone the runs repository there first (git clone URL "
                 f"{repo.path}), or point --runs-repo at your clone")
    url = git(repo.path, "remote", "get-url", remote, check=False).strip()
    if not url:
        raise UsageError(
            f"the runs repository {repo.path} has no remote '{remote}'",
            hint=f"add it: git -C {repo.path} remote add {remote} URL, or name another "
                 "with --remote")
    branch = git(repo.path, "symbolic-ref", "-q", "--short", "HEAD", check=False).strip()
    if not branch:
        raise UsageError(f"the runs repository {repo.path} is not on a branch (detached HEAD)",
                         hint=f"check a branch out: git -C {repo.path} switch main")
    return url, branch


def push(repo: RunsRepo, remote: str = DEFAULT_REMOTE, attempts: int = ATTEMPTS,
         say: Callable[[str], None] | None = None,
         sleep: Callable[[float], None] = time.sleep) -> PushResult:
    """Push the branch and every run tag the remote lacks; see the module's doc."""
    url, branch = check_remote(repo, remote)
    last = ""
    for attempt in range(1, attempts + 1):
        with repo.lock():
            plan = _plan(repo, remote, branch)
            if plan is None:
                head = _rev(repo, "HEAD") or ""
                return PushResult(remote, url, branch, head, (), attempt)
            ok, detail = _push(repo, remote, branch, plan)
            if ok:
                _follow(repo, plan)
                return PushResult(remote, url, branch, plan.new_head, tuple(sorted(plan.tags)),
                                  attempt, tuple(plan.warnings))
        if not any(word in detail for word in REJECTED):
            raise PushError(f"git push to {remote} ({url}) failed: {detail}",
                            hint=later_hint(repo, remote))
        last = detail
        if attempt < attempts:
            pause = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt))
            if say is not None:
                say(f"push: {remote} moved meanwhile; fetching and replaying again "
                    f"in {pause:.1f}s (attempt {attempt + 1} of {attempts})")
            sleep(pause)
    raise PushError(f"git push to {remote} ({url}) was rejected {attempts} times: "
                    f"other pushes kept moving it ({last})", hint=later_hint(repo, remote))


# -- one attempt ---------------------------------------------------------------


def _rev(repo: RunsRepo, ref: str) -> str | None:
    out = git(repo.path, "rev-parse", "-q", "--verify", f"{ref}^{{commit}}", check=False)
    return out.strip() or None


def _refs(repo: RunsRepo, prefix: str) -> dict[str, str]:
    """Run id -> commit of every ref named ``<prefix><run id>``."""
    out = git(repo.path, "for-each-ref", "--format=%(refname)%09%(objectname)%09%(*objectname)",
              prefix)
    found = {}
    for line in out.splitlines():
        name, obj, peeled = (line.split("\t") + ["", ""])[:3]
        run_id = name.removeprefix(prefix)
        if is_run_id(run_id):
            found[run_id] = peeled or obj
    return found


def _refs_named(repo: RunsRepo, prefix: str) -> list[str]:
    """Branch names under ``prefix`` (``refs/remotes/origin/``), HEAD left out."""
    out = git(repo.path, "for-each-ref", "--format=%(refname)", prefix)
    return [line[len(prefix):] for line in out.splitlines()
            if line.startswith(prefix) and line[len(prefix):] != "HEAD"]


def _fetch(repo: RunsRepo, remote: str) -> None:
    mirror = f"{MIRROR}/{remote}/{TAG_PREFIX}"
    try:
        git(repo.path, "fetch", "-q", "--prune", "--no-tags", remote,
            f"+refs/heads/*:refs/remotes/{remote}/*", f"+refs/tags/{TAG_PREFIX}*:{mirror}*")
    except ComposerError as exc:
        raise PushError(f"cannot fetch from {remote}: {exc.message}",
                        hint=later_hint(repo, remote)) from None


def _plan(repo: RunsRepo, remote: str, branch: str) -> _Plan | None:
    """Fetch, replay what the remote lacks; None when there is nothing to push."""
    head = _rev(repo, "HEAD")
    if head is None:
        return None  # no commit yet: no record to push
    _fetch(repo, remote)
    remote_tip = _rev(repo, f"refs/remotes/{remote}/{branch}")
    others = sorted(_refs_named(repo, f"refs/remotes/{remote}/"))
    if remote_tip is None and others:
        # Pushing would start a second history beside theirs: a clone would show theirs.
        raise PushError(
            f"{remote} has no branch {branch!r}, but has {', '.join(others)}: pushing would "
            "start a second history there, which a clone of it would not show",
            hint=f"push where the others are: git -C {repo.path} branch -m {branch} "
                 f"{others[0]} and composer push again (or start the runs repository as a "
                 f"clone of {remote})")
    new_head, mapping = replay(repo, remote_tip, head)
    plan = _Plan(head, new_head, remote_tip)
    theirs = _refs(repo, f"{MIRROR}/{remote}/{TAG_PREFIX}")
    ours = _refs(repo, f"refs/tags/{TAG_PREFIX}")
    for run_id, commit in ours.items():
        new = mapping.get(commit, commit)
        if new != commit:
            plan.moved[run_id] = new
        if run_id not in theirs:
            plan.tags[run_id] = new
        elif theirs[run_id] != new:
            plan.warnings.append(
                f"run/{run_id} on {remote} is at {theirs[run_id][:12]}, here at {new[:12]} "
                "(its record changed after it was pushed, e.g. by composer down); the "
                "remote tag is left as it is, the branch carries the change")
    plan.remote_only = {r: c for r, c in theirs.items() if r not in ours}
    if new_head == remote_tip and not plan.tags:
        return None
    return plan


def _push(repo: RunsRepo, remote: str, branch: str, plan: _Plan) -> tuple[bool, str]:
    """One ``git push --atomic``: the branch (fast-forward only) and the new tags."""
    specs = [f"{plan.new_head}:refs/heads/{branch}"]
    specs += [f"{commit}:refs/tags/{TAG_PREFIX}{run_id}"
              for run_id, commit in sorted(plan.tags.items())]
    out = git(repo.path, "push", "--atomic", "--porcelain", "--no-verify", remote, *specs,
              check=False, merge_stderr=True)
    failed = [line for line in out.splitlines() if line.startswith("!")]
    done = "Done" in out.splitlines() and not failed
    return done, "; ".join(failed) or out.strip()[-500:] or "(git printed nothing)"


def _follow(repo: RunsRepo, plan: _Plan) -> None:
    """After a push: the local branch and tags follow what the remote now holds."""
    if plan.new_head != plan.head:
        try:
            git(repo.path, "reset", "-q", "--keep", plan.new_head)
        except ComposerError as exc:
            plan.warnings.append(f"pushed, but the local branch could not follow "
                                 f"({exc.message}); run git -C {repo.path} reset --keep "
                                 f"{plan.new_head}")
            return
    for run_id, commit in sorted(plan.moved.items()):
        git(repo.path, "tag", "-f", f"{TAG_PREFIX}{run_id}", commit)
    if plan.remote_only:
        lines = "".join(f"create refs/tags/{TAG_PREFIX}{run_id} {commit}\n"
                        for run_id, commit in sorted(plan.remote_only.items()))
        git(repo.path, "update-ref", "--stdin", stdin_text=lines, check=False)


# -- replaying a run's commits on the remote tip ---------------------------------


def _entries(repo: RunsRepo, commit: str | None) -> dict[str, Entry]:
    """The top-level tree entries of ``commit`` by name (empty for None)."""
    if commit is None:
        return {}
    out = git(repo.path, "ls-tree", "-z", commit)
    found: dict[str, Entry] = {}
    for item in out.split("\0"):
        if item:
            meta, name = item.split("\t", 1)
            mode, kind, obj = meta.split()
            found[name] = (mode, kind, obj)
    return found


def replay(repo: RunsRepo, base: str | None, head: str) -> tuple[str, dict[str, str]]:
    """``head``'s commits that ``base`` lacks, rebuilt on ``base``: (new tip, old -> new)."""
    if base is None or _is_ancestor(repo, base, head):
        return head, {}
    listing = git(repo.path, "rev-list", "--reverse", "--topo-order", "--parents", head,
                  "--not", base)
    tip, mapping = base, {}
    for line in listing.split("\n"):
        if not line.strip():
            continue
        commit, *parents = line.split()
        if len(parents) > 1:
            raise PushError(f"commit {commit[:12]} of the runs repository {repo.path} is a "
                            "merge; composer replays only its own linear history",
                            hint="push it with git yourself")
        parent = parents[0] if parents else None
        tree = _replayed_tree(repo, commit, parent, tip)
        if tree is None:
            mapping[commit] = tip  # nothing left to add: the remote has it all
            continue
        tip = _commit_tree(repo, tree, tip, commit)
        mapping[commit] = tip
    return tip, mapping


def _replayed_tree(repo: RunsRepo, commit: str, parent: str | None, tip: str) -> str | None:
    """``tip``'s tree with ``commit``'s own changes applied; None when they change nothing."""
    mine, before, base = _entries(repo, commit), _entries(repo, parent), _entries(repo, tip)
    result = dict(base)
    for name in sorted(mine.keys() | before.keys()):
        if mine.get(name) == before.get(name) or base.get(name) == mine.get(name):
            continue
        if name in base and base[name] != before.get(name):
            if is_run_id(name):
                raise PushError(
                    f"run {name} was changed both here (commit {commit[:12]}) and on the "
                    "remote; composer never overwrites a record", hint="compare the two "
                    f"with git diff {commit[:12]} {tip[:12]} -- {name} and settle it by hand")
            continue  # composer's own top-level files: the remote's copy stays
        if name in mine:
            result[name] = mine[name]
        else:
            result.pop(name, None)
    if result == base:
        return None
    text = "".join(f"{mode} {kind} {obj}\t{name}\0"
                   for name, (mode, kind, obj) in sorted(result.items()))
    return git(repo.path, "mktree", "-z", stdin_text=text).strip()


def _commit_tree(repo: RunsRepo, tree: str, parent: str, original: str) -> str:
    """A commit of ``tree`` on ``parent`` with ``original``'s author, date and message."""
    meta = git(repo.path, "log", "-1", "--format=%an%x00%ae%x00%ad%x00%B", "--date=raw",
               original)
    name, email, date, message = meta.split("\0", 3)
    env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": date}
    out = git(repo.path, *identity(repo.path), "commit-tree", tree, "-p", parent, "-F", "-",
              stdin_text=message.rstrip("\n") + "\n", extra_env=env)
    return out.strip()


def _is_ancestor(repo: RunsRepo, ancestor: str, commit: str) -> bool:
    """Whether ``ancestor`` is in ``commit``'s history (then it is their one merge base)."""
    return git(repo.path, "merge-base", ancestor, commit, check=False).strip() == ancestor
