"""The record guard's rules: users' names pass, composer's own state and keys do not."""

from __future__ import annotations

import pytest

from composer.records import guard
from composer.records.guard import KEY_REDACTED, Scan, output_name_reason, redact_keys
from composer.records.names import is_placing_name
from composer.secrets import Secrets

MARK = "PRIVATE " + "KEY-----"


@pytest.mark.parametrize("name", [
    "model.key", "id_rsa.pub", "id_to_label.json", "id_rsa", "notes.md", "tfstate.md",
    "a/b/keys/server.key", "plan.tfplan.md", "terraform/x.json", "git/config",
])
def test_users_names_are_outputs(name: str) -> None:
    assert output_name_reason(name) is None


@pytest.mark.parametrize("name", [
    "sweep.tfstate", "sweep.tfstate.json", "x/terraform.tfstate.backup", "p.tfplan",
    ".terraform/providers/x", "a/terraform.tfstate.d/dev/s", "repo/.git/HEAD", ".git",
    "sub/.gitattributes",
])
def test_state_and_git_metadata_are_withheld(name: str) -> None:
    assert output_name_reason(name)


def test_a_key_without_its_end_line_is_cut_to_its_body() -> None:
    data = f"a\n-----BEGIN RSA {MARK}\nMIIE\nAbC+/=\n\nnext line: kept\nz".encode()
    assert redact_keys(data) == b"a\n" + KEY_REDACTED + b"\nnext line: kept\nz"


def test_two_keys_and_a_marker_in_prose() -> None:
    key = f"-----BEGIN EC {MARK}\nAAAA\n-----END EC {MARK}\n"
    data = f"{key}mid\n{key}quote: {MARK} here\nend\n".encode()
    out = redact_keys(data).split(b"\n")
    assert out == [KEY_REDACTED, b"mid", KEY_REDACTED, b"end", b""]


def test_scan_finds_a_secret_or_a_key_across_chunks() -> None:
    scan = Scan(Secrets({"T": "s3cr3t-value"}))
    scan.feed(b"x" * 10 + b"s3cr3t")
    assert scan.reason is None
    scan.feed(b"-value" + b"y" * 10)
    assert scan.reason == "contains a secret value"
    key = Scan()
    key.feed(b"-----BEGIN PRIVATE ")
    key.feed(b"KEY-----\n")
    assert key.reason == "contains a private key"


@pytest.mark.parametrize(("name", "mine"), [
    ("20240101-000000-abcdef.tmp-0123456789ab", True),
    ("analysis.tmp-2024", False),
    ("r.tmp-0123456789abc", False),
    ("r.tmp-0123456789AB", False),
    ("..tmp-0123456789ab", False),
    ("a b.tmp-0123456789ab", False),
])
def test_only_placing_names_are_composers(name: str, mine: bool) -> None:
    assert is_placing_name(name) is mine


@pytest.mark.parametrize(("name", "shown"), [
    ("e\x1b[31mRED\x1b[0m.txt", "e\\x1b[31mRED\\x1b[0m.txt"),
    ("new\nline\r\t.txt", "new\\nline\\r\\t.txt"),
    ("del\x7f c1\x9b nul\x00", "del\\x7f c1\\x9b nul\\x00"),
    ("\udcff.bin", "\\xff.bin"),
    ("plain/naïve \\x41.txt", "plain/naïve \\x41.txt"),
])
def test_names_are_printed_without_control_characters(name: str, shown: str) -> None:
    assert guard.terminal_text(name) == shown
    line = guard.Withheld(name, f"not a regular file (symlink -> {name})").line()
    assert shown in line and not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in line)
