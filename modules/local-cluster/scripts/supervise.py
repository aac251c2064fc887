"""Hold every process of one local node in one process tree, and stop all of it.

    NODE_SSHD=/usr/sbin/sshd supervise.py run NODE_DIR
        Become a child subreaper (prctl PR_SET_CHILD_SUBREAPER) in a session of its
        own, write NODE_DIR/node.pid, and run ``$NODE_SSHD -f NODE_DIR/sshd_config -D
        -E NODE_DIR/sshd.log`` as a child (the sshd path comes from the environment,
        so that this process's command line never looks like an sshd's). Every
        process a session on the node starts stays below this one: one that
        daemonizes (double fork, setsid, dropping every variable) is re-parented
        here instead of to init. Exits once it has no child left.

    supervise.py stop NODE_DIR
        Stop the node: TERM, then KILL, every process below its supervisor until
        none is left (the supervisor then exits). A process still carrying the
        node's COMPOSER_NODE_DIR outside that tree escaped it: it is killed too, and
        reported, as is anything that outlived SIGKILL; then the exit status is 1.

Only the standard library: Terraform runs this with whatever Python the caller names.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
GRACE_S = 0.5
KILL_S = 10.0


def alive(pid: int) -> bool:
    """A process that has not exited; a zombie has."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X", b"")


def parents() -> dict[int, int]:
    """Parent pid of every process on the machine."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        found[int(name)] = int(fields[1])
    return found


def descendants(root: int) -> list[int]:
    """Live processes below ``root`` (not ``root`` itself)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return [pid for pid in found if alive(pid)]


def command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return "?"
    text = os.fsdecode(raw.rstrip(b"\0").replace(b"\0", b" "))
    return text[:120] or "?"


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            continue


def kill_tree(root: int) -> list[int]:
    """TERM everything below ``root``, then KILL until nothing is left; return the pids
    that outlived it all. ``root`` must be a subreaper: orphans come back to it."""
    signal_all(descendants(root), signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while descendants(root) and time.monotonic() < deadline:
        time.sleep(0.02)
    deadline = time.monotonic() + KILL_S
    while time.monotonic() < deadline:
        left = descendants(root)
        if not left:
            return []
        signal_all(left, signal.SIGKILL)
        time.sleep(0.02)
    return descendants(root)


def with_marker(node_dir: str) -> list[int]:
    """Live processes (not this one) whose environment holds COMPOSER_NODE_DIR=node_dir."""
    needle = os.fsencode(f"COMPOSER_NODE_DIR={node_dir}")
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                entries = fh.read().split(b"\0")
        except OSError:
            continue
        if needle in entries and alive(int(name)):
            found.append(int(name))
    return found


def supervisor_of(node_dir: str) -> int | None:
    """The node's live supervisor, from its pid file, checked by its command line."""
    argv = _argv_of_pid_file(os.path.join(node_dir, "node.pid"))
    ours = len(argv) >= 4 and argv[-3].endswith("supervise.py") and argv[-2] == "run" \
        and os.path.normpath(argv[-1]) == os.path.normpath(node_dir)
    return int(argv[0]) if ours and alive(int(argv[0])) else None


def sshd_of(node_dir: str) -> int | None:
    """The node's live sshd, from its pid file, checked by its command line."""
    argv = _argv_of_pid_file(os.path.join(node_dir, "sshd.pid"))
    config = os.path.join(node_dir, "sshd_config")
    ours = any(config in arg for arg in argv[1:])
    return int(argv[0]) if ours and alive(int(argv[0])) else None


def _argv_of_pid_file(path: str) -> list[str]:
    """[pid, *argv] of the process a pid file names; [] when there is none."""
    try:
        with open(path) as fh:
            pid = int(fh.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except (OSError, ValueError):
        return []
    return [str(pid), *(os.fsdecode(a) for a in raw.rstrip(b"\0").split(b"\0"))]


def stop(node_dir: str) -> int:
    problems: list[str] = []
    root = supervisor_of(node_dir)
    if root is not None:
        stuck = kill_tree(root)
        problems += [f"{pid} ({command(pid)}) outlived SIGKILL" for pid in stuck]
        deadline = time.monotonic() + 2.0
        while alive(root) and time.monotonic() < deadline:
            time.sleep(0.02)
        signal_all([root], signal.SIGKILL)
    else:
        # No supervisor (it was killed): stop the sshd and what is still below it.
        sshd = sshd_of(node_dir)
        if sshd is not None:
            signal_all([*descendants(sshd), sshd], signal.SIGKILL)
    escaped = with_marker(node_dir)
    if escaped:
        problems += [f"{pid} ({command(pid)}) escaped the node's process tree"
                     for pid in escaped]
        signal_all(escaped, signal.SIGKILL)
    if problems:
        name = os.path.basename(node_dir.rstrip("/"))
        print(f"{name}: processes outlived the node's stop (killed now): "
              + "; ".join(problems), file=sys.stderr)
        return 1
    return 0


def run(node_dir: str, sshd: str) -> int:
    os.setsid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print(f"cannot become a child subreaper: {os.strerror(ctypes.get_errno())}",
              file=sys.stderr)
        return 1
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)
    pid_file = os.path.join(node_dir, "node.pid")
    with open(pid_file + ".tmp", "w") as fh:
        fh.write(f"{os.getpid()}\n")
    os.replace(pid_file + ".tmp", pid_file)
    config = os.path.join(node_dir, "sshd_config")
    log = os.path.join(node_dir, "sshd.log")
    child = os.fork()
    if child == 0:
        for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
            signal.signal(signum, signal.SIG_DFL)
        try:
            os.execv(sshd, [sshd, "-f", config, "-D", "-E", log])
        except OSError as exc:
            print(f"cannot run {sshd}: {exc.strerror}", file=sys.stderr)
        os._exit(127)
    # SIGTERM to the supervisor stops the whole node, never just the supervisor.
    signal.signal(signal.SIGTERM, lambda *_: kill_tree(os.getpid()))
    status = 0
    while True:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            return status
        except InterruptedError:
            continue
        if pid == child:
            status = os.waitstatus_to_exitcode(code)
            status = status if status >= 0 else 128 - status


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "run" and os.environ.get("NODE_SSHD"):
        return run(argv[2], os.environ["NODE_SSHD"])
    if len(argv) == 3 and argv[1] == "stop":
        return stop(argv[2])
    print("usage: NODE_SSHD=SSHD supervise.py run NODE_DIR | supervise.py stop NODE_DIR",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
