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
        Stop the node: TERM, then STOP and KILL, every process below its supervisor
        and every process in a session or process group seen there, until the
        supervisor exits on its own. It exits only once it has no child left, and
        every orphan of the tree is re-parented to it, so its exit proves the tree
        empty, even of a process that forks and exits faster than /proc can be read.
        Then a sweep looks for what escaped: a live process in one of those sessions
        or groups, or carrying the node's COMPOSER_NODE_DIR. It is killed and
        reported, as is anything still running, and the exit status is 1. The whole
        stop takes at most STOP_S + SWEEP_S seconds.

Only the standard library: Terraform runs this with whatever Python the caller names.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable

PR_SET_CHILD_SUBREAPER = 36
GRACE_S = 0.5  # between SIGTERM and SIGKILL
STOP_S = 8.0  # for the tree to be gone (the supervisor to exit), grace included
SWEEP_S = 1.5  # for the sweep of what escaped the tree
QUIET_SCANS = 5  # consecutive empty scans that end a sweep
FORGET_SCANS = 20  # consecutive scans a session id may go unseen, then it is forgotten


def alive(pid: int) -> bool:
    """A process that has not exited; a zombie has."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X", b"")


def table(zombies: bool = False) -> dict[int, tuple[int, int, int]]:
    """(parent pid, process group, session) of every live process on the machine, or
    of every exited one not yet reaped (``zombies``)."""
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
        if (fields[0] in (b"Z", b"X")) == zombies:
            found[int(name)] = (int(fields[1]), int(fields[2]), int(fields[3]))
    return found


def descendants(root: int, procs: dict[int, tuple[int, int, int]] | None = None) -> list[int]:
    """Live processes below ``root`` (not ``root`` itself)."""
    procs = table() if procs is None else procs
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


class Tree:
    """The processes of one node: those below ``root``, and those in any session or
    process group seen among them. A process forked in the tree inherits both, so a
    chain that forks and exits faster than a scan can list it stays reachable: one
    ``killpg`` signals a whole group at once (the kernel aborts a fork that a signal
    to its group interrupts), and ``killpg(group, 0)`` says, without a scan, whether
    the group still has a live member. ``root`` itself (unless ``with_root``) and
    this process are never members.

    An id is forgotten once its group is empty (killpg says so) and, for a session,
    once no scan has seen it held for FORGET_SCANS scans in a row: an id nobody holds
    can be reused (pids wrap around), and a stranger's group must never be killed."""

    def __init__(self, root: int, with_root: bool = False) -> None:
        self.root = root
        self.with_root = with_root
        self.scans = 0
        self.groups: set[int] = set()
        self.sessions: dict[int, int] = {}  # id -> the last scan that saw it held
        self.spared = {os.getpid()} if with_root else {os.getpid(), root}
        own = table().get(root)
        if own is not None:
            self.note(own[1], own[2])
        # Never signal a group that holds this process or the supervisor.
        mine = {os.getpgid(0), own[1] if own is not None and not with_root else -1}
        self.no_killpg = {g for g in mine if g > 0}

    def note(self, pgid: int, sid: int) -> None:
        self.groups.update((pgid, sid))  # a session's leader leads a group of that id
        self.sessions[sid] = self.scans

    def members(self) -> list[int]:
        """Scan: the live processes below root and in a session or group seen."""
        return sorted(self.scan(below=True))

    def mates(self) -> list[int]:
        """Scan: the live processes in a session or group seen (none by ancestry)."""
        return sorted(self.scan(below=False))

    def scan(self, below: bool) -> set[int]:
        procs = table()
        self.scans += 1
        found: set[int] = set()
        if below and self.root in procs:
            found.update(descendants(self.root, procs))
            if self.with_root:
                found.add(self.root)
        for pid, (_, pgid, sid) in procs.items():
            if pid in found or pgid in self.groups or sid in self.sessions:
                found.add(pid)
                self.note(pgid, sid)
        self.groups = set(self.held())
        for old in [i for i, seen in self.sessions.items() if self.scans - seen > FORGET_SCANS]:
            del self.sessions[old]
        return found - self.spared

    def held(self) -> list[int]:
        """The groups seen that still have a member (live, or a zombie not yet reaped)."""
        found = []
        for pgid in sorted(self.groups):
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                continue
            except PermissionError:
                pass
            found.append(pgid)
        return found

    def alive_groups(self) -> set[int]:
        """The groups seen (but this process's) that may hold a live process: held, and
        not only by zombies. A live member a scan misses (it forked and exited in the
        meantime) counts, too: a group with no member in /proc at all is alive."""
        held = set(self.held()) - {os.getpgid(0)}
        if not held:
            return held
        live = {pgid for _, pgid, _ in table().values()}
        dead = {pgid for _, pgid, _ in table(zombies=True).values()}
        # Held again after the scans: a zombie reaped in between is not a live member.
        return {pgid for pgid in held & set(self.held())
                if pgid in live or pgid not in dead}

    def kill(self, pids: list[int]) -> None:
        """Stop ``pids`` (a stopped process cannot fork), then KILL their groups and
        them."""
        signal_all(pids, signal.SIGSTOP)
        for pgid in self.groups - self.no_killpg:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue
        signal_all(pids, signal.SIGKILL)


def clear(tree: Tree, deadline: float, done: Callable[[], bool]) -> None:
    """TERM the tree, give it GRACE_S, then STOP and KILL it until ``done()`` or the
    deadline."""
    signal_all(tree.members(), signal.SIGTERM)
    grace = min(deadline, time.monotonic() + GRACE_S)
    while tree.members() and time.monotonic() < grace:
        time.sleep(0.02)
    while not done() and time.monotonic() < deadline:
        left = tree.members()
        tree.kill(left)
        time.sleep(0.001 if left else 0.005)


def quiet(tree: Tree, scans: int = QUIET_SCANS) -> Callable[[], bool]:
    """A ``done`` for clear(): no member seen in ``scans`` scans in a row."""
    empty = [0]

    def done() -> bool:
        empty[0] = 0 if tree.members() else empty[0] + 1
        return empty[0] >= scans

    return done


def command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return "?"
    text = os.fsdecode(raw.rstrip(b"\0").replace(b"\0", b" "))
    return text[:120] or "?"


def signal_all(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            continue


def named(pids: Iterable[int], why: str, names: dict[int, str] | None = None) -> list[str]:
    """"PID (COMMAND) WHY" for the first few of ``pids``, and how many more there were."""
    pids = sorted(pids)
    said = [f"{pid} ({(names or {}).get(pid) or command(pid)}) {why}" for pid in pids[:8]]
    if len(pids) > 8:
        said.append(f"{len(pids) - 8} more processes {why}")
    return said


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
    deadline = time.monotonic() + STOP_S
    root = supervisor_of(node_dir)
    if root is not None:
        tree = Tree(root)
        clear(tree, deadline, lambda: not alive(root))
        if alive(root):
            left = tree.members()
            problems.append(f"its supervisor {root} still held processes after {STOP_S:.0f}s")
            problems += named(left, "outlived SIGKILL")
            signal_all([root], signal.SIGKILL)
    else:
        # No supervisor (it was killed): stop the sshd and what is still below it or
        # in its session or groups.
        sshd = sshd_of(node_dir)
        tree = Tree(sshd if sshd is not None else -1, with_root=True)
        if sshd is not None:
            clear(tree, deadline, quiet(tree))
    problems += sweep(tree, node_dir)
    if problems:
        name = os.path.basename(node_dir.rstrip("/"))
        print(f"{name}: processes outlived the node's stop (killed now): "
              + "; ".join(problems), file=sys.stderr)
        return 1
    return 0


def sweep(tree: Tree, node_dir: str) -> list[str]:
    """Kill what is left outside the tree: live processes in the node's sessions or
    groups, or carrying its COMPOSER_NODE_DIR; name them (or their group, where no
    scan saw a member), and what outlived SIGKILL."""
    found: dict[int, str] = {}
    found_groups: set[int] = set()
    hit: set[int] = set()
    empty, deadline = 0, time.monotonic() + SWEEP_S
    while empty < QUIET_SCANS and time.monotonic() < deadline:
        left = sorted(set(tree.mates()) | set(with_marker(node_dir)))
        for pid in left:
            found.setdefault(pid, command(pid))
            with contextlib.suppress(OSError):
                found_groups.add(os.getpgid(pid))
        groups = tree.alive_groups()
        hit |= groups
        tree.kill(left)
        empty = 0 if left or groups else empty + 1
        time.sleep(0.001 if left or groups else 0.005)
    still = set(tree.mates()) | set(with_marker(node_dir))
    groups = tree.alive_groups()
    return (named(set(found) - still, "escaped the node's process tree", found)
            + [f"process group {pgid} escaped the node's process tree"
               for pgid in sorted(hit - groups - found_groups)]
            + named(still, "outlived SIGKILL")
            + [f"process group {pgid} outlived SIGKILL" for pgid in sorted(groups)])


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
        os.setpgid(0, 0)  # alone in its group, the supervisor can be spared by killpg
        try:
            os.execv(sshd, [sshd, "-f", config, "-D", "-E", log])
        except OSError as exc:
            print(f"cannot run {sshd}: {exc.strerror}", file=sys.stderr)
        os._exit(127)
    # SIGTERM to the supervisor stops the whole node, never just the supervisor: a
    # thread clears the tree while this one goes on reaping, and the supervisor exits
    # once no child is left.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=stop_below,
                                                              daemon=True).start())
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


def stop_below() -> None:
    tree = Tree(os.getpid())
    clear(tree, time.monotonic() + STOP_S, quiet(tree))


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
