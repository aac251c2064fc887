"""A hostile or broken Compute Engine endpoint cannot hold composer for ever or crash
it: endless pages, an answer trickled a byte at a time, answers that are not JSON or
have fields of the wrong type (``composer/targets/gcp/bounded.py``), each through the
production clients at ``COMPOSER_GCE_ENDPOINT``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from composer.errors import ComposerError, PreflightError
from composer.targets.gcp import bounded
from composer.targets.gcp.session import calling, make_clients
from tests.unit.gce_specs import isolate_credentials

pytest.importorskip("google.cloud.compute_v1")

Answer = Callable[[BaseHTTPRequestHandler], None]


def json_answer(body: object) -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    return answer


def trickle(handler: BaseHTTPRequestHandler) -> None:
    """Headers, then one byte every half second: each read is quick, the answer never
    ends."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    try:
        for _ in range(600):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.5)
    except OSError:
        pass


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[[Answer], None]]:
    isolate_credentials(monkeypatch, tmp_path / "home")
    answers: list[Answer] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            answers[0](self)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("COMPOSER_GCE_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    yield answers.append
    server.shutdown()
    server.server_close()


def test_a_listing_whose_pages_never_end_is_stopped(serve: Callable[[Answer], None]) -> None:
    serve(json_answer({"items": [], "nextPageToken": "again"}))
    clients = make_clients("p")
    with pytest.raises(PreflightError) as caught, calling("zones", "list", PreflightError):
        list(clients.zones.list(project="p"))
    assert "came back again" in caught.value.message


def test_an_answer_trickled_a_byte_at_a_time_ends_at_the_wall(
        serve: Callable[[Answer], None], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bounded, "WALL_S", 3.0)
    serve(trickle)
    clients = make_clients("p")
    started = time.monotonic()
    with pytest.raises(ComposerError) as caught, calling("projects", "get"):
        clients.projects.get(project="p")
    assert time.monotonic() - started < 10
    assert "no complete answer within 3s" in caught.value.message


@pytest.mark.parametrize("body", [b"not json{", b"[1, 2, 3]", {"name": 5, "id": "x"}])
def test_an_answer_that_is_not_the_api_s_is_an_error_not_a_traceback(
        serve: Callable[[Answer], None], body: object) -> None:
    serve(json_answer(body))
    clients = make_clients("p")
    with pytest.raises(PreflightError) as caught, calling("projects", "get", PreflightError):
        clients.projects.get(project="p")
    assert "an answer composer cannot read" in caught.value.message


def test_a_listing_comes_back_whole_with_its_unreachable_scopes(
        serve: Callable[[Answer], None]) -> None:
    serve(json_answer({"items": {"zones/us-central1-a": {"instances": [{"name": "a"}]}},
                       "unreachables": ["zones/us-east1-b"]}))
    listed = make_clients("p").instances.aggregated_list(request={"project": "p"})
    assert [(scope, [i.name for i in scoped.instances]) for scope, scoped in listed] == \
        [("zones/us-central1-a", ["a"])]
    assert listed.unreachables == ["zones/us-east1-b"]
