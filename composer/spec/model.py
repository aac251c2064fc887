"""The job spec's model: the immutable ``Spec`` that validation returns, and its parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MAX_FILE_SIZE = 50_000_000
DEFAULT_MAX_LOG_SIZE = 2_000_000
DEFAULT_MAX_DURATION = 24 * 3600.0


@dataclass(frozen=True)
class JobSection:
    name: str
    description: str = ""


@dataclass(frozen=True)
class ClusterSpec:
    target: str
    nodes: int
    slots_per_node: int = 1
    gpus_per_node: int = 0


@dataclass(frozen=True)
class RetrySpec:
    """``[run] retries``: how many times a run may start again (``max``), and on what
    (``on``: ``"node-lost"``, ``"capacity"``). The default: never."""

    max: int = 0
    on: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunSpec:
    """``command`` is an argv tuple (run without a shell) or a string for ``sh -c``.
    ``checkpoint``: a directory under the workload's working directory, carried from the
    head of one attempt to the next."""

    launcher: str
    command: tuple[str, ...] | str
    env: tuple[tuple[str, str], ...] = ()
    secret_env: tuple[str, ...] = ()
    fail_fast: bool = True
    retries: RetrySpec = field(default_factory=RetrySpec)
    checkpoint: str | None = None
    #: The health gate before the workload (composer/health.py).
    health: bool = True


@dataclass(frozen=True)
class MountSpec:
    """``host:container[:ro]``: a host directory or file, mounted at an absolute path."""

    host: str
    container: str
    read_only: bool = False

    def text(self) -> str:
        return f"{self.host}:{self.container}" + (":ro" if self.read_only else "")


@dataclass(frozen=True)
class ContainerSpec:
    """Run the workload in ``image`` with ``runtime``; ``runtime = "none"`` runs on the host."""

    runtime: str = "none"
    image: str | None = None
    mounts: tuple[MountSpec, ...] = ()
    gpus: bool = False

    @property
    def enabled(self) -> bool:
        return self.runtime != "none"


@dataclass(frozen=True)
class CodeSpec:
    path: Path | None


@dataclass(frozen=True)
class InputSpec:
    source: Path
    dest: str


@dataclass(frozen=True)
class OutputsSpec:
    paths: tuple[str, ...] = ()
    from_: str = "all"
    max_file_size: int = DEFAULT_MAX_FILE_SIZE


@dataclass(frozen=True)
class LimitsSpec:
    """``max_duration`` in seconds (None: written as ``"none"``, no limit); ``defaulted``
    when the spec did not say and the default applies (composer prints it). ``max_cost``:
    the budget in USD (None: no budget gate; see ``composer/cost.py``)."""

    max_duration: float | None = DEFAULT_MAX_DURATION
    defaulted: bool = True
    max_cost: float | None = None


@dataclass(frozen=True)
class RecordSpec:
    repo: str | None = None
    max_log_size: int = DEFAULT_MAX_LOG_SIZE


@dataclass(frozen=True)
class Tolerance:
    """How far metric ``key`` may move between runs: absolute and relative bounds.

    ``key`` is a flattened path inside a metrics JSON file: nested objects joined
    with ``.``, list items as ``[i]`` (``eval.accuracy``, ``losses[3]``).
    """

    key: str
    abs: float = 0.0
    rel: float = 0.0


@dataclass(frozen=True)
class ReproduceSpec:
    """Which JSON outputs ``composer reproduce`` compares, and how closely."""

    metrics: tuple[str, ...] = ()
    tolerance: tuple[Tolerance, ...] = ()

    def tolerance_for(self, key: str) -> tuple[float, float]:
        """``(abs, rel)`` for metric ``key``; ``(0.0, 0.0)`` (exact) when none is given."""
        for item in self.tolerance:
            if item.key == key:
                return item.abs, item.rel
        return 0.0, 0.0


@dataclass(frozen=True)
class StateSpec:
    """``[state]``: where Terraform keeps the run's state (``backend = "local"``: the work
    dir, as without the section)."""

    backend: str = "local"
    bucket: str | None = None
    prefix: str = "composer"
    region: str | None = None
    endpoint: str | None = None

    @property
    def remote(self) -> bool:
        return self.backend != "local"


@dataclass(frozen=True)
class Spec:
    job: JobSection
    cluster: ClusterSpec
    run: RunSpec
    code: CodeSpec
    inputs: tuple[InputSpec, ...]
    outputs: OutputsSpec
    limits: LimitsSpec
    record: RecordSpec
    source: Path
    base_dir: Path
    text: str
    reproduce: ReproduceSpec = field(default_factory=ReproduceSpec)
    container: ContainerSpec = field(default_factory=ContainerSpec)
    #: The target's own section (``[aws]`` -> ``AwsSpec``); None for targets without one.
    target_config: Any = None
    #: ``[state]``: where Terraform keeps the run's state.
    state: StateSpec = field(default_factory=StateSpec)
