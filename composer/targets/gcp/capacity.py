"""What a run needs of a region's quotas, and which machine series take a compact
placement policy.

Quota metrics are those ``regions.get`` lists (``Region.quotas``: metric, limit, usage).
vCPUs of N1, E2 and the shared-core types count against ``CPUS``; other series against
their own metric (``N2_CPUS``, ``A2_CPUS``, ...) where the region lists one, else
``CPUS``. GPUs count against ``NVIDIA_<MODEL>_GPUS`` (``nvidia-tesla-t4`` ->
``NVIDIA_T4_GPUS``, ``nvidia-h100-80gb`` -> ``NVIDIA_H100_GPUS``). Spot VMs count against
the ``PREEMPTIBLE_`` metric where the project has one (limit above 0), else the
standard one. Every VM counts against ``INSTANCES``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from composer.targets.gcp.config import series

#: Series whose vCPUs count against the general ``CPUS`` metric.
GENERAL_CPU_SERIES = ("n1", "e2", "f1", "g1")
#: Series that take a compact placement policy (Compute Engine's "Placement policies
#: overview": compact policies support these; A2, A3, A4, G2, G4 among the GPU ones).
COMPACT_SERIES = ("a2", "a3", "a4", "a4x", "c2", "c2d", "c3", "c3d", "c4", "c4a", "c4d",
                  "g2", "g4", "h3", "h4d", "n2", "n2d")
#: Series documented without compact placement (general purpose E2 and N1, shared-core).
NO_COMPACT_SERIES = ("e2", "n1", "f1", "g1", "n4", "t2a", "t2d")


@dataclass(frozen=True)
class Need:
    """``count`` of ``what`` against the first of ``metrics`` the region lists."""

    what: str  # "vCPUs", "GPUs", "instances"
    count: int
    metrics: tuple[str, ...]
    field: str  # the spec field that sets the need, for the error


def quota_table(region: Any) -> dict[str, tuple[float, float]]:
    """metric -> (limit, usage) of a ``Region``."""
    return {q.metric: (float(q.limit), float(q.usage)) for q in region.quotas if q.metric}


def cpu_metrics(machine_type: str, spot: bool, table: dict[str, Any]) -> tuple[str, ...]:
    name = series(machine_type).upper()
    own = f"{name}_CPUS"
    base = "CPUS" if series(machine_type) in GENERAL_CPU_SERIES or own not in table else own
    return _with_preemptible(base, spot, table)


def gpu_model_metrics(accelerator: str) -> tuple[str, ...]:
    """``NVIDIA_..._GPUS`` names an accelerator type may count against, most exact first."""
    model = re.sub(r"^nvidia-(tesla-)?", "", accelerator).upper().replace("-", "_")
    names = [f"NVIDIA_{model}_GPUS"]
    bare = re.sub(r"_\d+GB$", "", model)
    if bare != model:
        names.append(f"NVIDIA_{bare}_GPUS")
    return tuple(names)


def gpu_metrics(accelerator: str, spot: bool, table: dict[str, Any]) -> tuple[str, ...]:
    found = [m for m in gpu_model_metrics(accelerator) if m in table]
    base = found[0] if found else gpu_model_metrics(accelerator)[0]
    return _with_preemptible(base, spot, table)


def _with_preemptible(base: str, spot: bool, table: dict[str, Any]) -> tuple[str, ...]:
    preemptible = f"PREEMPTIBLE_{base}"
    if spot and table.get(preemptible, (0.0, 0.0))[0] > 0:
        return (preemptible,)
    return (base,)


def needs(nodes: int, machine_type: str, vcpus: int, gpus: int, accelerator: str | None,
          spot: bool, table: dict[str, Any]) -> list[Need]:
    """What ``nodes`` VMs of ``machine_type`` need of the region's quotas."""
    found = [Need("vCPUs", nodes * vcpus, cpu_metrics(machine_type, spot, table),
                  "cluster.nodes"),
             Need("instances", nodes, ("INSTANCES",), "cluster.nodes")]
    if gpus and accelerator:
        found.insert(1, Need("GPUs", nodes * gpus, gpu_metrics(accelerator, spot, table),
                             "cluster.gpus_per_node"))
    return found


def compact_support(machine_type: str) -> bool | None:
    """Whether the type's series takes a compact placement policy (None: not known)."""
    name = series(machine_type)
    if name in COMPACT_SERIES:
        return True
    if name in NO_COMPACT_SERIES:
        return False
    return None
