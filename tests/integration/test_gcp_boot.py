"""The GCP node's boot, for real, without Google Cloud: modules/gcp-cluster's startup script.

The script is rendered by Terraform itself (the embedded engine applies a tiny root
module whose output is the module's ``templatefile`` call for the ``startup-script``
metadata), then run as the guest agent would run it (root, once per boot) in a podman
container of the AWS boot test's Debian image (images/boot/build.sh: OpenSSH, sudo; its
cloud-init is not used here). The container's sshd is already up on the image's own
host keys, as a VM's is before its startup script runs, and composer connects the way a
run does: ``wait_for_ssh`` with ``settle`` (the image's key is refused until the script
has installed the pinned one), then ``READY_COMMAND``. What a container cannot show:
systemd's handling of sshd (the script takes its no-service-manager path), the guest
agent itself, Compute Engine's metadata server and its own time limit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from composer.containers import probe
from composer.engine import make_engine
from composer.errors import SSHError
from composer.keys import generate_keypair
from composer.remote import Node, Session, wait_for_ssh
from composer.targets.gcp.render import READY_COMMAND
from tests.conftest import ROOT
from tests.integration.test_aws_boot import boot_image, in_node, podman, start_node

pytestmark = pytest.mark.integration

__all__ = ["boot_image"]  # the AWS boot test's fixture: the image, built once

MODULE = ROOT / "modules" / "gcp-cluster"
RUN_ID = "20991231-235959-b00t00"
WORK_DIR = f"/opt/composer/{RUN_ID}"
SSH_USER = "composer"
SCRIPT = "/root/composer-startup.sh"
LOG = "/var/log/composer-boot.log"
AGENT_CONFIG = "/etc/default/instance_configs.cfg"
# What the image's guest agent configuration could already hold.
AGENT_CONFIG_BEFORE = ("[Accounts]\ndeprovision_remove = true\n\n[InstanceSetup]\n"
                       "set_host_keys = true\nnetwork_enabled = true\n\n[Snapshots]\n"
                       "enabled = false\n")
# The files a second run must leave as they are (and the sshd it must not restart).
SNAPSHOT = (
    "cd / && sha256sum /etc/ssh/ssh_host_* /etc/ssh/sshd_config.d/* "
    f"{AGENT_CONFIG} /etc/sudoers.d/90-composer /etc/passwd /etc/group "
    f"/home/{SSH_USER}/.ssh/authorized_keys && "
    f"stat -c '%n %a %U:%G' /etc/ssh/ssh_host_* {WORK_DIR} /home/{SSH_USER}/.ssh "
    f"/home/{SSH_USER}/.ssh/authorized_keys /etc/sudoers.d/90-composer && cat /run/sshd.pid"
)

ROOT_MODULE = """
variable "host_key_private" {
  type      = string
  sensitive = true
}
variable "host_key_public" { type = string }
variable "authorized_key" { type = string }
variable "ssh_user" { type = string }
variable "run_id" { type = string }
variable "work_dir" { type = string }
variable "packages" { type = list(string) }
variable "pip_packages" { type = list(string) }

output "startup_script" {
  sensitive = true
  value = templatefile("${path.module}/startup.sh.tftpl", {
    host_key_private = var.host_key_private
    host_key_public  = var.host_key_public
    authorized_key   = var.authorized_key
    ssh_user         = var.ssh_user
    run_id           = var.run_id
    work_dir         = var.work_dir
    packages         = var.packages
    pip_packages     = var.pip_packages
    boot_script      = file("${path.module}/scripts/boot.sh")
  })
}
"""


@dataclass(frozen=True)
class Keys:
    host_private: str
    host_public: str
    other_host_public: str
    client_path: Path
    client_public: str


@dataclass(frozen=True)
class Booted:
    name: str
    port: int
    keys: Keys
    script: str
    #: What the first run printed, and its exit status.
    output: str
    code: int


def render(work: Path, values: dict[str, object]) -> str:
    """The startup script as Terraform renders it: the module's templatefile call."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(MODULE / "startup.sh.tftpl", work)
    (work / "scripts").mkdir(exist_ok=True)
    shutil.copy(MODULE / "scripts" / "boot.sh", work / "scripts")
    (work / "main.tf").write_text(ROOT_MODULE)
    (work / "terraform.tfvars.json").write_text(json.dumps(values))
    engine = make_engine("embedded")
    engine.init(work)
    engine.run(["apply", "-auto-approve", "-input=false", "-no-color"], work)
    return str(engine.outputs(work)["startup_script"])


def make_keys(directory: Path) -> Keys:
    host_public = generate_keypair(directory / "host", "node-0")
    other = generate_keypair(directory / "other", "impostor")
    # A quote in the comment: the script must carry the key through shell quoting as is.
    client_public = generate_keypair(directory / "client", "composer's-client")
    return Keys((directory / "host").read_text(), host_public, other, directory / "client",
                client_public)


def values_for(keys: Keys, packages: list[str]) -> dict[str, object]:
    return {
        "host_key_private": keys.host_private, "host_key_public": keys.host_public,
        "authorized_key": keys.client_public, "ssh_user": SSH_USER, "run_id": RUN_ID,
        "work_dir": WORK_DIR, "packages": packages, "pip_packages": [],
    }


def run_script(name: str, script: str) -> subprocess.CompletedProcess[str]:
    """As the guest agent runs a startup script: root, bash, the script from a file."""
    put = subprocess.run(["podman", "exec", "-i", name, "sh", "-c",
                          f"cat > {SCRIPT} && chmod 0700 {SCRIPT}"],
                         input=script, capture_output=True, text=True, timeout=60, check=False)
    assert put.returncode == 0, put.stderr
    return in_node(name, f"bash {SCRIPT}", timeout=300)


def pinned(booted: Booted, host_key: str) -> Node:
    return Node(rank=0, name="node-0", address="127.0.0.1", port=booted.port,
                host_key=host_key, work_dir=WORK_DIR, slots=1, user=SSH_USER)


@pytest.fixture(scope="module")
def node(boot_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Booted]:
    """One container whose startup script ran while composer waited for it, as at ``up``."""
    tmp = tmp_path_factory.mktemp("gcp-boot")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COMPOSER_HOME", str(tmp / "home"))
        keys = make_keys(tmp / "keys")
        script = render(tmp / "tf", values_for(keys, []))
        options = probe("podman", boot_image)
    unused_seed = tmp / "seed"
    unused_seed.mkdir()
    name = f"composer-gcp-boot-test-{tmp.name}"
    port = start_node(name, boot_image, unused_seed, options)
    try:
        # The image's own host keys of every type and an sshd serving them, as on a VM
        # whose guest agent made keys at first boot; a guest agent configuration.
        early = in_node(name, "ssh-keygen -A && mkdir -p /run/sshd && /usr/sbin/sshd && "
                              f"printf '{AGENT_CONFIG_BEFORE}' > {AGENT_CONFIG}")
        assert early.returncode == 0, early.stderr
        booted = Booted(name, port, keys, script, "", -1)
        # composer waits the way a run does while the script runs beside it.
        result: dict[str, subprocess.CompletedProcess[str]] = {}
        runner = threading.Thread(target=lambda: result.update(run=run_script(name, script)))
        runner.start()
        try:
            (session,) = wait_for_ssh([pinned(booted, keys.host_public)], keys.client_path,
                                      overall_timeout=120, settle=True)
            try:
                session.check(READY_COMMAND, timeout=120)
            finally:
                session.close()
        finally:
            runner.join(timeout=300)
        done = result["run"]
        yield Booted(name, port, keys, script, done.stdout + done.stderr, done.returncode)
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


def test_startup_script_ran_clean(node: Booted) -> None:
    assert node.code == 0, node.output
    assert node.script.startswith("#!/bin/bash\n")
    boot_id = in_node(node.name, "cat /proc/sys/kernel/random/boot_id").stdout.strip()
    marker = in_node(node.name, "cat /var/lib/composer/boot-finished").stdout.splitlines()
    assert marker[0] == boot_id
    assert marker[1].startswith(f"run {RUN_ID}: booted ")
    assert in_node(node.name, "test -e /var/lib/composer/boot-failed").returncode != 0


def test_only_the_pinned_host_key_is_left_and_served(node: Booted) -> None:
    listing = in_node(node.name, "cd /etc/ssh && stat -c '%n %a %U' ssh_host_*").stdout
    assert listing.splitlines() == ["ssh_host_ed25519_key 600 root",
                                    "ssh_host_ed25519_key.pub 644 root"], listing
    public = in_node(node.name, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.strip()
    assert public == node.keys.host_public.strip()
    effective = in_node(node.name, "sshd -T").stdout.splitlines()
    assert [line for line in effective if line.startswith("hostkey ")] == [
        "hostkey /etc/ssh/ssh_host_ed25519_key"]
    assert "passwordauthentication no" in effective
    log = in_node(node.name, f"cat {LOG}").stdout
    assert "no service manager; stopped sshd" in log
    assert "no service manager; started" in log


def test_the_guest_agent_keeps_its_hands_off_host_keys(node: Booted) -> None:
    config = in_node(node.name, f"cat {AGENT_CONFIG}").stdout
    assert config == AGENT_CONFIG_BEFORE.replace(
        "set_host_keys = true\nnetwork_enabled = true\n",
        "network_enabled = true\nset_host_keys = false\n")


def test_composer_connects_with_the_pinned_key(node: Booted) -> None:
    (session,) = wait_for_ssh([pinned(node, node.keys.host_public)], node.keys.client_path,
                              overall_timeout=30)
    try:
        out = session.check(f"id -un; stat -c '%a %U' {WORK_DIR}; sudo -n true && echo sudo; "
                            "cat ~/.ssh/authorized_keys")
        assert session.check(READY_COMMAND, timeout=30) == ""
    finally:
        session.close()
    lines = out.splitlines()
    assert lines[:3] == [SSH_USER, f"700 {SSH_USER}", "sudo"]
    assert lines[3:] == [node.keys.client_public.strip()]  # the quote carried as is


def test_a_different_host_key_is_refused(node: Booted) -> None:
    with pytest.raises(SSHError, match="does not match the pinned key"):
        Session(pinned(node, node.keys.other_host_public), node.keys.client_path).connect()


def test_no_key_material_in_logs_or_output(node: Booted) -> None:
    body = [line for line in node.keys.host_private.splitlines() if "PRIVATE KEY" not in line]
    log = in_node(node.name, f"cat {LOG}")
    assert log.returncode == 0, log.stderr
    for text in (log.stdout, node.output):
        assert "PRIVATE KEY" not in text
        assert not any(line in text for line in body)
    modes = in_node(node.name, f"stat -c '%a' {LOG} /var/lib/composer/boot-finished").stdout
    assert modes.split() == ["640", "644"]


def test_a_second_run_changes_nothing(node: Booted) -> None:
    """A reboot runs the script again: the same files, the same sshd, ready again."""
    before = in_node(node.name, SNAPSHOT)
    assert before.returncode == 0, before.stderr
    seen = len(in_node(node.name, f"cat {LOG}").stdout.splitlines())
    again = run_script(node.name, node.script)
    assert again.returncode == 0, again.stdout + again.stderr
    assert in_node(node.name, SNAPSHOT).stdout == before.stdout
    new = in_node(node.name, f"cat {LOG}").stdout.splitlines()[seen:]
    assert not [line for line in new if "restarting" in line or "created" in line], new
    assert any("boot step done" in line for line in new), new
    (session,) = wait_for_ssh([pinned(node, node.keys.host_public)], node.keys.client_path,
                              overall_timeout=30)
    try:
        session.check(READY_COMMAND, timeout=30)
    finally:
        session.close()


def test_ready_command_waits_for_this_boots_marker(node: Booted) -> None:
    """A marker an earlier boot (or the image) left is not this boot's: it waits."""
    stale = in_node(node.name, "cp /var/lib/composer/boot-finished /root/finished && "
                               "printf 'another-boot\\nrun x: booted\\n' > "
                               "/var/lib/composer/boot-finished")
    assert stale.returncode == 0, stale.stderr
    (session,) = wait_for_ssh([pinned(node, node.keys.host_public)], node.keys.client_path,
                              overall_timeout=30)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            session.check(READY_COMMAND, timeout=5)
        assert time.monotonic() - started >= 5
    finally:
        session.close()
        in_node(node.name, "cp /root/finished /var/lib/composer/boot-finished")


def test_a_failed_boot_says_why(node: Booted, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A package that cannot be installed (no network in the container): the script
    fails, READY_COMMAND exits non-zero with the reason; the good script again
    recovers."""
    monkeypatch.setenv("COMPOSER_HOME", str(tmp_path / "home"))
    failing = render(tmp_path / "tf", values_for(node.keys, ["composer-no-such-package"]))
    done = run_script(node.name, failing)
    assert done.returncode != 0
    assert "composer-no-such-package" in done.stdout + done.stderr
    (session,) = wait_for_ssh([pinned(node, node.keys.host_public)], node.keys.client_path,
                              overall_timeout=30)
    try:
        with pytest.raises(SSHError) as info:
            session.check(READY_COMMAND, timeout=30)
        message = info.value.message
        assert "startup script failed" in message
        assert f"run {RUN_ID}: the boot step failed" in message
        assert "composer-no-such-package" in message
        assert "last lines of /var/log/composer-boot.log" in message
        again = run_script(node.name, node.script)
        assert again.returncode == 0, again.stdout + again.stderr
        assert session.check(READY_COMMAND, timeout=30) == ""
    finally:
        session.close()
    assert in_node(node.name, "test -e /var/lib/composer/boot-failed").returncode != 0


def test_a_bad_package_name_is_refused_before_anything_runs(node: Booted, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setenv("COMPOSER_HOME", str(tmp_path / "home"))
    script = render(tmp_path / "tf", values_for(node.keys, ["jq;touch /tmp/owned"]))
    done = run_script(node.name, script)
    assert done.returncode != 0 and "not a package name" in done.stderr
    assert in_node(node.name, "test -e /tmp/owned").returncode != 0
    again = run_script(node.name, node.script)
    assert again.returncode == 0, again.stdout + again.stderr
