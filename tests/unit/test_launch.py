"""Launcher command lines: the node prelude, ssh quoting, hostfiles, mpirun argv."""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from composer.launch import (
    PRELUDE,
    TAG,
    JobResult,
    Streams,
    env_prefix,
    hostfile,
    mpi_failure,
    mpirun_argv,
    run_mpi,
    ssh_command,
    ssh_wrapper,
    workload_argv,
)
from composer.remote import LineSink, LineSplitter, Node

TRICKY = [
    "plain",
    "with space",
    "  leading and trailing  ",
    "single ' quote",
    'double " quote',
    "semi; rm -rf /nonexistent",
    "$(echo pwned)",
    "`echo pwned`",
    "${HOME}",
    "$HOME",
    "back\\slash",
    "line1\nline2",
    "tab\there",
    "glob * ? [a]",
    "pipe | amp & redirect > /dev/null",
    "--flag=value",
    "-",
    "",
    "ünïcödé ✓ 日本語",
    "#not a comment",
    "~",
]
TRICKY_ENV = {
    "PLAIN": "value",
    "SPACES": "a b  c",
    "QUOTES": 'it\'s "quoted"',
    "SEMI": "x; echo injected",
    "SUBST": "$(echo pwned) `echo pwned` ${PATH}",
    "NEWLINE": "first\nsecond\n",
    "UNICODE": "ünïcödé ✓ 日本語",
    "EQUALS": "a=b=c",
    "EMPTY": "",
}
REPORT = (
    "import json, os, sys; print(json.dumps({"
    "'argv': sys.argv[1:], "
    "'env': {k: os.environ[k] for k in sorted(os.environ) if k in "
    + repr(sorted(TRICKY_ENV))
    + "}, "
    "'cwd': os.getcwd(), 'out': os.environ['COMPOSER_OUTPUT_DIR']}))"
)


def _node(rank: int, slots: int = 2) -> Node:
    return Node(
        rank=rank,
        name=f"node-{rank}",
        address=f"127.0.0.{rank + 2}",
        port=2222,
        host_key="ssh-ed25519 AAAAC3Nz",
        work_dir=f"/w/node-{rank}/work",
        slots=slots,
    )


def test_workload_argv_for_list_command() -> None:
    argv = workload_argv(["python", "train.py", "--epochs", "3"])
    assert argv == ["sh", "-c", PRELUDE, "composer-run", "python", "train.py", "--epochs", "3"]


def test_workload_argv_for_string_command() -> None:
    argv = workload_argv("echo $HOME && ls", name="composer-rank")
    assert argv == ["sh", "-c", PRELUDE, "composer-rank", "sh", "-c", "echo $HOME && ls"]


def test_workload_argv_accepts_tuples() -> None:
    assert workload_argv(("a", "b")) == workload_argv(["a", "b"])


def test_env_prefix_sorts_and_quotes() -> None:
    line = env_prefix({"B": "two words", "A": "1"})
    assert line == "env A=1 'B=two words'"
    assert shlex.split(line) == ["env", "A=1", "B=two words"]


def _run_line(line: str, work_dir: Path) -> subprocess.CompletedProcess[bytes]:
    env = {"COMPOSER_WORK_DIR": str(work_dir), "PATH": os.environ["PATH"]}
    return subprocess.run(["sh", "-c", line], env=env, capture_output=True, timeout=30, check=False)


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    work = tmp_path / "node work ' dir"
    (work / "code").mkdir(parents=True)
    return work


def test_ssh_command_round_trips_through_sh(work_dir: Path) -> None:
    line = ssh_command(TRICKY_ENV, [sys.executable, "-c", REPORT, *TRICKY])
    done = _run_line(line, work_dir)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    expected = {
        "argv": TRICKY,
        "env": dict(sorted(TRICKY_ENV.items())),
        "cwd": str((work_dir / "code").resolve()),
        "out": f"{work_dir}/outputs",
    }
    assert done.stdout == (json.dumps(expected) + "\n").encode()
    assert done.stderr == b""


def test_ssh_command_string_command_runs_in_code_dir(work_dir: Path) -> None:
    (work_dir / "code" / "marker.txt").write_text("here\n")
    command = 'cat marker.txt; printf "%s|%s\\n" "$GREETING" "$COMPOSER_OUTPUT_DIR"'
    done = _run_line(ssh_command({"GREETING": "hi; there $(x)"}, command), work_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == f"here\nhi; there $(x)|{work_dir}/outputs\n"


def test_ssh_command_passes_exit_code(work_dir: Path) -> None:
    done = _run_line(ssh_command({}, "exit 7"), work_dir)
    assert done.returncode == 7


def test_ssh_command_fails_without_code_dir(tmp_path: Path) -> None:
    done = _run_line(ssh_command({}, ["sh", "-c", "echo ran"]), tmp_path)
    assert done.returncode != 0
    assert b"ran" not in done.stdout


def test_hostfile() -> None:
    nodes = [_node(0, 2), _node(1, 2), _node(2, 4)]
    assert hostfile(nodes) == "127.0.0.2 slots=2\n127.0.0.3 slots=2\n127.0.0.4 slots=4\n"
    assert hostfile([]) == ""


def test_ssh_wrapper_pins_host_keys() -> None:
    script = ssh_wrapper("/keys/run key", "/keys/known_hosts", 2222)
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh"
    assert script.endswith('"$@"\n')
    words = shlex.split(lines[1])
    assert words[:2] == ["exec", "ssh"]
    assert words[-1] == "$@"
    options = [words[i + 1] for i, w in enumerate(words) if w == "-o"]
    assert "StrictHostKeyChecking=yes" in options
    assert not [
        o
        for o in options
        if o.lower().startswith("stricthostkeychecking=") and o != "StrictHostKeyChecking=yes"
    ]
    assert "StrictHostKeyChecking=no" not in script
    assert 'UserKnownHostsFile="/keys/known_hosts"' in options
    assert "IdentitiesOnly=yes" in options
    assert "BatchMode=yes" in options
    assert 'IdentityFile="/keys/run key"' in options
    assert words[words.index("-p") + 1] == "2222"


def test_ssh_wrapper_is_valid_sh(tmp_path: Path) -> None:
    path = tmp_path / "ssh-wrapper"
    path.write_text(ssh_wrapper("/k", "/kh", 22))
    done = subprocess.run(["sh", "-n", str(path)], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr


def _mpirun(
    forward: list[str], as_root: bool, command: list[str] | str, extra: tuple[str, ...] = ()
) -> list[str]:
    return mpirun_argv(
        "/venv/bin/mpirun",
        "/run/hostfile",
        "/run/ssh-wrapper",
        8,
        forward,
        extra,
        command,
        as_root,
    )


def test_mpirun_argv_order() -> None:
    argv = _mpirun(["SEED", "PATH", "A_VAR"], as_root=False, command=["python", "train.py"])
    assert argv[0] == "/venv/bin/mpirun"
    assert argv[argv.index("--hostfile") + 1] == "/run/hostfile"
    np_at = argv.index("-np")
    assert argv[np_at + 1] == "8"
    assert argv.index("--map-by") > np_at
    assert argv[argv.index("--map-by") + 1] == "slot"
    assert argv[argv.index("--prefix") + 1] == "/venv"
    assert "plm_ssh_agent" in argv and "/run/ssh-wrapper" in argv
    assert "--allow-run-as-root" not in argv
    forwarded = [argv[i + 1] for i, a in enumerate(argv) if a == "-x"]
    assert forwarded == ["A_VAR", "PATH", "SEED"]
    tail = workload_argv(["python", "train.py"], "composer-rank")
    assert argv[-len(tail) :] == tail
    assert argv.index("-x") < len(argv) - len(tail)


def test_mpirun_argv_as_root_and_extra() -> None:
    argv = _mpirun([], as_root=True, command="hostname", extra=("--oversubscribe",))
    assert argv.count("--allow-run-as-root") == 1
    assert "-x" not in argv
    tail = workload_argv("hostname", "composer-rank")
    assert argv[-len(tail) :] == tail
    assert argv[-len(tail) - 1] == "--oversubscribe"
    assert argv.index("--allow-run-as-root") < argv.index("--oversubscribe")


def test_mpirun_argv_bare_mpirun_has_no_relative_prefix() -> None:
    argv = mpirun_argv("mpirun", "/h", "/a", 2, [], [], ["true"], False)
    assert "--prefix" not in argv
    absolute = mpirun_argv("/opt/mpi/bin/mpirun", "/h", "/a", 2, [], [], ["true"], False)
    assert absolute[absolute.index("--prefix") + 1] == "/opt/mpi"


@pytest.mark.parametrize(
    ("line", "groups"),
    [
        (b"[1,3]<stdout>: hello", (b"1", b"3", b"stdout", b"hello")),
        (
            b"[1,0]<stderr>: Traceback (most recent call last):",
            (b"1", b"0", b"stderr", b"Traceback (most recent call last):"),
        ),
        (b"[12,127]<stdout>:no space", (b"12", b"127", b"stdout", b"no space")),
        (b"[1,2]<stdout>: ", (b"1", b"2", b"stdout", b"")),
        (b"[1,2]<stdout>:   indented", (b"1", b"2", b"stdout", b"  indented")),
        (
            b"[1,5]<stdout>: [1,4]<stdout>: nested",
            (b"1", b"5", b"stdout", b"[1,4]<stdout>: nested"),
        ),
        ("[1,1]<stdout>: ünï".encode(), (b"1", b"1", b"stdout", "ünï".encode())),
    ],
)
def test_tag_matches_open_mpi_tagged_lines(line: bytes, groups: tuple[bytes, ...]) -> None:
    match = TAG.match(line)
    assert match is not None
    assert match.groups() == groups


@pytest.mark.parametrize(
    "line",
    [
        b"hello",
        b"--------------------------------------------------------------------------",
        b"[node-0:01234] mca_base_component_repository_open: unable to open",
        b"[1,3]<stdin>: nope",
        b" [1,3]<stdout>: leading space",
        b"[1,x]<stdout>: not a rank",
        b"[1,3] <stdout>: spaced",
        b"",
    ],
)
def test_tag_ignores_other_lines(line: bytes) -> None:
    assert TAG.match(line) is None


def test_ssh_options_escape_paths_for_openssh() -> None:
    from composer.sshopts import config_value, options

    assert config_value('/h/my "x" 100% #1\\') == '"/h/my \\"x\\" 100%% #1\\\\"'
    argv = options("/a b/key", "/a b/kh", 22)
    assert "-i" not in argv
    assert argv[argv.index("-p") + 1] == "22"


# -- which rank failed: mpirun's own reports, as Open MPI 5.0.11 printed them ----

DASHES = b"-" * 74
NON_ZERO = b"\n".join([
    DASHES,
    b"prterun detected that one or more processes exited with non-zero status,",
    b"thus causing the job to be terminated. The first process to do so was:",
    b"",
    b"   Process name: [prterun-vm-9710@1,3]",
    b"   Exit code:    4",
    DASHES,
])
ABORTED = b"\n".join([
    DASHES,
    b"prterun has exited due to process rank 2 with PID 0 on node vm calling",
    b'"abort". This may have caused other processes in the application to be',
    b"terminated by signals sent by prterun (as reported here).",
    DASHES,
])
SIGNALLED = b"\n".join([
    DASHES,
    b"prterun noticed that process rank 5 with PID 12253 on node vm exited on",
    b"signal 9 (Killed).",
    DASHES,
])


@pytest.mark.parametrize(
    ("report", "found"),
    [
        (NON_ZERO, (3, 4)),
        (NON_ZERO.replace(b"prterun-vm-9710", b"prterun-a-long-host.example.org-1"), (3, 4)),
        (ABORTED, (2, None)),
        (SIGNALLED, (5, None)),
        (ABORTED + b"\n" + NON_ZERO, (2, None)),  # the first report wins
        (b"[warn] Epoll MOD(4) on fd 27 failed.\n" + NON_ZERO, (3, 4)),
        (b"", None),
        (b"A daemon failed to report back\n" + DASHES, None),
    ],
)
def test_mpi_failure_reads_mpiruns_report(report: bytes, found: tuple[int, int | None] | None
                                          ) -> None:
    assert mpi_failure(report) == found


class FakeHead:
    """A head node whose mpirun prints ``output`` and exits with ``code``."""

    def __init__(self, output: bytes, code: int) -> None:
        self.node = Node(0, "node-0", "127.0.1.1", 22, "ssh-ed25519 AAAA", "/w", 2)
        self.output, self.code = output, code

    def run(self, command: str, on_line: LineSink, timeout: float | None) -> int:
        splitter = LineSplitter(on_line)
        splitter.feed(self.output)
        splitter.close()
        return self.code


def _run_mpi(tmp_path: Path, output: bytes, code: int) -> tuple[JobResult, str]:
    echo = io.StringIO()
    streams = Streams(tmp_path, ["node-0", "node-1"], echo)
    try:
        job = run_mpi(FakeHead(output, code), ["true"], {}, 2,  # type: ignore[arg-type]
                      ["node-0", "node-1"], streams, None)
    finally:
        streams.close()
    return job, echo.getvalue()


RANK_LINES = (b"[1,3]<stdout>: rank 3 failing\n[1,2]<stderr>: \rbar 1\rbar 2\n"
              b"[1,0]<stdout>: rank 0 up\n[1,1]<stdout>: rank 1 up\n")


def test_run_mpi_names_the_failing_rank_and_its_node(tmp_path: Path) -> None:
    job, shown = _run_mpi(tmp_path, RANK_LINES + NON_ZERO + b"\n", 4)
    assert job.failed_node == "node-1" and job.failed_rank == 3
    assert job.exit_code == 4
    assert (tmp_path / "node-1.log").read_bytes() == \
        b"[rank 3] rank 3 failing\n[rank 2] \rbar 1\rbar 2\n"
    assert (tmp_path / "node-0.log").read_bytes() == b"[rank 0] rank 0 up\n[rank 1] rank 1 up\n"
    assert (tmp_path / "mpirun.log").read_bytes() == NON_ZERO + b"\n"
    mpirun_lines = [line for line in shown.splitlines() if not line.startswith("[rank ")]
    assert mpirun_lines and all(line.startswith("[mpirun] ") for line in mpirun_lines)


def test_run_mpi_after_an_abort_reports_mpiruns_exit_code(tmp_path: Path) -> None:
    job, _ = _run_mpi(tmp_path, RANK_LINES + ABORTED + b"\n", 7)
    assert job.failed_node == "node-1" and job.failed_rank == 2
    assert job.exit_code == 7


@pytest.mark.parametrize(
    "output",
    [
        RANK_LINES + b"mpirun: something else went wrong\n",
        # A rank cannot name itself, and a rank beyond the job falls back too.
        b"[1,3]<stdout>:    Process name: [x@1,1]\n[1,3]<stdout>:    Exit code:    9\n",
        NON_ZERO.replace(b"@1,3]", b"@1,40]") + b"\n",
    ],
)
def test_run_mpi_without_a_named_rank_blames_the_head(tmp_path: Path, output: bytes) -> None:
    job, _ = _run_mpi(tmp_path, output, 3)
    assert job.failed_node == "node-0" and job.failed_rank is None
    assert job.exit_code == 3


def test_run_mpi_success_names_nobody(tmp_path: Path) -> None:
    job, _ = _run_mpi(tmp_path, RANK_LINES, 0)
    assert job.exit_code == 0 and job.failed_node is None
