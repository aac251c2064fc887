"""OpenSSH client options for a run's nodes: one place for the key, the pinned host
keys and the no-prompt policy, with paths escaped for OpenSSH's own parsing."""

from __future__ import annotations

from pathlib import Path


def config_value(path: str | Path) -> str:
    """A path as one ``-o Key=VALUE`` argument: quoted, ``\\`` and ``"`` escaped, ``%``
    doubled, so spaces, quotes, ``#`` and ``%`` in it stay part of the path."""
    text = str(path).replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def options(key: str | Path, known_hosts: str | Path, port: int) -> list[str]:
    """The run's key, only the pinned host keys, no prompts: arguments for ``ssh``."""
    return [
        # Given as a config value, not ``-i``: OpenSSH expands ``%`` in either, and only
        # the config form can escape it.
        "-o", f"IdentityFile={config_value(key)}",
        "-o", f"UserKnownHostsFile={config_value(known_hosts)}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
        "-o", "LogLevel=ERROR", "-p", str(port),
    ]
