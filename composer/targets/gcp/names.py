"""How composer names and labels a GCP run's resources (modules/gcp-cluster), and how
gc tells them from everything else in a project: a label or a description alone could
be copied or forged; the name the module gave must match too."""

from __future__ import annotations

import re
from typing import Any

RUN_LABEL = "composer-run-id"
JOB_LABEL = "composer-job"
EXPIRES_LABEL = "composer-expires-at"
EXPIRES_FORMAT = "%Y-%m-%dt%H-%M-%Sz"
NEVER = "none"
NAME_PREFIX = "composer-"
RUN_FILTER = f"labels.{RUN_LABEL}:*"
INSTANCE, FIREWALL, RESOURCE_POLICY = "instance", "firewall", "resource-policy"
KINDS = (INSTANCE, FIREWALL, RESOURCE_POLICY)  # the order of removal
LEFT_ALONE = f"no longer there with its {RUN_LABEL}: left alone"

Item = dict[str, Any]


def description_facts(text: str | None) -> dict[str, str]:
    """``{"composer-run-id": ..., ...}`` from a description, as the module writes it."""
    return dict(re.findall(r"(?:^|\s)(composer-[a-z-]+)=(\S+)", text or ""))


#: What modules/gcp-cluster names a run's firewall rules and policy: ``composer-<run
#: id>-`` and one of these. A label or description alone could be copied or forged.
RULE_SUFFIXES = ("ssh", "ssh-ipv6", "internal", "placement")


def node_of_run(name: str, run_id: str | None) -> bool:
    """``name`` is a node of the run the label names: ``composer-<run id>-node-<rank>``
    (a VM made from a composer node's template or image keeps its labels, not its name)."""
    return bool(run_id) and re.fullmatch(
        re.escape(f"{NAME_PREFIX}{run_id}-node-") + r"[0-9]+", name) is not None


def named_for_run(name: str, description: str | None) -> dict[str, str] | None:
    """The facts of a firewall rule or policy named ``composer-<run id>-<suffix>`` (the
    module's names) whose description names that run id; None for anything else."""
    facts = description_facts(description)
    run_id = facts.get(RUN_LABEL)
    if run_id and name in {f"{NAME_PREFIX}{run_id}-{suffix}" for suffix in RULE_SUFFIXES}:
        return facts
    return None
