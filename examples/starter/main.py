"""The starter workload: each node estimates pi from its own seeded samples; the head
node (rank 0) writes metrics.json into $COMPOSER_OUTPUT_DIR, from where composer brings it
back into the record and compares it on reproduce.

Only the standard library: it runs wherever composer's nodes have python3.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket


def estimate(samples: int, seed: int) -> float:
    rng = random.Random(seed)
    inside = sum(1 for _ in range(samples) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)
    return 4.0 * inside / samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=100_000)
    args = parser.parse_args()
    rank = int(os.environ.get("COMPOSER_NODE_RANK", "0"))
    nodes = len(os.environ.get("COMPOSER_NODE_ADDRS", "").split(","))
    pi = estimate(args.samples, seed=1234 + rank)
    print(f"node {rank} of {nodes} on {socket.gethostname()}: pi is about {pi:.5f}")
    if rank == 0:
        # Outputs go to $COMPOSER_OUTPUT_DIR: composer collects them from there.
        out_dir = os.environ.get("COMPOSER_OUTPUT_DIR", ".")
        metrics = {"pi_estimate": pi, "samples": args.samples, "nodes": nodes}
        with open(os.path.join(out_dir, "metrics.json"), "w", encoding="utf-8") as fh:
            json.dump(metrics, fh, indent=2, sort_keys=True)
            fh.write("\n")


if __name__ == "__main__":
    main()
