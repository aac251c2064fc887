"""Helpers for the tests of composer as a user installs it: a wheel, a fresh venv.

The wheel is built the way a release is (``python -m build``: sdist, then the wheel from
the sdist) from a copy of the checkout's files, with the build tools of the test venv
(``--no-isolation``: no package index needed). A fresh venv lies in a temporary
directory; it gets the wheel and nothing of the checkout. Its dependencies come from the
test venv through a directory of links to everything there except composer's own
packages and metadata (installing them again from an index would take minutes and need
the network, and would test pip rather than composer).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.conftest import ROOT

OWN = ("composer", "composer_runs", "__editable__", "composer_runs-")


def checkout_files() -> list[str]:
    """The checkout's files as git sees them: tracked, and new ones not ignored."""
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def build_wheel(workdir: Path) -> Path:
    """Build the sdist and, from it, the wheel; return the wheel's path."""
    source = workdir / "source"
    for name in checkout_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    dist = workdir / "dist"
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                           str(dist), str(source)], capture_output=True, text=True,
                          timeout=300, check=False, env=clean_env())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    wheels = sorted(dist.glob("composer_runs-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {dist}: {os.listdir(dist)}"
    return wheels[0]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that points into the checkout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "COMPOSER_MODULES_DIR",
                        "COMPOSER_RUNS_REPO", "PYTHONHOME")}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and p != venv_bin)
    env.update(extra)
    return env


def dependencies_dir(workdir: Path) -> Path:
    """Links to every entry of this venv's site-packages but composer's own."""
    links = workdir / "deps"
    if links.is_dir():
        return links
    links.mkdir(parents=True)
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        if entry.name.startswith(OWN) or entry.suffix == ".pth":
            continue
        (links / entry.name).symlink_to(entry)
    return links


def fresh_venv(path: Path, deps: Path) -> Path:
    """A venv at ``path`` whose python finds ``deps`` (and pip there); its bin dir."""
    subprocess.run([_base_python(), "-m", "venv", "--without-pip", str(path)], check=True,
                   timeout=120, env=clean_env())
    python = path / "bin" / "python"
    purelib = subprocess.run([str(python), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "composer-test-deps.pth").write_text(f"{deps}\n")
    return path / "bin"


def install(bin_dir: Path, wheel: Path) -> None:
    """``pip install`` the wheel alone into the venv of ``bin_dir``, offline."""
    done = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet",
                           "--no-deps", "--no-index", str(wheel)], capture_output=True,
                          text=True, timeout=300, check=False, env=clean_env())
    assert done.returncode == 0, done.stdout + done.stderr


def _base_python() -> str:
    """The interpreter the test venv was made from: the fresh venv is no child of it."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    base = Path(sys.base_prefix) / "bin" / version
    return str(base) if base.exists() else sys.executable
