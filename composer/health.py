"""The health gate: before the workload, the cluster is the one the spec asked for.

After ``facts`` and before anything is staged, three checks, each timed:

- ``gpus``: every node has the ``cluster.gpus_per_node`` GPUs asked for, as the
  facts found them (``nvidia-smi``); no extra round trip.
- ``mesh``: every node opens a TCP connection to every other node's SSH port, at the
  address the nodes reach each other on; one command per node, all nodes at once,
  each probing its peers in parallel. Where every node is this one machine
  (``Target.nodes_share_host``: one network stack, every pair over the same
  loopback), the head probes every other node, and ``scope`` says so.
- ``mpi`` (``launcher = "mpi"``): one allreduce across every rank, started by the
  run's own mpirun command line (its ssh agent, hostfile and MCA options) on the
  hosts, outside any container, with the nodes' Python and mpi4py.

``health.json`` in the record holds the results; a failure names the node or the
pair (``HealthError``, exit 4) and the run is torn down. composer starts the allreduce
as soon as the launcher's ssh set-up is on the head, while the nodes are asked what
they are (its launch is mostly waiting); its verdict counts only once the mesh and the
GPUs are in order, and it is not waited for otherwise (``not-judged``).
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from composer import launch
from composer.errors import ComposerError, ExitCode, SSHError
from composer.remote import Node, Session, fan_out

HEALTH_FILE = "health.json"
SCHEMA_VERSION = 1
CONNECT_TIMEOUT_S = 5.0
#: Peers a node probes at once (MESH_SCRIPT's threads).
PROBE_THREADS = 32
#: How long mpirun may take to start every rank and run the allreduce: its daemons
#: start over ssh, a tree of them on a large cluster.
MPI_TIMEOUT_S = 60.0
MPI_TIMEOUT_PER_NODE_S = 0.5
#: Allreduces timed after the first (which checks the sum).
MPI_ROUNDS = 10
#: Pairs or nodes named in the error (all of them are in health.json).
NAMED = 3
REPORT_CAP = 4000

#: Run by the node's Python (``python3 -S``: the standard library only) with one
#: ``NAME=HOST:PORT`` argument per peer; prints ``[[name, ms or null, error], ...]``.
MESH_SCRIPT = r"""
import json, socket, sys, threading, time
peers = sys.argv[2:]
timeout = float(sys.argv[1])
out = [None] * len(peers)
def probe(i):
    name, _, rest = peers[i].partition("=")
    host, _, port = rest.rpartition(":")
    t0 = time.monotonic()
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
        out[i] = [name, round((time.monotonic() - t0) * 1000, 2), None]
    except OSError as exc:
        out[i] = [name, None, exc.strerror or str(exc) or type(exc).__name__]
def worker(start):
    for i in range(start, len(peers), THREADS):
        probe(i)
threads = [threading.Thread(target=worker, args=(s,)) for s in range(min(THREADS, len(peers)))]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("composer-mesh " + json.dumps(out))
""".replace("THREADS", str(PROBE_THREADS))

#: Every rank: one allreduce whose sum is checked, then MPI_ROUNDS timed ones.
MPI_SCRIPT = r"""
import json, sys, time
from mpi4py import MPI
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
total = comm.allreduce(rank + 1, op=MPI.SUM)
if total != size * (size + 1) // 2:
    print(f"composer-mpi bad sum {total} on rank {rank}", flush=True)
    comm.Abort(3)
rounds = int(sys.argv[1])
comm.Barrier()
t0 = time.perf_counter()
for _ in range(rounds):
    comm.allreduce(rank, op=MPI.SUM)
took = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
if rank == 0:
    print("composer-mpi " + json.dumps({"ranks": size, "sum": total,
          "allreduce_us": round(took / max(rounds, 1) * 1e6, 1)}), flush=True)
"""

_MESH_LINE = re.compile(r"^composer-mesh (\[.*\])\s*$", re.M)
_MPI_LINE = re.compile(rb"composer-mpi (\{.*\})")


class HealthError(ComposerError):
    """The cluster failed the health gate; ``node`` is the first node to blame (a pair's
    unreachable end, a node short of GPUs, the node of the rank that failed)."""

    exit_code = ExitCode.INFRA_FAILED

    def __init__(self, message: str, node: str | None, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.node = node


@dataclass(frozen=True)
class MpiCheck:
    """How the allreduce starts: ``mpirun(command)`` gives the run's mpirun command line
    for ``command`` (without the workload's prelude) and its environment, run on
    ``head``; ``slots`` ranks on each of the nodes ``names``."""

    head: Session
    mpirun: Callable[[list[str]], tuple[list[str], dict[str, str]]]
    slots: int
    names: tuple[str, ...]


@dataclass
class Report:
    """What ``health.json`` holds: one entry per check (``status``, its timing, its
    findings; a failed one its ``errors`` and the ``node`` to blame), and the outcome."""

    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.checks.values() if c["status"] == "failed"]

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION,
                "status": "failed" if self.failed else "passed",
                "seconds": round(self.seconds, 3), **self.checks}


def check(sessions: Sequence[Session], facts: Sequence[dict[str, Any]], gpus_per_node: int,
          env_path: str | None, mpi: Callable[[], dict[str, Any]] | None,
          write: Callable[[dict[str, Any]], None], say: Callable[[str], None],
          shared_host: bool = False) -> Report:
    """Run the checks; ``write`` gets the report, also when a check fails (then
    HealthError follows, and ``say`` gets what to do about it). ``mpi`` waits for the
    result of the allreduce already started (``mpi_check`` in the run's background); it
    is not waited for when the GPUs or the mesh failed."""
    t0 = time.monotonic()
    report = Report()
    report.checks["gpus"] = gpu_check(facts, gpus_per_node)
    report.checks["mesh"] = mesh_check(sessions, env_path, shared_host)
    if mpi is not None:
        report.checks["mpi"] = {"status": "not-judged", "why": "the GPUs or the mesh failed; "
                                "the allreduce started beside them was not waited for"} \
            if report.failed else mpi()
    report.seconds = time.monotonic() - t0
    write(report.to_dict())
    failed = report.failed
    if not failed:
        say(f"[health] {summary(report)}")
        return report
    skip = "health.json in the record has the details; [run] health = false skips the check"
    say(f"[health] {_hint(report)}; {skip}")
    raise HealthError("health check failed: " + "; ".join(e for c in failed for e in c["errors"]),
                      node=failed[0].get("node"), hint=skip)


def _hint(report: Report) -> str:
    parts = []
    if report.checks["gpus"]["status"] == "failed":
        parts.append("GPUs are what nvidia-smi lists on each node: a node without the "
                     "driver, or a machine without GPUs (the local target's nodes are this "
                     "machine), has none; lower cluster.gpus_per_node, or run on nodes "
                     "that have them")
    if report.checks["mesh"]["status"] == "failed":
        parts.append("every node must reach every other node's SSH port (mpirun and the "
                     "workload's own connections need it): check the firewall between "
                     "the nodes, and each node's sshd")
    if report.checks.get("mpi", {}).get("status") == "failed":
        parts.append("health.json's mpi entry holds mpirun's output; the allreduce runs on "
                     "the nodes' hosts with their python3, which must import mpi4py")
    return "; ".join(parts)


def _names(names: Sequence[str], shown: int = NAMED) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


# -- GPUs -----------------------------------------------------------------------


def gpu_check(facts: Sequence[dict[str, Any]], want: int) -> dict[str, Any]:
    """Each node has at least ``want`` GPUs, as its facts list them."""
    found = {str(f["name"]): len(f.get("gpus") or []) for f in facts}
    short = [name for name, count in found.items() if count < want]
    entry: dict[str, Any] = {"status": "failed" if short else "passed", "requested": want,
                             "nodes": found}
    if short:
        noun = "GPU" if want == 1 else "GPUs"
        first = short[0]
        text = f"{first} has {found[first]} of the {want} {noun} cluster.gpus_per_node asks for"
        if len(short) > 1:
            text += f" (also short: {_names(short[1:])})"
        entry.update(errors=[text], node=first)
    return entry


# -- the mesh -------------------------------------------------------------------


def mesh_command(nodes: Sequence[Node], me: Node, env_path: str | None) -> str:
    """The shell line that probes every peer of ``me`` from ``me``."""
    peers = [f"{n.name}={n.peer}:{n.port}" for n in nodes if n.rank != me.rank]
    prefix = f"PATH={shlex.quote(env_path)} " if env_path else ""
    return (f"{prefix}python3 -S -c {shlex.quote(MESH_SCRIPT)} {CONNECT_TIMEOUT_S:g} "
            + " ".join(shlex.quote(p) for p in peers))


def parse_mesh(text: str) -> list[tuple[str, float | None, str | None]]:
    match = _MESH_LINE.search(text)
    if match is None:
        raise ValueError(text.strip()[-500:] or "no output")
    return [(str(n), ms, err) for n, ms, err in json.loads(match.group(1))]


def mesh_timeout(nodes: int) -> float:
    """Every peer black-holed: PROBE_THREADS at a time, each for CONNECT_TIMEOUT_S."""
    return -(-(nodes - 1) // PROBE_THREADS) * CONNECT_TIMEOUT_S + 30


SCOPE_ALL = "every node to every other node"
SCOPE_HEAD = ("the head to every other node: the nodes are one machine, every pair "
              "goes over the same loopback")


def mesh_check(sessions: Sequence[Session], env_path: str | None,
               shared_host: bool = False) -> dict[str, Any]:
    """Every node to every other node's SSH port, all nodes at once (the head to every
    other node, when ``shared_host``)."""
    nodes = [s.node for s in sessions]
    by_name = {n.name: n for n in nodes}
    t0 = time.monotonic()
    if len(nodes) < 2:
        return {"status": "passed", "seconds": 0.0, "pairs": {}, "pairs_checked": 0}

    def one(session: Session) -> tuple[str, list[tuple[str, float | None, str | None]] | str]:
        try:
            text = session.check(mesh_command(nodes, session.node, env_path),
                                 timeout=mesh_timeout(len(nodes)))
            return session.node.name, parse_mesh(text)
        except (SSHError, TimeoutError, ValueError, OSError) as exc:
            return session.node.name, str(exc)

    results = fan_out(one, sessions[:1] if shared_host else sessions)
    pairs: dict[str, dict[str, float | None]] = {}
    failed: list[dict[str, Any]] = []
    errors: list[str] = []
    blame: list[str] = []
    for source, probes in results:
        if isinstance(probes, str):
            errors.append(f"{source} could not probe its peers: {probes}")
            blame.append(source)
            continue
        pairs[source] = {}
        for dest, ms, err in probes:
            pairs[source][dest] = ms
            if ms is None:
                peer = by_name[dest]
                failed.append({"from": source, "to": dest,
                               "address": f"{peer.peer}:{peer.port}", "error": err})
    named = failed[:NAMED]
    errors += [f"{f['from']} cannot reach {f['to']} at {f['address']} ({f['error']})"
               for f in named]
    blame += [f["to"] for f in named]
    if len(failed) > len(named):
        errors.append(f"{len(failed) - len(named)} more pairs failed")
    entry: dict[str, Any] = {
        "status": "failed" if errors else "passed",
        "seconds": round(time.monotonic() - t0, 3),
        "port_timeout_s": CONNECT_TIMEOUT_S,
        "scope": SCOPE_HEAD if shared_host else SCOPE_ALL,
        "pairs_checked": sum(len(p) for p in pairs.values()),
        "pairs": pairs,
    }
    if failed:
        entry["failed"] = failed
    if errors:
        entry.update(errors=errors, node=blame[0])
    return entry


# -- MPI ------------------------------------------------------------------------


def mpi_timeout(nodes: int) -> float:
    return MPI_TIMEOUT_S + MPI_TIMEOUT_PER_NODE_S * nodes


def mpi_check(mpi: MpiCheck) -> dict[str, Any]:
    """One allreduce across every rank, through the run's mpirun command line."""
    argv, env = mpi.mpirun(["python3", "-c", MPI_SCRIPT, str(MPI_ROUNDS)])
    command = f"{launch.env_prefix(env)} {shlex.join(argv)}"
    t0 = time.monotonic()
    limit = mpi_timeout(len(mpi.names))
    entry: dict[str, Any] = {"ranks": max(mpi.slots, 1) * len(mpi.names)}
    code, output = _mpirun(mpi.head, command, limit)
    if code != 0 and launch.DAEMON_FAILED in output and _MPI_LINE.search(output) is None:
        # as for the workload (launch.run_mpi): Open MPI's daemons, not the ranks, failed
        entry["launched_again"] = True
        code, output = _mpirun(mpi.head, command, limit)
    entry["seconds"] = round(time.monotonic() - t0, 3)
    found = _MPI_LINE.search(output)
    if code == 0 and found is not None:
        entry.update(json.loads(found.group(1)))
        entry["status"] = "passed"
        return entry
    text = output.decode("utf-8", "replace")
    error, node = _mpi_error(mpi, code, output, limit)
    entry.update(status="failed", output=text[-REPORT_CAP:], errors=[error], node=node)
    return entry


def _mpirun(head: Session, command: str, limit: float) -> tuple[int | str, bytes]:
    """mpirun's exit code ("timeout", "lost") and its output, the start of it kept."""
    output = bytearray()

    def keep(line: bytes, end: bytes | None) -> None:
        if len(output) < 16 * REPORT_CAP:
            output.extend(line + (end or b"\n"))

    try:
        return head.run(command, on_line=keep, timeout=limit), bytes(output)
    except TimeoutError:
        return "timeout", bytes(output)
    except SSHError as exc:
        return "lost", bytes(output) + exc.message.encode()


def _mpi_error(mpi: MpiCheck, code: int | str, output: bytes,
               limit: float) -> tuple[str, str]:
    """What failed, and the node to blame: the failed rank's, else the head's."""
    head = mpi.head.node.name
    if code == "timeout":
        return (f"the allreduce across all ranks did not finish in {limit:.0f}s "
                f"(mpirun on {head})"), head
    if code == "lost":
        return f"the connection to {head} was lost during the allreduce", head
    failed = launch.mpi_failure(output)
    total = max(mpi.slots, 1) * len(mpi.names)
    if failed is not None and failed[0] < total:
        rank = failed[0]
        node = mpi.names[min(rank // max(mpi.slots, 1), len(mpi.names) - 1)]
        why = "" if failed[1] is None else f" with {failed[1]}"
        return (f"the allreduce failed: rank {rank} on {node} exited{why}"
                f"{_last_line(output, rank)}"), node
    return (f"the allreduce failed: mpirun on {head} exited with {code}"
            f"{_last_line(output)}"), head


def _last_line(output: bytes, rank: int | None = None) -> str:
    """The last thing ``rank`` printed (mpirun tags its lines), else mpirun's last line."""
    lines: list[bytes] = []
    for raw in output.splitlines():
        tagged = launch.TAG.match(raw)
        if rank is not None and tagged is not None and int(tagged.group(2)) == rank:
            lines.append(tagged.group(4))
        elif rank is None and tagged is None:
            lines.append(raw)
    text = [t for t in (ln.decode("utf-8", "replace").strip() for ln in lines)
            if t and not set(t) <= set("-*=")]
    return f" ({text[-1][:300]})" if text else ""


def summary(report: Report) -> str:
    """One line for the log: what was checked, how fast."""
    mesh, gpus = report.checks["mesh"], report.checks["gpus"]
    count = mesh["pairs_checked"]
    where = " from the head (one machine)" if mesh.get("scope") == SCOPE_HEAD else ""
    parts = [f"mesh: {count} pair{'' if count == 1 else 's'} reached{where} "
             f"in {mesh['seconds']:.2f}s"]
    if gpus["requested"]:
        parts.append(f"GPUs: {gpus['requested']} per node present")
    mpi = report.checks.get("mpi")
    if mpi is not None and mpi["status"] == "passed":
        parts.append(f"mpi: allreduce across {mpi['ranks']} ranks in {mpi['seconds']:.2f}s "
                     f"({mpi['allreduce_us']:.0f} us each)")
    return "; ".join(parts)
