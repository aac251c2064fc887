"""Provider pins: the lock file a real ``init`` writes goes into the record, and a provider
that changed since is drift of class ``provider``.

No registry is reachable here, so the providers come from a filesystem mirror
(``COMPOSER_PROVIDER_MIRROR``) holding a stand-in package for ``hashicorp/aws``:
``init`` only installs and hashes a package, it never runs it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from composer.engine import Engine, make_engine
from composer.providers import (
    LOCK_FILE,
    keep_lock_file,
    parse_lock_file,
    provider_changes,
    providers_today,
)
from composer.reproduce import Recorded, provider_drift

pytestmark = pytest.mark.integration

SOURCE = "registry.terraform.io/hashicorp/aws"
VERSIONS_TF = """terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "6.62.0"
    }
  }
}
"""


def _package(mirror: Path, body: str) -> None:
    plugin = mirror / SOURCE / "6.62.0" / "linux_amd64" / "terraform-provider-aws_v6.62.0"
    plugin.parent.mkdir(parents=True, exist_ok=True)
    plugin.write_text(f"#!/bin/sh\necho {body}\n")
    plugin.chmod(0o755)


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("COMPOSER_HOME", str(tmp_path / "home"))
    mirror = tmp_path / "mirror"
    _package(mirror, "first")
    monkeypatch.setenv("COMPOSER_PROVIDER_MIRROR", str(mirror))
    return make_engine("embedded")


def _tree(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "versions.tf").write_text(VERSIONS_TF)
    return root


def test_init_lock_file_is_kept_in_the_record(engine: Engine, tmp_path: Path) -> None:
    tf, infra = _tree(tmp_path / "tf"), _tree(tmp_path / "infra")
    engine.init(tf)
    providers = keep_lock_file(tf, infra)
    assert set(providers) == {SOURCE}
    assert providers[SOURCE]["version"] == "6.62.0"
    assert providers[SOURCE]["hashes"] and providers[SOURCE]["hashes"][0].startswith("h1:")
    assert (infra / LOCK_FILE).read_text() == (tf / LOCK_FILE).read_text()


def test_a_tree_without_providers_keeps_no_lock_file(engine: Engine, tmp_path: Path) -> None:
    tf, infra = tmp_path / "tf", tmp_path / "infra"
    tf.mkdir()
    infra.mkdir()
    (tf / "main.tf").write_text('resource "terraform_data" "x" {}\n')
    engine.init(tf)
    assert keep_lock_file(tf, infra) == {}
    assert not (infra / LOCK_FILE).exists()


def test_changed_provider_package_is_provider_drift(engine: Engine, tmp_path: Path) -> None:
    record = tmp_path / "record"
    infra = _tree(record / "infra")
    engine.init(infra)
    locked = parse_lock_file((infra / LOCK_FILE).read_text())
    recorded = Recorded("run-x", record, "", {"providers": locked}, {})

    assert provider_drift(recorded, engine) == []

    _package(tmp_path / "mirror", "second")  # the same version, other bytes
    [drift] = provider_drift(recorded, engine)
    assert drift.kind == "provider"
    assert drift.name == f"providers.{SOURCE}"
    assert drift.old != drift.new and "6.62.0" in drift.new


def test_recorded_lock_file_does_not_steer_todays_selection(engine: Engine,
                                                            tmp_path: Path) -> None:
    infra = _tree(tmp_path / "infra")
    (infra / LOCK_FILE).write_text(
        f'provider "{SOURCE}" {{\n  version = "6.62.0"\n  hashes = [\n    "h1:old=",\n  ]\n}}\n')
    today = providers_today(infra, lambda tf: engine.init(tf))
    assert today[SOURCE]["hashes"] != ["h1:old="]
    changes = provider_changes(parse_lock_file((infra / LOCK_FILE).read_text()), today)
    assert [c[0] for c in changes] == [SOURCE]


def test_parse_lock_file_reads_every_provider() -> None:
    text = (
        '# This file is maintained automatically by "terraform init".\n\n'
        'provider "registry.terraform.io/hashicorp/aws" {\n'
        '  version     = "6.62.0"\n  constraints = "6.62.0"\n'
        '  hashes = [\n    "zh:bbb",\n    "h1:aaa",\n  ]\n}\n\n'
        'provider "registry.terraform.io/hashicorp/random" {\n'
        '  version = "3.6.0"\n  hashes = [\n    "h1:ccc",\n  ]\n}\n'
    )
    parsed = parse_lock_file(text)
    assert json.loads(json.dumps(parsed)) == {
        "registry.terraform.io/hashicorp/aws": {"version": "6.62.0",
                                                "hashes": ["h1:aaa", "zh:bbb"]},
        "registry.terraform.io/hashicorp/random": {"version": "3.6.0", "hashes": ["h1:ccc"]},
    }
