"""Secret values of a run: passed to the workload, kept out of logs and records.

``[run] secret_env`` names variables whose values come from composer's own
environment. They reach the nodes in a 0600 file in each node's work dir (never
on a command line), every log line is redacted as it is written (each value, and
each line of a multi-line value, see ``_needles``), and before a
record is committed every file in it is checked: logs are redacted, an output
that holds a secret is withheld (listed in the manifest, not committed).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets as random
import shlex
from collections.abc import Iterable
from pathlib import Path

from composer.errors import PreflightError

MASK = "***"
SECRETS_FILE = ".composer-secrets"
MIN_LINE = 4
MIN_SECRET = 8
CHECK_FILE = "secrets-check.json"


class Secrets:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)
        self._needles = sorted(_needles(values.values()), key=len, reverse=True)
        # Output is cut into lines before it is redacted: only these can occur in one.
        self._in_line = [n for n in self._needles if b"\n" not in n and b"\r" not in n]
        self._longest = max((len(n) for n in self._in_line), default=0)

    @classmethod
    def from_environ(cls, names: Iterable[str]) -> Secrets:
        names = list(names)
        missing = [n for n in names if n not in os.environ]
        if missing:
            raise PreflightError(
                f"run.secret_env: {', '.join(missing)} not set in composer's environment",
                hint="export the variable before composer up; its value is never recorded",
            )
        short = [n for n in names if 0 < len(os.environ[n]) < MIN_SECRET]
        if short:
            raise PreflightError(
                f"run.secret_env: the value of {', '.join(short)} is shorter than "
                f"{MIN_SECRET} characters",
                hint="a value that short cannot be told apart from ordinary output, so it "
                "cannot be masked; pass it in [run] env instead, or use a longer secret",
            )
        return cls({n: os.environ[n] for n in names})

    @property
    def longest(self) -> int:
        """The length of the longest text masked within one line."""
        return self._longest

    def __bool__(self) -> bool:
        return bool(self._needles)

    def redact_bytes(self, data: bytes) -> bytes:
        for needle in self._needles:
            data = data.replace(needle, MASK.encode())
        return data

    def redact(self, text: str) -> str:
        return self.redact_bytes(text.encode("utf-8", "surrogateescape")).decode(
            "utf-8", "surrogateescape"
        )

    def contains(self, data: bytes) -> bool:
        return any(needle in data for needle in self._needles)

    def unsafe_tail(self, data: bytes) -> int:
        """How many bytes at the end of ``data`` could be the start of a secret that
        continues in the next piece: the longest suffix that is a proper prefix of a
        needle. A stream cut mid-line holds these bytes back until it knows more."""
        window = data[-(self._longest - 1):] if self._longest > 1 else b""
        best = 0
        for needle in self._in_line:
            start = max(0, len(window) - len(needle) + 1)
            while (at := window.find(needle[:1], start)) != -1:
                if needle.startswith(window[at:]):
                    best = max(best, len(window) - at)
                    break
                start = at + 1
        return best

    def shell_file(self) -> str:
        """The node-side file the workload prelude sources."""
        return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(self.values.items()))


def _needles(values: Iterable[str]) -> set[bytes]:
    """What to mask: each whole value, and each line of a multi-line value (stripped,
    at least ``MIN_LINE`` characters, so that a ``}`` line does not mask every brace),
    since output is redacted line by line as it is written."""
    found: set[bytes] = set()
    for value in values:
        if not value:
            continue
        found.add(value.encode())
        lines = value.splitlines()
        if len(lines) > 1 or value.strip() != value:
            found.update(line.strip().encode() for line in lines
                         if len(line.strip()) >= MIN_LINE)
    return found


def _check_hash(value: str, salt: bytes) -> str:
    """A slow salted hash (scrypt): enough to tell a value again, useless to guess it."""
    return hashlib.scrypt(value.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32).hex()


def write_check(work: Path, values: dict[str, str]) -> None:
    """Keep, in the run's private work dir, what tells the run's secret values again
    (``composer down`` screens a stranded run with the same values or not at all)."""
    salt = random.token_bytes(16)
    data = {"salt": salt.hex(), "values": {k: _check_hash(v, salt) for k, v in values.items()}}
    fd = os.open(work / CHECK_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)


def unlike_the_run(work: Path, values: dict[str, str]) -> list[str]:
    """The names whose value here is not the one the run had (empty, too short, or
    another value; all of them when the run left no check)."""
    try:
        data = json.loads((work / CHECK_FILE).read_text())
        salt, hashes = bytes.fromhex(data["salt"]), data["values"]
    except (OSError, ValueError, KeyError, TypeError):
        return sorted(n for n, v in values.items() if len(v) < MIN_SECRET)
    return sorted(n for n, v in values.items()
                  if len(v) < MIN_SECRET or hashes.get(n) != _check_hash(v, salt))
