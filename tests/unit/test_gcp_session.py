"""Credentials, the endpoint setting, timeouts and errors of composer's Compute Engine
clients (``composer/targets/gcp/session.py``)."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from composer.errors import ComposerError, ExitCode, PreflightError
from composer.targets.gcp import session
from composer.targets.gcp.session import calling, make_clients
from tests.unit import gce_world as w
from tests.unit.gce_specs import Gce, gce_fixture, isolate_credentials  # noqa: F401 - fixture

pytest.importorskip("google.cloud.compute_v1")


def test_the_endpoint_setting_reaches_the_fake(gce: Gce) -> None:
    clients = make_clients(w.PROJECT)
    assert clients.endpoint == gce.endpoint
    assert str(clients.projects.get(project=w.PROJECT).id) == w.NUMBER
    assert gce.world.log == [f"GET /compute/v1/projects/{w.PROJECT}"]


def test_an_endpoint_without_a_scheme_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPOSER_GCE_ENDPOINT", "127.0.0.1:8080")
    with pytest.raises(PreflightError) as caught:
        make_clients("p")
    assert "has no scheme" in caught.value.message
    assert "COMPOSER_GCE_ENDPOINT=http://127.0.0.1:8080" in (caught.value.hint or "")


def test_an_endpoint_with_another_scheme_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPOSER_GCE_ENDPOINT", "ftp://127.0.0.1:8080")
    with pytest.raises(PreflightError) as caught:
        make_clients("p")
    assert "has the scheme 'ftp'; only http:// and https:// are served" in caught.value.message


def test_no_credentials_names_how_to_get_them(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    """The real google.auth search: no key file, no gcloud config, no metadata server."""
    isolate_credentials(monkeypatch, tmp_path / "home")
    started = time.monotonic()
    with pytest.raises(PreflightError) as caught:
        make_clients("p")
    assert time.monotonic() - started < 30
    assert caught.value.exit_code == ExitCode.INVALID_INPUT
    assert caught.value.message.startswith("no Google Cloud credentials found")
    assert "gcloud auth application-default login" in (caught.value.hint or "")
    assert "GOOGLE_APPLICATION_CREDENTIALS" in (caught.value.hint or "")


@pytest.mark.parametrize("shape", ["directory", "array", "fields missing"])
def test_a_credentials_file_google_auth_cannot_read_is_exit_2(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, shape: str) -> None:
    """A directory or a JSON array in GOOGLE_APPLICATION_CREDENTIALS made google.auth
    raise something other than its own error: a traceback, exit 1."""
    isolate_credentials(monkeypatch, tmp_path / "home")
    named = tmp_path / "creds"
    if shape == "directory":
        named.mkdir()
    else:
        named.write_text("[]" if shape == "array" else '{"type": "service_account"}')
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(named))
    with pytest.raises(PreflightError) as caught:
        make_clients("p")
    assert caught.value.exit_code == ExitCode.INVALID_INPUT
    assert "GOOGLE_APPLICATION_CREDENTIALS" in caught.value.message + (caught.value.hint or "")


def test_without_google_cloud_compute_the_extra_is_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.compute_v1", None)
    with pytest.raises(PreflightError) as caught:
        make_clients("p")
    assert "pip install 'composer-runs[gcp]'" in (caught.value.hint or "")


@pytest.fixture
def silent() -> Iterator[str]:
    """An endpoint that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


def test_a_silent_endpoint_fails_by_the_deadline(silent: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_credentials(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("COMPOSER_GCE_ENDPOINT", silent)
    monkeypatch.setattr(session, "CALL_TIMEOUT_S", 0.3)
    monkeypatch.setattr(session, "DEADLINE_S", 1.5)
    clients = make_clients("p")
    started = time.monotonic()
    with pytest.raises(ComposerError) as caught, calling("projects", "get"):
        clients.projects.get(project="p")
    assert time.monotonic() - started < 10
    assert caught.value.message.startswith("Compute Engine projects.get failed:")
    assert "cannot be reached" in (caught.value.hint or "")


def test_the_defaults_fail_a_silent_endpoint_in_about_a_minute() -> None:
    assert session.CALL_TIMEOUT_S <= 20 and 30 <= session.DEADLINE_S <= 90


def test_server_errors_are_retried_then_reported(gce: Gce,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "DEADLINE_S", 1.0)
    gce.world.failing[f"/projects/{w.PROJECT}"] = (503, "backendError", "Backend Error")
    clients = make_clients(w.PROJECT)
    with pytest.raises(ComposerError) as caught, calling("projects", "get"):
        clients.projects.get(project=w.PROJECT)
    assert caught.value.message == "Compute Engine projects.get failed: 503 Backend Error"
    assert len(gce.world.log) >= 2  # tried again before giving up


def test_deletes_are_sent_once(gce: Gce) -> None:
    w.add_firewall(gce.world, "composer-r-ssh")
    gce.world.failing["/global/firewalls/"] = (503, "backendError", "Backend Error")
    clients = make_clients(w.PROJECT)
    with pytest.raises(ComposerError), calling("firewalls", "delete"):
        clients.firewalls.delete(project=w.PROJECT, firewall="composer-r-ssh")
    assert gce.world.log == [f"DELETE /compute/v1/projects/{w.PROJECT}/global/firewalls/"
                             "composer-r-ssh"]
