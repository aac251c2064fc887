"""Container fixtures: the example image in podman's store, and a private Docker daemon.

The docker tests use the daemon that ``make test`` / ``.ci/run`` started
(``COMPOSER_TEST_DOCKER_HOST``); without one, the first test that needs it starts
a private dockerd with ``images/dockerd.sh`` and stops it at the end of the
session. They are skipped, with the reason, when no daemon can start here.
``DOCKER_HOST`` is set only inside the tests that ask for ``docker_host``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT

IMAGE = "localhost/composer-train:latest"
DOCKERD = ROOT / "images" / "dockerd.sh"
TEST_HOST_ENV = "COMPOSER_TEST_DOCKER_HOST"


@pytest.fixture(scope="session")
def train_image() -> str:
    """The example image, built once by the script behind `make image` (cached)."""
    if shutil.which("podman") is None or shutil.which("mmdebstrap") is None:
        pytest.skip("podman and mmdebstrap are needed (apt-get install podman runc mmdebstrap)")
    done = subprocess.run([str(ROOT / "images" / "build.sh")], capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return IMAGE


@pytest.fixture(scope="session")
def example_models() -> dict[str, str]:
    """The train-container example's model sha256 per runtime, as this session ran it."""
    return {}


def _dockerd(*args: str, host: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"DOCKER_HOST": host} if host else {})}
    return subprocess.run([str(DOCKERD), *args], capture_output=True, text=True, timeout=300,
                          check=False, env=env)


def _host_of(stdout: str) -> str:
    return stdout.strip().splitlines()[-1].removeprefix("DOCKER_HOST=")


@pytest.fixture(scope="session")
def docker_daemon() -> Iterator[str]:
    """The private daemon's DOCKER_HOST value (started here unless one was given)."""
    given = os.environ.get(TEST_HOST_ENV)
    if given:
        yield given
        return
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        pytest.skip("docker tests need dockerd and docker (apt-get install docker.io)")
    if os.geteuid() != 0:
        pytest.skip("docker tests start a private dockerd, which needs root")
    was_running = _dockerd("status").returncode == 0
    started = _dockerd("start")
    if started.returncode != 0:
        pytest.skip(f"no private dockerd could start here: {started.stderr.strip()[-500:]}")
    try:
        yield _host_of(started.stdout)
    finally:
        if not was_running:
            _dockerd("stop")


@pytest.fixture(scope="session")
def docker_image(docker_daemon: str, train_image: str) -> str:
    """The example image, moved from podman's store into the private daemon (cached)."""
    done = _dockerd("load", train_image, host=docker_daemon)
    assert done.returncode == 0, done.stderr[-3000:]
    return train_image


@pytest.fixture
def docker_host(docker_daemon: str, docker_image: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """DOCKER_HOST set for this test (and the composer processes it starts)."""
    monkeypatch.setenv("DOCKER_HOST", docker_daemon)
    return docker_daemon
