"""The runs repository (façade): the names the rest of composer imports.

The work is split by job under ``composer/records/``: ``names`` (run ids),
``git`` (the git runner), ``manifest``, ``guard`` (what may enter a record),
``read`` (summaries, lookup) and ``repo`` (``RunsRepo``).
"""

from __future__ import annotations

from composer.records.git import git as _git
from composer.records.guard import (
    FORBIDDEN,
    FORBIDDEN_CONTENT,
    ForbiddenFile,
    Withheld,
    find_forbidden,
    screen_outputs,
    screen_record,
)
from composer.records.manifest import LEGACY_MANIFEST, MANIFEST
from composer.records.manifest import load as load_manifest
from composer.records.names import (
    TAG_PREFIX,
    AmbiguousRunId,
    InvalidRunId,
    RunsRepoError,
    check_run_id,
    is_run_id,
    strip_tag,
)
from composer.records.read import RunSummary
from composer.records.repo import (
    DEFAULT_REPO_DIR,
    GITIGNORE_TEXT,
    README_TEXT,
    RECORD_SCHEMA_VERSION,
    RUNS_REPO_ENV,
    RunsRepo,
    choose_repo,
    default_repo_path,
)

__all__ = [
    "DEFAULT_REPO_DIR",
    "FORBIDDEN",
    "FORBIDDEN_CONTENT",
    "GITIGNORE_TEXT",
    "LEGACY_MANIFEST",
    "MANIFEST",
    "README_TEXT",
    "RECORD_SCHEMA_VERSION",
    "RUNS_REPO_ENV",
    "TAG_PREFIX",
    "AmbiguousRunId",
    "ForbiddenFile",
    "InvalidRunId",
    "RunSummary",
    "RunsRepo",
    "RunsRepoError",
    "Withheld",
    "_git",
    "check_run_id",
    "choose_repo",
    "default_repo_path",
    "find_forbidden",
    "is_run_id",
    "load_manifest",
    "screen_outputs",
    "screen_record",
    "strip_tag",
]
