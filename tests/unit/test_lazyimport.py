"""composer.lazyimport: a stand-in that imports its module on first use, and a thread
that imports it ahead of that use (paramiko while Terraform works)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from composer.lazyimport import LazyModule, lazy, warm

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def slow_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = "composer_test_slow_module"
    (tmp_path / f"{name}.py").write_text("import time\ntime.sleep(0.4)\nVALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_an_attribute_waits_for_the_import_warm_started(slow_module: str) -> None:
    """Used while the warming thread is still inside the import, the stand-in waits for
    the whole module instead of reading the half-made one."""
    stand_in = lazy(slow_module)
    assert isinstance(stand_in, LazyModule)
    thread = warm(slow_module)
    deadline = time.monotonic() + 5
    while slow_module not in sys.modules and time.monotonic() < deadline:
        time.sleep(0.005)
    assert slow_module in sys.modules, "the thread never started the import"
    assert stand_in.VALUE == 42
    thread.join(timeout=5)


def test_a_loaded_module_is_itself_and_a_missing_one_fails_at_use() -> None:
    assert lazy("json") is sys.modules["json"]
    missing = lazy("composer_no_such_module")
    warm("composer_no_such_module").join(timeout=5)  # the thread keeps the failure quiet
    with pytest.raises(ModuleNotFoundError):
        _ = missing.anything


def test_composer_run_does_not_import_paramiko() -> None:
    probe = ("import sys, composer.run\n"
             "print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'paramiko', 'invoke', 'yaml'}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60, cwd=ROOT)
    assert done.stdout.strip() == "[]", done.stdout
