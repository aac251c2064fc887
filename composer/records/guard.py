"""What may enter a record: everything, except composer's own secrets and state.

Composer's own files are known: Terraform state, plans and ``.terraform/`` live in
the run's work dir, keys too; a record holds ``infra/`` without state. So:

- **outputs** (``outputs/``, the workload's files) are never a reason to refuse a
  record. A file that looks like Terraform state or a plan, holds a private key,
  holds a secret value (in its content or its name), is git metadata or is not a
  regular file (a symlink, never followed; a FIFO, socket or device) is *withheld*:
  removed from the record and listed in the manifest with ``committed: false`` and
  ``withheld: "<reason>"``, without its sha256.
- **logs** (``logs/``) that quote a private key keep every other line: the key's
  lines are replaced by one line saying so.
- anything else found in a record that must not be committed (state, plans,
  ``.terraform/``, a private key in ``lock.json``...) is composer's own mistake and
  refuses the commit (``find_forbidden``).

Users' file names such as ``model.key``, ``id_rsa.pub`` or ``id_to_label.json``
are committed like any other output.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

from composer.jsonfile import dump_json
from composer.records import manifest

if TYPE_CHECKING:
    from composer.secrets import Secrets

FORBIDDEN: tuple[str, ...] = (
    "*.tfstate",
    "*.tfstate.*",
    "*.tfplan",
    ".terraform/",
    "terraform.tfstate.d/",
)
"""Terraform's state, plans and working data; a trailing ``/`` names a directory.

Each pattern is matched against every component of a path, so nothing below a
forbidden directory is committed either.
"""

FORBIDDEN_CONTENT = b"PRIVATE KEY-----"
KEY_REDACTED = b"[composer: a private key was here; its lines are not recorded]"
OUTPUTS = "outputs"
LOGS = "logs"
_CHUNK = 1 << 20
_PEM_HEADERS = (b"Proc-Type:", b"DEK-Info:", b"Comment:")
_PEM_BODY = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


@dataclass(frozen=True)
class ForbiddenFile:
    """A path in a staged record that must not be committed, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path} ({self.reason})"


@dataclass(frozen=True)
class Withheld:
    """An output kept out of the record: its manifest path and the reason."""

    path: str
    reason: str

    def line(self) -> str:
        fix = ("; raise [outputs] max_file_size to commit it"
               if self.reason.startswith("over max_file_size") else "")
        return (f"withheld output {terminal_text(self.path)}: {terminal_text(self.reason)} "
                f"(listed in {manifest.MANIFEST}, not committed{fix})")


def printable(rel: str) -> str:
    """A path as text that can be written anywhere: undecodable bytes escaped."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# C0, DEL, C1, and the characters that change how a line reads without being seen:
# zero-width ones, the line/paragraph separators, bidirectional overrides.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def terminal_text(text: str) -> str:
    """``text`` (a name from a node) safe to print on a terminal or in a log: C0 and C1
    control characters and DEL escaped as Python's repr writes them (``\\n``,
    ``\\x1b``, ``\\x9b``), undecodable bytes as ``\\xff``. What is committed and the
    manifest keep the name as it is."""
    try:
        text = printable(text)
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


# -- names ------------------------------------------------------------------


def _forbidden_name(name: str, is_dir: bool) -> str | None:
    for pattern in FORBIDDEN:
        if pattern.endswith("/"):
            if is_dir and name == pattern[:-1]:
                return f"matches {pattern}"
        elif fnmatchcase(name, pattern):
            return f"matches {pattern}"
    if name == ".git":
        return "nested git metadata"
    return None


def output_name_reason(rel: str) -> str | None:
    """Why an output at ``rel`` (relative to ``outputs/``) may not be committed, by name."""
    parts = rel.split("/")
    for index, part in enumerate(parts):
        is_dir = index < len(parts) - 1
        reason = _forbidden_name(part, is_dir)
        if reason == "nested git metadata":
            return "git metadata (.git)"
        if reason:
            return f"looks like Terraform state or working data ({reason})"
        if not is_dir and part == ".gitattributes":
            return "git attributes (would change how the record is stored)"
    return None


# -- content ----------------------------------------------------------------


class Scan:
    """Looks for a private key or a secret value in a stream fed chunk by chunk."""

    def __init__(self, secrets: Secrets | None = None) -> None:
        self.secrets = secrets if secrets else None
        longest = max((len(v.encode()) for v in self.secrets.values.values()), default=0) \
            if self.secrets else 0
        self.overlap = max(len(FORBIDDEN_CONTENT), longest) - 1
        self.tail = b""
        self.reason: str | None = None

    def feed(self, chunk: bytes) -> None:
        if self.reason is not None:
            return
        window = self.tail + chunk
        if FORBIDDEN_CONTENT in window:
            self.reason = "contains a private key"
        elif self.secrets is not None and self.secrets.contains(window):
            self.reason = "contains a secret value"
        self.tail = window[-self.overlap:] if self.overlap > 0 else b""


def _contains_marker(path: Path) -> bool:
    scan = Scan()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            scan.feed(chunk)
    return scan.reason is not None


def _content_reason(path: Path, secrets: Secrets | None) -> str | None:
    scan = Scan(secrets)
    with path.open("rb") as handle:
        while scan.reason is None and (chunk := handle.read(_CHUNK)):
            scan.feed(chunk)
    return scan.reason


def _output_reason(path: Path, rel: str, secrets: Secrets | None) -> str | None:
    reason = output_name_reason(rel)
    if reason:
        return reason
    if secrets and secrets.contains(rel.encode("utf-8", "surrogateescape")):
        return "its name holds a secret value"
    try:
        mode = path.lstat().st_mode
        if not stat.S_ISREG(mode):
            return "not a regular file"
        return _content_reason(path, secrets)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"


# -- outputs ----------------------------------------------------------------


def _files_under(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        found += [base / name for name in filenames]
        found += [base / name for name in dirnames if (base / name).is_symlink()]
    return sorted(found)


def _prune_empty_dirs(root: Path) -> None:
    for dirpath, _, _ in sorted(os.walk(root, topdown=False), key=lambda w: -len(w[0])):
        path = Path(dirpath)
        if path != root and not path.is_symlink():
            try:
                path.rmdir()
            except OSError:
                continue


def _withhold(entry: dict[str, Any], reason: str, shown: str) -> None:
    entry.update(path=shown, committed=False, withheld=reason)
    entry.pop("sha256", None)


def _unlisted(outputs: Path) -> list[dict[str, Any]]:
    """Entries for the files of a record that has no manifest (its run stopped while
    collecting): what is there, committed."""
    entries = []
    for path in _files_under(outputs):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        entries.append({"path": printable(path.relative_to(outputs).as_posix()), "node": "",
                        "size": path.stat().st_size, "sha256": digest.hexdigest(),
                        "committed": True})
    return entries


def _scrub_listed_names(files: list[dict[str, Any]], secrets: Secrets | None) -> bool:
    """Entries not committed whose listed name holds a secret: redact the name, drop
    the hash. Returns whether any changed."""
    changed = False
    for entry in files:
        path = entry.get("path")
        if not secrets or entry.get("committed") or not isinstance(path, str):
            continue
        if secrets.contains(path.encode("utf-8", "surrogateescape")):
            reason = str(entry.get("withheld") or "not committed")
            if "secret" not in reason:
                reason += "; its name holds a secret value"
            _withhold(entry, reason, printable(secrets.redact(path)))
            changed = True
    return changed


def screen_outputs(staged: Path, secrets: Secrets | None = None,
                   withhold_all: str | None = None) -> list[Withheld]:
    """Withhold every output under ``staged/outputs`` that may not be committed (with
    ``withhold_all``, every output, for that reason: a record that cannot be screened).

    Each one is removed and its manifest entry marked (added when missing); the
    manifest path of a file whose name holds a secret is the redacted name, never
    a path of the committed tree. Idempotent; returns what it withheld now.
    """
    outputs = staged / OUTPUTS
    data = manifest.load(staged) if (staged / manifest.MANIFEST).is_file() else None
    files: list[dict[str, Any]] = (data or manifest.empty()).setdefault("files", [])
    by_path = {e.get("path"): e for e in files if isinstance(e, dict)}
    found: list[Withheld] = []
    for path in _files_under(outputs):
        rel = path.relative_to(outputs).as_posix()
        reason = withhold_all or _output_reason(path, rel, secrets)
        if reason is None:
            continue
        size = path.lstat().st_size
        path.unlink()
        shown = printable(secrets.redact(rel) if secrets else rel)
        entry = by_path.get(rel)
        if entry is None:
            entry = {"path": shown, "node": "", "size": size}
            files.append(entry)
        _withhold(entry, reason, shown)
        found.append(Withheld(shown, reason))
    renamed = _scrub_listed_names(files, secrets)
    for entry in files if withhold_all else []:
        if entry.get("committed"):
            _withhold(entry, withhold_all, str(entry.get("path")))
            renamed = True
    if found or renamed:
        _prune_empty_dirs(outputs)
        if data is None:
            files += _unlisted(outputs)
            data = {"schema_version": manifest.SCHEMA_VERSION, "files": files}
        files.sort(key=lambda e: str(e.get("path")))
        manifest.save(staged, data)
    return found


# -- logs -------------------------------------------------------------------


def _pem_body(line: bytes) -> bool:
    text = line.strip()
    return not text or set(text) <= _PEM_BODY or text.startswith(_PEM_HEADERS)


def _key_token(line: bytes) -> bool:
    """Whether ``line`` ends in what reads as a piece of a key's base64 body (long, or
    padded), whatever stands before it: ``[rank 3] MIIE...``, ``INFO: MIIE...``."""
    words = line.split()
    if not words or line == KEY_REDACTED:
        return False
    token = words[-1]
    return set(token) <= _PEM_BODY and (len(token) >= 16 or token.endswith(b"="))


ORPHAN_LOOKBACK = 120


def redact_keys(data: bytes) -> bytes:
    """``data`` with every private key block replaced by one line saying so: from BEGIN
    to END, or to the first line of the same stream (the same text before the key's
    ``-----``) that is not part of a key; lines of other streams interleaved with it
    (other ranks) are kept. An END with no BEGIN before it (a log cut in the middle of
    a key) takes the key lines above it. A prefix before each line (``[rank 3] ``, a
    timestamp) does not hide a key line."""
    if FORBIDDEN_CONTENT not in data:
        return data
    out: list[bytes] = []
    stream: bytes | None = None  # the text before the open key's -----, while in one
    for line in data.split(b"\n"):
        marker = FORBIDDEN_CONTENT in line
        if not marker and stream is not None:
            text = line.strip()
            rest = text[len(stream):] if text.startswith(stream) else None
            if rest is not None and _pem_body(rest):
                continue
            if _key_token(line):
                continue  # a key line behind a prefix of its own (a timestamp)
            if rest is not None:
                stream = None  # the key's own stream moved on
            out.append(line)
            continue
        if not marker:
            out.append(line)
            continue
        begin, end = b"BEGIN" in line, b"END" in line
        if end and not begin and stream is None:
            _drop_key_lines_above(out)
        stream = line[: line.find(b"-----")].strip() if begin and not end else None
        if not (out and out[-1] == KEY_REDACTED):
            out.append(KEY_REDACTED)
    return b"\n".join(out)


def _drop_key_lines_above(out: list[bytes]) -> None:
    """Remove the key lines among the last lines of ``out`` (back to a redaction)."""
    keep: list[bytes] = []
    looked = 0
    while out and out[-1] != KEY_REDACTED and looked < ORPHAN_LOOKBACK:
        line = out.pop()
        looked += 1
        if not _key_token(line):
            keep.append(line)
    out.extend(reversed(keep))


def redact_logs(staged: Path, secrets: Secrets | None = None) -> list[str]:
    """Redact secret values in every file outside ``outputs/`` and private keys in
    ``logs/``; return the paths changed."""
    touched: list[str] = []
    for path in _files_under(staged):
        rel = path.relative_to(staged).as_posix()
        if rel.split("/", 1)[0] == OUTPUTS or path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        new = data
        if secrets and secrets.contains(data):
            new = (_redact_json(data, secrets) if path.suffix == ".json"
                   else secrets.redact_bytes(data))
        if rel.split("/", 1)[0] == LOGS:
            new = redact_keys(new)
        if new != data:
            path.write_bytes(new)
            touched.append(rel)
    return touched


def _redact_json(data: bytes, secrets: Secrets) -> bytes:
    """A JSON file of the record with secret values masked inside its strings only, so
    the file stays valid JSON (a raw replace could break its syntax)."""
    try:
        value = json.loads(data)
    except ValueError:
        return secrets.redact_bytes(data)

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return secrets.redact(item)
        if isinstance(item, list):
            return [walk(v) for v in item]
        if isinstance(item, dict):
            return {secrets.redact(k): walk(v) for k, v in item.items()}
        return item

    return dump_json(walk(value)).encode()


def screen_record(staged: Path, secrets: Secrets | None = None) -> list[Withheld]:
    """Withhold outputs, then redact logs: what a record needs before its commit."""
    withheld = screen_outputs(staged, secrets)
    redact_logs(staged, secrets)
    return withheld


# -- what is left: composer's own mistakes ----------------------------------


def _file_problem(path: Path) -> str | None:
    reason = _forbidden_name(path.name, is_dir=False)
    if reason:
        return reason
    try:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            return None
        if not stat.S_ISREG(mode):
            return "not a regular file"
        if _contains_marker(path):
            return "contains a private key"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    return None


def find_forbidden(root: Path) -> list[ForbiddenFile]:
    """Every path under ``root`` that must not be committed, sorted by path."""
    found: list[ForbiddenFile] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in list(dirnames):
            entry = base / name
            reason = _forbidden_name(name, is_dir=not entry.is_symlink())
            if reason:
                found.append(
                    ForbiddenFile(f"{printable(entry.relative_to(root).as_posix())}/", reason)
                )
                dirnames.remove(name)
        for name in filenames:
            entry = base / name
            reason = _file_problem(entry)
            if reason:
                found.append(
                    ForbiddenFile(printable(entry.relative_to(root).as_posix()), reason)
                )
    return sorted(found, key=lambda f: f.path)

