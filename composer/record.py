"""The runs repository: a git repository holding one committed directory per run.

Each run lives in ``<repo>/<run_id>/`` and is tagged ``run/<run_id>``. Writers hold an
exclusive lock on ``.git/composer.lock`` so that concurrent processes never lose a
commit, and a run directory appears by an atomic rename, so a crash leaves either no
run directory or a complete one (a half-copied ``<run_id>.tmp-*`` directory is removed
by the next writer).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from composer.errors import RecordError, RunNotFound

RECORD_SCHEMA_VERSION = 1

FORBIDDEN: tuple[str, ...] = (
    "*.tfstate",
    "*.tfstate.*",
    "*.tfplan",
    ".terraform/",
    "terraform.tfstate.d/",
)
"""Names that must never be committed; a trailing ``/`` names a directory.

Each pattern is matched against every component of a path, so nothing below a
forbidden directory is committed either. Files whose content contains
``FORBIDDEN_CONTENT`` are refused as well.
"""

FORBIDDEN_CONTENT = b"PRIVATE KEY-----"

TAG_PREFIX = "run/"
RUNS_REPO_ENV = "COMPOSER_RUNS_REPO"
DEFAULT_REPO_DIR = "runs"
INITIAL_BRANCH = "main"
INIT_MESSAGE = "Initialize runs repository"
LOCK_NAME = "composer.lock"
GIT_TIMEOUT_S = 60.0
LOCK_POLL_S = 0.05
FALLBACK_NAME = "composer"
FALLBACK_EMAIL = "composer@localhost"

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_LEFTOVER = re.compile(r".+\.tmp-[0-9a-f]+")
_CHUNK = 1 << 20
_SCRUBBED_GIT_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)

README_TEXT = f"""\
# Runs repository

This repository is written by composer. Each top-level directory holds the record
of one run and is tagged `run/<run id>`; `composer runs` lists the recorded runs and
`git show --stat run/<run id>` shows what one of them holds.

composer commits here only under its lock and refuses Terraform state, plans and
private keys. Record schema version: {RECORD_SCHEMA_VERSION}.
"""

GITIGNORE_TEXT = """\
# Never commit Terraform state, plans or keys.
*.tfstate*
.terraform/
*.tfplan
*.key
id_*
# Unfinished run directories.
*.tmp-*/
"""


@dataclass(frozen=True)
class RunSummary:
    """One recorded run, as listed by ``composer runs``."""

    run_id: str
    job: str
    status: str
    nodes: int
    duration_s: float | None
    started_at: str
    commit: str
    tag: str


@dataclass(frozen=True)
class ForbiddenFile:
    """A path in a staged record that must not be committed, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path} ({self.reason})"


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_GIT_ENV}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"
    return env


def _git(
    repo: Path, *args: str, check: bool = True, stdin_text: str | None = None
) -> str:
    """Run ``git -C repo args...`` and return its stdout; failures raise RecordError."""
    command = f"git {' '.join(args)}"
    stdin_kw: dict[str, Any] = (
        {"stdin": subprocess.DEVNULL} if stdin_text is None else {"input": stdin_text}
    )
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="surrogateescape",
            env=_git_env(),
            timeout=GIT_TIMEOUT_S,
            check=False,
            **stdin_kw,
        )
    except FileNotFoundError as exc:
        raise RecordError(
            f"{command}: git is not installed", hint="install git and retry"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise RecordError(
            f"{command} in {repo} timed out after {GIT_TIMEOUT_S:.0f}s"
        ) from exc
    if check and proc.returncode != 0:
        detail = proc.stderr.strip() or "(git printed nothing)"
        raise RecordError(
            f"{command} failed in {repo} (exit {proc.returncode}): {detail}"
        )
    return proc.stdout


def _identity(repo: Path) -> tuple[str, ...]:
    """``-c`` options giving a fixed identity where the user has none configured."""
    if _git(repo, "config", "user.email", check=False).strip():
        if _git(repo, "config", "user.name", check=False).strip():
            return ()
        return ("-c", f"user.name={FALLBACK_NAME}")
    return ("-c", f"user.name={FALLBACK_NAME}", "-c", f"user.email={FALLBACK_EMAIL}")


@contextlib.contextmanager
def _os_errors(action: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise RecordError(f"{action}: {exc.strerror or exc}") from exc


def check_run_id(run_id: str) -> None:
    """Raise RecordError unless ``run_id`` is usable as a directory and tag name."""
    if (
        not _RUN_ID.fullmatch(run_id)
        or ".." in run_id
        or ".tmp-" in run_id
        or run_id.endswith((".", ".lock"))
    ):
        raise RecordError(
            f"invalid run id {run_id!r}",
            hint="run ids use letters, digits, '.', '_' and '-' and start with a "
            "letter or digit",
        )


def _forbidden_name(name: str, is_dir: bool) -> str | None:
    for pattern in FORBIDDEN:
        if pattern.endswith("/"):
            if is_dir and name == pattern[:-1]:
                return f"matches {pattern}"
        elif fnmatchcase(name, pattern):
            return f"matches {pattern}"
    if name == ".git":
        return "nested git metadata"
    return None


def _contains_marker(path: Path) -> bool:
    overlap = len(FORBIDDEN_CONTENT) - 1
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            if FORBIDDEN_CONTENT in tail + chunk:
                return True
            tail = chunk[-overlap:]
    return False


def _file_problem(path: Path) -> str | None:
    reason = _forbidden_name(path.name, is_dir=False)
    if reason:
        return reason
    try:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            return None
        if not stat.S_ISREG(mode):
            return "not a regular file"
        if _contains_marker(path):
            return "contains a private key"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    return None


def find_forbidden(root: Path) -> list[ForbiddenFile]:
    """Every path under ``root`` that must not be committed, sorted by path."""
    found: list[ForbiddenFile] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in list(dirnames):
            entry = base / name
            reason = _forbidden_name(name, is_dir=not entry.is_symlink())
            if reason:
                found.append(
                    ForbiddenFile(f"{entry.relative_to(root).as_posix()}/", reason)
                )
                dirnames.remove(name)
        for name in filenames:
            entry = base / name
            reason = _file_problem(entry)
            if reason:
                found.append(ForbiddenFile(entry.relative_to(root).as_posix(), reason))
    return sorted(found, key=lambda f: f.path)


def _refuse_forbidden(root: Path, run_id: str) -> None:
    found = find_forbidden(root)
    if found:
        listing = "\n".join(f"  {f}" for f in found)
        raise RecordError(
            f"refusing to record run {run_id}: {len(found)} forbidden "
            f"{'file' if len(found) == 1 else 'files'}\n{listing}",
            hint="Terraform state, plans and private keys never go into the runs "
            "repository; remove them from the record",
        )


def _has_files(root: Path) -> bool:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        if filenames or any((Path(dirpath) / name).is_symlink() for name in dirnames):
            return True
    return False


def _read_blobs(repo: Path, specs: list[str]) -> list[bytes | None]:
    """Contents of ``<rev>:<path>`` objects (None where missing), in one git call."""
    if not specs:
        return []
    data = _git(
        repo, "cat-file", "--batch", stdin_text="".join(f"{s}\n" for s in specs)
    )
    raw = data.encode("utf-8", "surrogateescape")
    blobs: list[bytes | None] = []
    pos = 0
    for _ in specs:
        end = raw.find(b"\n", pos)
        if end < 0:
            raise RecordError(f"git cat-file --batch in {repo}: output ended early")
        header = raw[pos:end].split()
        pos = end + 1
        if len(header) != 3 or not header[2].isdigit():
            blobs.append(None)
            continue
        size = int(header[2])
        blobs.append(raw[pos : pos + size] if header[1] == b"blob" else None)
        pos += size + 1
    return blobs


def _parse_object(blob: bytes | None) -> dict[str, Any] | None:
    if blob is None:
        return None
    try:
        value = json.loads(blob)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _as_str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _as_int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _as_float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _summary(run_id: str, commit: str, blob: bytes | None) -> RunSummary:
    result = _parse_object(blob) or {}
    return RunSummary(
        run_id=run_id,
        job=_as_str(result.get("job")),
        status=_as_str(result.get("status")) or "unknown",
        nodes=_as_int(result.get("nodes")),
        duration_s=_as_float(result.get("duration_s")),
        started_at=_as_str(result.get("started_at")),
        commit=commit,
        tag=f"{TAG_PREFIX}{run_id}",
    )


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


class RunsRepo:
    """A runs repository at ``path``: one directory and one ``run/<id>`` tag per run."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def run_dir(self, run_id: str) -> Path:
        check_run_id(run_id)
        return self.path / run_id

    def ensure(self) -> None:
        """Create the repository with an initial commit if needed; idempotent."""
        if not self._is_repo():
            self._create()
        with self.lock():
            self._remove_leftovers()
            if not self._has_commits():
                self._initial_commit()

    def commit_run(self, run_id: str, staged: Path, message: str) -> str:
        """Commit the record in ``staged`` as ``<run_id>/``, tag it, return the sha."""
        check_run_id(run_id)
        staged = Path(staged)
        if not staged.is_dir():
            raise RecordError(f"staged record {staged} is not a directory")
        if not message.strip():
            raise RecordError(f"empty commit message for run {run_id}")
        _refuse_forbidden(staged, run_id)
        if not _has_files(staged):
            raise RecordError(f"the staged record {staged} of run {run_id} is empty")
        self.ensure()
        with self.lock():
            self._remove_leftovers()
            self._check_new(run_id)
            self._place(run_id, staged)
            sha = self._commit(run_id, message)
            _git(self.path, "tag", f"{TAG_PREFIX}{run_id}", sha)
        return sha

    @contextlib.contextmanager
    def lock(self, timeout: float = 120.0) -> Iterator[None]:
        """Hold an exclusive flock on ``.git/composer.lock`` for the block."""
        lock_path = self._git_dir() / LOCK_NAME
        with _os_errors(f"cannot open the lock {lock_path}"):
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            _acquire(fd, lock_path, timeout)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def list_runs(self) -> list[RunSummary]:
        """Every tagged run, sorted by start time then run id."""
        tags = self._run_tags()
        specs = [f"{commit}:{run_id}/result.json" for run_id, commit in tags.items()]
        blobs = _read_blobs(self.path, specs)
        summaries = [
            _summary(run_id, commit, blob)
            for (run_id, commit), blob in zip(tags.items(), blobs, strict=True)
        ]
        return sorted(summaries, key=lambda s: (s.started_at, s.run_id))

    def resolve(self, ref: str) -> str:
        """The run id named by an exact id, a ``run/<id>`` tag or a unique prefix."""
        return _resolve(ref, sorted(self._run_tags()))

    def show(self, ref: str) -> dict[str, Any]:
        """The run's id, tag, commit, file list, parsed result.json and lock.json."""
        tags = self._run_tags()
        run_id = _resolve(ref, sorted(tags))
        commit = tags[run_id]
        prefix = f"{run_id}/"
        listing = _git(
            self.path, "ls-tree", "-r", "-z", "--name-only", commit, "--", prefix
        )
        files = sorted(
            name.removeprefix(prefix) for name in listing.split("\0") if name
        )
        result, lock = _read_blobs(
            self.path, [f"{commit}:{prefix}result.json", f"{commit}:{prefix}lock.json"]
        )
        return {
            "run_id": run_id,
            "tag": f"{TAG_PREFIX}{run_id}",
            "commit": commit,
            "files": files,
            "result": _parse_object(result),
            "lock": _parse_object(lock),
        }

    def read_file(self, run_id: str, name: str) -> bytes | None:
        """A file of the run's record as committed (None when it has no such file)."""
        commit = self._run_tags().get(run_id)
        if commit is None:
            raise RunNotFound(f"no run '{run_id}' in {self.path}")
        return _read_blobs(self.path, [f"{commit}:{run_id}/{name}"])[0]

    def export(self, run_id: str, dest: Path) -> Path:
        """Write the run's committed record into ``dest`` (created); return it."""
        commit = self._run_tags().get(run_id)
        if commit is None:
            raise RunNotFound(f"no run '{run_id}' in {self.path}")
        data = subprocess.run(
            ["git", "-C", str(self.path), "archive", "--format=tar", commit, f"{run_id}/"],
            capture_output=True, timeout=120, check=False, env=_git_env(),
        )
        if data.returncode != 0:
            raise RecordError(f"git archive of run {run_id} failed: {data.stderr.decode()}")
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data.stdout)) as tar:
            for member in tar.getmembers():
                member.name = member.name.removeprefix(f"{run_id}/")
                if member.name and (member.isfile() or member.isdir()):
                    tar.extract(member, dest, filter="data")
        return dest

    def _is_repo(self) -> bool:
        return (self.path / ".git").exists()

    def _git_dir(self) -> Path:
        dot_git = self.path / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.exists():
            return Path(_git(self.path, "rev-parse", "--absolute-git-dir").strip())
        raise RecordError(
            f"{self.path} is not a runs repository",
            hint="it is created by the first recorded run",
        )

    def _create(self) -> None:
        path = self.path
        if path.exists() and not path.is_dir():
            raise RecordError(
                f"runs repository {path} exists and is not a directory",
                hint="point --runs-repo or COMPOSER_RUNS_REPO at a directory",
            )
        with _os_errors(f"cannot create the runs repository {path}"):
            if path.is_dir() and any(path.iterdir()):
                if self._is_repo():
                    return
                raise RecordError(
                    f"{path} is not empty and is not a git repository",
                    hint="point --runs-repo or COMPOSER_RUNS_REPO at an empty or "
                    "missing directory, or at an existing runs repository",
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            fresh = path.parent / f".{path.name}.init-{secrets.token_hex(6)}"
            fresh.mkdir()
        try:
            _git(fresh, "init", "-q", "-b", INITIAL_BRANCH)
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
            _git(self.path, "init", "-q", "-b", INITIAL_BRANCH)
        except RecordError:
            if not self._is_repo():
                raise

    def _has_commits(self) -> bool:
        out = _git(
            self.path, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False
        )
        return bool(out.strip())

    def _initial_commit(self) -> None:
        names = ("README.md", ".gitignore")
        with _os_errors(f"cannot write to the runs repository {self.path}"):
            for name, text in zip(names, (README_TEXT, GITIGNORE_TEXT), strict=True):
                target = self.path / name
                if not target.exists():
                    target.write_text(text, encoding="utf-8")
        _git(self.path, "add", "--", *names)
        _git(
            self.path,
            *_identity(self.path),
            "commit",
            "-q",
            "-m",
            INIT_MESSAGE,
            "--",
            *names,
        )

    def _remove_leftovers(self) -> None:
        with _os_errors(f"cannot clean the runs repository {self.path}"):
            for entry in self.path.iterdir():
                if not _LEFTOVER.fullmatch(entry.name) or entry.is_symlink():
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry)

    def _check_new(self, run_id: str) -> None:
        if os.path.lexists(self.path / run_id):
            raise RecordError(
                f"run {run_id} already exists in {self.path / run_id}",
                hint="run ids are unique; record the run under a new id",
            )
        tag = f"refs/tags/{TAG_PREFIX}{run_id}"
        if _git(self.path, "rev-parse", "-q", "--verify", tag, check=False).strip():
            raise RecordError(
                f"run {run_id} is already tagged in {self.path}",
                hint="run ids are unique; record the run under a new id",
            )

    def _place(self, run_id: str, staged: Path) -> None:
        """Copy ``staged`` to a temporary directory, check it, rename it into place."""
        partial = self.path / f"{run_id}.tmp-{secrets.token_hex(6)}"
        try:
            with _os_errors(f"cannot copy the record of run {run_id}"):
                shutil.copytree(staged, partial, symlinks=True)
            _refuse_forbidden(partial, run_id)
            if not _has_files(partial):
                raise RecordError(f"the record of run {run_id} holds no files")
            with _os_errors(f"cannot move the record of run {run_id} into place"):
                os.rename(partial, self.path / run_id)
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    def _commit(self, run_id: str, message: str) -> str:
        try:
            self._refuse_ignored(run_id)
            _git(self.path, "add", "--", run_id)
            _git(
                self.path,
                *_identity(self.path),
                "commit",
                "-q",
                "-m",
                message,
                "--",
                run_id,
            )
        except RecordError:
            _git(self.path, "reset", "-q", "--", run_id, check=False)
            shutil.rmtree(self.path / run_id, ignore_errors=True)
            raise
        return _git(self.path, "rev-parse", "HEAD").strip()

    def _refuse_ignored(self, run_id: str) -> None:
        out = _git(
            self.path,
            "ls-files",
            "-z",
            "--others",
            "--ignored",
            "--exclude-standard",
            "--",
            run_id,
        )
        ignored = sorted(name for name in out.split("\0") if name)
        if ignored:
            listing = "\n".join(f"  {name}" for name in ignored)
            raise RecordError(
                f"refusing to record run {run_id}: the repository's .gitignore "
                f"excludes\n{listing}",
                hint="rename or remove these files from the record",
            )

    def _run_tags(self) -> dict[str, str]:
        """Run id -> commit sha for every ``run/*`` tag (empty if no repository yet)."""
        if not self.path.exists():
            return {}
        if not self._is_repo():
            raise RecordError(
                f"{self.path} is not a git repository",
                hint="point --runs-repo or COMPOSER_RUNS_REPO at a runs repository",
            )
        out = _git(
            self.path,
            "for-each-ref",
            "--format=%(refname)%09%(objectname)%09%(*objectname)",
            f"refs/tags/{TAG_PREFIX}",
        )
        tags: dict[str, str] = {}
        for line in out.splitlines():
            refname, obj, peeled = (line.split("\t") + ["", ""])[:3]
            run_id = refname.removeprefix(f"refs/tags/{TAG_PREFIX}")
            if _RUN_ID.fullmatch(run_id):
                tags[run_id] = peeled or obj
        return tags


def _resolve(ref: str, run_ids: list[str]) -> str:
    wanted = ref.strip().removeprefix("refs/tags/").removeprefix(TAG_PREFIX)
    if wanted in run_ids:
        return wanted
    matches = [run_id for run_id in run_ids if wanted and run_id.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(matches[:10]) + (", ..." if len(matches) > 10 else "")
        raise RunNotFound(
            f"{ref!r} matches {len(matches)} runs: {shown}",
            hint="give more characters of the run id",
        )
    raise RunNotFound(
        f"no recorded run matches {ref!r}", hint="composer runs lists the recorded runs"
    )


def default_repo_path(cli_value: str | None, spec_value: str | None, cwd: Path) -> Path:
    """The runs repository: --runs-repo, $COMPOSER_RUNS_REPO, the spec, then ./runs.

    Relative paths resolve against ``cwd``; the result is absolute.
    """
    env_value = os.environ.get(RUNS_REPO_ENV)
    candidates = (cli_value, env_value, spec_value)
    chosen = next((v for v in candidates if v and v.strip()), DEFAULT_REPO_DIR)
    path = Path(chosen).expanduser()
    if not path.is_absolute():
        path = Path(cwd) / path
    return Path(os.path.abspath(path))
