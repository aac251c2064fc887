"""Containerized workloads: pinning an image, probing the runtime, building argv.

The argv builders here are pure: given the runtime, the pinned image reference,
the variables to pass and the probed options, they return what runs on a node.
The workload is wrapped as ``sh -c SCRIPT composer-container CMD...``; SCRIPT
expands ``$COMPOSER_WORK_DIR`` (and, for MPI ranks, the PMIx rendezvous
directories) on the node at run time, so one command line serves every node
and every rank wherever it lands.

The engine's client talks to the daemon the caller's environment names
(``DOCKER_HOST`` and docker's other client variables, ``client_env``): the run
passes them to the node sessions and records them in its work dir, so the
ranks' containers and the sweep of a run's leftovers reach the same daemon.

MPI follows the hybrid model: the host's ``mpirun`` starts one container per
rank, the rank's launcher variables (``PMIX_*``, ``OMPI_*``, ``PRTE_*``) are
passed in, and the containers share the host's network, IPC and PID
namespaces so ranks reach their node's ``prted`` and each other. The image
must carry the same Open MPI version as the host.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composer.errors import PreflightError
from composer.jsonfile import write_json

RUNTIMES = ("podman", "docker", "apptainer", "none")
ENGINES = ("podman", "docker", "apptainer")
# A rank's variables from the launcher: the PMIx connection, Open MPI's and PRRTE's own.
MPI_ENV_PREFIXES = ("PMIX_", "OMPI_", "PRTE_")
# Set by the host's mpirun wrapper to the host's install: wrong inside the image.
MPI_ENV_EXCLUDE = ("OPAL_PREFIX",)
# Directories the PMIx server publishes its rendezvous files and shared memory in.
PMIX_DIR_VARS = ("PMIX_SERVER_TMPDIR", "PMIX_SYSTEM_TMPDIR")
INSTALL_HINT = {
    "podman": "apt-get install podman runc",
    "docker": "install Docker Engine (https://docs.docker.com/engine/install/)",
    "apptainer": "install Apptainer (https://apptainer.org/docs/admin/main/installation.html)",
}
# The caller's variables that say which daemon an engine's client talks to.
CLIENT_ENV = {
    "docker": ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_TLS_VERIFY",
               "DOCKER_CERT_PATH", "DOCKER_API_VERSION"),
}
DOCKER_DEFAULT_HOST = "unix:///var/run/docker.sock"
DAEMON_HINT = (
    "start one (systemctl start docker, or run dockerd as root; images/dockerd.sh start "
    "starts a private one and prints its DOCKER_HOST), or point DOCKER_HOST at a daemon "
    "that runs, e.g. export DOCKER_HOST=unix:///path/to/docker.sock"
)
CGROUPS_ERROR = "cgroups"
PROBE_TIMEOUT = 120
DAEMON_TIMEOUT = 30
RUNTIME_FILE = "container-runtime.json"


@dataclass(frozen=True)
class Mount:
    host: str
    container: str
    read_only: bool = False

    def spec(self) -> str:
        return f"{self.host}:{self.container}" + (":ro" if self.read_only else "")


@dataclass(frozen=True)
class RuntimeOptions:
    """What the engine on this machine needs, found by ``probe``.

    ``oci_runtime``: podman's ``--runtime`` (None: its default works).
    ``ulimits``: ``(name, soft, hard)`` at or below this machine's hard limits.
    """

    oci_runtime: str | None = None
    ulimits: tuple[tuple[str, int, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"oci_runtime": self.oci_runtime,
                "ulimits": {name: f"{soft}:{hard}" for name, soft, hard in self.ulimits}}


@dataclass(frozen=True)
class ContainerRun:
    """Everything one wrapped command needs; ``env`` names are passed by name only,
    so values (secrets included) never appear on a command line."""

    runtime: str
    ref: str
    env: tuple[str, ...] = ()
    mounts: tuple[Mount, ...] = ()
    gpus: bool = False
    mpi: bool = False
    options: RuntimeOptions = field(default_factory=RuntimeOptions)
    labels: tuple[tuple[str, str], ...] = ()


# -- argv builders (pure) ------------------------------------------------------


def engine_argv(run: ContainerRun) -> list[str]:
    """The engine's command line up to and including the image reference.

    Words holding ``$COMPOSER_WORK_DIR`` are shell words: ``script`` does not quote
    them, so the node's shell expands them; every other word is quoted there.
    """
    if run.runtime == "podman":
        return _oci_argv("podman", run)
    if run.runtime == "docker":
        return _oci_argv("docker", run)
    if run.runtime == "apptainer":
        return _apptainer_argv(run)
    raise ValueError(f"no container engine for runtime {run.runtime!r}")


_WORK = '"$COMPOSER_WORK_DIR"'
_WORK_MOUNT = '"$COMPOSER_WORK_DIR:$COMPOSER_WORK_DIR"'
_PWD = '"$PWD"'


def _oci_argv(engine: str, run: ContainerRun, workload: bool = True) -> list[str]:
    argv = [engine, "run", "--rm", "--network", "host"]
    if engine == "podman" and run.options.oci_runtime:
        argv += ["--runtime", run.options.oci_runtime]
    for name, soft, hard in run.options.ulimits:
        argv += ["--ulimit", f"{name}={soft}:{hard}"]
    for key, value in run.labels:
        argv += ["--label", f"{key}={value}"]
    if run.mpi:
        argv += ["--ipc", "host", "--pid", "host"]
    if run.gpus:
        argv += ["--device", "nvidia.com/gpu=all"] if engine == "podman" else ["--gpus", "all"]
    if workload:
        argv += ["-v", _WORK_MOUNT, "-w", _PWD]
    for mount in run.mounts:
        argv += ["-v", mount.spec()]
    for name in run.env:
        argv += ["-e", name]
    if run.mpi:
        argv += _mpi_env_words(engine)
        argv += ["$PMIX_MOUNTS"]
    return [*argv, run.ref]


def _apptainer_argv(run: ContainerRun) -> list[str]:
    # Apptainer passes the caller's environment by default (the rank's PMIx/OMPI
    # variables included) and shares the host's network, IPC and PID namespaces.
    argv = ["apptainer", "exec"]
    if run.gpus:
        argv.append("--nv")
    argv += ["--bind", _WORK_MOUNT, "--pwd", _PWD]
    for mount in run.mounts:
        argv += ["--bind", mount.spec()]
    if run.mpi:
        argv += ["$PMIX_BINDS"]
    return [*argv, run.ref]


def _mpi_env_words(engine: str) -> list[str]:
    if engine == "podman":
        # podman: "-e PREFIX*" passes every host variable starting with PREFIX.
        return [w for p in MPI_ENV_PREFIXES for w in ("-e", f"{p}*")]
    # docker has no wildcard: the node's shell lists the variables (see script()).
    return ["$MPI_ENV"]


def script(run: ContainerRun) -> str:
    """The ``sh -c`` script that execs the engine with the workload as ``"$@"``."""
    words = []
    for word in engine_argv(run):
        if word in (_WORK_MOUNT, _PWD, _WORK) or word in ("$PMIX_MOUNTS", "$PMIX_BINDS",
                                                           "$MPI_ENV"):
            words.append(word)
        else:
            words.append(shlex.quote(word))
    lines = []
    if run.mpi:
        # The host's mpirun points OPAL_PREFIX at the host's install: not the image's.
        lines.append("unset " + " ".join(MPI_ENV_EXCLUDE))
        flag = "--bind" if run.runtime == "apptainer" else "-v"
        var = "PMIX_BINDS" if run.runtime == "apptainer" else "PMIX_MOUNTS"
        # Every distinct PMIx rendezvous directory, mounted at the same path.
        lines.append(
            f"{var}=; seen=; for d in "
            + " ".join(f'"${{{v}:-}}"' for v in PMIX_DIR_VARS)
            + '; do [ -n "$d" ] && [ -d "$d" ] || continue; case " $seen " in *" $d "*) '
            f'continue;; esac; seen="$seen $d"; {var}="${var} {flag} $d:$d"; done'
        )
        if run.runtime == "docker":
            pattern = "|".join(MPI_ENV_PREFIXES)
            lines.append(
                "MPI_ENV=$(env | sed -n 's/^\\(\\(" + pattern.replace("|", "\\|")
                + "\\)[A-Za-z0-9_]*\\)=.*/-e \\1/p')"
            )
    lines.append("exec " + " ".join(words) + ' "$@"')
    return "\n".join(lines)


def wrap(run: ContainerRun, command: Sequence[str] | str) -> list[str]:
    """``command`` (argv, or a string for ``sh -c``) run inside the container."""
    inner = ["sh", "-c", command] if isinstance(command, str) else list(command)
    return ["sh", "-c", script(run), "composer-container", *inner]


# -- the local store: pinning --------------------------------------------------


def _run(argv: Sequence[str], timeout: float = 60,
         env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          check=False, env=None if env is None else dict(env))


def require_engine(runtime: str) -> str:
    found = shutil.which(runtime)
    if found is None:
        raise PreflightError(
            f"container.runtime = \"{runtime}\", but {runtime} is not installed here",
            hint=INSTALL_HINT.get(runtime),
        )
    return found


def pin_image(runtime: str, image: str) -> dict[str, Any]:
    """The image's digest and ID in the runtime's local store, and the reference to run.

    podman and docker: ``IMAGE@sha256:<digest>`` when the store resolves that
    reference to the same image ID, else the ID itself (``sha256:<id>``: an image
    built or loaded locally into docker has no digest); both are recorded, and
    ``pinned_by`` says which one the run starts ("digest" or "id"). apptainer: the
    SIF file's sha256, run by path.
    """
    require_engine(runtime)
    if runtime == "apptainer":
        return _pin_sif(image)
    check_daemon(runtime)
    done = _run([runtime, "image", "inspect", "--format", "{{json .}}", image])
    if done.returncode != 0:
        raise PreflightError(
            f"image {image} is not in {runtime}'s local store: {_first_line(done.stderr)}",
            hint="build it first (make image for the examples), or pull it",
        )
    data = json.loads(done.stdout)
    if isinstance(data, list):
        data = data[0]
    image_id = str(data.get("Id") or data.get("ID") or "")
    if not image_id.startswith("sha256:"):
        image_id = f"sha256:{image_id}"
    digest = str(data.get("Digest") or "")
    if not digest:
        digests = data.get("RepoDigests") or []
        digest = digests[0].split("@", 1)[1] if digests else ""
    ref = image_id
    if digest:
        by_digest = f"{_repository(image)}@{digest}"
        check = _run([runtime, "image", "inspect", "--format", "{{.Id}}", by_digest])
        if check.returncode == 0 and f"sha256:{check.stdout.strip().removeprefix('sha256:')}" \
                == image_id:
            ref = by_digest
    return {"runtime": runtime, "image": image, "digest": digest or None, "id": image_id,
            "ref": ref, "pinned_by": "id" if ref == image_id else "digest"}


def _pin_sif(image: str) -> dict[str, Any]:
    from composer.hashing import file_sha256

    path = os.path.abspath(image)
    if not os.path.isfile(path):
        raise PreflightError(f"apptainer image {image} is not a file here",
                             hint="build the SIF first: apptainer build IMAGE.sif DEFINITION")
    digest = f"sha256:{file_sha256(path)}"  # type: ignore[arg-type]
    return {"runtime": "apptainer", "image": image, "digest": digest, "id": digest, "ref": path,
            "pinned_by": "digest"}


def drift_pins(box: dict[str, Any]) -> dict[str, Any]:
    """The pins of a lock's ``container`` that ``composer reproduce`` compares: runtime,
    image, and the one the run started by (``container.digest`` or ``container.id``)."""
    by = box.get("pinned_by") or ("digest" if box.get("digest") else "id")
    return {"container.runtime": box.get("runtime"), "container.image": box.get("image"),
            f"container.{by}": box.get(by)}


# -- the daemon ------------------------------------------------------------------


def client_env(runtime: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's variables that point ``runtime``'s client at its daemon (set ones)."""
    environ = os.environ if environ is None else environ
    return {n: environ[n] for n in CLIENT_ENV.get(runtime, ()) if environ.get(n)}


def daemon_text(environ: Mapping[str, str] | None = None) -> str:
    """Which Docker daemon the client is pointed at, as the user set it."""
    env = client_env("docker", environ)
    if "DOCKER_HOST" in env:
        return f"DOCKER_HOST={env['DOCKER_HOST']}"
    if "DOCKER_CONTEXT" in env:
        return f"DOCKER_CONTEXT={env['DOCKER_CONTEXT']} (DOCKER_HOST is not set)"
    return f"{DOCKER_DEFAULT_HOST} (DOCKER_HOST is not set)"


def check_daemon(runtime: str) -> str:
    """The daemon's version; ``PreflightError`` naming ``DOCKER_HOST`` when none answers.

    Only docker has a daemon to ask; for the others this returns "".
    """
    if runtime != "docker":
        return ""
    try:
        done = _run(["docker", "version", "--format", "{{.Server.Version}}"],
                    timeout=DAEMON_TIMEOUT)
        version, answer = done.stdout.strip() if done.returncode == 0 else "", done.stderr
    except subprocess.TimeoutExpired:
        version, answer = "", f"no answer in {DAEMON_TIMEOUT}s"
    if not version:
        raise PreflightError(
            f"container.runtime = \"docker\", but no Docker daemon answers at "
            f"{daemon_text()}: {_first_line(answer)}",
            hint=DAEMON_HINT,
        )
    return version


def _repository(image: str) -> str:
    """``localhost/x:tag`` -> ``localhost/x`` (a port in the registry part is kept)."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


# -- probing what the engine needs ---------------------------------------------


def ulimit_ladder() -> list[tuple[tuple[str, int, int], ...]]:
    """Limits to try, each at or below this machine's hard limits, most generous first.

    Some hosts refuse a container's limits even below the hard ones (seen: nproc
    above 32768 refused while 32768 starts), so ``probe`` walks down this ladder.
    """
    hard = {}
    for name, which in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        value = resource.getrlimit(which)[1]
        hard[name] = 1 << 20 if value == resource.RLIM_INFINITY else value
    ladder = []
    for cap in (None, 32768, 1024):
        step = tuple((name, min(h, cap or h), min(h, cap or h)) for name, h in hard.items())
        if step not in ladder:
            ladder.append(step)
    return ladder


def probe(runtime: str, ref: str, cache: Path | None = None) -> RuntimeOptions:
    """Start a trivial container to find the options this machine needs.

    podman: its default OCI runtime first, then runc when that fails (crun on a
    hybrid-cgroups host: "cgroups in hybrid mode not supported") and runc is
    installed; for each, ulimits from ``ulimit_ladder``. docker: the daemon's
    runtime, ulimits from the ladder. The answer is cached in ``cache`` (keyed by
    engine version, daemon and hard limits). Raises ``PreflightError`` with the
    engine's message when nothing starts.
    """
    if runtime not in ("podman", "docker"):
        return RuntimeOptions()
    ladder = ulimit_ladder()
    candidates: list[str | None] = [None]
    if runtime == "podman":
        info = _run(["podman", "info", "--format",
                     "{{.Host.OCIRuntime.Name}} {{.Version.Version}}"])
        default, _, version = (info.stdout.strip() if info.returncode == 0 else "").partition(" ")
        key = f"podman {version} {default} {ladder[0]}"
        if default != "runc" and shutil.which("runc"):
            candidates.append("runc")
    else:
        default = ""
        key = f"docker {check_daemon('docker')} {daemon_text()} {ladder[0]}"
    cached = _read_cache(cache, key)
    if cached is not None:
        return cached
    errors = []
    for oci in candidates:
        for limits in ladder:
            options = RuntimeOptions(oci, limits)
            argv = _oci_argv(runtime, ContainerRun(runtime, ref, options=options), False)
            done = _run([*argv, "true"], timeout=PROBE_TIMEOUT)
            if done.returncode == 0:
                _write_cache(cache, key, options)
                return options
            errors.append(f"{oci or default or 'default'} {_limits_text(limits)}: "
                          f"{_first_line(done.stderr)}")
            if CGROUPS_ERROR in done.stderr and "rlimit" not in done.stderr:
                break  # this OCI runtime cannot start anything here: try the next one
    hint = "apt-get install runc" if runtime == "podman" and not shutil.which("runc") else None
    raise PreflightError(f"{runtime} cannot start {ref}: " + "; ".join(errors[-3:]), hint=hint)


def _limits_text(limits: tuple[tuple[str, int, int], ...]) -> str:
    return ",".join(f"{n}={s}:{h}" for n, s, h in limits)


def _read_cache(cache: Path | None, key: str) -> RuntimeOptions | None:
    try:
        data = json.loads(cache.read_text()) if cache else {}
    except (OSError, ValueError):
        return None
    entry = data.get(key) if isinstance(data, dict) else None
    if not isinstance(entry, dict):
        return None
    limits = tuple((str(n), int(s), int(h)) for n, s, h in entry.get("ulimits", []))
    return RuntimeOptions(entry.get("oci_runtime"), limits)


def _write_cache(cache: Path | None, key: str, options: RuntimeOptions) -> None:
    if cache is None:
        return
    try:
        data = json.loads(cache.read_text()) if cache.exists() else {}
    except (OSError, ValueError):
        data = {}
    data[key] = {"oci_runtime": options.oci_runtime, "ulimits": [list(u) for u in options.ulimits]}
    with contextlib.suppress(OSError):
        write_json(cache, data)


def gpus_present() -> bool:
    return os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi") is not None


# -- leftovers ---------------------------------------------------------------------


def save_runtime(work: Path, runtime: str) -> None:
    """Write down in a run's work dir which engine starts its containers and the client
    variables that reach its daemon, so ``sweep`` (teardown, ``down``, ``gc``, maybe
    from another shell) reaches the same one."""
    write_json(work / RUNTIME_FILE, {"runtime": runtime, "env": client_env(runtime)})


def _saved_runtime(work: Path) -> tuple[str | None, dict[str, str]]:
    try:
        data = json.loads((work / RUNTIME_FILE).read_text())
        return str(data["runtime"]), {str(k): str(v) for k, v in data.get("env", {}).items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, {}


def sweep(run_id: str, work: Path) -> list[str]:
    """Remove the containers labelled ``composer.run=<run_id>``: podman's, and those of
    the engine the run wrote down, reached through the daemon it wrote down."""
    runtime, saved = _saved_runtime(work)
    engines: dict[str, dict[str, str] | None] = {"podman": None} if shutil.which("podman") \
        else {}
    if runtime == "docker" and shutil.which("docker"):
        env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV["docker"]}
        engines["docker"] = {**env, **saved}
    removed: list[str] = []
    for engine, env in engines.items():
        try:
            found = _run([engine, "ps", "-aq", "--filter", f"label=composer.run={run_id}"],
                         env=env).stdout.split()
            if found:
                _run([engine, "rm", "-f", *found], timeout=120, env=env)
        except (OSError, subprocess.TimeoutExpired):
            continue
        removed += [f"container-{cid[:12]}" for cid in found]
    return removed
