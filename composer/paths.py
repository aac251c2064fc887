"""Every filesystem location composer uses, in one place."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from composer.errors import PreflightError

# The Terraform modules (``COMPOSER_MODULES_DIR`` overrides them) and the root module's
# templates, one folder per target: package data or the source tree (see resources.py).
from composer.resources import modules_dir as modules_dir
from composer.resources import templates_dir as templates_dir

PRIVATE = 0o700


def composer_home() -> Path:
    """Per-user state: run work dirs, the Terraform CLI config, address leases.

    ``COMPOSER_HOME`` overrides ``~/.composer``; a path that is, or lies below, something
    other than a directory is refused before anything is written."""
    override = os.environ.get("COMPOSER_HOME")
    home = Path(override).resolve() if override else Path.home() / ".composer"
    setting = f"COMPOSER_HOME={override}" if override else f"composer's home {home}"
    fix = ("point COMPOSER_HOME at a directory (composer creates it if missing), "
           "or unset it to use ~/.composer") if override else \
        f"move {home} aside, or set COMPOSER_HOME to a directory"
    for path in (home, *home.parents):
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise PreflightError(f"{setting}: cannot reach {path} ({exc.strerror})",
                                 hint=fix) from None
        if not stat.S_ISDIR(mode):
            where = "is" if path == home else f"lies below {path}, which is"
            raise PreflightError(f"{setting}: {home} {where} a file, not a directory",
                                 hint=fix)
        break
    return home


def work_root() -> Path:
    """Where each run's work dir lives (never committed; ``composer down`` reads it)."""
    return composer_home() / "work"


def work_dir(run_id: str) -> Path:
    return work_root() / run_id


def private_dir(path: Path, exist_ok: bool = True) -> Path:
    """Create ``path`` and its missing parents as directories only this user can enter:
    0700 from the start, whatever the umask. Existing parents are left as they are."""
    missing = []
    probe = path
    while not os.path.lexists(probe):
        missing.append(probe)
        probe = probe.parent
    if not missing and not exist_ok:
        raise FileExistsError(f"{path} exists")
    for directory in reversed(missing):
        try:
            os.mkdir(directory, PRIVATE)
        except FileExistsError:
            if directory == path and not exist_ok:
                raise
            continue
        os.chmod(directory, PRIVATE)
    return path


def make_work_dir(work: Path, *inside: Path) -> None:
    """Create a run's work dir (which must not exist yet) and the directories ``inside``
    it, each 0700. The work root above is made, or tightened to, 0700 as well: nothing
    in it is for other users."""
    root = work.parent
    private_dir(root)
    st = os.stat(root)
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != PRIVATE:
        os.chmod(root, PRIVATE)
    private_dir(work, exist_ok=False)
    for directory in inside:
        private_dir(directory)


def leases_dir() -> Path:
    """Machine-wide address leases of the local target, shared by every user and run."""
    override = os.environ.get("COMPOSER_LEASES_DIR")
    return Path(override) if override else Path("/tmp/composer-leases")
