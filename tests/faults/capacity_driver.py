"""composer's CLI with capacity faults, for the failover tests: ``python -m
tests.faults.capacity_driver up JOB ...``.

Nothing here is in composer itself. Two test-only classes are put in place through
composer's own selection points before the CLI starts:

- ``CapacityEngine``: the embedded Terraform engine (as ``--engine embedded`` picks
  it), whose ``apply`` really runs (the local nodes are made) and then, for the first
  ``FAULT_CAPACITY_FAILS`` applies, reports the provider's own capacity error in the
  form ``apply -json`` prints it, so composer must destroy what the attempt made. The
  count of applies so far is kept in the file ``FAULT_CAPACITY_COUNT``;
  ``FAULT_CAPACITY_TEXT`` picks the text (``TEXTS``; a comma-separated list is used in
  turn).
- ``ZonedLocal`` (when ``FAULT_ZONES`` lists zone names): the local target with one
  candidate per name, as a cloud target has one per (zone, type). The local target
  itself has one: a machine has no zones.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from composer.engine import Engine, TerraformResult, diagnostics_of
from composer.errors import TerraformError
from composer.targets.local import LocalTarget

# The providers' diagnostics, as Terraform prints them (summary only; no detail).
TEXTS = {
    # hashicorp/aws 5.x/6.x (aws-sdk-go-v2)
    "aws": ("creating EC2 Instance: operation error EC2: RunInstances, https response error "
            "StatusCode: 500, RequestID: 5f2d1c3e-8a1b-4c55-9e0f-2b7d6a9c1e43, api error "
            "InsufficientInstanceCapacity: We currently do not have sufficient p4d.24xlarge "
            "capacity in the Availability Zone you requested (us-east-1a). Our system will be "
            "working on provisioning additional capacity. You can currently get p4d.24xlarge "
            "capacity by not specifying an Availability Zone in your request or choosing "
            "us-east-1b, us-east-1c."),
    # hashicorp/aws before 3.x (aws-sdk-go v1)
    "aws-old": ("Error launching source instance: InsufficientInstanceCapacity: We currently "
                "do not have sufficient t3.large capacity in the Availability Zone you "
                "requested (us-west-2a). Our system will be working on provisioning "
                "additional capacity."),
    "aws-unsupported": ("creating EC2 Instance: operation error EC2: RunInstances, https "
                        "response error StatusCode: 400, RequestID: 0c5e8b1a-3f2d-4e6a-9b7c-"
                        "1d2e3f4a5b6c, api error Unsupported: Your requested instance type "
                        "(g5.xlarge) is not supported in your requested Availability Zone "
                        "(us-east-1e). Please retry your request by not specifying an "
                        "Availability Zone or choosing us-east-1a, us-east-1b, us-east-1c."),
    "aws-spot-price": ("creating EC2 Instance: operation error EC2: RunInstances, https "
                       "response error StatusCode: 400, RequestID: 7a1b2c3d-4e5f-6a7b-8c9d-"
                       "0e1f2a3b4c5d, api error SpotMaxPriceTooLow: Your Spot request price "
                       "of 0.1 is lower than the minimum required Spot request fulfillment "
                       "price of 0.3612."),
    # hashicorp/google: the operation's error, with or without its code
    "gce": ("Error waiting for instance to create: The zone "
            "'projects/my-project/zones/us-central1-a' does not have enough resources "
            "available to fulfill the request.  '(resource type:compute)'."),
    "gce-code": ("Error creating instance: ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS: The zone "
                 "'projects/my-project/zones/us-east1-c' does not have enough resources "
                 "available to fulfill the request.  '(resource type:compute)'."),
    "gce-stockout": ("Error waiting for instance to create: [GCE_STOCKOUT]: Instance "
                     "'composer-x-node-0' creation failed: The zone "
                     "'projects/my-project/zones/europe-west3-c' does not have enough "
                     "resources available to fulfill the request.  Try a different zone, or "
                     "try again later"),
    "gce-spot-quota": ("Error waiting for instance to create: Quota "
                       "'PREEMPTIBLE_NVIDIA_L4_GPUS' exceeded.  Limit: 0.0 in region "
                       "us-central1."),
    # not capacity: fails the run as before
    "aws-ami": ("creating EC2 Instance: operation error EC2: RunInstances, https response "
                "error StatusCode: 400, RequestID: 1b2c3d4e-5f6a-7b8c-9d0e-1f2a3b4c5d6e, api "
                "error InvalidAMIID.NotFound: The image id '[ami-0123456789abcdef0]' does not "
                "exist"),
    "gce-quota": ("Error waiting for instance to create: Quota 'N2_CPUS' exceeded.  Limit: "
                  "24.0 in region us-central1."),
}


def diagnostic_line(summary: str, address: str = "module.cluster.terraform_data.node[0]") -> str:
    """One error diagnostic as ``terraform apply -json`` prints it."""
    return json.dumps({"@level": "error", "@message": f"Error: {summary}",
                       "@module": "terraform.ui", "type": "diagnostic",
                       "diagnostic": {"severity": "error", "summary": summary, "detail": "",
                                      "address": address}})


class CapacityEngine(Engine):
    """The real engine; its first applies end in a capacity error after applying."""

    def apply(self, cwd: Path, var_files: Sequence[str], parallelism: int,
              log: IO[str] | None = None) -> TerraformResult:
        result = super().apply(cwd, var_files, parallelism, log)
        counter = Path(os.environ["FAULT_CAPACITY_COUNT"])
        done = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(done + 1))
        if done >= int(os.environ.get("FAULT_CAPACITY_FAILS", "0")):
            return result
        names = os.environ.get("FAULT_CAPACITY_TEXT", "aws").split(",")
        line = diagnostic_line(TEXTS[names[done % len(names)]])
        if log is not None:
            log.write(line + "\n")
        stdout = result.stdout + line + "\n"
        raise TerraformError("apply", 1, diagnostics_of(stdout, ""))


class ZonedLocal(LocalTarget):
    """The local target with one candidate per name in ``FAULT_ZONES``."""

    def candidates(self, spec: Any, pins: dict[str, Any]) -> list[dict[str, Any]]:
        zones = [z for z in os.environ.get("FAULT_ZONES", "").split(",") if z]
        return [{**pins, "zone": zone, "instance_type": "loopback"} for zone in zones] \
            or [pins]


def install() -> None:
    import composer.run
    import composer.targets
    from composer.engine import make_engine

    def faulty(name: str) -> Engine:
        engine = make_engine(name)
        engine.__class__ = CapacityEngine
        return engine

    composer.run.make_engine = faulty  # type: ignore[assignment]
    if os.environ.get("FAULT_ZONES"):
        composer.targets.TARGETS["local"] = ZonedLocal


if __name__ == "__main__":
    install()
    from composer.cli import main

    sys.argv[0] = "composer"
    sys.exit(main())
