"""The AWS node's boot, for real, without AWS: modules/aws-cluster's cloud-init user-data.

The user-data is rendered by Terraform itself (the embedded engine applies a tiny root
module whose output is the contract's ``templatefile`` call), checked with Debian's
``cloud-init schema``, then booted in one podman container of a Debian image with
cloud-init and OpenSSH (images/boot/build.sh): the user-data is the instance's user-data
through a NoCloud seed and cloud-init runs its own init, config and final stages, so the
host key, the login user's key, the boot script and its run are cloud-init's doing. What
a container cannot show: systemd (the boot script takes its no-service-manager path for
sshd) and a real power-off (the image's ``shutdown`` records its arguments).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from composer.containers import RuntimeOptions, probe
from composer.engine import make_engine
from composer.errors import SSHError
from composer.keys import generate_keypair
from composer.remote import Node, Session, wait_for_ssh
from composer.targets.aws.render import LAUNCHER_PIP
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

IMAGE = "localhost/composer-boot:bookworm"
MODULE = ROOT / "modules" / "aws-cluster"
RUN_ID = "20990101-000000-boot"
WORK_DIR = f"/opt/composer/{RUN_ID}"
SSH_USER = "composer"
GRACE = 10
LIMIT_SECONDS = 90 * 60 + 17
SEED = "/var/lib/cloud/seed/nocloud"
SHUTDOWN_ARGS = "/var/log/composer-test-shutdown.args"

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
variable "expires_at_epoch" { type = number }
variable "grace_minutes" { type = number }
variable "packages" { type = list(string) }
variable "pip_packages" { type = list(string) }

output "user_data" {
  sensitive = true
  value = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    host_key_private = var.host_key_private
    host_key_public  = var.host_key_public
    authorized_key   = var.authorized_key
    ssh_user         = var.ssh_user
    run_id           = var.run_id
    work_dir         = var.work_dir
    expires_at_epoch = var.expires_at_epoch
    grace_minutes    = var.grace_minutes
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
    expires_at_epoch: int
    #: The minutes ``shutdown -h +N`` should get, counted from just before cloud-init ran.
    expected_minutes: int
    user_data: str


def podman(*args: str, timeout: float = 120, check: bool = True) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check:
        assert done.returncode == 0, f"podman {args[0]}: {done.stdout}{done.stderr}"
    return done.stdout


def in_node(name: str, script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", "exec", name, "sh", "-c", script], capture_output=True,
                          text=True, timeout=timeout, check=False)


def render(work: Path, values: dict[str, object]) -> str:
    """The user-data as Terraform renders it: the contract's templatefile call."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(MODULE / "cloud-init.yaml.tftpl", work)
    (work / "scripts").mkdir(exist_ok=True)
    shutil.copy(MODULE / "scripts" / "boot.sh", work / "scripts")
    (work / "main.tf").write_text(ROOT_MODULE)
    (work / "terraform.tfvars.json").write_text(json.dumps(values))
    engine = make_engine("embedded")
    engine.init(work)
    engine.run(["apply", "-auto-approve", "-input=false", "-no-color"], work)
    return str(engine.outputs(work)["user_data"])


def make_keys(directory: Path) -> Keys:
    host_public = generate_keypair(directory / "host", "node-0")
    other = generate_keypair(directory / "other", "impostor")
    client_public = generate_keypair(directory / "client", "composer-client")
    return Keys((directory / "host").read_text(), host_public, other, directory / "client",
                client_public)


def values_for(keys: Keys, expires_at_epoch: int, packages: list[str],
               pip_packages: tuple[str, ...] = ()) -> dict[str, object]:
    return {
        "host_key_private": keys.host_private, "host_key_public": keys.host_public,
        "authorized_key": keys.client_public, "ssh_user": SSH_USER, "run_id": RUN_ID,
        "work_dir": WORK_DIR, "expires_at_epoch": expires_at_epoch, "grace_minutes": GRACE,
        "packages": packages, "pip_packages": list(pip_packages),
    }


@pytest.fixture(scope="module")
def boot_image() -> str:
    """The test image, built once by images/boot/build.sh (cached by its inputs' hash)."""
    if shutil.which("podman") is None or shutil.which("mmdebstrap") is None:
        pytest.skip("the boot test needs podman and mmdebstrap "
                    "(apt-get install podman runc mmdebstrap)")
    done = subprocess.run([str(ROOT / "images" / "boot" / "build.sh")], capture_output=True,
                          text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return IMAGE


def start_node(name: str, image: str, seed: Path, options: RuntimeOptions) -> int:
    """Start the node's container; return the loopback port its sshd will answer on.

    Port 22 is published on a free loopback port. Where podman cannot publish ports
    (or ``COMPOSER_TEST_BOOT_NETWORK=host``), the container shares the host's network
    and a config drop-in puts its sshd on a free loopback port instead.
    """
    argv = ["run", "-d", "--name", name, "-v", f"{seed}:{SEED}:ro"]
    if options.oci_runtime:
        argv += ["--runtime", options.oci_runtime]
    for limit, soft, hard in options.ulimits:
        argv += ["--ulimit", f"{limit}={soft}:{hard}"]
    if os.environ.get("COMPOSER_TEST_BOOT_NETWORK") != "host":
        started = subprocess.run(["podman", *argv, "-p", "127.0.0.1::22", image, "sleep",
                                  "infinity"], capture_output=True, text=True, timeout=120,
                                 check=False)
        if started.returncode == 0:
            address = podman("port", name, "22").strip().splitlines()[0]
            return int(address.rsplit(":", 1)[1])
        podman("rm", "-f", "-t", "0", name, check=False)
    podman(*argv, "--network", "host", image, "sleep", "infinity")
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = int(probe_socket.getsockname()[1])
    drop_in = f"Port {port}\nListenAddress 127.0.0.1\n"
    put = in_node(name, f"printf '{drop_in}' > /etc/ssh/sshd_config.d/00-composer-test.conf")
    assert put.returncode == 0, put.stderr
    return port


@pytest.fixture(scope="module")
def node(boot_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Booted]:
    """One container booted from the rendered user-data by cloud-init's own stages."""
    tmp = tmp_path_factory.mktemp("aws-boot")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COMPOSER_HOME", str(tmp / "home"))
        keys = make_keys(tmp / "keys")
        expires = int(time.time()) + LIMIT_SECONDS
        user_data = render(tmp / "tf", values_for(keys, expires, BOOT_PACKAGES))
        options = probe("podman", boot_image)
    seed = tmp / "seed"
    seed.mkdir()
    (seed / "user-data").write_text(user_data)
    (seed / "meta-data").write_text("instance-id: i-composer-boot-test\nlocal-hostname: node-0\n")
    name = f"composer-boot-test-{tmp.name}"
    port = start_node(name, boot_image, seed, options)
    try:
        # An sshd already up on the image's own keys of every type, as on an image whose
        # sshd starts before cloud-init: cloud-init deletes those keys, writes the pinned
        # one, and its ssh_pwauth step restarts sshd (`service ssh restart` here).
        # The image's own Docker (as on a Deep Learning AMI): a stand-in `docker`.
        early = in_node(name, "ssh-keygen -A && mkdir -p /run/sshd && /usr/sbin/sshd && "
                              "printf '#!/bin/sh\\n' > /usr/local/bin/docker && "
                              "chmod 0755 /usr/local/bin/docker")
        assert early.returncode == 0, early.stderr
        booted_at = time.time()
        for stage in ("init", "modules --mode config", "modules --mode final"):
            done = in_node(name, f"cloud-init {stage}", timeout=300)
            assert done.returncode == 0, f"cloud-init {stage}: {done.stdout}{done.stderr}"
        expected = math.ceil((expires - booted_at) / 60 + GRACE)
        yield Booted(name, port, keys, expires, expected, user_data)
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


BOOT_PACKAGES = ["docker.io", "python3"]


def test_packages_the_image_has_are_not_installed_again(node: Booted) -> None:
    log = in_node(node.name, "cat /var/log/composer-boot.log").stdout
    assert "package docker.io: already there" in log
    assert "package python3: already there" in log
    assert "installed" not in log
    hook = in_node(node.name, "cat /var/lib/cloud/scripts/per-boot/composer-boot").stdout
    assert "--package" not in hook  # packages once, not on every boot


def test_a_package_name_that_is_not_one_is_refused(node: Booted) -> None:
    common = f"--run-id {RUN_ID} --user {SSH_USER} --work-dir {WORK_DIR}"
    done = in_node(node.name, f"/usr/local/sbin/composer-boot {common} --expires-at-epoch 0 "
                              "--package 'jq;touch /tmp/owned'")
    assert done.returncode != 0 and "not a package name" in done.stderr
    assert in_node(node.name, "test -e /tmp/owned").returncode != 0


def pinned(booted: Booted, host_key: str) -> Node:
    return Node(rank=0, name="node-0", address="127.0.0.1", port=booted.port,
                host_key=host_key, work_dir=WORK_DIR, slots=1, user=SSH_USER)


def shutdown_minutes(booted: Booted) -> list[int]:
    done = in_node(booted.name, f"cat {SHUTDOWN_ARGS}")
    assert done.returncode == 0, f"shutdown was never called: {done.stderr}"
    found = []
    for line in done.stdout.splitlines():
        words = line.split()
        assert words[0] == "-h" and words[1].startswith("+"), line
        found.append(int(words[1][1:]))
    return found


def test_user_data_passes_cloud_init_schema(node: Booted, tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COMPOSER_HOME", str(tmp_path / "home"))
        with_packages = render(tmp_path / "tf", values_for(node.keys, 0, ["htop", "jq"],
                                                                   LAUNCHER_PIP["mpi"]))
    assert with_packages.startswith("#cloud-config\n")
    # EC2 refuses user-data over 16 KiB (before base64).
    assert len(with_packages.encode()) < 16 * 1024
    assert '"--package"' in with_packages and '"htop"' in with_packages
    assert "/opt/composer/venv/bin/pip" in with_packages
    assert "venv/bin/pip" not in node.user_data
    broken = node.user_data.replace('"ssh_deletekeys": true', '"ssh_deletekeys": 7')
    assert broken != node.user_data
    for name, text in (("boot", node.user_data), ("packages", with_packages),
                       ("broken", broken)):
        done = subprocess.run(["podman", "exec", "-i", node.name, "sh", "-c",
                               f"cat > /tmp/{name}.yaml && cloud-init schema "
                               f"--config-file /tmp/{name}.yaml"],
                              input=text, capture_output=True, text=True, timeout=120,
                              check=False)
        if name == "broken":
            assert done.returncode != 0 and "ssh_deletekeys" in done.stdout + done.stderr
        else:
            assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
            assert "Valid cloud-config" in done.stdout


def test_cloud_init_ran_clean(node: Booted) -> None:
    status = json.loads(in_node(node.name, "cat /var/lib/cloud/data/status.json").stdout)
    for stage in ("init", "modules-config", "modules-final"):
        assert status["v1"][stage]["errors"] == [], (stage, status["v1"][stage])
        assert status["v1"][stage]["finished"], stage


def test_host_key_lands_where_sshd_reads_it(node: Booted) -> None:
    listing = in_node(node.name, "cd /etc/ssh && stat -c '%n %a %U' ssh_host_*").stdout
    assert listing.split("\n", 1)[0].split() == ["ssh_host_ed25519_key", "600", "root"]
    assert sorted(line.split()[0] for line in listing.splitlines()) == [
        "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"], "other host keys remain"
    public = in_node(node.name, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]
    assert public == node.keys.host_public.split()[:2]
    effective = in_node(node.name, "sshd -T").stdout.splitlines()
    assert "hostkey /etc/ssh/ssh_host_ed25519_key" in effective
    assert "passwordauthentication no" in effective


def test_composer_connects_with_the_pinned_key(node: Booted) -> None:
    (session,) = wait_for_ssh([pinned(node, node.keys.host_public)], node.keys.client_path,
                              overall_timeout=30)
    try:
        out = session.check(f"id -un; stat -c '%a %U' {WORK_DIR}; sudo -n true && echo sudo")
    finally:
        session.close()
    assert out.split("\n")[:3] == [SSH_USER, f"700 {SSH_USER}", "sudo"]


def test_a_different_host_key_is_refused(node: Booted) -> None:
    with pytest.raises(SSHError, match="does not match the pinned key"):
        Session(pinned(node, node.keys.other_host_public), node.keys.client_path).connect()


def test_shutdown_is_scheduled_at_the_limit(node: Booted) -> None:
    (minutes,) = shutdown_minutes(node)
    assert abs(minutes - node.expected_minutes) <= 1, (minutes, node.expected_minutes)
    log = in_node(node.name, "cat /var/log/composer-boot.log").stdout
    assert f"shutdown -h +{minutes}" in log


def test_no_key_material_in_logs(node: Booted) -> None:
    body = [line for line in node.keys.host_private.splitlines() if "PRIVATE KEY" not in line]
    logs = in_node(node.name, "cat /var/log/composer-boot.log /var/log/cloud-init-output.log")
    assert logs.returncode == 0, logs.stderr
    assert "PRIVATE KEY" not in logs.stdout
    assert not any(line in logs.stdout for line in body)


def boot_again(booted: Booted, before: str) -> str:
    """Run ``before`` in the node, then cloud-init's final stage again, as after a reboot:
    the per-boot script the boot step installed runs it again (runcmd does not: it is
    once per instance). Return the boot log's new lines."""
    prepared = in_node(booted.name, before)
    assert prepared.returncode == 0, prepared.stderr
    seen = len(in_node(booted.name, "cat /var/log/composer-boot.log").stdout.splitlines())
    final = in_node(booted.name, "cloud-init modules --mode final", timeout=300)
    assert final.returncode == 0, final.stdout + final.stderr
    (session,) = wait_for_ssh([pinned(booted, booted.keys.host_public)],
                              booted.keys.client_path, overall_timeout=30)
    session.close()
    assert in_node(booted.name, f"stat -c '%a %U' {WORK_DIR}").stdout.strip() == \
        f"700 {SSH_USER}"
    first, *later = shutdown_minutes(booted)
    assert later and all(abs(m - first) <= 1 for m in later), (first, later)
    log = in_node(booted.name, "cat /var/log/composer-boot.log").stdout.splitlines()
    assert len(log) > seen, "the boot step did not run again"
    return "\n".join(log[seen:])


STOP_SSHD = "kill $(cat /run/sshd.pid) && sleep 1 && rm -f /run/sshd.pid"


def test_boot_step_again_starts_a_stopped_sshd(node: Booted) -> None:
    assert "no service manager; started" in boot_again(node, STOP_SSHD)


def test_boot_step_again_restarts_an_sshd_on_another_key(node: Booted) -> None:
    other = "ssh-keygen -q -t ed25519 -N '' -f /root/other_key && /usr/sbin/sshd -h /root/other_key"
    log = boot_again(node, f"{STOP_SSHD} && {other}")
    assert "sshd serves another host key: restarting it" in log
    assert "no service manager; stopped sshd" in log


def test_a_passed_limit_ends_the_node_in_a_minute_and_zero_means_none(node: Booted) -> None:
    before = len(shutdown_minutes(node))
    common = f"--run-id {RUN_ID} --user {SSH_USER} --work-dir {WORK_DIR}"
    passed = in_node(node.name, "/usr/local/sbin/composer-boot "
                     f"{common} --expires-at-epoch $(( $(date +%s) - 3600 )) --grace-minutes 5")
    assert passed.returncode == 0, passed.stderr
    assert shutdown_minutes(node)[before:] == [1]
    none = in_node(node.name, f"/usr/local/sbin/composer-boot {common} --expires-at-epoch 0")
    assert none.returncode == 0, none.stderr
    assert "time limit: none" in none.stderr
    assert len(shutdown_minutes(node)) == before + 1
