"""The AWS target (``[cluster] target = "aws"``).

TEMPORARY: only ``tfvars`` works here, so that AWS specs render; preflight, prepare
and the session environment come with the rest of the target.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from composer.targets.aws import render
from composer.targets.base import Allocation, Target

if TYPE_CHECKING:
    from composer.spec import Spec


class AwsTarget(Target):
    name = "aws"
    modules = ("aws-cluster",)
    max_nodes = 1000
    ssh_timeout = 600.0

    def preflight(self, spec: Spec) -> dict[str, Any]:
        raise NotImplementedError("the aws target's preflight is not written yet")

    def tfvars(self, spec: Spec) -> dict[str, Any]:
        return render.tfvars(spec)

    def prepare(self, run_id: str, spec: Spec, work_dir: Path, alloc: Allocation,
                pins: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError("the aws target's prepare is not written yet")

    def session_env(self) -> dict[str, str]:
        raise NotImplementedError("the aws target's session environment is not written yet")
