"""The stage driver: one run from spec to committed record.

Once apply has started, destroy runs whatever happens (success, workload
failure, exception, SIGINT, SIGTERM, max_duration) unless the user asked to
keep the cluster; the outcome goes into ``result.json`` and the record is
committed in every case. Progress is persisted in the work dir after each stage
so ``composer down`` can finish a run whose process died.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from composer import attempts as tries
from composer import backend as remote_state
from composer import containers, cost, environment, health, launch, nodeprobe, recovery
from composer.capacity import capacity_error
from composer.collect import collect_outputs, collect_timeout
from composer.engine import check_provider_mirror, make_engine, outputs_of
from composer.errors import (
    ComposerError,
    ExitCode,
    Interrupted,
    PreflightError,
    SSHError,
    TerraformError,
)
from composer.hashing import tree_sha256
from composer.interrupts import INTERRUPTS
from composer.jsonfile import write_json
from composer.lazyimport import warm
from composer.lock import ENVIRONMENT_KEY, pin_container, resolve
from composer.paths import composer_home, make_work_dir, work_dir
from composer.procs import node_processes
from composer.progress import progress_for
from composer.providers import LOCK_FILE, keep_lock_file
from composer.record import RunsRepo
from composer.records import guard
from composer.remote import Node, Session, fan_out, known_hosts, wait_for_ssh
from composer.render import Infra, render
from composer.resources import check_installation
from composer.result import (
    RedactedLog,
    Reporter,
    Result,
    RunOutcome,
    cap_logs,
    commit_record,
    describe,
    new_run_id,
    new_state,
    now_iso,
    remove_tree,
    spec_summary,
    status_exit_code,
)
from composer.secrets import SECRETS_FILE, Secrets, write_check
from composer.spec import Spec
from composer.stage import bundle, put_text, stage
from composer.targets import get_target
from composer.targets.base import Target

PAUSE_ENV = "COMPOSER_PAUSE_AT"


def pause_point(work: Path, stage: str) -> None:
    """Fault-injection hook for tests: with COMPOSER_PAUSE_AT=<stage>, write
    ``<work>/paused-<stage>`` at the start of that stage and wait (60 s at most)
    until the file is removed or a signal arrives."""
    if os.environ.get(PAUSE_ENV) != stage:
        return
    marker = work / f"paused-{stage}"
    marker.write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while marker.exists() and time.monotonic() < deadline and INTERRUPTS.signum is None:
        time.sleep(0.05)
    marker.unlink(missing_ok=True)
VAR_FILES = ("runtime.tfvars.json",)


def in_background(fn: Callable[[], Any]) -> Future[Any]:
    """``fn`` in a daemon thread; its result (or exception) in the future. A thread
    still waiting on a node when the run ends never holds the process up: the teardown
    closes the sessions it waits on."""
    future: Future[Any] = Future()

    def body() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
            future.set_exception(exc)

    threading.Thread(target=body, name="composer-early", daemon=True).start()
    return future


@dataclass(frozen=True)
class RunOptions:
    runs_repo: Path
    engine: str = "embedded"
    keep: bool = False
    echo: IO[str] = field(default_factory=lambda: sys.stdout)
    err: IO[str] = field(default_factory=lambda: sys.stderr)


def nodes_have_gpus(spec: Spec, target: Target) -> bool:
    """Whether the nodes' containers get GPUs: a cloud target's nodes have the
    ``gpus_per_node`` preflight checked their type for (not what this machine has); the
    local target's nodes are this machine."""
    if target.pulls_images:
        return spec.cluster.gpus_per_node > 0
    return containers.gpus_present()


@dataclass(frozen=True)
class Replay:
    """A run recreated from a record: its infra tree is applied as recorded."""

    reproduces: str
    infra: Path
    drift: tuple[dict[str, Any], ...] = ()
    finalize: Callable[[Result, Path], None] | None = None
    #: The target's pins as recorded (``lock.json`` target.resolved).
    pins: dict[str, Any] = field(default_factory=dict)
    #: Called with the nodes' environment once known (drift there is recorded in the
    #: result; raising DriftError refuses the run before the workload starts).
    after_facts: Callable[[environment.EnvironmentRecord, Result], None] | None = None


class Run:
    def __init__(self, spec: Spec, opts: RunOptions, replay: Replay | None = None) -> None:
        self.spec, self.opts, self.replay = spec, opts, replay
        self.target = get_target(spec.cluster.target)
        self.engine = make_engine(opts.engine)
        self.run_id = new_run_id()
        self.work = work_dir(self.run_id)
        self.staged = self.work / "record"
        self.tf_dir = self.work / "tf"
        self.backend = remote_state.Backend.for_run(spec.state, self.run_id)
        self.repo = RunsRepo(opts.runs_repo)
        self.sessions: list[Session] = []
        self.nodes: list[Node] = []
        self.job: launch.JobResult | None = None
        self.image: dict[str, Any] | None = None
        self.container_options: containers.RuntimeOptions | None = None
        #: The mpi launcher's set-up and the health gate's allreduce, started during facts.
        self._mpi_early: Future[dict[str, Any] | None] | None = None

    # -- the run -------------------------------------------------------------

    def execute(self) -> RunOutcome:
        # From the start: a signal during preflight ends the run with nothing made
        # (Interrupted: exit 130/143, --json still answers); once the work dir exists,
        # a signal is noted and the first stage raises it, so the run is recorded.
        INTERRUPTS.install()
        self.engine.start()  # its library loads while preflight runs
        try:
            with INTERRUPTS.hard():
                self._check_first()
            with INTERRUPTS.shield(say="interrupted; stopping at the first stage"):
                self._open()
        except BaseException:
            self.engine.close()
            INTERRUPTS.restore()
            raise
        return self._run()

    def _check_first(self) -> None:
        """What can fail before anything is made: preflight, the image, the settings."""
        check_installation(self.spec.cluster.target, self.target.modules)
        check_provider_mirror()
        remote_state.check_credentials(self.backend)
        self.pins = self.target.preflight(
            self.spec, self.replay.pins if self.replay is not None else None)
        candidates = self.target.candidates(self.spec, self.pins)
        if self.replay is not None:
            candidates = tries.for_replay(candidates, self.replay.pins, self.target.placement)
        self.cost = cost.check(self.spec, self.target, self.pins)  # the budget gate
        candidates, unpriced = cost.within_budget(self.cost, candidates,
                                                  self.target.placement)
        if unpriced:
            self.pins.setdefault("warnings", []).append(
                f"[limits] max_cost: failover stays on the priced type; not tried: "
                f"{', '.join(unpriced)}")
        self.plan = tries.Attempts(candidates, self.target.placement, self.spec.run.retries)
        self._preflight_container()
        self.secrets = Secrets.from_environ(self.spec.run.secret_env)
        self.heartbeat_s = launch.heartbeat_interval(os.environ)
        self.collect_time_limit = collect_timeout(os.environ)
        self.repo.validate()

    def _open(self) -> None:
        """The work dir, the run's state and logs: from here on the run is recorded."""
        make_work_dir(self.work, self.staged)
        if self.secrets:
            write_check(self.work, self.secrets.values)
        if self.spec.container.enabled:
            containers.save_runtime(self.work, self.spec.container.runtime)
        self.state = new_state(self.run_id, self.spec, self.opts)  # type: ignore[arg-type]
        self.state.save(self.work)
        self.log = Reporter(self.opts.err, self.staged / "logs" / "composer.log", self.secrets,
                            progress_for(self.opts.err))
        self.tf_log = RedactedLog(self.staged / "logs" / "terraform.log", self.secrets)
        c = self.spec.cluster
        self.result = Result(self.run_id, self.spec.job.name, c.nodes, self.spec.run.launcher,
                             self.engine.name, now_iso())
        if self.replay is not None:
            self.result.reproduces = self.replay.reproduces
            self.result.drift = list(self.replay.drift)
        self.log.say(f"run {self.run_id} ({spec_summary(self.spec)})")
        for warning in self.pins.get("warnings") or ():
            self.log.say(f"warning: {warning}")
        self.log.say(self.cost.line())
        self.result.cost = self.cost.to_result()
        if self.image is not None and self.container_options is not None:
            opts = self.container_options.to_dict()
            daemon = f"{containers.daemon_text()}, " if self.image["runtime"] == "docker" else ""
            self.log.say(f"container: {self.image['runtime']} {self.image['ref']} "
                         f"({daemon}oci runtime {opts['oci_runtime'] or 'default'}, "
                         f"ulimits {opts['ulimits'] or 'default'})")

    def _run(self) -> RunOutcome:
        started = time.monotonic()
        signum: int | None = None
        try:
            try:
                self._attempts()
                self._settle()
            except BaseException as exc:  # noqa: BLE001 - every failure ends in a record
                with INTERRUPTS.shield(say="interrupted; tearing down after this failure"):
                    signum = self._fail(exc)
                self._after_failure()
            finally:
                # Held to the end: teardown, then the record, whatever signals come.
                INTERRUPTS.hold()
                try:
                    self._teardown()
                except Exception as exc:  # noqa: BLE001 - the record must still be made
                    self.result.teardown = {
                        "status": "failed", "error": describe(exc),
                        "hint": f"composer down {self.run_id} tries again"}
                    self.log.say(f"[destroy] failed: {describe(exc)}")
            return self._finish(started, signum)
        finally:
            self.engine.close()
            INTERRUPTS.restore()
            self.tf_log.close()
            self.log.close()

    def _preflight_container(self) -> None:
        """Pin the image and find what the engine needs, before anything is created."""
        box = self.spec.container
        if not box.enabled:
            return
        self.image = pin_container(self.spec)
        assert self.image is not None
        if self.target.pulls_images:
            check_pullable(self.image, self.target.name)
        self.container_options = containers.probe(
            box.runtime, self.image["ref"], composer_home() / "container-probe.json"
        )

    def container_run(self, env: dict[str, str], mpi: bool) -> containers.ContainerRun:
        """How the workload starts in the pinned image: which variables go in, by name."""
        assert self.image is not None and self.container_options is not None
        box = self.spec.container
        host_only = {"PATH", "VIRTUAL_ENV", *containers.CLIENT_ENV.get(box.runtime, ())}
        names = {n for n in env if n not in host_only}
        names |= {"COMPOSER_NODE_RANK", "COMPOSER_NODE_ADDR", "COMPOSER_OUTPUT_DIR",
                  "COMPOSER_WORK_DIR"}
        names |= set(self.spec.run.secret_env)
        return containers.ContainerRun(
            runtime=box.runtime, ref=self.image["ref"], env=tuple(sorted(names)),
            mounts=tuple(containers.Mount(m.host, m.container, m.read_only) for m in box.mounts),
            gpus=box.gpus and nodes_have_gpus(self.spec, self.target), mpi=mpi,
            options=self.container_options, labels=(("composer.run", self.run_id),),
        )

    def _attempts(self) -> None:
        """The stages, once per attempt (composer/attempts.py): apply out of capacity
        moves on to the next candidate, a lost node (with retries left) to a new cluster;
        every other failure ends the run as before."""
        while True:
            attempt = self.plan.start()
            self.pins = self.plan.pins
            if attempt.number > 1:
                self.log.say(f"attempt {attempt.number} in {attempt.where()}")
            try:
                self._stages()
            except Exception as exc:
                why = self._retry_reason(exc)
                self.plan.end(why[0] if why else "failed", describe(exc), why[1] if why else None)
                if why is None:
                    raise
                if why[1]:
                    self.result.lost_nodes = sorted({*self.result.lost_nodes, *why[1]})
                if not self.plan.advance(why[0]):
                    if why[0] == tries.CAPACITY:
                        error = self.plan.exhausted()
                        self.log.say(f"hint: {error.hint}")
                        raise error from exc
                    raise
                self.log.say(f"attempt {attempt.number} in {attempt.where()} ended: "
                             f"{why[0]}; tearing it down to try again")
                self._between(why[0])
                continue
            self.plan.end("finished")
            return

    def _retry_reason(self, exc: Exception) -> tuple[str, list[str]] | None:
        """Why an attempt that failed may be made again elsewhere, or None."""
        if isinstance(exc, TerraformError) and self.result.stage == "apply":
            spot = "spot" in (getattr(self.spec.target_config, "market", None),
                              getattr(self.spec.target_config, "provisioning", None))
            return (tries.CAPACITY, []) if capacity_error(exc.diagnostics, spot) else None
        if isinstance(exc, tries.NodeLost):
            return tries.NODE_LOST, exc.nodes
        return None

    def _between(self, reason: str) -> None:
        """Tear an attempt's cluster down before the next one: its checkpoint first
        (after a lost node), then destroy; the next attempt renders afresh."""
        number = self.plan.current.number
        checkpoint = self.spec.run.checkpoint
        if reason == tries.NODE_LOST and checkpoint and self.nodes:
            self.log.say(recovery.fetch_checkpoint(self.nodes[0], self.work / "keys" / "client",
                                                   checkpoint, self.work / "checkpoint"))
        for session in self.sessions:
            session.close()
        self.sessions, self.job = [], None
        t0 = time.monotonic()
        outcome = destroy(self.engine, self.target, self.work, self.state.parallelism,
                          self.tf_log, self.state.held)
        if outcome["status"] != "destroyed":
            raise ComposerError(f"attempt {number}'s cluster could not be destroyed before "
                                f"the next attempt: {outcome.get('error')}",
                                hint=f"composer down {self.run_id} tries again")
        self.cost.destroyed()  # this attempt's node time counts towards the spend
        self.log.say(f"[destroy] attempt {number} destroyed in {time.monotonic() - t0:.2f}s")
        self.state.applied, self.state.held, self.nodes = False, [], []
        self.state.save(self.work)
        tries.set_aside(self.staged, number, self.spec.record.max_log_size)
        for path in (self.staged / "infra", self.tf_dir):
            shutil.rmtree(path, ignore_errors=True)
        (self.work / "inventory.json").unlink(missing_ok=True)

    def _launch_watching(self) -> launch.JobResult:
        """The workload; a failure with a node that no longer answers is a lost node
        (exit 4 naming it, or another attempt with [run] retries on node-lost), not the
        workload's own failure on the node that happened to report it."""
        try:
            job = self._launch()
        except SSHError as exc:
            lost = recovery.lost_nodes(self.nodes, self.work / "keys" / "client")
            if lost:
                raise tries.NodeLost(lost, exc.message) from exc
            raise
        if job.exit_code != 0:
            lost = recovery.lost_nodes(self.nodes, self.work / "keys" / "client")
            if lost:
                raise tries.NodeLost(lost, f"the workload exited with {job.exit_code}")
        return job

    def _stage_checkpoint(self) -> None:
        """A checkpoint an earlier attempt left, onto this attempt's head."""
        relative, saved = self.spec.run.checkpoint, self.work / "checkpoint"
        if relative and saved.is_dir():
            recovery.put_checkpoint(self.sessions[0], saved, relative)
            self.log.say(f"checkpoint {relative} staged onto {self.nodes[0].name}")

    def _stages(self) -> None:
        spec = self.spec
        with self.stage("render"):
            self._render()
        with self.stage("init"):
            warm("paramiko")  # for wait_for_ssh, while Terraform works
            if self.backend is not None:
                self._pin(remote_state.LOCK_KEY, self.backend.to_record())
                self.log.say(f"state: {self.backend.url}")
            self.engine.init(self.tf_dir, self.tf_log,
                             self.backend.init_args() if self.backend is not None else ())
            providers = keep_lock_file(self.tf_dir, self.staged / "infra")
            if providers:
                self._pin("providers", providers)
        self.state.applied = True
        self.state.save(self.work)
        with self.stage("apply"):
            applied = self.engine.apply(self.tf_dir, VAR_FILES, self.state.parallelism,
                                        self.tf_log)
            outputs = outputs_of(applied.stdout) or self.engine.outputs(self.tf_dir)
            self.nodes = [Node.from_output(n) for n in outputs["nodes"]]
            write_json(self.work / "inventory.json", outputs["nodes"])
            self.cost.applied()
        with self.stage("wait_for_ssh"):
            self.sessions = wait_for_ssh(self.nodes, self.work / "keys" / "client",
                                         self.target.ssh_timeout,
                                         settle=self.target.host_key_settles,
                                         on_ready=self.log.progress.nodes_ready)
            ready = self.target.ready_command()
            if ready is not None:
                fan_out(lambda s: s.check(ready, timeout=self.target.ssh_timeout),
                        self.sessions)
        with self.stage("facts"):
            facts = self._probe_nodes()
        if spec.run.health:
            with self.stage("health"):
                self._health(facts)
        with self.stage("stage"):
            tar = self.work / "bundle.tar"
            try:
                stage(self.sessions, bundle(spec, tar, self.opts.runs_repo), self.work,
                      self.log.say)
            finally:
                tar.unlink(missing_ok=True)
            if self.secrets:
                text = self.secrets.shell_file()
                fan_out(lambda s: put_text(s, f"{s.node.work_dir}/{SECRETS_FILE}", text, 0o600),
                        self.sessions)
            self._stage_checkpoint()
        with self.stage("run"):
            self.job = self._launch_watching()
        with self.stage("collect"):
            self._collect()

    def _probe_nodes(self) -> list[dict[str, Any]]:
        """What each node is (``facts.json``) and the workload's Python environment per
        node (in the image once for a container run), asked in one command per node
        (composer/nodeprobe.py). With the mpi launcher, its ssh set-up goes to the head
        meanwhile, and the health gate's allreduce starts as soon as it is there; the
        health stage waits for its result. Returns the facts."""
        session_env = self.target.session_env()
        env_path = session_env.get("PATH")
        env = environment.workload_env(session_env, self.spec)
        in_image = self.image is not None and self.container_options is not None
        self._mpi_early = None
        if self.spec.run.launcher == "mpi":
            self._mpi_early = in_background(self._stage_mpi_and_allreduce)
        probes = nodeprobe.probe_nodes(self.sessions, env_path, None if in_image else env,
                                       self.target.nodes_share_host)
        if self._mpi_early is not None and not self.spec.run.health:
            self._mpi_early.result()  # staged before the workload
        facts = [p.facts for p in probes]
        write_json(self.staged / "facts.json", {"nodes": facts})
        if in_image:
            assert self.image is not None and self.container_options is not None
            found = environment.record_image([n.name for n in self.nodes], self.image, env,
                                             self.container_options)
        else:
            found = environment.EnvironmentRecord(
                "nodes", {p.facts["name"]: p.environment for p in probes
                          if p.environment is not None})
        self._environment(found)
        return facts

    def _environment(self, found: environment.EnvironmentRecord) -> None:
        """The workload's Python environment: recorded, pinned in lock.json, nodes that
        differ flagged; a reproduction that could not ask before the run (cloud nodes)
        checks it here."""
        write_json(self.staged / environment.ENV_FILE, found.to_dict())
        self._pin(ENVIRONMENT_KEY, found.lock_pin())
        for line in found.warnings():
            self.log.say(f"warning: {line}")
        if self.replay is not None and self.replay.after_facts is not None:
            self.replay.after_facts(found, self.result)

    def _stage_mpi_and_allreduce(self) -> dict[str, Any] | None:
        """The launcher's ssh set-up on the head, then (with the health gate) the
        allreduce across every rank: its health.json entry."""
        self._stage_mpi()
        if not self.spec.run.health:
            return None

        def mpirun(command: list[str]) -> tuple[list[str], dict[str, str]]:
            env = {**self.target.session_env(), "PYTHONUNBUFFERED": "1"}
            return self._mpirun(env, command, prelude=False), env

        return health.mpi_check(health.MpiCheck(
            self.sessions[0], mpirun, self.spec.cluster.slots_per_node,
            tuple(n.name for n in self.nodes)))

    def _health(self, facts: list[dict[str, Any]]) -> None:
        """The cluster as asked for, before anything is staged (composer/health.py).
        With mpi, the allreduce started during facts (``_stage_mpi_and_allreduce``)."""
        mpi = self._mpi_early.result if self._mpi_early is not None else None
        try:
            health.check(self.sessions, facts, self.spec.cluster.gpus_per_node,
                         self.target.session_env().get("PATH"), mpi,
                         lambda data: write_json(self.staged / health.HEALTH_FILE, data),
                         self.log.say, shared_host=self.target.nodes_share_host)
        except health.HealthError as exc:
            self.result.failed_node = exc.node
            raise

    def _pin(self, key: str, value: Any) -> None:
        """A pin known only after render (the providers ``init`` chose, the nodes'
        environment), added to the staged ``lock.json``."""
        self.lock_data[key] = value
        write_json(self.staged / "lock.json", self.lock_data)

    def _collect(self) -> None:
        try:
            collected = collect_outputs(self.sessions, self.spec.outputs, self.staged,
                                        self.secrets, self.collect_time_limit)
            for note in collected.notes():
                self.log.say(note)
            if collected.error is not None:
                raise collected.error
        except BaseException:
            # the run fails at collect; the workload's own exit code stays on record
            if self.job is not None:
                self.result.exit_code = self.result.workload_exit_code = self.job.exit_code
            raise

    def _after_failure(self) -> None:
        """What a run that stopped early still owes its record (see ``_collect_late``);
        a signal meanwhile ends it there, on to teardown."""
        try:
            self._collect_late()
        except (Interrupted, KeyboardInterrupt):
            self.log.log.write(f"{now_iso()} interrupted after the failure; tearing down\n")

    def _collect_late(self) -> None:
        """A workload stopped at max_duration leaves what it wrote (a checkpoint):
        collected; otherwise the outputs are not collected, and the user is told so."""
        r = self.result
        if not self.spec.outputs.paths or r.stage not in ("run", "collect"):
            return
        if r.status != "timeout" or not self.sessions:
            if r.stage == "run":
                self.log.say(f"outputs not collected: the run was {r.status} during run")
            return
        try:
            with self.stage("collect"):
                self._collect()
        except BaseException as exc:  # noqa: BLE001 - the timeout stays the run's outcome
            self.log.say(f"collect after max_duration: {describe(exc)}")
        r.stage = "run"

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.result.stage = name
        self.state.stage = name
        self.state.save(self.work)
        INTERRUPTS.check()
        pause_point(self.work, name)
        self.log.progress.stage(name)
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.result.stages[name] = round(time.monotonic() - t0, 3)
        self.log.say(f"[{name}] done in {self.result.stages[name]:.2f}s")

    def _render(self) -> None:
        spec = self.spec
        lock = resolve(spec, self.engine.name, self.engine.version, self.image,
                       runs_repo=self.opts.runs_repo, target_pins=self.pins)
        if self.replay is None:
            infra = render(spec, lock.modules, self.staged / "infra")
        else:
            shutil.copytree(self.replay.infra, self.staged / "infra")
            if any(d.get("kind") == "provider" for d in self.replay.drift):
                # run anyway (--allow-drift): init selects today's providers
                (self.staged / "infra" / LOCK_FILE).unlink(missing_ok=True)
            infra = Infra(self.staged / "infra",
                          tree_sha256(self.staged / "infra", frozenset({LOCK_FILE})))
        self.lock_data = replace(lock, infra_sha256=infra.sha256).to_dict()
        self.lock_data["cost"] = self.cost.lock_entry()
        write_json(self.staged / "lock.json", self.lock_data)
        (self.staged / "job.toml").write_text(spec.text, encoding="utf-8")
        shutil.copytree(infra.path, self.tf_dir)
        alloc = self.target.allocate(self.run_id, spec, self.work)
        self.state.held = list(alloc.held)
        self.state.save(self.work)
        runtime = self.target.prepare(self.run_id, spec, self.work, alloc, self.pins)
        # The run's var file holds the nodes' private host keys (cloud targets) and the
        # state Terraform writes beside it their user-data: private, even in a copy.
        os.chmod(self.tf_dir, 0o700)
        var_file = self.tf_dir / VAR_FILES[0]
        write_json(var_file, runtime)
        os.chmod(var_file, 0o600)

    def base_env(self) -> dict[str, str]:
        addrs = [n.peer for n in self.nodes]
        env = dict(self.target.session_env())
        env.update(dict(self.spec.run.env))
        if self.spec.container.enabled:  # the daemon preflight asked, on the nodes too
            env.update(containers.client_env(self.spec.container.runtime))
        env.update(
            COMPOSER_RUN_ID=self.run_id, COMPOSER_NUM_NODES=str(len(self.nodes)),
            COMPOSER_NODE_ADDRS=",".join(addrs), COMPOSER_HEAD_ADDR=addrs[0],
            COMPOSER_ATTEMPT=str(self.plan.current.number),
        )
        if self.spec.run.checkpoint:
            env["COMPOSER_CHECKPOINT_DIR"] = self.spec.run.checkpoint
        return env

    def _stage_mpi(self) -> None:
        head = self.sessions[0]
        work = head.node.work_dir
        key = (self.work / "keys" / "client").read_text()
        known = known_hosts(self.nodes, peers=True)
        if ".ssh" not in head.sftp.listdir(work):
            head.sftp.mkdir(f"{work}/.ssh", 0o700)
        put_text(head, f"{work}/.ssh/id_ed25519", key, 0o600)
        put_text(head, f"{work}/.ssh/known_hosts", known)
        put_text(head, f"{work}/.ssh/composer-ssh",
                 launch.ssh_wrapper(f"{work}/.ssh/id_ed25519", f"{work}/.ssh/known_hosts",
                                    head.node.port), 0o755)
        put_text(head, f"{work}/hostfile", launch.hostfile(self.nodes))

    def _launch(self) -> launch.JobResult:
        spec = self.spec
        names = [n.name for n in self.nodes]
        timeout = spec.limits.max_duration
        self.log.say(max_duration_line(spec))
        streams = launch.Streams(self.staged / "logs", names, self.opts.echo, self.secrets)
        try:
            with launch.Heartbeat(self.log.say, streams, self.heartbeat_s):
                return self._launch_with(streams, timeout)
        finally:
            streams.close()

    def _launch_with(self, streams: launch.Streams, timeout: float | None) -> launch.JobResult:
        spec = self.spec
        names = [n.name for n in self.nodes]
        env = self.base_env()
        command = spec.run.command
        if spec.run.launcher == "ssh":
            if spec.container.enabled:
                command = containers.wrap(self.container_run(env, mpi=False), command)
            envs = [{**env, "COMPOSER_NODE_RANK": str(n.rank), "COMPOSER_NODE_ADDR": n.peer}
                    for n in self.nodes]
            return launch.run_ssh(self.sessions, envs, command, streams, timeout,
                                  spec.run.fail_fast)
        # Python in a rank whose output is a pipe (in a container, through `| tee`)
        # would hold it until it exits; [run] env may say otherwise.
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["COMPOSER_HOSTFILE"] = f"{self.nodes[0].work_dir}/hostfile"
        if spec.container.enabled:
            command = containers.wrap(self.container_run(env, mpi=True), command)
        argv = self._mpirun(env, command)
        return launch.run_mpi(self.sessions[0], argv, env, spec.cluster.slots_per_node,
                              names, streams, timeout)

    def _mpirun(self, env: dict[str, str], command: list[str] | tuple[str, ...] | str,
                prelude: bool = True) -> list[str]:
        """The run's mpirun command line for ``command`` (see ``launch.mpirun_argv``);
        sets what it needs in ``env``, every variable of which it forwards to the ranks
        (the secrets too, which the prelude reads)."""
        head = self.nodes[0]
        hostfile = env.setdefault("COMPOSER_HOSTFILE", f"{head.work_dir}/hostfile")
        agent, extra = f"{head.work_dir}/.ssh/composer-ssh", list(self.target.mpi_args())
        if any(c.isspace() for c in agent):
            # mpirun splits its ssh agent on blanks: name the wrapper and find it through
            # the head's PATH; the head then starts every daemon itself (no tree spawn),
            # since the other nodes' PATH does not hold it.
            env["PATH"] = f"{head.work_dir}/.ssh:{env.get('PATH', '/usr/bin:/bin')}"
            agent = "composer-ssh"
            extra += ["--prtemca", "plm_ssh_no_tree_spawn", "1"]
        secrets = self.spec.run.secret_env if prelude else ()
        return launch.mpirun_argv(
            self.target.mpirun(), hostfile, agent, sum(n.slots for n in self.nodes),
            [*env, *secrets], extra, command, as_root=self.sessions[0].user == "root",
            prelude=prelude,
        )

    # -- endings -------------------------------------------------------------

    def _settle(self) -> None:
        job = self.job
        assert job is not None
        r = self.result
        r.exit_code = r.workload_exit_code = job.exit_code
        r.failed_node = job.failed_node
        r.failed_rank = job.failed_rank
        r.stopped_nodes = list(job.stopped)
        r.status = "succeeded" if job.exit_code == 0 else "failed"
        if job.exit_code != 0:
            r.stage = "run"
            who = job.failed_node
            if job.failed_rank is not None:
                who = f"rank {job.failed_rank} on {job.failed_node}"
            elif self.spec.run.launcher == "mpi":
                who = f"mpirun on {job.failed_node}"  # mpirun named no rank
            r.error = f"{who} exited with {job.exit_code}"
            if job.exit_code == 127:
                r.error += " (command not found: check run.command and the node's PATH)"
            if job.also_failed:
                r.error += f"; also failed: {', '.join(job.also_failed)}"
            if job.stopped:
                r.error += f"; stopped {', '.join(job.stopped)} (run.fail_fast)"

    def _fail(self, exc: BaseException) -> int | None:
        r = self.result
        if isinstance(exc, Interrupted):
            r.status, r.error = "interrupted", f"{exc.message} during {r.stage}"
            self.log.say(r.error)
            return exc.signum
        if isinstance(exc, KeyboardInterrupt):
            r.status, r.error = "interrupted", f"interrupted during {r.stage}"
            return 2
        if isinstance(exc, TimeoutError) and r.stage == "run":
            r.status = "timeout"
            limit = self.spec.limits.max_duration or 0.0
            r.error = (f"max_duration of {launch.human_duration(limit)} exceeded"
                       + (" (the default; set [limits] max_duration to change it)"
                          if self.spec.limits.defaulted else ""))
        else:
            r.status, r.error = "failed", describe(exc)
            self.error_exc = exc
        self.log.say(f"{r.status} at {r.stage}: {r.error}")
        if not isinstance(exc, ComposerError):
            self.log.log.write(traceback.format_exc())
        return None

    def _teardown(self) -> None:
        for session in self.sessions:
            session.close()
        r = self.result
        if not self.state.applied:
            self.target.release(self.state.held)
            return
        if self.opts.keep:
            r.teardown = {"status": "kept", "hint": f"composer down {self.run_id}"}
            self.log.say(f"cluster kept; remove it with: composer down {self.run_id}")
            for n in self.nodes:
                self.log.say(f"  {n.name} at {n.address}:{n.port}: "
                             f"composer ssh {self.run_id} {n.name} [-- COMMAND...]")
            return
        t0 = time.monotonic()
        # The outcome so far, for composer down should this process die while tearing
        # down: a run that finished keeps its status, and only the teardown is redone.
        write_json(self.staged / "result.json",
                   {**r.to_dict(), "teardown": {"status": "in-progress"}})
        r.stage = "destroy" if r.status == "running" else r.stage
        self.state.stage = "destroy"
        self.state.save(self.work)
        pause_point(self.work, "destroy")
        self.log.progress.stage("destroy")
        r.teardown = destroy(self.engine, self.target, self.work, self.state.parallelism,
                             self.tf_log, self.state.held)
        self.cost.destroyed()
        self.state.destroyed = r.teardown["status"] == "destroyed"
        self.state.save(self.work)
        r.stages["destroy"] = round(time.monotonic() - t0, 3)
        self.log.say(f"[destroy] {r.teardown['status']} in {r.stages['destroy']:.2f}s")
        if r.teardown.get("error"):
            self.log.say(f"[destroy] {r.teardown['error']}")

    def _finish(self, started: float, signum: int | None) -> RunOutcome:
        r = self.result
        if INTERRUPTS.signum is not None and r.status in ("running", "succeeded"):
            # A signal that arrived while tearing down: teardown finished first.
            signum = INTERRUPTS.signum
            r.status, r.stage = "interrupted", "destroy"
            r.error = f"interrupted by {signal.Signals(signum).name} during destroy"
        r.finished_at = now_iso()
        r.duration_s = round(time.monotonic() - started, 3)
        tries.settle_last(self.plan, r.status, r.error)
        r.attempts = self.plan.to_list()
        r.cost = self.cost.settle(r.teardown.get("status"))
        self.log.say(cost.spend_line(r.cost))
        code = status_exit_code(r.status, signum)
        if r.status == "failed" and (r.stage != "run" or self.job is None):
            exc = getattr(self, "error_exc", None)
            # a reproduction refused at facts for drift (reproduce.py) keeps drift's code
            drift = isinstance(exc, ComposerError) and exc.exit_code == ExitCode.DRIFT
            code = ExitCode.DRIFT if drift else ExitCode.INFRA_FAILED
        if r.teardown.get("status") == "failed":
            code = ExitCode.INFRA_FAILED
        r.composer_exit_code = int(code)
        if r.status == "failed" and r.stage == "run" and self.job is not None:
            self.log.say(f"failed: {r.error}")
        torn = ", but teardown failed" if r.teardown.get("status") == "failed" else ""
        self.log.say(f"{r.status}{torn} (exit {code}) in {r.duration_s:.2f}s")
        self.log.log.flush()
        self.tf_log.flush()
        self.log.progress.stage("record")
        if self.replay is not None and self.replay.finalize is not None:
            self.replay.finalize(r, self.staged)
        # Keys and secrets out of the logs before they are cut: a cut inside a key
        # would leave lines of it that no longer look like one.
        guard.redact_logs(self.staged, self.secrets)
        r.logs_cut = cap_logs(self.staged / "logs", self.spec.record.max_log_size)
        for name, cut in r.logs_cut.items():
            self.log.say(f"{name}: {cut['size']} bytes, kept the first and last "
                         f"{self.spec.record.max_log_size // 2} or so (record.max_log_size)")
        try:
            record = commit_record(self.repo, r, self.staged, self.secrets, self.log.say)
        except ComposerError as exc:
            self.log.say(f"{r.status}, but the record was not committed: {exc.message}")
            exc.hint = (f"the result is kept in {self.work}; once the cause above is fixed, "
                        f"composer down {self.run_id} [--runs-repo PATH] commits it")
            raise
        self.state.committed = True
        self.state.save(self.work)
        self.log.say(f"record committed: {record} (tag run/{self.run_id})")
        if r.teardown.get("status") in ("destroyed", "not-needed"):
            remove_tree(self.work)
        return RunOutcome(
            self.run_id, r.status, int(code), record,
            None if r.error is None else self.secrets.redact(r.error),
            workload_exit_code=r.workload_exit_code, failed_node=r.failed_node,
            stage=None if r.status == "succeeded" else r.stage, failed_rank=r.failed_rank,
        )


def check_pullable(pin: dict[str, Any], target: str) -> None:
    """A target whose nodes pull the image needs one a registry serves, by its digest:
    a locally built image (``localhost/…``, or one pinned by its Id) is refused before
    anything is created or paid for."""
    local = _local_registry(str(pin["image"]))
    if pin.get("pinned_by") != "digest" or local:
        why = "a local name" if local else "pinned by its Id, not by a registry digest"
        raise PreflightError(
            f"container.image: {pin['image']} is {why}; the {target} nodes pull the image "
            "from its registry and could not get it",
            hint="push the image to a registry the nodes can reach, pull it here by that "
                 "name, and set [container] image to it")


def _local_registry(image: str) -> bool:
    """Whether ``image`` names a registry on this machine (loopback or any-address, by
    name or number, with or without a port): one the nodes cannot reach."""
    if "/" not in image:
        return False  # a Docker Hub name
    host = image.split("/", 1)[0].lower()
    if host.startswith("["):  # [::1]:5000
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:  # localhost:5000
        host = host.split(":", 1)[0]
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def max_duration_line(spec: Spec) -> str:
    """The limit the run goes by, and where it comes from."""
    limits = spec.limits
    if limits.max_duration is None:
        return '[run] no max_duration ([limits] max_duration = "none")'
    text = launch.human_duration(limits.max_duration)
    if limits.defaulted:
        return (f"[run] max_duration {text} (the default; set [limits] max_duration in the "
                f'job to change it, "none" for no limit)')
    return f"[run] max_duration {text} (from [limits] max_duration)"


def state_resources(tf_dir: Path, engine: Any = None) -> int | None:
    """How many resources the state records: 0 without a state file, None when it
    cannot be read (then destroy runs as usual). A remote state (``[state]``) is read
    through ``engine``."""
    if remote_state.configured(tf_dir):
        try:
            return remote_state.resources_in(engine.state_pull(tf_dir)) if engine else None
        except ComposerError:
            return None
    path = tf_dir / "terraform.tfstate"
    if not path.exists():
        return 0
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return len(data.get("resources") or [])
    except (OSError, ValueError, AttributeError):
        return None


def destroy(engine, target, work: Path, parallelism: int, log: IO[str],  # type: ignore[no-untyped-def]
            held: list[Any]) -> dict[str, object]:
    """Destroy the cluster, then sweep whatever a node left; release what it held.

    A state that holds nothing (apply failed before creating anything: a provider that
    would not start, a quota refused) needs no destroy, which would need the provider
    too; the sweep still looks for anything of the run's that Terraform never recorded.
    """
    outcome: dict[str, object] = {"status": "destroyed"}
    try:
        if state_resources(work / "tf", engine) != 0:
            engine.destroy(work / "tf", VAR_FILES, parallelism, log)
    except ComposerError as exc:
        outcome = {"status": "failed", "error": exc.message}
    except (OSError, RuntimeError) as exc:  # the machine itself: no process, no thread
        outcome = {"status": "failed", "error": f"terraform destroy could not run: {exc}",
                   "hint": f"composer down {work.name} tries again"}
    try:
        swept = target.sweep(work)
    except ComposerError as exc:
        swept = []
        outcome = {"status": "failed", "error": f"sweeping the nodes failed: {exc.message}",
                   "hint": exc.hint or f"composer down {work.name} tries again"}
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        swept = []
        outcome = {"status": "failed", "error": f"sweeping the nodes failed: {exc}",
                   "hint": f"composer down {work.name} tries again"}
    if swept:
        outcome["swept"] = swept
    left = node_processes(work)
    if left:
        outcome = {"status": "failed", "error": f"node processes still running: {left}",
                   "swept": swept}
    if outcome["status"] == "destroyed":
        target.release(held)
    return outcome
