"""The train-local example trains, learns, and is bit-for-bit reproducible."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("mpi4py")

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "train-local"
MPIRUN = Path(sys.executable).parent / "mpirun"
EPOCHS = "3"
NUM_CLASSES = 3


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _env(out_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "SEED" and not k.startswith(("OMPI_", "PMIX_", "PRTE_", "COMPOSER_"))
    }
    env["COMPOSER_OUTPUT_DIR"] = str(out_dir)
    env.update(extra)
    return env


def _run(
    cmd: list[str], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, (
        f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )
    return proc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("train-local") / "code"
    shutil.copytree(
        EXAMPLE_DIR, dest, ignore=shutil.ignore_patterns("outputs", "__pycache__")
    )
    return dest


@pytest.fixture(scope="module")
def single_runs(workdir: Path) -> dict[str, Path]:
    """Single-process runs: seed 7 twice, seed 7 from $SEED, and seed 8."""
    runs = {
        "a": (["--seed", "7"], {}),
        "b": (["--seed", "7"], {}),
        "env": ([], {"SEED": "7"}),
        "other": (["--seed", "8"], {}),
    }
    outs = {}
    for name, (args, extra) in runs.items():
        out = workdir.parent / f"out-{name}"
        _run(
            [sys.executable, "train.py", "--epochs", EPOCHS, *args],
            workdir,
            _env(out, **extra),
        )
        outs[name] = out
    return outs


def test_same_seed_gives_identical_model(single_runs: dict[str, Path]) -> None:
    a, b = single_runs["a"], single_runs["b"]
    assert _sha256(a / "model.npz") == _sha256(b / "model.npz")
    assert (a / "metrics.json").read_bytes() == (b / "metrics.json").read_bytes()


def test_seed_defaults_to_env(single_runs: dict[str, Path]) -> None:
    assert _sha256(single_runs["env"] / "model.npz") == _sha256(
        single_runs["a"] / "model.npz"
    )


def test_different_seed_gives_different_model(single_runs: dict[str, Path]) -> None:
    assert _sha256(single_runs["other"] / "model.npz") != _sha256(
        single_runs["a"] / "model.npz"
    )


def test_metrics_beat_chance(single_runs: dict[str, Path]) -> None:
    text = (single_runs["a"] / "metrics.json").read_text()
    metrics = json.loads(text)
    assert list(metrics) == sorted(metrics)
    assert set(metrics) == {
        "epochs",
        "final_loss",
        "train_accuracy",
        "world_size",
        "seed",
        "samples",
    }
    assert metrics["epochs"] == int(EPOCHS)
    assert metrics["seed"] == 7
    assert metrics["world_size"] == 1
    assert metrics["samples"] == 2000
    assert metrics["train_accuracy"] > 1.0 / NUM_CLASSES + 0.25
    assert 0.0 < metrics["final_loss"] < np.log(NUM_CLASSES)


def test_model_file_loads(single_runs: dict[str, Path]) -> None:
    with np.load(single_runs["a"] / "model.npz", allow_pickle=False) as model:
        assert sorted(model.files) == [
            "W1",
            "W2",
            "b1",
            "b2",
            "feature_mean",
            "feature_std",
        ]
        hidden = model["W1"].shape[1]
        assert model["W1"].shape == (8, hidden)
        assert model["W2"].shape == (hidden, NUM_CLASSES)
        assert all(model[name].dtype == np.float64 for name in model.files)


def test_make_data_reproduces_committed_csv(tmp_path: Path) -> None:
    out = tmp_path / "train.csv"
    _run(
        [sys.executable, "make_data.py", "--out", str(out)], EXAMPLE_DIR, _env(tmp_path)
    )
    assert out.read_bytes() == (EXAMPLE_DIR / "data" / "train.csv").read_bytes()
    assert out.stat().st_size < 300_000


@pytest.mark.skipif(
    not MPIRUN.exists(), reason="mpirun not installed next to the interpreter"
)
def test_mpirun_same_seed_gives_identical_model(workdir: Path) -> None:
    cmd = [str(MPIRUN), "--oversubscribe", "-np", "4"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    cmd += ["--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo"]
    cmd += [sys.executable, "train.py", "--epochs", EPOCHS, "--seed", "1234"]
    hashes = []
    for i in range(2):
        out = workdir.parent / f"out-mpi-{i}"
        proc = _run(cmd, workdir, _env(out))
        assert "identical on all 4 ranks" in proc.stdout
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["world_size"] == 4
        assert metrics["train_accuracy"] > 1.0 / NUM_CLASSES + 0.25
        hashes.append(_sha256(out / "model.npz"))
    assert hashes[0] == hashes[1]


def test_a_resumed_run_ends_with_the_uninterrupted_model(
    workdir: Path, single_runs: dict[str, Path], tmp_path: Path
) -> None:
    """One epoch, stopped; then the rest from its checkpoint: the same bytes as run "a"
    (all epochs at once), metrics included; a checkpoint of another seed is refused."""
    ckpt = tmp_path / "ckpt"
    _run([sys.executable, "train.py", "--epochs", "1", "--seed", "7"], workdir,
         _env(tmp_path / "first", COMPOSER_CHECKPOINT_DIR=str(ckpt)))
    assert (ckpt / "checkpoint.npz").exists()
    out = tmp_path / "resumed"
    proc = _run([sys.executable, "train.py", "--epochs", EPOCHS, "--seed", "7",
                 "--checkpoint", str(ckpt)], workdir, _env(out))
    assert "resuming after epoch 1" in proc.stdout
    assert "epoch   1/" not in proc.stdout
    assert _sha256(out / "model.npz") == _sha256(single_runs["a"] / "model.npz")
    assert (out / "metrics.json").read_bytes() == \
        (single_runs["a"] / "metrics.json").read_bytes()
    other = subprocess.run(
        [sys.executable, "train.py", "--epochs", EPOCHS, "--seed", "8", "--checkpoint",
         str(ckpt)], cwd=workdir, env=_env(tmp_path / "other"), capture_output=True,
        text=True, timeout=120)
    assert other.returncode == 2
    assert "is from a run with seed 7" in other.stdout
