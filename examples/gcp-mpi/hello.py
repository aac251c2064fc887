"""MPI smoke test.

Each rank reports where it runs, the ranks sum their rank numbers with an
allreduce, and each rank writes ``hello-rank-R.json`` into the output
directory of the node it runs on. Exits non-zero if the allreduce is wrong.

The output files hold only what every run of the job computes alike (rank,
size, the allreduce), so ``composer reproduce`` finds them identical; where a
rank ran (addresses, host names) changes from run to run and goes to the log.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from mpi4py import MPI


def main() -> int:
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    hostname = socket.gethostname()
    node_addr = os.environ.get("COMPOSER_NODE_ADDR") or hostname
    print(f"rank {rank}/{size} on node {node_addr} (host {hostname})", flush=True)

    total = comm.allreduce(rank, op=MPI.SUM)
    expected = size * (size - 1) // 2

    out_dir = Path(os.environ.get("COMPOSER_OUTPUT_DIR") or "outputs")
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"rank": rank, "size": size, "allreduce": total}
    (out_dir / f"hello-rank-{rank}.json").write_text(
        json.dumps(record, sort_keys=True) + "\n"
    )

    if total != expected:
        print(
            f"rank {rank}: allreduce returned {total}, expected {expected}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    if rank == 0:
        print(f"allreduce ok: {total}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
