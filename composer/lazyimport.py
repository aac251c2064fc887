"""Libraries imported when first used, and warmed while a run waits on something else.

paramiko (with cryptography, invoke and yaml behind it) is a fifth of ``composer up``'s
start-up, and nothing uses it before ``wait_for_ssh``. The modules that use it hold a
``lazy`` stand-in whose first attribute looks the real module up; ``warm`` imports it
in a thread while the run waits on Terraform, so that by ``wait_for_ssh`` it is there.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
import types
from typing import Any


class LazyModule(types.ModuleType):
    """Stands for the module ``name``; every attribute comes from the real one."""

    def __getattr__(self, attr: str) -> Any:
        # import_module, not sys.modules: while ``warm``'s thread is still importing it,
        # this waits for the import to finish instead of taking a half-made module.
        return getattr(importlib.import_module(self.__name__), attr)


def lazy(name: str) -> Any:
    """The module ``name`` if already imported, else a stand-in that imports it when used."""
    return sys.modules.get(name) or LazyModule(name)


def warm(*names: str) -> threading.Thread:
    """Import ``names`` in a daemon thread; a failure is left for the first real use."""

    def load() -> None:
        for name in names:
            with contextlib.suppress(Exception):  # the real import says what failed
                importlib.import_module(name)

    thread = threading.Thread(target=load, name="composer-warm", daemon=True)
    thread.start()
    return thread
