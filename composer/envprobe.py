"""What the workload's Python environment is: printed as one JSON object on stdout.

Runs standalone with the interpreter the workload's ``python`` resolves to (on a
node, in an image, or here for the local target), so it imports nothing from
composer and keeps to Python 3.8. It never installs anything and never fails for
a library that is missing: CUDA, cuDNN, NCCL and the frameworks are asked only
when present (a framework only when its distribution is installed, since
importing one is slow), so a CPU machine simply reports none.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import re
import shutil
import subprocess
import sys

# Variables that change numerical results, by name and by prefix.
NUMERICS_ENV = (
    "PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG", "CUDA_LAUNCH_BLOCKING", "NVIDIA_TF32_OVERRIDE",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "TF_DETERMINISTIC_OPS", "TF_CUDNN_DETERMINISTIC",
    "TF_ENABLE_ONEDNN_OPTS", "XLA_FLAGS", "JAX_ENABLE_X64", "JAX_DEFAULT_MATMUL_PRECISION",
    "NCCL_ALGO", "NCCL_PROTO", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",
    "NUMEXPR_MAX_THREADS", "BLIS_NUM_THREADS", "GOTO_NUM_THREADS",
)
NUMERICS_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "KMP_")
MPI_NAMES = (("Open MPI", "Open MPI"), ("MPICH", "MPICH"), ("Intel(R) MPI", "Intel MPI"),
             ("MVAPICH", "MVAPICH"))


def normalize(name: str) -> str:
    """A distribution's name as PEP 503 compares it: ``Foo_Bar.baz`` -> ``foo-bar-baz``."""
    return re.sub(r"[-_.]+", "-", name).lower()


# Characters str.splitlines() or the email parser treat as line ends besides "\n".
_ODD = re.compile("[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_WANTED = ("name", "version")


def name_version(dist) -> tuple:  # type: ignore[no-untyped-def]
    """A distribution's ``Name`` and ``Version`` headers, read from the top of its
    METADATA (PKG-INFO for an egg) up to the first blank line, which ends the headers:
    the email parser ``dist.metadata`` uses reads every line of every description,
    most of this probe's time on a machine with a few hundred distributions. Headers
    that are not plain (odd line ends, a folded or oddly spelt Name or Version) are
    left to the email parser, so the answer is always the one it gives."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    if text is None:
        return None, None
    headers = text.split("\n\n", 1)[0]
    if _ODD.search(headers):
        return _parsed(dist)
    found: dict = {}
    lines = headers.split("\n")
    for index, line in enumerate(lines):
        key, sep, value = line.partition(":")
        if not sep or key[:1].isspace():
            continue
        if key.strip().lower() in _WANTED and (key != key.strip() or (
                index + 1 < len(lines) and lines[index + 1][:1].isspace())):
            return _parsed(dist)
        found.setdefault(key.lower(), value.lstrip(" \t"))
    return found.get("name"), found.get("version")


def _parsed(dist) -> tuple:  # type: ignore[no-untyped-def]
    """Name and version as the email parser reads them."""
    meta = dist.metadata
    return (meta["Name"] if meta else None), dist.version


def packages() -> dict:
    """Every installed distribution, as ``import`` finds it first on ``sys.path``."""
    from importlib import metadata

    found: dict = {}
    for dist in metadata.distributions():
        name, version = name_version(dist)
        if name:
            found.setdefault(normalize(name), version)
    return dict(sorted(found.items()))


def _c_version(names: tuple, symbol: str, pointer: bool = True) -> int | None:
    """An int version from a C library's getter (``fn(&v)`` or ``v = fn()``), or None."""
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            fn = getattr(lib, symbol)
        except (OSError, AttributeError):
            continue
        try:
            if not pointer:
                fn.restype = ctypes.c_size_t
                return int(fn())
            value = ctypes.c_int(0)
            return value.value if fn(ctypes.byref(value)) == 0 and value.value else None
        except Exception:  # noqa: BLE001 - a broken library reports nothing
            return None
    return None


def _cuda_text(value: int | None) -> str | None:
    return None if not value else f"{value // 1000}.{value % 1000 // 10}"


def native() -> dict:
    """CUDA driver and runtime, cuDNN and NCCL, from the libraries the loader finds."""
    out = {
        "cuda.driver": _cuda_text(_c_version(("libcuda.so.1", "libcuda.so"),
                                             "cuDriverGetVersion")),
        "cuda.runtime": _cuda_text(_c_version(
            ("libcudart.so", "libcudart.so.12", "libcudart.so.11.0"), "cudaRuntimeGetVersion")),
    }
    cudnn = _c_version(("libcudnn.so", "libcudnn.so.9", "libcudnn.so.8"), "cudnnGetVersion",
                       pointer=False)
    out["cudnn"] = str(cudnn) if cudnn else None
    out["nccl"] = _nccl_text(_c_version(("libnccl.so", "libnccl.so.2"), "ncclGetVersion"))
    return {k: v for k, v in out.items() if v}


def _nccl_text(code: int | None) -> str | None:
    """NCCL_VERSION_CODE: major*10000 + minor*100 + patch since 2.9, major*1000 before."""
    if not code:
        return None
    major, rest = divmod(code, 10000 if code >= 10000 else 1000)
    minor, patch = divmod(rest, 100)
    return f"{major}.{minor}.{patch}"


def _ask(out: dict, key: str, fn) -> None:  # type: ignore[no-untyped-def]
    try:
        value = fn()
    except Exception:  # noqa: BLE001 - a library that cannot say reports nothing
        return
    if value not in (None, "", 0):
        out[key] = ".".join(map(str, value)) if isinstance(value, tuple) else str(value)


def frameworks(installed: dict) -> dict:
    """The versions torch, jax and tensorflow report, with their CUDA, cuDNN and NCCL."""
    out: dict = {}
    if "torch" in installed:
        try:
            import torch
        except Exception:  # noqa: BLE001
            torch = None
        if torch is not None:
            _ask(out, "torch", lambda: torch.__version__)
            _ask(out, "torch.cuda", lambda: torch.version.cuda)
            _ask(out, "torch.cudnn", lambda: torch.backends.cudnn.version())
            _ask(out, "torch.nccl", lambda: torch.cuda.nccl.version())
    if "jax" in installed:
        try:
            import jax
            import jaxlib
        except Exception:  # noqa: BLE001
            jax = None
        if jax is not None:
            _ask(out, "jax", lambda: jax.__version__)
            _ask(out, "jaxlib", lambda: jaxlib.__version__)
            try:
                from jax._src.lib import cuda_versions
            except Exception:  # noqa: BLE001 - a CPU jaxlib has none
                cuda_versions = None
            if cuda_versions is not None:
                _ask(out, "jax.cuda", lambda: _cuda_text(cuda_versions.cuda_runtime_get_version()))
                _ask(out, "jax.cudnn", lambda: cuda_versions.cudnn_get_version())
    if "tensorflow" in installed or "tensorflow-cpu" in installed:
        try:
            import tensorflow as tf
        except Exception:  # noqa: BLE001
            tf = None
        if tf is not None:
            info: dict = {}
            _ask(out, "tensorflow", lambda: tf.__version__)
            with contextlib.suppress(Exception):
                info = dict(tf.sysconfig.get_build_info())
            _ask(out, "tensorflow.cuda", lambda: info.get("cuda_version"))
            _ask(out, "tensorflow.cudnn", lambda: info.get("cudnn_version"))
    return out


def _mpi_of(text: str) -> dict | None:
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not line:
        return None
    name = next((label for marker, label in MPI_NAMES if marker in line), None)
    match = re.search(r"(\d+\.\d+(?:\.\d+)?(?:[a-z]+\d*)?)", line)
    return {"implementation": name, "version": match.group(1) if match else None,
            "library": line.rstrip("\x00")[:200]}


def mpi(installed: dict) -> dict | None:
    """The MPI library mpi4py loads (without starting MPI), else ``mpirun --version``."""
    if "mpi4py" in installed:
        try:
            import mpi4py

            mpi4py.rc.initialize = False
            mpi4py.rc.finalize = False
            from mpi4py import MPI

            found = _mpi_of(MPI.Get_library_version())
            if found:
                found["via"] = "mpi4py"
                return found
        except Exception:  # noqa: BLE001 - fall back to the launcher
            pass
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        return None
    try:
        done = subprocess.run([mpirun, "--version"], capture_output=True, text=True,
                              timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    found = _mpi_of(done.stdout or done.stderr)
    if found:
        found["via"] = "mpirun"
    return found


def numerics_env(environ: dict) -> dict:
    return {k: v for k, v in sorted(environ.items())
            if k in NUMERICS_ENV or k.startswith(NUMERICS_PREFIXES)}


def probe() -> dict:
    # `python -c` puts the current directory first on sys.path: not the environment.
    if sys.path and sys.path[0] in ("", "."):
        del sys.path[0]
    installed = packages()
    return {
        "python": {"executable": sys.executable, "version": platform.python_version(),
                   "implementation": platform.python_implementation()},
        "packages": installed,
        "libraries": {**native(), **frameworks(installed)},
        "mpi": mpi(installed),
        "env": numerics_env(dict(os.environ)),
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(probe(), sort_keys=True) + "\n")
