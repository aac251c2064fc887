"""The one git runner of the runs repository.

Only composer's own rules apply inside the runs repository: a user's global
excludes, attributes, hooks, line-ending conversion or signing settings never
decide what a record holds or whether it can be committed. Pathspecs are literal,
so a file named ``*.txt`` or ``:x`` is just that file.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from composer.errors import RecordError

GIT_TIMEOUT_S = 60.0
FALLBACK_NAME = "composer"
FALLBACK_EMAIL = "composer@localhost"

OWN_RULES: tuple[str, ...] = (
    "core.excludesFile=/dev/null",
    "core.attributesFile=/dev/null",
    "core.hooksPath=/dev/null",
    "core.autocrlf=false",
    "core.safecrlf=false",
    "core.fsmonitor=false",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "tag.forceSignAnnotated=false",
)
"""``-c`` settings given to every git command composer runs in the runs repository."""

_SCRUBBED_GIT_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
)


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_GIT_ENV}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"
    return env


def git_argv(repo: Path, *args: str) -> list[str]:
    options = [item for rule in OWN_RULES for item in ("-c", rule)]
    return ["git", "-C", str(repo), "--literal-pathspecs", *options, *args]


def git(repo: Path, *args: str, check: bool = True, stdin_text: str | None = None,
        extra_env: Mapping[str, str] | None = None, merge_stderr: bool = False) -> str:
    """Run ``git -C repo args...`` and return its stdout; failures raise RecordError.

    Text goes both ways as UTF-8 with surrogate escapes, so any file name survives.
    ``extra_env`` adds variables (``commit-tree``'s author); ``merge_stderr`` returns
    stderr after stdout (``push --porcelain`` explains a rejection there).
    """
    command = f"git {' '.join(args)}"
    stdin_kw: dict[str, Any] = (
        {"stdin": subprocess.DEVNULL} if stdin_text is None else {"input": stdin_text}
    )
    try:
        proc = subprocess.run(
            git_argv(repo, *args),
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="surrogateescape",
            env={**git_env(), **(extra_env or {})},
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
    return proc.stdout + (proc.stderr if merge_stderr else "")


def git_bytes(repo: Path, *args: str, timeout: float = 120.0) -> bytes:
    """Run git and return its raw stdout (``git archive``)."""
    try:
        proc = subprocess.run(
            git_argv(repo, *args), capture_output=True, timeout=timeout, check=False,
            env=git_env(), stdin=subprocess.DEVNULL,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        raise RecordError(f"git {' '.join(args)} in {repo} failed: {exc}") from exc
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip()
        raise RecordError(f"git {' '.join(args)} failed in {repo}: {detail}")
    return proc.stdout


def identity(repo: Path) -> tuple[str, ...]:
    """``-c`` options giving a fixed identity where the user has none configured: the
    name where only the email is set, both where the email is not (an empty value
    counts as none). One ``git config`` reads both settings."""
    listed = git(repo, "config", "-z", "--get-regexp", r"^user\.(name|email)$", check=False)
    found: dict[str, str] = {}
    for entry in listed.split("\0"):
        key, _, value = entry.partition("\n")
        if key:
            found[key] = value  # the last value wins, as with ``git config KEY``
    if found.get("user.email", "").strip():
        if found.get("user.name", "").strip():
            return ()
        return ("-c", f"user.name={FALLBACK_NAME}")
    return ("-c", f"user.name={FALLBACK_NAME}", "-c", f"user.email={FALLBACK_EMAIL}")


@contextlib.contextmanager
def os_errors(action: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise RecordError(f"{action}: {exc.strerror or exc}") from exc


def read_blobs(repo: Path, specs: list[str]) -> list[bytes | None]:
    """Contents of ``<rev>:<path>`` objects (None where missing), in one git call."""
    if not specs:
        return []
    data = git(repo, "cat-file", "--batch", stdin_text="".join(f"{s}\n" for s in specs))
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
