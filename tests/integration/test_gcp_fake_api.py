"""``composer up`` of a GCP job against the local Compute Engine fake, through the CLI.

The production code path (``COMPOSER_GCE_ENDPOINT``): preflight refuses what cannot run
before anything exists, and a job that passes preflight pins the project, image, zone,
machine type and provider in its record. ``hashicorp/google`` cannot be downloaded here:
a stand-in package sits where the provider would be, so init installs and hashes it and
apply fails at its start, before anything is created; teardown and the sweep then run
for real against the fake (nothing is left of the run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Composer
from tests.faults.util import final_json, read_record, write_job
from tests.unit import gce_world as w
from tests.unit.gce_specs import DEBIAN_FAMILY, Gce, gce_fixture  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

PROVIDER = "registry.terraform.io/hashicorp/google"


def gcp_job(tmp_path: Path, **gcp: Any) -> Path:
    section = {"project": w.PROJECT, "region": w.REGION, "machine_types": ["e2-standard-4"],
               "image": DEBIAN_FAMILY, "ssh_cidrs": ["203.0.113.0/24"], "placement": "none"}
    section.update(gcp)
    doc = {
        "job": {"name": "gcp-fake"},
        "cluster": {"target": "gcp", "nodes": 2},
        "gcp": section,
        "run": {"launcher": "ssh", "command": "true"},
        "limits": {"max_duration": "10m"},
    }
    return write_job(tmp_path / "job", doc)


def stand_in_provider(mirror: Path) -> None:
    plugin = mirror / PROVIDER / "8.7.0" / "linux_amd64" / "terraform-provider-google_v8.7.0"
    plugin.parent.mkdir(parents=True)
    plugin.write_text("#!/bin/sh\necho 'not a provider' >&2\nexit 1\n")
    plugin.chmod(0o755)


def no_records(composer: Composer) -> bool:
    return not (composer.runs / ".git").exists() or composer.git("tag", "--list") == ""


def nothing_made(gce: Gce) -> bool:
    world = gce.world
    return not any(world.instances.values()) and not world.firewalls


def test_up_without_credentials_names_them_and_creates_nothing(
        gce: Gce, composer: Composer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSER_GCE_ENDPOINT")
    done = composer.run("up", str(gcp_job(tmp_path)), "--json")
    assert done.returncode == 2, done.stderr
    error = final_json(done.stdout)
    said = error["error"] + error.get("hint", "")
    assert "gcloud auth application-default login" in said
    assert "GOOGLE_APPLICATION_CREDENTIALS" in said
    assert no_records(composer)
    assert not (composer.home / "work").exists() or not any((composer.home / "work").iterdir())


def test_up_refuses_a_gpu_count_the_type_lacks_before_anything_exists(
        gce: Gce, composer: Composer, tmp_path: Path) -> None:
    job = gcp_job(tmp_path, machine_types=["g2-standard-24"])
    text = job.read_text().replace("nodes = 2", "nodes = 2\ngpus_per_node = 4")
    job.write_text(text)
    done = composer.run("up", str(job), "--json")
    assert done.returncode == 2, done.stderr
    error = final_json(done.stdout)["error"]
    assert "g2-standard-24" in error and "gpus_per_node" in error, error
    assert nothing_made(gce)
    assert no_records(composer)


def test_up_pins_preflight_and_provider_then_fails_at_apply_and_keeps_the_record(
        gce: Gce, composer: Composer, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    stand_in_provider(mirror)
    done = composer.run("up", str(gcp_job(tmp_path)), "--json",
                        COMPOSER_PROVIDER_MIRROR=str(mirror))
    outcome = final_json(done.stdout)
    assert done.returncode == 4, done.stderr
    assert (outcome["status"], outcome["stage"]) == ("failed", "apply"), outcome
    run_id = outcome["run_id"]

    lock = json.loads(read_record(composer, run_id, "lock.json"))
    resolved = lock["target"]["resolved"]
    assert (resolved["project"], resolved["project_number"]) == (w.PROJECT, w.NUMBER)
    assert resolved["machine_type"] == "e2-standard-4"
    assert resolved["zone"].startswith(w.REGION)
    assert "/global/images/" in resolved["image_self_link"]
    assert "/family/" not in resolved["image_self_link"]
    assert resolved["image"] == DEBIAN_FAMILY
    assert lock["providers"][PROVIDER]["version"] == "8.7.0"
    kept = read_record(composer, run_id, "infra/.terraform.lock.hcl")
    assert PROVIDER in kept and lock["providers"][PROVIDER]["hashes"][0] in kept
    tfvars = json.loads(read_record(composer, run_id, "infra/terraform.tfvars.json"))
    assert tfvars["project"] == w.PROJECT and tfvars["max_run_seconds"] > 600
    result = json.loads(read_record(composer, run_id, "result.json"))
    assert result["teardown"]["status"] == "destroyed"
    assert nothing_made(gce)
    assert not (composer.home / "work" / run_id).exists()
    listed = composer.git("ls-tree", "-r", "--name-only", f"run/{run_id}")
    for name in ("runtime.tfvars.json", "terraform.tfstate", "ssh_host_ed25519_key"):
        assert name not in listed


def test_a_provider_mirror_that_is_not_a_directory_is_exit_2_before_a_run(
        gce: Gce, composer: Composer, tmp_path: Path) -> None:
    done = composer.run("up", str(gcp_job(tmp_path)), "--json",
                        COMPOSER_PROVIDER_MIRROR=str(tmp_path / "no-such-mirror"))
    assert done.returncode == 2, done.stderr
    error = final_json(done.stdout)
    assert error["error"].startswith("COMPOSER_PROVIDER_MIRROR=") and "not a directory" in \
        error["error"]
    assert no_records(composer) and nothing_made(gce)


def test_ctrl_c_during_gc_json_says_interrupted(composer: Composer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import signal
    import socket
    import subprocess
    import time

    with socket.socket() as silent:  # accepts, never answers: gc waits on it
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setenv("COMPOSER_GCE_ENDPOINT",
                           f"http://127.0.0.1:{silent.getsockname()[1]}")
        # SIGINT as a terminal gives it, also where this test runs with SIGINT ignored
        # (a background job of a shell without job control), which the child inherits.
        proc = subprocess.Popen(
            composer.argv("gc", "--target", "gcp", "--project", "p", "--json"),
            env=composer.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        # Interrupt once gc is waiting on the API (its first connection), not while it
        # is still starting up and importing, however loaded the machine is.
        silent.settimeout(120)
        waiting, _ = silent.accept()
        with waiting:
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert json.loads(out) == {"error": "interrupted by signal 2", "exit_code": 130}
