"""The GCP target: what the run driver asks of it, answered with google-cloud-compute
and the module.

- ``preflight``: read-only Compute Engine calls (``preflight.py``); the pins (project
  number, image self link, zone, machine type) go into ``lock.json``. A reproduction asks
  for the image the run recorded, not what its family points at today.
- ``tfvars`` / ``prepare``: the spec's values for the tree, and the run's var file with
  the keys composer made (``render.py``); private host keys reach Terraform only through
  that file in the run's work dir.
- The time limit is Compute Engine's own: ``scheduling.max_run_duration`` deletes each VM
  when the run's time is up, even when composer is gone (``max_run_seconds``).
- ``sweep``: after destroy, whatever still carries the run's id is removed (``gc.py``).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from composer.jsonfile import read_object
from composer.targets.base import Allocation, GcRequest, Target
from composer.targets.cloud import act, open_to_all, run_keys, swept
from composer.targets.gcp.spec import GCP

if TYPE_CHECKING:
    from composer.cost import Price
    from composer.spec import Spec

#: The boot step installs Open MPI 5 and mpi4py from PyPI into this venv (mpi launcher).
NODE_VENV = "/opt/composer/venv"
NODE_PATH = f"{NODE_VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Seconds for a VM to boot, run its startup script and answer with the run's key.
BOOT_ALLOWANCE = 900
#: After the run's time is up: for composer to collect and destroy before Compute
#: Engine deletes the VMs itself (and before gc calls a run's resources expired).
GRACE_SECONDS = 1800


def max_run_seconds(spec: Spec) -> int:
    """``scheduling.max_run_duration`` of each VM (0: no limit): counted by Compute
    Engine from the VM's start, so the boot allowance and the grace are added."""
    limit = spec.limits.max_duration
    return 0 if limit is None else int(BOOT_ALLOWANCE + limit + GRACE_SECONDS)


def expiry(spec: Spec, now: float) -> int:
    """Epoch second by which the run's ``max_duration`` has ended (0: no limit): the
    ``composer-expires-at`` label. gc waits ``GRACE_SECONDS`` past it."""
    limit = spec.limits.max_duration
    return 0 if limit is None else int(now + BOOT_ALLOWANCE + limit)


class GcpTarget(Target):
    name = "gcp"
    modules = ("gcp-cluster",)
    max_nodes = 1000
    section = GCP
    pulls_images = True
    ssh_timeout = float(BOOT_ALLOWANCE)
    #: A VM's sshd answers with the image's own host key until the startup script has
    #: installed the run's: a mismatch is retried (nothing is sent before the host key is
    #: checked) until ``ssh_timeout``, then refused.
    host_key_settles = True

    def preflight(self, spec: Spec, pinned: dict[str, Any] | None = None) -> dict[str, Any]:
        from composer.targets.gcp import render
        from composer.targets.gcp.preflight import preflight

        config = render.gcp_section(spec)
        if pinned and pinned.get("image_self_link"):
            # The exact run: the image it used, whatever its family resolves to now, in the
            # project it ran in (a spec without gcp.project took GOOGLE_CLOUD_PROJECT's).
            project = str(pinned.get("project") or config.project)
            exact = replace(spec, target_config=replace(
                config, image=str(pinned["image_self_link"]), project=project))
            pins = preflight(exact)
            pins["image"] = config.image
        else:
            pins = preflight(spec)
        for warning in open_to_all("gcp", config.ssh_cidrs):
            pins.setdefault("warnings", []).append(warning)
        return pins

    def price(self, spec: Spec, pins: dict[str, Any]) -> Price:
        from composer.targets.gcp.pricing import price

        return price(spec, pins)

    def recorded_environment(self, resolved: dict[str, Any]) -> dict[str, str]:
        project = resolved.get("project")
        return {"GOOGLE_CLOUD_PROJECT": project} if isinstance(project, str) and project else {}

    def tfvars(self, spec: Spec) -> dict[str, Any]:
        from composer.targets.gcp import render

        return render.tfvars(spec)

    def prepare(self, run_id: str, spec: Spec, work_dir: Path, alloc: Allocation,
                pins: dict[str, Any]) -> dict[str, Any]:
        from composer.targets.gcp import render

        client_pub, host_keys = run_keys(work_dir, run_id, spec.cluster.nodes)
        return render.run_vars(run_id, spec, pins, client_pub, host_keys,
                               expiry(spec, time.time()))

    def session_env(self) -> dict[str, str]:
        return {"PATH": NODE_PATH}

    def mpirun(self) -> str:
        return f"{NODE_VENV}/bin/mpirun"

    def ready_command(self) -> str | None:
        from composer.targets.gcp.render import READY_COMMAND

        return READY_COMMAND

    def sweep(self, work_dir: Path) -> list[str]:
        """Remove what still carries the run's id in its project."""
        from composer.targets.gcp import gc
        from composer.targets.gcp.session import make_clients

        where = _where(work_dir)
        if where is None or not (work_dir / "tf" / ".terraform").is_dir():
            return []  # init never ran, so neither did apply: nothing was made
        project, region = where
        clients = make_clients(project)
        left = gc.leftovers_of(clients, project, region, work_dir.name)
        if not left:
            return []
        return swept(gc.remove(clients, left), gc.LEFT_ALONE, work_dir.name,
                     f"project {project}", f"composer gc --target gcp --project {project} --yes")

    def garbage(self, ask: GcRequest) -> tuple[list[dict[str, Any]], list[str]]:
        from composer.errors import UsageError
        from composer.targets.gcp import gc
        from composer.targets.gcp.session import make_clients

        project = ask.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
        if not project:
            raise UsageError("composer gc --target gcp needs --project, the project to look in",
                             hint="add --project PROJECT, or set GOOGLE_CLOUD_PROJECT")
        clients = make_clients(project)
        warnings: list[str] = []
        items = gc.scan(clients, project, ask.live, datetime.now(UTC), warnings)
        act(items, ask, lambda doomed: gc.remove(clients, doomed))
        return items, warnings


def _where(work_dir: Path) -> tuple[str, str] | None:
    """(project, region) of a run's rendered tree."""
    data = read_object(work_dir / "tf" / "terraform.tfvars.json") or {}
    project, region = data.get("project"), data.get("region")
    if isinstance(project, str) and isinstance(region, str):
        return project, region
    return None
