"""Data-parallel training of a small MLP classifier with numpy and mpi4py.

Every rank loads the same CSV, keeps the rows ``rank::size`` as its shard and
starts from the same seeded weights. Each step computes a gradient on the
rank's local minibatch, averages the gradients across ranks with
``Allreduce`` and applies the same SGD update everywhere, so all ranks hold the
same parameters throughout. The same seed and world size give a byte-identical
``model.npz``.

With ``--checkpoint DIR`` (default: ``$COMPOSER_CHECKPOINT_DIR``, which composer sets
from ``[run] checkpoint``) rank 0 writes the parameters to ``DIR/checkpoint.npz`` after
every epoch, and a run that finds one there resumes after its epoch. Each epoch's
shuffle depends only on the seed, the epoch and the rank, so a resumed run ends with
the same ``model.npz``, bit for bit, as one that was never interrupted.

Run directly (one process) or under MPI:

    python train.py --epochs 5
    mpirun -np 4 python train.py --epochs 20
    python train.py --epochs 20 --checkpoint ckpt   # again after a stop: resumes
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import socket
import sys
import time
import zipfile
from pathlib import Path

# One BLAS thread per rank: ranks already fill the cores, and a fixed thread
# count keeps the floating-point results reproducible.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402

ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Data-parallel MLP training (numpy + mpi4py)."
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.5, help="SGD learning rate")
    parser.add_argument(
        "--batch-size", type=int, default=16, help="minibatch size per rank"
    )
    parser.add_argument("--hidden", type=int, default=32, help="hidden layer width")
    parser.add_argument(
        "--data",
        default="data/train.csv",
        help="CSV with feature columns and a final integer label",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=int(os.environ.get("SEED", "0")),
        help="random seed (default: $SEED or 0)",
    )
    parser.add_argument(
        "--checkpoint",
        default=os.environ.get("COMPOSER_CHECKPOINT_DIR") or None,
        help="directory of checkpoint.npz: written every epoch, resumed from "
        "(default: $COMPOSER_CHECKPOINT_DIR; none without it)",
    )
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.hidden < 1:
        parser.error("--hidden must be at least 1")
    return args


def load_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    raw = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    if raw.shape[1] < 2:
        raise ValueError(f"{path}: need at least one feature column and a label column")
    labels = raw[:, -1]
    y = labels.astype(np.int64)
    if np.any(y != labels) or np.any(y < 0):
        raise ValueError(f"{path}: labels must be non-negative integers")
    return np.ascontiguousarray(raw[:, :-1]), y


class MLP:
    """One hidden layer (tanh) and a softmax output, all parameters in one flat
    float64 vector so a single Allreduce moves the whole gradient."""

    def __init__(self, num_features: int, hidden: int, num_classes: int) -> None:
        self.shapes = {
            "W1": (num_features, hidden),
            "b1": (hidden,),
            "W2": (hidden, num_classes),
            "b2": (num_classes,),
        }
        self.size = sum(int(np.prod(shape)) for shape in self.shapes.values())
        self.params = np.zeros(self.size, dtype=np.float64)

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        out, offset = {}, 0
        for name, shape in self.shapes.items():
            n = int(np.prod(shape))
            out[name] = flat[offset : offset + n].reshape(shape)
            offset += n
        return out

    def init(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        p = self.views(self.params)
        fan_in, hidden = self.shapes["W1"]
        num_classes = self.shapes["W2"][1]
        p["W1"][...] = rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=(fan_in, hidden))
        p["W2"][...] = rng.normal(
            0.0, 1.0 / np.sqrt(hidden), size=(hidden, num_classes)
        )
        p["b1"][...] = 0.0
        p["b2"][...] = 0.0

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.views(self.params)
        h = np.tanh(x @ p["W1"] + p["b1"])
        logits = h @ p["W2"] + p["b2"]
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        probs = exp / exp.sum(axis=1, keepdims=True)
        return h, probs

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        _, probs = self.forward(x)
        loss = -np.mean(np.log(probs[np.arange(len(y)), y] + 1e-300))
        accuracy = np.mean(probs.argmax(axis=1) == y)
        return float(loss), float(accuracy)

    def loss_and_grad(self, x: np.ndarray, y: np.ndarray, grad: np.ndarray) -> float:
        """Mean cross-entropy over the batch; writes its gradient into ``grad``."""
        p = self.views(self.params)
        g = self.views(grad)
        h, probs = self.forward(x)
        rows = np.arange(len(y))
        loss = -np.mean(np.log(probs[rows, y] + 1e-300))
        dlogits = probs
        dlogits[rows, y] -= 1.0
        dlogits /= len(y)
        g["W2"][...] = h.T @ dlogits
        g["b2"][...] = dlogits.sum(axis=0)
        dpre = (dlogits @ p["W2"].T) * (1.0 - h * h)
        g["W1"][...] = x.T @ dpre
        g["b1"][...] = dpre.sum(axis=0)
        return float(loss)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez, but with fixed zip metadata so equal arrays give equal bytes."""
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(
                buf, np.ascontiguousarray(arrays[name]), allow_pickle=False
            )
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    os.replace(tmp, path)


CHECKPOINT = "checkpoint.npz"


def save_checkpoint(directory: str, params: np.ndarray, epoch: int, seed: int,
                    size: int) -> None:
    """The parameters after ``epoch``, written whole or not at all."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    write_npz(path / CHECKPOINT, {"params": params, "epoch": np.array([epoch]),
                                  "seed": np.array([seed]), "world_size": np.array([size])})


def load_checkpoint(directory: str | None, params: np.ndarray, seed: int,
                    size: int) -> tuple[int, str | None]:
    """The epoch a checkpoint in ``directory`` was written after (0: none there), its
    parameters copied into ``params``; or an error for one of another run."""
    path = Path(directory or "") / CHECKPOINT
    if not directory or not path.exists():
        return 0, None
    with np.load(path, allow_pickle=False) as saved:
        their_seed, their_size = int(saved["seed"][0]), int(saved["world_size"][0])
        if (their_seed, their_size) != (seed, size):
            return 0, (f"{path} is from a run with seed {their_seed} and {their_size} "
                       f"ranks, not seed {seed} and {size}")
        if saved["params"].shape != params.shape:
            return 0, f"{path} holds {saved['params'].size} parameters, not {params.size}"
        params[...] = saved["params"]
        return int(saved["epoch"][0]), None


def round_sig(value: float, digits: int = 12) -> float:
    return float(f"{value:.{digits}g}")


def node_addr() -> str:
    return os.environ.get("COMPOSER_NODE_ADDR") or socket.gethostname()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    started = time.perf_counter()

    def log(message: str) -> None:
        if rank == 0:
            print(message, flush=True)

    print(f"rank {rank}/{size} on node {node_addr()}", flush=True)
    placement = comm.gather(node_addr(), root=0)
    if rank == 0:
        by_node: dict[str, list[int]] = {}
        for r, addr in enumerate(placement):
            by_node.setdefault(addr, []).append(r)
        nodes = ", ".join(f"{addr}: ranks {ranks}" for addr, ranks in by_node.items())
        log(f"world size {size} on {len(by_node)} node(s) ({nodes})")

    x, y = load_csv(args.data)
    num_samples, num_features = x.shape
    num_classes = int(y.max()) + 1
    if num_samples < size:
        log(f"error: {num_samples} rows cannot be sharded over {size} ranks")
        return 2

    # Normalisation statistics come from rank 0 so every rank uses the same bits.
    stats = np.empty((2, num_features), dtype=np.float64)
    if rank == 0:
        stats[0] = x.mean(axis=0)
        stats[1] = x.std(axis=0)
        stats[1][stats[1] == 0.0] = 1.0
    comm.Bcast(stats, root=0)
    mean, std = stats
    x = (x - mean) / std

    shard = np.arange(rank, num_samples, size)
    shard_len = num_samples // size  # every rank runs the same number of steps
    batch = min(args.batch_size, shard_len)
    steps_per_epoch = shard_len // batch
    log(
        f"data {args.data}: {num_samples} rows, {num_features} features, "
        f"{num_classes} classes; {shard_len} rows per rank, batch {batch} per rank, "
        f"{steps_per_epoch} steps per epoch; seed {args.seed}"
    )

    model = MLP(num_features, args.hidden, num_classes)
    model.init(args.seed)
    grad = np.empty_like(model.params)
    epoch_stats = np.empty(2, dtype=np.float64)

    # Rank 0 reads the checkpoint; every rank starts from its parameters and epoch.
    done, problem = 0, None
    if rank == 0:
        done, problem = load_checkpoint(args.checkpoint, model.params, args.seed, size)
    done, problem = comm.bcast((done, problem), root=0)
    if problem is not None:
        log(f"error: {problem}")
        return 2
    comm.Bcast(model.params, root=0)
    if done:
        log(f"resuming after epoch {done} from {args.checkpoint}/{CHECKPOINT}")

    for epoch in range(min(done, args.epochs) + 1, args.epochs + 1):
        order = shard[
            np.random.default_rng([args.seed, epoch, rank]).permutation(len(shard))
        ]
        loss_sum = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * batch : (step + 1) * batch]
            loss_sum += model.loss_and_grad(x[idx], y[idx], grad)
            comm.Allreduce(MPI.IN_PLACE, grad, op=MPI.SUM)
            grad /= size
            model.params -= args.lr * grad
        epoch_stats[0] = loss_sum
        epoch_stats[1] = steps_per_epoch
        comm.Allreduce(MPI.IN_PLACE, epoch_stats, op=MPI.SUM)
        if rank == 0:
            _, accuracy = model.evaluate(x, y)
            mean_loss = epoch_stats[0] / epoch_stats[1]
            log(
                f"epoch {epoch:3d}/{args.epochs}  loss {mean_loss:.6f}  "
                f"accuracy {accuracy:.4f}"
            )
            if args.checkpoint:
                save_checkpoint(args.checkpoint, model.params, epoch, args.seed, size)

    digest = hashlib.sha256(model.params.tobytes()).hexdigest()
    digests = comm.allgather(digest)
    if len(set(digests)) != 1:
        if rank == 0:
            for r, d in enumerate(digests):
                print(f"rank {r}: params sha256 {d}", file=sys.stderr)
            print(
                "error: ranks finished with different parameters",
                file=sys.stderr,
                flush=True,
            )
        return 1

    if rank == 0:
        final_loss, accuracy = model.evaluate(x, y)
        out_dir = Path(os.environ.get("COMPOSER_OUTPUT_DIR") or "outputs")
        out_dir.mkdir(parents=True, exist_ok=True)
        arrays = dict(model.views(model.params))
        arrays["feature_mean"] = mean
        arrays["feature_std"] = std
        write_npz(out_dir / "model.npz", arrays)
        metrics = {
            "epochs": args.epochs,
            "final_loss": round_sig(final_loss),
            "train_accuracy": round_sig(accuracy),
            "world_size": size,
            "seed": args.seed,
            "samples": num_samples,
        }
        (out_dir / "metrics.json").write_text(
            json.dumps(metrics, indent=2, sort_keys=True) + "\n"
        )
        log(f"params sha256 {digest} (identical on all {size} ranks)")
        log(f"final loss {final_loss:.6f}, train accuracy {accuracy:.4f}")
        elapsed = time.perf_counter() - started
        log(f"wrote model.npz and metrics.json to {out_dir} in {elapsed:.2f}s")
    comm.Barrier()
    return 0


if __name__ == "__main__":
    sys.exit(main())
