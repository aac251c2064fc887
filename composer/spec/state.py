"""``[state]``: where Terraform keeps the run's state (the work dir, or a bucket with a lock).

Only the form of each value is checked here; the bucket is first reached by ``init``.
"""

from __future__ import annotations

from typing import Any

from composer.spec.check import Checker, Table
from composer.spec.fields import Section, choice, string
from composer.spec.model import StateSpec

BACKENDS = ("local", "s3", "gcs")
DEFAULT_PREFIX = "composer"
_PREFIX = r"[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*"
_ENDPOINT = r"https?://[^\s/@]+(/\S*)?"

STATE = Section("state", "Where Terraform keeps the run's state (see docs/state.md).", fields=(
    choice("backend", '`"local"` (the run\'s work dir), `"s3"` (an S3 bucket or an '
           "S3-compatible store, locked with a lock object) or `\"gcs\"` (a Cloud Storage "
           "bucket, locked natively)", BACKENDS, default="local"),
    string("bucket", "the bucket's name; required for `s3` and `gcs`", nonempty=True,
           default=None, pattern=r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]"),
    string("prefix", "path in the bucket; a run's state is `<prefix>/<run-id>/terraform.tfstate` "
           "(`s3`) or `<prefix>/<run-id>/default.tfstate` (`gcs`); no leading or trailing `/`",
           default=DEFAULT_PREFIX, pattern=_PREFIX),
    string("region", "the bucket's region; required for `s3`, not taken by `gcs`",
           nonempty=True, default=None, pattern=r"[a-z0-9-]+"),
    string("endpoint", "`http(s)://host[:port]` of an S3-compatible store (MinIO, Ceph) or an "
           "emulator; for `s3` it means path-style addressing and no STS or account look-ups, "
           "for `gcs` the storage endpoint (`/storage/v1/` is added)", nonempty=True,
           default=None, pattern=_ENDPOINT),
))


def check_state(c: Checker, table: Table | None) -> StateSpec:
    if table is None:
        return StateSpec()
    values: dict[str, Any] = {}
    for item in STATE.fields:
        raw, path = c.get(table, STATE, item.key)
        value = c.described(raw, path, item)
        if value is not None and item.pattern is not None and not _full(item.pattern, value):
            c.add(path, _bad(item.key, value))
            value = None
        values[item.key] = value
    c.unknown_keys(table, STATE)
    backend = values["backend"] or "local"
    _needs(c, table, backend)
    return StateSpec(backend, values["bucket"], values["prefix"] or DEFAULT_PREFIX,
                     values["region"], values["endpoint"])


def _needs(c: Checker, table: Table, backend: str) -> None:
    """What each backend requires and refuses."""
    if backend == "local":
        for key in ("bucket", "region", "endpoint"):
            if key in table:
                c.add(f"state.{key}", 'is for a bucket; the "local" backend keeps the state '
                                      'in the work dir: set state.backend = "s3" or "gcs", or '
                                      f"remove state.{key}")
        return
    if "bucket" not in table:
        c.add("state.bucket", f'required for the "{backend}" backend: the bucket that holds '
                              "the state")
    if backend == "s3" and "region" not in table:
        c.add("state.region", 'required for the "s3" backend: the bucket\'s region '
                              '(e.g. "us-east-1")')
    if backend == "gcs" and "region" in table:
        c.add("state.region", 'the "gcs" backend takes no region (a bucket\'s location is its '
                              "own): remove state.region")


def _full(pattern: str, value: str) -> bool:
    import re

    return re.fullmatch(pattern, value) is not None


def _bad(key: str, value: str) -> str:
    return {
        "bucket": f"{value!r} is not a bucket name: 3 to 222 lowercase letters, digits, "
                  "'.', '_' or '-', starting and ending with a letter or digit",
        "prefix": f"{value!r} is not a path in a bucket: segments of letters, digits, "
                  "'_', '.', '=' or '-' joined by '/', no leading or trailing '/'",
        "region": f"{value!r} is not a region name (e.g. \"us-east-1\")",
        "endpoint": _bad_endpoint(value),
    }[key]


def _bad_endpoint(value: str) -> str:
    host = value.split("/")[2] if value.count("/") >= 2 else ""
    if "@" in host:
        return (f"{value!r} holds a user name or password: credentials come from the "
                "environment only, never from the spec")
    return f'{value!r} is not an http:// or https:// URL (e.g. "http://127.0.0.1:9000")'


def expand(state: StateSpec) -> dict[str, Any]:
    return {"backend": state.backend, "bucket": state.bucket, "prefix": state.prefix,
            "region": state.region, "endpoint": state.endpoint}
