"""Output streams without processes: line splitting, redaction, capping, heartbeats."""

from __future__ import annotations

import io
import random
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from composer.errors import UsageError
from composer.launch import Heartbeat, Streams, heartbeat_interval, human_duration
from composer.remote import LINE_CAP, LineSplitter, Node, Session
from composer.result import RedactedLog, cap_log
from composer.secrets import Secrets

CHUNK = 64 * 1024


# -- LineSplitter ---------------------------------------------------------------


def split(data: bytes, chunks: list[int], cap: int = LINE_CAP) -> list[tuple[bytes, bytes | None]]:
    out: list[tuple[bytes, bytes | None]] = []
    splitter = LineSplitter(lambda d, e: out.append((d, e)), cap)
    at = 0
    for size in chunks:
        splitter.feed(data[at:at + size])
        at += size
    splitter.feed(data[at:])
    splitter.close()
    return out


def test_lines_and_their_ends() -> None:
    data = b"one\ntwo\r\nthree\rfour\r\rfive"
    assert split(data, []) == [(b"one", b"\n"), (b"two", b"\r\n"), (b"three", b"\r"),
                               (b"four", b"\r"), (b"", b"\r"), (b"five", b"")]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    assert split(b"a\r\nb\n", [2]) == [(b"a", b"\r\n"), (b"b", b"\n")]
    assert split(b"a\r", []) == [(b"a", b"\r")]
    assert split(b"a\rb", [2]) == [(b"a", b"\r"), (b"b", b"")]


def test_every_byte_comes_out_whatever_the_chunks() -> None:
    rng = random.Random(7)
    for _ in range(200):
        data = bytes(rng.choice(b"ab\r\n") for _ in range(rng.randrange(0, 300)))
        cuts = [rng.randrange(1, 20) for _ in range(rng.randrange(0, 20))]
        cap = rng.randrange(1, 40)
        out = split(data, cuts, cap)
        assert b"".join(d + (e or b"") for d, e in out) == data
        assert all(len(d) <= cap for d, _ in out)
        assert all(e is not None or len(d) == cap for d, e in out)
        assert not any(b"\n" in d or b"\r" in d for d, _ in out)


def test_a_long_line_comes_out_in_capped_pieces() -> None:
    out = split(b"x" * (3 * LINE_CAP + 5) + b"\n", [1000] * 300)
    assert [len(d) for d, _ in out] == [LINE_CAP] * 3 + [5]
    assert [e for _, e in out] == [None, None, None, b"\n"]


# -- Session.run on a fake channel: linear in one huge line ---------------------


class FakeTransport:
    def __init__(self, channel: FakeChannel) -> None:
        self.channel = channel

    def is_active(self) -> bool:
        return True

    def open_session(self) -> FakeChannel:
        return self.channel


class FakeChannel:
    """Hands out ``chunks`` as if a node's command wrote them, then exits 0."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.next = next(chunks, None)
        self.closed = False
        self.status_event = threading.Event()
        self.status_event.set()

    def set_combine_stderr(self, _: bool) -> None: ...
    def exec_command(self, _: str) -> None: ...
    def shutdown_write(self) -> None: ...

    def recv_ready(self) -> bool:
        return self.next is not None

    def recv(self, _: int) -> bytes:
        data, self.next = self.next, next(self.chunks, None)
        assert data is not None
        return data

    def exit_status_ready(self) -> bool:
        return self.next is None

    @property
    def eof_received(self) -> bool:
        return self.next is None

    def recv_exit_status(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True

    def get_transport(self) -> FakeTransport:
        return FakeTransport(self)


class FakeClient:
    def __init__(self, channel: FakeChannel) -> None:
        self.channel = channel

    def get_transport(self) -> FakeTransport:
        return FakeTransport(self.channel)


@pytest.fixture(scope="module")
def key_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "client"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def one_line(key_path: Path, log_dir: Path, megabytes: int) -> tuple[float, int]:
    """Seconds to run a command printing one line of ``megabytes`` MB, and the bytes the
    node log got."""
    node = Node(0, "node-0", "127.0.0.1", 22, "ssh-ed25519 AAAA", "/w", 1)
    session = Session(node, key_path)
    block = b"y" * CHUNK
    chunks = iter([*(block for _ in range(megabytes * 1024 * 1024 // CHUNK)), b"\n"])
    session.client = FakeClient(FakeChannel(chunks))  # type: ignore[assignment]
    streams = Streams(log_dir, ["node-0"], None, Secrets({"T": "a-secret-value"}))
    t0 = time.perf_counter()
    code = session.run("cmd", on_line=lambda d, e: streams.line("node-0", d, e))
    elapsed = time.perf_counter() - t0
    streams.close()
    assert code == 0
    return elapsed, (log_dir / "node-0.log").stat().st_size


def test_one_huge_line_takes_linear_time_and_bounded_memory(key_path: Path,
                                                            tmp_path: Path) -> None:
    small = min(one_line(key_path, tmp_path / f"s{i}", 4)[0] for i in range(3))
    big, size = one_line(key_path, tmp_path / "big", 64)
    assert size == 64 * 1024 * 1024 + 1
    # 16 times the bytes: linear is ~16x; the old quadratic split was ~256x.
    assert big < 16 * small * 3 + 0.5, f"4 MB: {small:.3f}s, 64 MB: {big:.3f}s"
    tracemalloc.start()
    try:
        one_line(key_path, tmp_path / "traced", 64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for a 64 MB line"


# -- Secrets --------------------------------------------------------------------


def test_each_line_of_a_multiline_secret_is_masked() -> None:
    value = "-----BEGIN KEY-----\nfirst-line-abc\n  second-line-def\r\nab\n-----END KEY-----\n"
    secrets = Secrets({"K": value})
    assert secrets.redact_bytes(b"x second-line-def y") == b"x *** y"
    assert secrets.redact_bytes(b"first-line-abc") == b"***"
    assert secrets.redact_bytes(value.encode()) == b"***"
    # Lines shorter than four characters would mask too much: "ab" is left alone.
    assert secrets.redact_bytes(b"ab cd") == b"ab cd"
    assert secrets.contains(b"... second-line-def ...")
    assert secrets.redact("a\nfirst-line-abc\n") == "a\n***\n"


def test_unsafe_tail_is_the_start_of_a_secret() -> None:
    secrets = Secrets({"K": "abcdef"})
    assert secrets.unsafe_tail(b"xxabc") == 3
    assert secrets.unsafe_tail(b"xxabcdef") == 0
    assert secrets.unsafe_tail(b"xxaxa") == 1
    assert secrets.unsafe_tail(b"xyz") == 0
    assert Secrets({}).unsafe_tail(b"abc") == 0


def test_a_secret_cut_between_two_pieces_of_a_line_is_masked(tmp_path: Path) -> None:
    echo = io.StringIO()
    streams = Streams(tmp_path, ["n"], echo, Secrets({"K": "secret-value-123"}))
    streams.line("n", b"x" * 10 + b"secret-va", None)
    streams.line("n", b"lue-123 end", b"\n")
    streams.close()
    assert (tmp_path / "n.log").read_bytes() == b"x" * 10 + b"*** end\n"
    assert "secret-va" not in echo.getvalue()


# -- Streams: the terminal and the logs -----------------------------------------


def test_progress_updates_are_thinned_on_the_terminal_only(tmp_path: Path) -> None:
    echo = io.StringIO()
    streams = Streams(tmp_path, ["node-0"], echo)
    for i in range(50):
        streams.line("node-0", f"{i}%".encode(), b"\r")
    streams.line("node-0", b"100%", b"\n")
    streams.close()
    shown = echo.getvalue().splitlines()
    assert shown[0] == "[node-0] 0%" and shown[-1] == "[node-0] 100%"
    assert len(shown) < 10
    assert (tmp_path / "node-0.log").read_bytes() == \
        b"".join(f"{i}%\r".encode() for i in range(50)) + b"100%\n"


def test_a_cut_line_is_shown_once_with_where_the_rest_is(tmp_path: Path) -> None:
    echo = io.StringIO()
    streams = Streams(tmp_path, ["node-0"], echo)
    streams.line("node-0", b"a" * 10, None)
    streams.line("node-0", b"b" * 10, None)
    streams.line("node-0", b"c" * 3, b"\n")
    streams.line("node-0", b"next", b"\n")
    streams.close()
    lines = echo.getvalue().splitlines()
    assert lines[0] == "[node-0] " + "a" * 10
    assert "cut at 10 of 23 bytes" in lines[1] and "logs/node-0.log" in lines[1]
    assert lines[2] == "[node-0] next"


def test_log_prefix_starts_each_line_once(tmp_path: Path) -> None:
    streams = Streams(tmp_path, ["node-1"], None, Secrets({"K": "top-secret-value"}))
    streams.line("node-1", b"\r10%", b"\r", log_prefix=b"[rank 3] ")
    streams.line("node-1", b"100%", b"\n", log_prefix=b"[rank 3] ")
    streams.line("node-1", b"a" * 5 + b"top-se", None, log_prefix=b"[rank 2] ")
    streams.line("node-1", b"cret-value end", b"\r\n", log_prefix=b"[rank 2] ")
    streams.line("node-1", b"last", b"", log_prefix=b"[rank 3] ")
    streams.close()
    assert (tmp_path / "node-1.log").read_bytes() == (
        b"[rank 3] \r10%\r100%\n[rank 2] aaaaa*** end\r\n[rank 3] last"
    )


def test_logs_of_unused_streams_are_not_created(tmp_path: Path) -> None:
    streams = Streams(tmp_path, ["node-0"], None)
    streams.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node-0.log"]
    streams = Streams(tmp_path, [], None)
    streams.line("mpirun", b"hello", b"\n")
    streams.close()
    assert (tmp_path / "mpirun.log").read_bytes() == b"hello\n"


def test_terraform_log_masks_a_secret_written_in_two_calls(tmp_path: Path) -> None:
    log = RedactedLog(tmp_path / "terraform.log", Secrets({"K": "top-secret"}))
    log.write("error: top-")
    log.write("secret\nnext ")
    log.write("top-secret")
    log.close()
    assert (tmp_path / "terraform.log").read_text() == "error: ***\nnext ***"


# -- capping logs ---------------------------------------------------------------


def test_cap_log_keeps_head_and_tail(tmp_path: Path) -> None:
    path = tmp_path / "node-0.log"
    lines = [f"line {i:05d}\n".encode() for i in range(10_000)]
    path.write_bytes(b"".join(lines))
    size = path.stat().st_size
    cut = cap_log(path, 2000)
    assert cut is not None and cut["size"] == size
    data = path.read_bytes()
    assert len(data) <= 2000
    assert data.startswith(b"line 00000\n") and data.endswith(b"line 09999\n")
    head, marker, tail = data.partition(b"[composer: ")
    assert head.endswith(b"\n") and head.count(b"\n") > 50
    assert f"{cut['cut']} bytes cut here".encode() in marker + tail
    assert len(head) + len(tail.split(b"\n", 1)[1]) + cut["cut"] == size
    assert cap_log(path, 10_000) is None


def test_cap_log_of_one_huge_line(tmp_path: Path) -> None:
    path = tmp_path / "n.log"
    path.write_bytes(b"z" * 100_000)
    cut = cap_log(path, 1000)
    assert cut is not None and cut["cut"] > 98_000
    assert path.stat().st_size <= 1000


# -- heartbeat ------------------------------------------------------------------


def test_heartbeat_interval_from_the_environment() -> None:
    assert heartbeat_interval({}) == 60.0
    assert heartbeat_interval({"COMPOSER_HEARTBEAT_S": "1"}) == 1.0
    assert heartbeat_interval({"COMPOSER_HEARTBEAT_S": "0.5"}) == 0.5
    for bad in ("soon", "0", "-3", "nan", "inf"):
        with pytest.raises(UsageError) as info:
            heartbeat_interval({"COMPOSER_HEARTBEAT_S": bad})
        assert "COMPOSER_HEARTBEAT_S" in info.value.message


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (45, "45s"), (60, "1m"), (100, "1m40s"), (3600, "1h"), (3900, "1h05m"),
    (86400, "24h"), (2 * 86400, "2d"), (3 * 86400 + 6 * 3600, "3d6h"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_heartbeat_says_who_runs_and_when_output_came(tmp_path: Path) -> None:
    said: list[str] = []
    streams = Streams(tmp_path, ["node-0", "node-1"], None)
    streams.started("node-0")
    streams.started("node-1")
    beat = Heartbeat(said.append, streams, 0.05)
    with beat:
        time.sleep(0.3)
        streams.line("node-0", b"hello", b"\n")
        streams.ended("node-1")
        time.sleep(0.2)
    streams.close()
    assert len(said) >= 3
    assert said[0].startswith("[run] still running after 0s (node-0, node-1 active; "
                              "no output yet)")
    assert "(node-0 active; last output 0s ago)" in said[-1]
    now = time.monotonic()
    assert "after 2m" in beat.message(now + 120)
