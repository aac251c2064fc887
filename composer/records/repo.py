"""The runs repository: a git repository holding one committed directory per run.

Each run lives in ``<repo>/<run_id>/`` and is tagged ``run/<run_id>``. Writers hold an
exclusive lock on ``.git/composer.lock`` so that concurrent processes never lose a
commit, and a run directory appears by an atomic rename, so a crash leaves either no
run directory or a complete one (a half-copied ``<run_id>.tmp-<12 hex>`` directory,
named exactly so, is removed by the next writer; nothing else is).

A run's files are added by name (``git add -f`` of exactly what the guard let in),
so neither the repository's ``.gitignore`` (old repositories ignored ``id_*`` and
``*.key``) nor a user's global excludes drop or refuse any of them.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import secrets
import shutil
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from composer.errors import RecordError, RunNotFound
from composer.jsonfile import dump_json
from composer.records import guard, refs
from composer.records.git import git, git_bytes, identity, os_errors, read_blobs
from composer.records.names import (
    TAG_PREFIX,
    TMP_HEX,
    RunsRepoError,
    check_run_id,
    is_placing_name,
    is_run_id,
    placing_name,
)
from composer.records.read import REPO_HINT, RunSummary, parse_object, resolve, summary
from composer.records.readme import README, render_readme

RECORD_SCHEMA_VERSION = 1
RUNS_REPO_ENV = "COMPOSER_RUNS_REPO"
DEFAULT_REPO_DIR = "runs"
INITIAL_BRANCH = "main"
INIT_MESSAGE = "Initialize runs repository"
LOCK_NAME = "composer.lock"
LOCK_POLL_S = 0.05
FIX_HINT = ("point --runs-repo or COMPOSER_RUNS_REPO (or [record] repo) at a missing or "
            "empty directory, or at an existing runs repository")

READ_HINT = ("point --runs-repo or COMPOSER_RUNS_REPO at a runs repository (a git "
             "repository composer created), or unset them to read ./runs")

README_TEXT = f"""\
# Runs repository

This repository is written by composer. Each top-level directory holds the record
of one run and is tagged `run/<run id>`; `composer runs` lists the recorded runs and
`git show --stat run/<run id>` shows what one of them holds.

composer commits here only under its lock and never commits Terraform state, plans
or private keys; outputs that look like them are listed in the run's
`manifest.json` as withheld. Record schema version: {RECORD_SCHEMA_VERSION}.
"""

GITIGNORE_TEXT = f"""\
# composer's own artifacts only; a run's files are added by name whatever this says.
/*/infra/**/.terraform/
/*/infra/**/*.tfstate
/*/infra/**/*.tfstate.*
/*/infra/**/*.tfplan
# Run directories being placed (<run id>.tmp-<12 hex digits>).
/*.tmp-{"[0-9a-f]" * TMP_HEX}/
"""


def _acquire(fd: int, lock_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if time.monotonic() >= deadline:
            raise RecordError(
                f"timed out after {timeout:g}s waiting for the lock {lock_path}",
                hint="another composer process is writing to this runs repository; "
                "wait for it to finish or stop it",
            )
        time.sleep(LOCK_POLL_S)


def _refuse_forbidden(root: Path, run_id: str) -> None:
    found = guard.find_forbidden(root)
    if found:
        listing = "\n".join(f"  {f}" for f in found)
        raise RecordError(
            f"refusing to record run {run_id}: {len(found)} forbidden "
            f"{'file' if len(found) == 1 else 'files'}\n{listing}",
            hint="Terraform state, plans and private keys never go into the runs "
            "repository; remove them from the record",
        )


def _record_files(root: Path) -> list[str]:
    """Every file (and symlink) under ``root``, relative to it, sorted."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        names = filenames + [d for d in dirnames if (base / d).is_symlink()]
        found += [(base / name).relative_to(root).as_posix() for name in names]
    return sorted(found)


def _first_existing(path: Path) -> Path:
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _refresh_readme(run_dir: Path, run_id: str) -> list[str]:
    """The record's README.md again, after its result changed (``amend_result``): its
    name to commit, or nothing when the record has none here or it cannot be made."""
    path = run_dir / README
    if not path.is_file() or path.is_symlink():
        return []
    try:
        text = render_readme(run_dir)
        tmp = path.with_name(f"{README}.tmp{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except Exception:  # noqa: BLE001 - the result's update matters more than its README
        return []
    return [f"{run_id}/{README}"]


class RunsRepo:
    """A runs repository at ``path``: one directory and one ``run/<id>`` tag per run.

    ``source`` says which setting chose ``path`` (``--runs-repo``, ...), for messages."""

    def __init__(self, path: Path, source: str = "") -> None:
        self.path = Path(path)
        self.source = source

    def describe(self) -> str:
        """The path, and the setting that chose it when known."""
        return f"{self.path} (from {self.source})" if self.source else str(self.path)

    def run_dir(self, run_id: str) -> Path:
        check_run_id(run_id)
        return self.path / run_id

    # -- before anything is created -----------------------------------------

    def validate(self) -> None:
        """Raise RunsRepoError (exit 2) unless a run can be recorded here; creates nothing."""
        path = self.path
        if path.is_symlink() and not path.exists():
            raise RunsRepoError(f"runs repository {path} is a dangling symlink", hint=FIX_HINT)
        if path.exists() and not path.is_dir():
            raise RunsRepoError(
                f"runs repository {path} exists and is not a directory", hint=FIX_HINT
            )
        if path.is_dir():
            with os_errors(f"cannot read the runs repository {path}"):
                entries = any(path.iterdir())
            if entries and not self._is_repo():
                raise RunsRepoError(
                    f"{path} is not empty and is not a git repository", hint=FIX_HINT
                )
            where = self._git_dir() if self._is_repo() else path
        else:
            where = _first_existing(path.parent)
            if not where.is_dir():
                raise RunsRepoError(
                    f"runs repository {path} cannot be created: {where} is not a directory",
                    hint=FIX_HINT,
                )
        if not os.access(where, os.W_OK | os.X_OK):
            raise RunsRepoError(
                f"runs repository {path} is not writable ({where})",
                hint="fix its permissions, or " + FIX_HINT,
            )

    def ensure(self) -> None:
        """Create the repository with an initial commit if needed; idempotent."""
        if not self._is_repo():
            self._create()
        with self.lock():
            self._ready()

    def _ready(self) -> None:
        """Under the lock: no half-placed run directories, and a first commit."""
        self._remove_leftovers()
        if not self._has_commits():
            self._initial_commit()

    # -- writing -------------------------------------------------------------

    def commit_run(self, run_id: str, staged: Path, message: str) -> str:
        """Commit the record in ``staged`` as ``<run_id>/``, tag it, return the sha."""
        check_run_id(run_id)
        staged = Path(staged)
        if not staged.is_dir():
            raise RecordError(f"staged record {staged} is not a directory")
        if not message.strip():
            raise RecordError(f"empty commit message for run {run_id}")
        if not _record_files(staged):
            raise RecordError(f"the staged record {staged} of run {run_id} is empty")
        if not self._is_repo():
            self._create()
        with self.lock():
            self._ready()
            self._check_new(run_id)
            self._place(run_id, staged)
            sha = self._commit(run_id, message)
            git(self.path, "tag", f"{TAG_PREFIX}{run_id}", sha)
        return sha

    def amend_result(self, run_id: str, changes: dict[str, Any], message: str) -> str:
        """Commit ``changes`` to the recorded ``result.json`` of ``run_id`` as a new commit
        and move the run's tag to it (the first commit stays in history); return the sha."""
        check_run_id(run_id)
        with self.lock():
            commit = self._run_tags().get(run_id)
            if commit is None:
                raise RunNotFound(f"no run '{run_id}' in {self.describe()}", hint=REPO_HINT)
            blob = read_blobs(self.path, [f"{commit}:{run_id}/result.json"])[0]
            result = {**(parse_object(blob) or {}), **changes}
            name = f"{run_id}/result.json"
            target = self.path / name
            with os_errors(f"cannot update the record of run {run_id}"):
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f"result.json.tmp{os.getpid()}")
                tmp.write_text(dump_json(result), encoding="utf-8")
                os.replace(tmp, target)
            names = [name, *_refresh_readme(self.path / run_id, run_id)]
            git(self.path, "add", "-f", "--", *names)
            git(self.path, *identity(self.path), "commit", "-q", "--no-verify", "-m", message,
                "--", *names)
            sha = git(self.path, "rev-parse", "HEAD").strip()
            git(self.path, "tag", "-f", f"{TAG_PREFIX}{run_id}", sha)
        return sha

    @contextlib.contextmanager
    def lock(self, timeout: float = 120.0) -> Iterator[None]:
        """Hold an exclusive flock on ``.git/composer.lock`` for the block."""
        lock_path = self._git_dir() / LOCK_NAME
        with os_errors(f"cannot open the lock {lock_path}"):
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            _acquire(fd, lock_path, timeout)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # -- reading -------------------------------------------------------------

    def list_runs(self) -> list[RunSummary]:
        """Every tagged run, sorted by start time then run id."""
        tags = self._run_tags()
        specs = [f"{commit}:{run_id}/result.json" for run_id, commit in tags.items()]
        blobs = read_blobs(self.path, specs)
        summaries = [
            summary(run_id, commit, blob)
            for (run_id, commit), blob in zip(tags.items(), blobs, strict=True)
        ]
        return sorted(summaries, key=lambda s: (s.started_at, s.run_id))

    def resolve(self, ref: str) -> str:
        """The run id named by an exact id, a ``run/<id>`` tag or a unique prefix."""
        return resolve(ref, sorted(self._run_tags()), self.describe())

    def run_ids(self) -> list[str]:
        """Every tagged run id, sorted (empty when there is no repository yet)."""
        return sorted(self._run_tags())

    def show(self, ref: str) -> dict[str, Any]:
        """The run's id, tag, commit, file list, parsed result.json and lock.json."""
        tags = self._run_tags()
        run_id = resolve(ref, sorted(tags), self.describe())
        commit = tags[run_id]
        prefix = f"{run_id}/"
        listing = git(
            self.path, "ls-tree", "-r", "-z", "--name-only", commit, "--", prefix
        )
        files = sorted(
            name.removeprefix(prefix) for name in listing.split("\0") if name
        )
        result, lock = read_blobs(
            self.path, [f"{commit}:{prefix}result.json", f"{commit}:{prefix}lock.json"]
        )
        return {
            "run_id": run_id,
            "tag": f"{TAG_PREFIX}{run_id}",
            "commit": commit,
            "files": files,
            "result": parse_object(result),
            "lock": parse_object(lock),
        }

    def read_file(self, run_id: str, name: str) -> bytes | None:
        """A file of the run's record as committed (None when it has no such file)."""
        commit = self._run_tags().get(run_id)
        if commit is None:
            raise RunNotFound(f"no run '{run_id}' in {self.describe()}", hint=REPO_HINT)
        return read_blobs(self.path, [f"{commit}:{run_id}/{name}"])[0]

    def export(self, run_id: str, dest: Path) -> Path:
        """Write the run's committed record into ``dest`` (created); return it."""
        commit = self._run_tags().get(run_id)
        if commit is None:
            raise RunNotFound(f"no run '{run_id}' in {self.describe()}", hint=REPO_HINT)
        data = git_bytes(self.path, "archive", "--format=tar", commit, f"{run_id}/")
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                member.name = member.name.removeprefix(f"{run_id}/")
                if member.name and (member.isfile() or member.isdir()):
                    tar.extract(member, dest, filter="data")
        return dest

    # -- internals -----------------------------------------------------------

    def _is_repo(self) -> bool:
        return (self.path / ".git").exists()

    def _git_dir(self) -> Path:
        dot_git = self.path / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.exists():
            return Path(git(self.path, "rev-parse", "--absolute-git-dir").strip())
        raise RecordError(
            f"{self.path} is not a runs repository",
            hint="it is created by the first recorded run",
        )

    def _create(self) -> None:
        self.validate()
        path = self.path
        if path.is_dir() and any(path.iterdir()):
            return
        with os_errors(f"cannot create the runs repository {path}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            fresh = path.parent / f".{path.name}.init-{secrets.token_hex(6)}"
            fresh.mkdir()
        try:
            git(fresh, "init", "-q", "-b", INITIAL_BRANCH)
            self._install(fresh)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)

    def _install(self, fresh: Path) -> None:
        """Move a freshly initialized repository into place; losing a race is fine."""
        try:
            os.rename(fresh, self.path)
            return
        except OSError:
            if self._is_repo():
                return
        if not self.path.is_dir() or any(self.path.iterdir()):
            raise RecordError(f"cannot create the runs repository {self.path}")
        try:
            git(self.path, "init", "-q", "-b", INITIAL_BRANCH)
        except RecordError:
            if not self._is_repo():
                raise

    def _verified(self, known: str | None, rev: str) -> str | None:
        """What ``refs`` read from the repository's files, or where it cannot say
        (``UNKNOWN``), what git verifies ``rev`` as; None when there is no such thing."""
        if known != refs.UNKNOWN:
            return known
        return git(self.path, "rev-parse", "-q", "--verify", rev, check=False).strip() or None

    def _has_commits(self) -> bool:
        return self._verified(refs.head_commit(self._git_dir()), "HEAD^{commit}") is not None

    def _initial_commit(self) -> None:
        names = ("README.md", ".gitignore")
        with os_errors(f"cannot write to the runs repository {self.path}"):
            for name, text in zip(names, (README_TEXT, GITIGNORE_TEXT), strict=True):
                target = self.path / name
                if not target.exists():
                    target.write_text(text, encoding="utf-8")
        git(self.path, "add", "-f", "--", *names)
        git(self.path, *identity(self.path), "commit", "-q", "--no-verify", "-m", INIT_MESSAGE,
            "--", *names)

    def _remove_leftovers(self) -> None:
        """Remove half-placed run directories: only names exactly as ``_place`` makes them."""
        with os_errors(f"cannot clean the runs repository {self.path}"):
            for entry in self.path.iterdir():
                if is_placing_name(entry.name) and entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)

    def _check_new(self, run_id: str) -> None:
        if os.path.lexists(self.path / run_id):
            raise RecordError(
                f"run {run_id} already exists in {self.path / run_id}",
                hint="run ids are unique; record the run under a new id",
            )
        tag = f"refs/tags/{TAG_PREFIX}{run_id}"
        if self._verified(refs.ref_value(self._git_dir(), tag), tag) is not None:
            raise RecordError(
                f"run {run_id} is already tagged in {self.path}",
                hint="run ids are unique; record the run under a new id",
            )

    def _place(self, run_id: str, staged: Path) -> None:
        """Copy ``staged`` to a temporary directory, screen it, rename it into place."""
        partial = self.path / placing_name(run_id, secrets.token_hex(TMP_HEX // 2))
        try:
            with os_errors(f"cannot copy the record of run {run_id}"):
                shutil.copytree(staged, partial, symlinks=True)
            guard.screen_record(partial)
            _refuse_forbidden(partial, run_id)
            if not _record_files(partial):
                raise RecordError(f"the record of run {run_id} holds no files")
            with os_errors(f"cannot move the record of run {run_id} into place"):
                os.rename(partial, self.path / run_id)
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    def _commit(self, run_id: str, message: str) -> str:
        names = [f"{run_id}/{name}" for name in _record_files(self.path / run_id)]
        try:
            git(self.path, "add", "-f", "--pathspec-from-file=-", "--pathspec-file-nul",
                stdin_text="".join(f"{name}\0" for name in names))
            git(self.path, *identity(self.path), "commit", "-q", "--no-verify", "-m", message,
                "--", run_id)
        except RecordError:
            git(self.path, "reset", "-q", "--", run_id, check=False)
            shutil.rmtree(self.path / run_id, ignore_errors=True)
            raise
        sha = refs.head_commit(self._git_dir())
        if sha is None or sha == refs.UNKNOWN:
            sha = git(self.path, "rev-parse", "HEAD").strip()
        return sha

    def _run_tags(self) -> dict[str, str]:
        """Run id -> commit sha for every ``run/*`` tag (empty if no repository yet:
        a missing path or an empty directory); exit 2 for anything else not a repo."""
        where = self.describe()
        if not os.path.lexists(self.path):
            return {}
        if not self.path.is_dir():
            raise RunsRepoError(f"runs repository {where} is not a directory",
                                hint=READ_HINT)
        if not self._is_repo():
            with os_errors(f"cannot read the runs repository {where}"):
                if not any(self.path.iterdir()):
                    return {}
            raise RunsRepoError(f"runs repository {where} is not a git repository",
                                hint=READ_HINT)
        out = git(
            self.path,
            "for-each-ref",
            "--format=%(refname)%09%(objectname)%09%(*objectname)",
            f"refs/tags/{TAG_PREFIX}",
        )
        tags: dict[str, str] = {}
        for line in out.splitlines():
            refname, obj, peeled = (line.split("\t") + ["", ""])[:3]
            run_id = refname.removeprefix(f"refs/tags/{TAG_PREFIX}")
            if is_run_id(run_id):
                tags[run_id] = peeled or obj
        return tags


def choose_repo(cli_value: str | None, spec_value: str | None, cwd: Path,
                spec_file: Path | None = None) -> RunsRepo:
    """The runs repository, with the setting that chose it: ``--runs-repo``, then
    ``$COMPOSER_RUNS_REPO``, then the spec's ``[record] repo``, then ``./runs``.

    ``--runs-repo``, ``$COMPOSER_RUNS_REPO`` and the default resolve against ``cwd``;
    a relative ``[record] repo`` against the directory of ``spec_file`` (the job file:
    the spec is the unit), or ``cwd`` when there is none. The path is absolute.
    """
    env_value = os.environ.get(RUNS_REPO_ENV)
    spec_dir = Path(cwd) if spec_file is None else Path(spec_file).parent
    spec_name = "[record] repo" + (f" of {spec_file}" if spec_file is not None else "")
    candidates = ((cli_value, "--runs-repo", cwd), (env_value, RUNS_REPO_ENV, cwd),
                  (spec_value, spec_name, spec_dir))
    chosen, source, base = next(
        ((v, s, b) for v, s, b in candidates if v and v.strip()),
        (DEFAULT_REPO_DIR, f"the default ./{DEFAULT_REPO_DIR}", cwd),
    )
    path = Path(chosen).expanduser()
    if not path.is_absolute():
        path = Path(base) / path
    return RunsRepo(Path(os.path.abspath(path)), source)


def default_repo_path(cli_value: str | None, spec_value: str | None, cwd: Path,
                      spec_file: Path | None = None) -> Path:
    """The path of ``choose_repo``."""
    return choose_repo(cli_value, spec_value, cwd, spec_file).path
