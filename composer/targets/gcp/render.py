"""The GCP target's Terraform inputs: the spec's values for the rendered tree, the run's
own var file (pinned choices, keys, expiry), which never enters the tree or record, and
the command that waits for a node's startup script.

The names are the root module's variables (``templates/gcp/variables.tf.j2``). The OS
and Python packages a node needs come from the same tables as AWS's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from composer.targets.aws.render import LAUNCHER_PIP, host_key_pair, packages
from composer.targets.gcp.config import GcpSpec, bundles_gpus

if TYPE_CHECKING:
    from composer.spec import Spec

__all__ = ["READY_COMMAND", "expires_at_label", "gcp_section", "labels_value", "packages",
           "run_vars", "tfvars"]

LABEL_VALUE_MAX = 63
_NOT_IN_LABEL = re.compile(r"[^a-z0-9_-]")
#: ``composer-expires-at``: a label value cannot hold ":" nor upper case.
EXPIRES_AT_FORMAT = "%Y-%m-%dt%H-%M-%Sz"

#: Where the startup script (modules/gcp-cluster/scripts/boot.sh) leaves its marker. The
#: first line of ``boot-finished`` / ``boot-failed`` is the boot id of the boot that
#: wrote it; the rest of ``boot-failed`` says why, with the boot log's last lines.
BOOT_STATE = "/var/lib/composer"

#: Run over SSH as the login user once a node answers with its pinned key: returns 0
#: once this boot's startup script has finished; prints the reason and exits 1 when it
#: failed; waits while it runs (bounded by the SSH command's own timeout, which signals
#: it). A marker of an earlier boot, or one an image carries, is not this boot's.
READY_COMMAND = (
    "boot=$(cat /proc/sys/kernel/random/boot_id); "
    f"finished={BOOT_STATE}/boot-finished; failed={BOOT_STATE}/boot-failed; "
    "while :; do "
    'if [ "$(head -n 1 "$failed" 2>/dev/null)" = "$boot" ]; then '
    "echo \"the node's startup script failed ($failed):\"; tail -n +2 \"$failed\"; exit 1; fi; "
    'if [ "$(head -n 1 "$finished" 2>/dev/null)" = "$boot" ]; then exit 0; fi; '
    "sleep 2; "
    "done"
)


def gcp_section(spec: Spec) -> GcpSpec:
    config = spec.target_config
    if not isinstance(config, GcpSpec):
        raise TypeError(f"a gcp spec carries GcpSpec as target_config, not {type(config)}")
    return config


def labels_value(text: str) -> str:
    """``text`` as a GCE label value: lowercase; every character but ``a-z``, ``0-9``,
    ``_`` and ``-`` becomes ``-``; at most 63 characters."""
    return _NOT_IN_LABEL.sub("-", text.lower())[:LABEL_VALUE_MAX]


def expires_at_label(epoch: int) -> str:
    """``2026-11-27t12-14-05z`` (UTC) of ``epoch``, or ``none`` for 0."""
    if epoch == 0:
        return "none"
    return datetime.fromtimestamp(epoch, UTC).strftime(EXPIRES_AT_FORMAT)


def tfvars(spec: Spec) -> dict[str, Any]:
    """The ``[gcp]`` values for ``terraform.tfvars.json``, as written (nothing resolved),
    with the packages the nodes need and Compute Engine's time limit."""
    from composer.targets.gcp.target import max_run_seconds

    gcp = gcp_section(spec)
    return {
        "project": gcp.project,
        "region": gcp.region,
        "zones": list(gcp.zones),
        "machine_types": list(gcp.machine_types),
        "image": gcp.image,
        "accelerator_type": gcp.accelerator,
        "provisioning": gcp.provisioning,
        "placement": gcp.placement,
        "boot_disk_gb": gcp.boot_disk_gb,
        "network": gcp.network,
        "subnetwork": gcp.subnetwork,
        "ssh_cidrs": list(gcp.ssh_cidrs),
        "ssh_user": gcp.ssh_user,
        "labels": dict(gcp.labels),
        "max_run_seconds": max_run_seconds(spec),
        "packages": packages(spec),
        "pip_packages": list(LAUNCHER_PIP.get(spec.run.launcher, ())),
    }


def _accelerator(pins: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{type, count}`` to attach, or None: CPU-only, or GPUs that come with the type."""
    accelerator = pins.get("accelerator")
    if accelerator is None or bundles_gpus(str(pins["machine_type"])):
        return None
    return {"type": str(accelerator["type"]), "count": int(accelerator["count"])}


def run_vars(run_id: str, spec: Spec, pins: Mapping[str, Any], client_pub: str,
             host_keys: Sequence[Path], expires_at_epoch: int) -> dict[str, Any]:
    """The run's var file: preflight's pins, the client key, every node's host key
    pair (``host_keys``: the private key files, in rank order) and the expiry."""
    gcp_section(spec)
    nodes = spec.cluster.nodes
    if len(host_keys) != nodes:
        raise ValueError(f"{len(host_keys)} host keys for {nodes} nodes")
    if expires_at_epoch < 0:
        raise ValueError(f"expires_at_epoch is {expires_at_epoch}")
    return {
        "run_id": run_id,
        "image_self_link": pins["image_self_link"],
        "machine_type": pins["machine_type"],
        "zone": pins["zone"],
        "network_self_link": pins["network"],
        "subnetwork_self_link": pins.get("subnetwork"),
        "accelerator": _accelerator(pins),
        "authorized_key": client_pub.strip(),
        "host_keys": [host_key_pair(path) for path in host_keys],
        "expires_at": expires_at_label(expires_at_epoch),
        "expires_at_epoch": int(expires_at_epoch),
    }
