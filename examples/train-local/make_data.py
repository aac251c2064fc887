"""Generate the fixed classification dataset used by train.py.

The output is a pure function of the arguments: running this script again with
the defaults reproduces data/train.csv byte for byte.

    python make_data.py            # writes data/train.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

NUM_FEATURES = 8
NUM_CLASSES = 3
CLUSTERS_PER_CLASS = 2
CENTER_SCALE = 1.0
DEFAULT_SEED = 20240601


def make_dataset(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each class is a pair of Gaussian clusters at mirrored centres +c and -c.
    Every class then has roughly the same mean, so a linear model does little
    better than chance, while a small MLP separates the classes well."""
    rng = np.random.default_rng(seed)
    num_clusters = NUM_CLASSES * CLUSTERS_PER_CLASS
    half = rng.normal(0.0, CENTER_SCALE, size=(NUM_CLASSES, NUM_FEATURES))
    centers = np.concatenate([half, -half])
    scales = rng.uniform(0.8, 1.3, size=num_clusters)
    cluster = rng.integers(0, num_clusters, size=rows)
    x = centers[cluster] + rng.normal(size=(rows, NUM_FEATURES)) * scales[cluster, None]
    y = cluster % NUM_CLASSES
    return x, y


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    header = ",".join([f"x{i}" for i in range(x.shape[1])] + ["label"])
    lines = [header]
    for row, label in zip(x, y, strict=True):
        lines.append(",".join(f"{v:.6f}" for v in row) + f",{int(label)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="ascii", newline="\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "data" / "train.csv"
    )
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    x, y = make_dataset(args.rows, args.seed)
    write_csv(args.out, x, y)
    counts = np.bincount(y, minlength=NUM_CLASSES).tolist()
    print(
        f"wrote {args.out} ({args.rows} rows, {NUM_FEATURES} features, "
        f"class counts {counts})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
