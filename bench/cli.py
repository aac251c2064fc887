"""``python -m bench``: every benchmark in one run, side by side, then one table."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from bench import micro, smallfiles, startup
from bench.overhead import HELLO, ComposerJobs, ComposerRun, baseline, write_job
from bench.report import Metric, median, results_table, spread, table

T = TypeVar("T")

SECTIONS = ("overhead", "render", "hashing", "collect", "smallfiles", "startup")
STAGES = ("render", "init", "apply", "wait_for_ssh", "facts", "health", "stage", "run", "collect",
          "destroy", "record")
#: composer/bare wall time, by cluster size (other sizes are reported without a target).
OVERHEAD_TARGETS = {4: 1.5, 64: 1.3}
#: Seconds composer adds to the baseline at one node.
FIXED_COST_TARGET_S = 0.8
#: What each added node costs composer, over what it costs the baseline.
PER_NODE_TARGET = 1.2
RENDER_TARGET_S = 0.5
HASHING_TARGET = 0.8
COLLECT_TARGET = 0.9
SMALLFILES_TARGET = 2.0
COMPOSER_PORT = 22122
BARE_PORT = 22123
MB = 1 << 20


@dataclass(frozen=True)
class Plan:
    reps: int
    nodes: tuple[int, ...]
    render_nodes: int
    hash_bytes: int
    collect_bytes: int
    warmup: bool = True
    small_files: int = 10_000

    @property
    def scale(self) -> tuple[int, int]:
        """The two sizes the scaling ratio compares: the first past 1 node, and the largest."""
        ordered = sorted(set(self.nodes))
        low = ordered[1] if len(ordered) > 2 else ordered[0]
        return low, ordered[-1]


FULL = Plan(reps=3, nodes=(1, 4, 16, 64), render_nodes=1000, hash_bytes=1 << 30,
            collect_bytes=1 << 30)
SMOKE = Plan(reps=1, nodes=(1, 2), render_nodes=50, hash_bytes=8 * MB, collect_bytes=8 * MB,
             small_files=200)


@dataclass
class OverheadData:
    composer: dict[int, list[ComposerRun]] = field(default_factory=dict)
    bare: dict[int, list[float]] = field(default_factory=dict)
    reps: dict[int, list[int]] = field(default_factory=dict)

    def by_rep(self, nodes: int) -> dict[int, tuple[ComposerRun, float]]:
        pairs = zip(self.composer.get(nodes, []), self.bare.get(nodes, []), strict=True)
        return dict(zip(self.reps.get(nodes, []), pairs, strict=True))


class Bench:
    def __init__(self, plan: Plan, root: Path, port: int, bare_port: int,
                 log: IO[str]) -> None:
        self.plan, self.root, self.port, self.bare_port = plan, root, port, bare_port
        self.out = log
        self.metrics: list[Metric] = []
        self.errors: dict[str, str] = {}
        self.failures: list[str] = []
        self.overhead_data = OverheadData()
        self.details: dict[str, Any] = {}

    def say(self, text: str) -> None:
        self.out.write(f"bench: {text}\n")
        self.out.flush()

    def run(self, sections: Sequence[str]) -> None:
        steps: dict[str, Callable[[], None]] = {
            "overhead": self.overhead, "render": self.render, "hashing": self.hashing,
            "collect": self.collect, "smallfiles": self.smallfiles, "startup": self.startup,
        }
        for name in sections:
            t0 = time.monotonic()
            try:
                steps[name]()
            except Exception as exc:  # noqa: BLE001 - a failed benchmark is reported, the rest run
                self.errors[name] = f"{type(exc).__name__}: {exc}"
                self.say(f"[{name}] failed: {self.errors[name]}")
            self.details.setdefault("section_s", {})[name] = round(time.monotonic() - t0, 1)
        self._metrics(sections)

    # -- overhead and scaling ------------------------------------------------

    def overhead(self) -> None:
        plan, data = self.plan, self.overhead_data
        jobs = ComposerJobs(self.root / "composer", self.port)
        job_files = {n: write_job(self.root / "jobs" / f"n{n}", n) for n in plan.nodes}
        bare_root = self.root / "bare"
        if plan.warmup:
            first = plan.nodes[0]
            self.say(f"[overhead] warm-up at {first} node(s)")
            try:
                jobs.up(job_files[first])
                baseline(bare_root, job_files[first].parent, first, self.bare_port)
            except Exception as exc:  # noqa: BLE001 - an untimed run; the timed ones decide
                self.failures.append(f"warm-up: {type(exc).__name__}: {exc}")
        for rep in range(plan.reps):
            for n in plan.nodes:
                job = job_files[n]

                def bare_run(n: int = n, job: Path = job) -> float:
                    return baseline(bare_root, job.parent, n, self.bare_port)

                def composer_run(job: Path = job) -> ComposerRun:
                    return jobs.up(job)

                try:
                    if rep % 2 == 0:
                        run = self.retried(f"composer at {n} nodes", composer_run)
                        bare = self.retried(f"bare at {n} nodes", bare_run)
                    else:
                        bare = self.retried(f"bare at {n} nodes", bare_run)
                        run = self.retried(f"composer at {n} nodes", composer_run)
                except Exception as exc:  # noqa: BLE001 - the pair is dropped, the rest run
                    self.say(f"[overhead] rep {rep + 1} at {n} nodes dropped: {exc}")
                    continue
                data.composer.setdefault(n, []).append(run)
                data.bare.setdefault(n, []).append(bare)
                data.reps.setdefault(n, []).append(rep)
                self.say(f"[overhead] rep {rep + 1}/{plan.reps} {n:>3} node(s): composer "
                         f"{run.wall_s:6.2f} s, bare {bare:6.2f} s, x{run.wall_s / bare:.2f}")

    def retried(self, what: str, fn: Callable[[], T], tries: int = 2) -> T:
        """``fn``, tried again when it fails; every failure is kept for the report."""
        for attempt in range(1, tries + 1):
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - recorded, then retried or raised
                text = str(exc).strip().splitlines()
                self.failures.append(f"{what} (try {attempt}): {type(exc).__name__}: "
                                     + " / ".join(line for line in text[:12] if line.strip()))
                self.say(f"{what} failed (try {attempt} of {tries}): "
                         f"{text[0] if text else type(exc).__name__}")
                if attempt == tries:
                    raise
        raise AssertionError("unreachable")

    def _overhead_metrics(self) -> list[Metric]:
        data, error = self.overhead_data, self.errors.get("overhead")
        metrics = []
        for n in self.plan.nodes:
            pairs = list(zip(data.composer.get(n, []), data.bare.get(n, []), strict=True))
            metrics.append(Metric(
                f"overhead_n{n}", f"overhead at {n} node{'s' if n > 1 else ''} (composer/bare)",
                "x", [c.wall_s / b for c, b in pairs], OVERHEAD_TARGETS.get(n), error=error,
            ))
            if n == 1:
                metrics.append(Metric(
                    "fixed_cost", "fixed cost at 1 node (composer - bare, seconds)", "s",
                    [c.wall_s - b for c, b in pairs], FIXED_COST_TARGET_S, error=error,
                ))
        low, high = self.plan.scale
        if high <= low:
            return metrics
        lo_by, hi_by = data.by_rep(low), data.by_rep(high)
        common = sorted(set(lo_by) & set(hi_by))
        composer_scaling = [hi_by[r][0].wall_s / lo_by[r][0].wall_s for r in common]
        bare_scaling = [hi_by[r][1] / lo_by[r][1] for r in common]
        # A baseline no slower at the larger size (noise, in a smoke run's 1 -> 2 nodes)
        # is taken as 1 ms per added node, so the ratio stays a number.
        per_node = [(hi_by[r][0].wall_s - lo_by[r][0].wall_s)
                    / max(hi_by[r][1] - lo_by[r][1], 0.001 * (high - low)) for r in common]
        metrics.append(Metric(
            "per_node_cost", f"cost per added node {low}->{high} (composer/bare)", "x",
            per_node, PER_NODE_TARGET, error=error,
        ))
        if common:
            self.details["per_added_node_s"] = {
                "composer": (median([hi_by[r][0].wall_s for r in common])
                             - median([lo_by[r][0].wall_s for r in common])) / (high - low),
                "bare": (median([hi_by[r][1] for r in common])
                         - median([lo_by[r][1] for r in common])) / (high - low),
                "from": low, "to": high,
            }
        metrics.append(Metric(
            "scaling_composer", f"scaling composer (wall {high}/{low} nodes)", "x",
            composer_scaling, error=error,
        ))
        metrics.append(Metric(
            "scaling_baseline", f"scaling bare (wall {high}/{low} nodes)", "x", bare_scaling,
            error=error,
        ))
        return metrics

    # -- single functions ----------------------------------------------------

    def render(self) -> None:
        times = micro.render_times(HELLO / "job.toml", self.plan.render_nodes,
                                   self.root / "render", self.plan.reps)
        self.details["render_s"] = times
        self.say(f"[render] {self.plan.render_nodes} nodes: "
                 + ", ".join(f"{t:.3f} s" for t in times))

    def hashing(self) -> None:
        size = self.plan.hash_bytes
        self.say(f"[hashing] {size // MB} MiB file")
        pairs = micro.hashing_pairs(self.root, size, self.plan.reps)
        self.details["hashing"] = {
            "bytes": size, "file_sha256_s": [c for c, _ in pairs],
            "hashlib_s": [b for _, b in pairs],
            "file_sha256_MBps": [size / MB / c for c, _ in pairs],
            "hashlib_MBps": [size / MB / b for _, b in pairs],
        }

    def collect(self) -> None:
        size = self.plan.collect_bytes
        self.say(f"[collect] {size // MB} MiB file over SSH")
        pairs, execs = micro.collect_pairs(self.root, size, self.plan.reps, self.bare_port)
        self.details["ssh_exec_s"] = execs
        self.details["collect"] = {
            "bytes": size, "collect_s": [c for c, _ in pairs], "scp_s": [s for _, s in pairs],
            "collect_MBps": [size / MB / c for c, _ in pairs],
            "scp_MBps": [size / MB / s for _, s in pairs],
        }

    def smallfiles(self) -> None:
        files = self.plan.small_files
        self.say(f"[smallfiles] {files} small files over SSH")
        pairs = smallfiles.smallfiles_pairs(self.root, files, self.plan.reps, self.bare_port)
        self.details["smallfiles"] = {"files": files, "collect_s": [c for c, _ in pairs],
                                      "tar_s": [t for _, t in pairs]}

    def startup(self) -> None:
        self.details["startup"] = startup.measure(startup.SAMPLES_PER_REP * self.plan.reps,
                                                  self.say)

    def _metrics(self, sections: Sequence[str]) -> None:
        if "startup" in sections:
            self.metrics += startup.metrics(self.details.get("startup", {}),
                                            self.errors.get("startup"))
        if "overhead" in sections:
            self.metrics += self._overhead_metrics()
        if "render" in sections:
            self.metrics.append(Metric(
                "render", f"render {self.plan.render_nodes} nodes (seconds)", "s",
                list(self.details.get("render_s", [])), RENDER_TARGET_S,
                error=self.errors.get("render"),
            ))
        if "hashing" in sections:
            h = self.details.get("hashing", {})
            self.metrics.append(Metric(
                "hashing", "hashing file_sha256/hashlib throughput", "x",
                [b / c for c, b in zip(h.get("file_sha256_s", []), h.get("hashlib_s", []),
                                       strict=True)],
                HASHING_TARGET, higher_is_better=True, error=self.errors.get("hashing"),
            ))
        if "collect" in sections:
            c = self.details.get("collect", {})
            self.metrics.append(Metric(
                "collect", "collect scp time/composer time", "x",
                [s / t for t, s in zip(c.get("collect_s", []), c.get("scp_s", []), strict=True)],
                COLLECT_TARGET, higher_is_better=True, error=self.errors.get("collect"),
            ))

        if "smallfiles" in sections:
            f = self.details.get("smallfiles", {})
            self.metrics.append(Metric(
                "smallfiles", f"collect {self.plan.small_files} small files composer/ssh+tar",
                "x", [c / t for c, t in zip(f.get("collect_s", []), f.get("tar_s", []),
                                            strict=True)],
                SMALLFILES_TARGET, error=self.errors.get("smallfiles"),
            ))

    # -- report ----------------------------------------------------------------

    def overhead_tables(self) -> str:
        data = self.overhead_data
        sizes = [n for n in self.plan.nodes if data.composer.get(n)]
        if not sizes:
            return ""
        rows = []
        for n in sizes:
            walls = [r.wall_s for r in data.composer[n]]
            bare = data.bare[n]
            ratios = [c / b for c, b in zip(walls, bare, strict=True)]
            rows.append([str(n), f"{median(walls):.2f}", spread(walls), f"{median(bare):.2f}",
                         spread(bare), f"{median(ratios):.2f}x"])
        walls = table(["nodes", "composer s", "min-max", "bare s", "min-max", "ratio"], rows,
                      {0, 1, 2, 3, 4, 5})
        stage_rows = []
        for stage in STAGES:
            cells = [stage]
            for n in sizes:
                runs = data.composer[n]
                secs = median([r.stages.get(stage, 0.0) if stage != "record" else r.record_s
                               for r in runs])
                share = median([r.shares().get(stage, 0.0) for r in runs])
                cells.append(f"{secs:6.2f} s {share * 100:3.0f}%")
            stage_rows.append(cells)
        stages = table(["stage", *(f"{n} node{'s' if n > 1 else ''}" for n in sizes)],
                       stage_rows, set(range(1, len(sizes) + 1)))
        text = ("wall seconds, median of repetitions (ratio: median of each repetition's "
                "composer/bare)\n" + walls
                + "\n\ncomposer's stages: median seconds and share of composer's wall\n" + stages)
        per = self.details.get("per_added_node_s")
        if per:
            text += (f"\n\nper added node ({per['from']} -> {per['to']}): composer "
                     f"{per['composer']:.3f} s, bare {per['bare']:.3f} s")
        return text

    def io_lines(self) -> str:
        lines = []
        h = self.details.get("hashing")
        if h:
            lines.append(f"hashing {h['bytes'] // MB} MiB: file_sha256 "
                         f"{median(h['file_sha256_MBps']):.0f} MiB/s, hashlib tight loop "
                         f"{median(h['hashlib_MBps']):.0f} MiB/s")
        c = self.details.get("collect")
        if c:
            lines.append(f"collect {c['bytes'] // MB} MiB: composer.collect "
                         f"{median(c['collect_MBps']):.0f} MiB/s, scp "
                         f"{median(c['scp_MBps']):.0f} MiB/s")
        if self.details.get("startup"):
            lines.append(startup.line(self.details["startup"]))
        f = self.details.get("smallfiles")
        if f:
            lines.append(f"collect {f['files']} small files: composer.collect "
                         f"{median(f['collect_s']):.2f} s, ssh | tar {median(f['tar_s']):.2f} s")
        execs = self.details.get("ssh_exec_s")
        if execs:
            lines.append(f"one command over an open SSH session (`true`, the node's login shell "
                         f"included): {median(execs) * 1000:.0f} ms median")
        return "\n".join(lines)

    def to_json(self, total_s: float, machine: dict[str, Any]) -> dict[str, Any]:
        overhead = {
            str(n): {
                "composer_s": [r.wall_s for r in runs],
                "composer_run_s": [r.duration_s for r in runs],
                "bare_s": self.overhead_data.bare.get(n, []),
                "run_ids": [r.run_id for r in runs],
                "stages_s": {s: [r.stages.get(s, 0.0) if s != "record" else r.record_s
                                 for r in runs] for s in STAGES},
                "shares": {s: [r.shares().get(s, 0.0) for r in runs] for s in STAGES},
            }
            for n, runs in self.overhead_data.composer.items()
        }
        return {
            "schema_version": 1, "plan": asdict(self.plan), "total_s": round(total_s, 1),
            "machine": machine, "metrics": {m.name: m.to_dict() for m in self.metrics},
            "overhead": overhead, "details": self.details, "errors": self.errors,
            "failures": self.failures,
        }


def machine_info() -> dict[str, Any]:
    model = ""
    mem_kb = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    try:
        ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False)
        openssh = (ssh.stderr or ssh.stdout).strip()
    except OSError:
        openssh = "unavailable"
    from composer import __version__

    return {
        "nproc": os.cpu_count(), "memory_gib": round(mem_kb / (1 << 20), 1), "cpu": model,
        "python": platform.python_version(), "openssh": openssh,
        "kernel": platform.release(), "composer": __version__,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="composer against the same work done by hand, side by side.",
    )
    parser.add_argument("--reps", type=int, default=None,
                        help="repetitions of each measurement (default 3; 1 with --smoke)")
    parser.add_argument("--smoke", action="store_true",
                        help="1 repetition, small sizes: a check that every benchmark runs")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write every sample and figure to PATH")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--nodes", default=None,
                        help="comma-separated cluster sizes for overhead (default 1,4,16,64)")
    parser.add_argument("--port", type=int, default=COMPOSER_PORT,
                        help=f"COMPOSER_LOCAL_PORT for composer's runs (default {COMPOSER_PORT})")
    parser.add_argument("--bare-port", type=int, default=BARE_PORT,
                        help=f"port of the bare sshd nodes (default {BARE_PORT})")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the temporary files go (default: the system temp dir)")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip the untimed warm-up run of each side")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    args.sections = [s for s in SECTIONS if s in sections]
    if args.reps is not None and args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


def plan_of(args: argparse.Namespace) -> Plan:
    plan = SMOKE if args.smoke else FULL
    changes: dict[str, Any] = {}
    if args.reps is not None:
        changes["reps"] = args.reps
    if args.nodes:
        changes["nodes"] = tuple(sorted({int(n) for n in args.nodes.split(",") if n.strip()}))
    if args.no_warmup:
        changes["warmup"] = False
    return Plan(**{**asdict(plan), **changes})


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = plan_of(args)
    machine = machine_info()
    started = time.monotonic()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="composer-bench-", dir=args.workdir) as tmp:
        bench = Bench(plan, Path(tmp), args.port, args.bare_port, sys.stderr)
        bench.say(f"{'smoke' if args.smoke else 'full'} run, {plan.reps} repetition(s), "
                  f"nodes {','.join(map(str, plan.nodes))}; temp {tmp}")
        bench.run(args.sections)
    total = time.monotonic() - started
    machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    out = sys.stdout
    out.write(f"\ncomposer benchmarks: {'smoke' if args.smoke else 'full'}, {plan.reps} "
              f"repetition(s); {machine['nproc']} CPUs ({machine['cpu']}), "
              f"{machine['memory_gib']} GiB, Python {machine['python']}, "
              f"{machine['openssh'].split(',')[0]}; load average {machine['loadavg_start'][0]} "
              f"at start, {machine['loadavg_end'][0]} at end\n\n")
    for block in (bench.overhead_tables(), bench.io_lines()):
        if block:
            out.write(block + "\n\n")
    out.write(results_table(bench.metrics) + "\n")
    if args.smoke:
        out.write("\nsmoke run: one repetition at small sizes (1 and 2 nodes, 8 MiB, 200 files), "
                  "to check that every benchmark runs; its PASS and MISS say nothing about the "
                  "targets, which the full run (make bench) measures\n")
    for name, error in bench.errors.items():
        out.write(f"\n{name} failed: {error}\n")
    for failure in bench.failures:
        out.write(f"\nretried: {failure}\n")
    minutes, seconds = divmod(int(round(total)), 60)
    out.write(f"\ntotal runtime {minutes}m{seconds:02d}s\n")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(bench.to_json(total, machine), indent=2) + "\n")
    return 1 if bench.errors else 0
