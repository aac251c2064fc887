"""Run ids, tags and the names composer gives its own temporary entries."""

from __future__ import annotations

import re

from composer.errors import ExitCode, RecordError

TAG_PREFIX = "run/"
TMP_INFIX = ".tmp-"
TMP_HEX = 12

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_PLACING = re.compile(rf"(?P<run_id>.+){re.escape(TMP_INFIX)}[0-9a-f]{{{TMP_HEX}}}")


class InvalidRunId(RecordError):  # noqa: N818 - reads as a state, like RunNotFound
    """A run id (or a reference to one) that cannot name a directory or a tag."""

    exit_code = ExitCode.INVALID_INPUT


class RunsRepoError(RecordError):
    """A runs repository that cannot be used, found before anything is created."""

    exit_code = ExitCode.INVALID_INPUT


class AmbiguousRunId(RecordError):  # noqa: N818 - reads as a state, like RunNotFound
    """A run id prefix that names more than one run composer knows of."""

    exit_code = ExitCode.INVALID_INPUT


def ambiguous(ref: str, matches: list[str], where: str) -> AmbiguousRunId:
    """The error for ``ref`` matching several runs, listing them (at most 10)."""
    shown = ", ".join(matches[:10]) + (", ..." if len(matches) > 10 else "")
    return AmbiguousRunId(
        f"{ref!r} matches {len(matches)} runs{where}: {shown}",
        hint="give more characters of the run id, or the whole id",
    )


def is_run_id(run_id: str) -> bool:
    return bool(
        _RUN_ID.fullmatch(run_id)
        and ".." not in run_id
        and TMP_INFIX not in run_id
        and not run_id.endswith((".", ".lock"))
    )


def check_run_id(run_id: str) -> None:
    """Raise InvalidRunId (exit 2) unless ``run_id`` is usable as a directory and tag name."""
    if not is_run_id(run_id):
        raise InvalidRunId(
            f"invalid run id {run_id!r}",
            hint="run ids use letters, digits, '.', '_' and '-' and start with a "
            "letter or digit",
        )


def strip_tag(ref: str) -> str:
    """``refs/tags/run/<id>`` or ``run/<id>`` -> ``<id>``."""
    return ref.strip().removeprefix("refs/tags/").removeprefix(TAG_PREFIX)


def placing_name(run_id: str, token: str) -> str:
    """The directory a record is copied into before its rename: ``<id>.tmp-<12 hex>``."""
    return f"{run_id}{TMP_INFIX}{token}"


def is_placing_name(name: str) -> bool:
    """Whether ``name`` is exactly what ``placing_name`` makes (a valid id, 12 hex digits)."""
    match = _PLACING.fullmatch(name)
    return bool(match and is_run_id(match["run_id"]))
