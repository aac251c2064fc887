"""The GPU rules of ``[gcp]``: which GPUs an N1 machine type takes as an accelerator,
which come only with their own machine types (A2, A3, A4, G2, G4), and how
``gcp.machine_types``, ``gcp.accelerator`` and ``cluster.gpus_per_node`` must agree.
Offline: what a zone offers is preflight's work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from composer.spec.check import Checker
from composer.spec.fields import MISSING
from composer.spec.model import ClusterSpec
from composer.spec.text import describe, join, quote, suggest
from composer.targets.gcp.config import bundles_gpus, series

#: Series that take GPUs as a separate accelerator (``guest_accelerator``).
ATTACHABLE_SERIES = ("n1", "custom")

N1_GPU_COUNTS = (1, 2, 4, 8)
#: The GPUs Compute Engine attaches to N1 machine types (the only series that takes a
#: separate accelerator); the others come with their own machine types.
N1_ACCELERATORS = ("nvidia-tesla-t4", "nvidia-tesla-v100", "nvidia-tesla-p100",
                   "nvidia-tesla-p4", "nvidia-tesla-t4-vws", "nvidia-tesla-p100-vws",
                   "nvidia-tesla-p4-vws")
BUNDLED_ACCELERATORS = {
    "nvidia-l4": "G2", "nvidia-l4-vws": "G2", "nvidia-tesla-a100": "A2",
    "nvidia-a100-80gb": "A2 ultra", "nvidia-h100-80gb": "A3", "nvidia-h100-mega-80gb": "A3 mega",
    "nvidia-h200-141gb": "A3 ultra", "nvidia-b200": "A4", "nvidia-gb200": "A4X",
    "nvidia-rtx-pro-6000": "G4",
}


def check_accelerator(c: Checker, value: Any, path: str, types: tuple[str, ...]) -> str | None:
    if value is MISSING:
        return None
    form = 'must be a table such as { type = "nvidia-tesla-t4" }'
    if isinstance(value, str):
        return c.add(path, f"{form}, got {describe(value)}; write accelerator = "
                           f"{{ type = {quote(value)} }} (the count is cluster.gpus_per_node)")
    if not isinstance(value, dict):
        return c.add(path, f"{form}, got {describe(value)}")
    for key in value:
        if key == "count":
            c.add(join(path, key), "unknown key: the count is cluster.gpus_per_node")
        elif key != "type":
            c.add(join(path, key), "unknown key" + suggest(key, ("type",)))
    where = join(path, "type")
    if "type" not in value:
        return c.add(where, 'required: the accelerator type, such as "nvidia-tesla-t4"')
    text = c.string(value["type"], where, nonempty=True)
    if text is None or text in N1_ACCELERATORS:
        return text
    close = text.strip().lower()
    if close in N1_ACCELERATORS:
        return c.add(where, f"must be lowercase: did you mean {quote(close)}?")
    if close in BUNDLED_ACCELERATORS and any(bundles_gpus(t) for t in types):
        return text  # the GPU rules say to remove it: the type brings its GPUs
    if close in BUNDLED_ACCELERATORS:
        series_of = BUNDLED_ACCELERATORS[close]
        return c.add(where, f"{quote(text)} GPUs come only with {series_of} machine types, "
                            "which need no accelerator: remove gcp.accelerator and choose "
                            f"such a type in gcp.machine_types")
    return c.add(where, "must be a GPU N1 machine types take: "
                        + ", ".join(f'"{name}"' for name in N1_ACCELERATORS)
                        + f"; got {quote(text)}")


def check_gpu_rules(c: Checker, raw: Any, types: tuple[str, ...], accelerator: bool,
               cluster: ClusterSpec | None) -> None:
    """Machine types, ``gcp.accelerator`` and ``cluster.gpus_per_node`` agree: GPUs that
    come with the type, or attached to an N1 type, or none."""
    if not types:
        return
    first: dict[str, int] = {}
    for i, item in enumerate(raw):
        if isinstance(item, str):
            first.setdefault(item, i)

    def at(name: str) -> str:
        return f"gcp.machine_types[{first[name]}]"

    bundled = [t for t in types if bundles_gpus(t)]
    plain = [t for t in types if not bundles_gpus(t)]
    if bundled and plain:
        odd = plain[0] if bundles_gpus(types[0]) else bundled[0]
        c.add(at(odd), f"{quote(bundled[0])} comes with GPUs and {quote(plain[0])} does not: "
                       "list machine types of one kind (all with GPUs that come with the "
                       "type, or none)")
        return
    _gpu_counts(c, bundled, plain, accelerator, cluster, at)


def _gpu_counts(c: Checker, bundled: list[str], plain: list[str], accelerator: bool,
                cluster: ClusterSpec | None, at: Callable[[str], str]) -> None:
    gpus = None if cluster is None else cluster.gpus_per_node
    if accelerator and bundled:
        c.add("gcp.accelerator", f"remove it: the GPUs of {quote(bundled[0])} come with the "
                                 f"machine type (series {series(bundled[0])})")
    elif accelerator and gpus == 0:
        c.add("gcp.accelerator", "attaches cluster.gpus_per_node GPUs to each node, and "
                                 "cluster.gpus_per_node is 0: set it, or remove gcp.accelerator")
    elif not accelerator and gpus and plain and any(_attachable(t) for t in plain):
        name = next(t for t in plain if _attachable(t))
        c.add("gcp.accelerator", f"required: cluster.gpus_per_node is {gpus}, and {quote(name)} "
                                 "takes GPUs only as an accelerator; add accelerator = "
                                 '{ type = "nvidia-tesla-t4" } (or another type)')
    for name in plain:
        if (accelerator or gpus) and not _attachable(name):
            c.add(at(name), f"{quote(name)} takes no GPUs: they attach only to N1 machine "
                            'types ("n1-standard-8", with gcp.accelerator), or come with the '
                            'type ("g2-standard-8", "a2-highgpu-1g")')
    if gpus == 0:
        for name in bundled:
            c.add(at(name), f"{quote(name)} comes with GPUs (series {series(name)}), and "
                            "cluster.gpus_per_node is 0: set cluster.gpus_per_node to its "
                            "GPU count, or choose a machine type without GPUs")


def _attachable(machine_type: str) -> bool:
    return series(machine_type) in ATTACHABLE_SERIES
