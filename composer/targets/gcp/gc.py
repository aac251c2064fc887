"""What runs left in a Google Cloud project: labelled instances, and the firewall rules
and resource policies named for a run.

Instances carry the labels ``composer-run-id``, ``composer-job`` and
``composer-expires-at``; firewall rules and resource policies take no labels, so they
are named ``composer-<run_id>-…`` and carry the same three facts in their description
(``composer-run-id=<id> composer-job=<job> composer-expires-at=<expiry>``). ``scan``
lists those whose run has no live composer process here or whose expiry (plus
``GRACE_SECONDS``) has passed; ``remove`` deletes them, instances first (waiting for
each zone operation), then firewall rules and resource policies; ``leftovers_of`` is
the run driver's teardown sweep for one run.

Nothing without composer's run id is touched: instances are listed with the filter
``labels.composer-run-id:*`` and their labels checked again on the answer; a firewall
rule or policy counts only when its name starts with ``composer-<run_id>-`` for the run
id its description names; and ``remove`` looks each resource up again right before
deleting it (``LEFT_ALONE`` when it is gone or no longer carries the run id). Items are
plain dicts (JSON for ``composer gc --json``): kind, id (the name), project, zone
(instances) / region (resource policies) / network (firewall rules), run_id, job,
expires_at, state, and from ``scan`` reason and expired.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from composer.errors import ComposerError
from composer.targets import cloud
from composer.targets.gcp.names import (
    EXPIRES_FORMAT,
    EXPIRES_LABEL,
    FIREWALL,
    INSTANCE,
    JOB_LABEL,
    NEVER,
    RESOURCE_POLICY,
    RUN_FILTER,
    RUN_LABEL,
    Item,
    description_facts,
    named_for_run,
    node_of_run,
)
from composer.targets.gcp.removal import LEFT_ALONE, remove
from composer.targets.gcp.session import Clients, calling, status
from composer.targets.gcp.target import GRACE_SECONDS

__all__ = ["LEFT_ALONE", "description_facts", "expired", "expiry", "leftovers_of", "remove",
           "scan"]


def scan(clients: Clients, project: str, live_run_ids: set[str], now: datetime,
         warnings: list[str] | None = None) -> list[Item]:
    """Resources of ``project`` with a run id whose run is not live here or is expired."""
    found = []
    for item in _everything(clients, project, None, warnings):
        why = reason(item, live_run_ids, now)
        if why:
            found.append({**item, "reason": why, "expired": expired(item, now)})
    return found


def leftovers_of(clients: Clients, project: str, region: str, run_id: str) -> list[Item]:
    """What still carries ``run_id`` (after a destroy: what it missed)."""
    return [item for item in _everything(clients, project, region, None)
            if item["run_id"] == run_id]


def expiry(text: str | None) -> datetime | None:
    """The moment a ``composer-expires-at`` value names; None for "none" or unreadable."""
    if not text or text == NEVER:
        return None
    try:
        return datetime.strptime(text, EXPIRES_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def expired(item: Item, now: datetime) -> bool:
    """Past its expiry and the grace after it (by then Compute Engine has deleted the
    VMs itself: whatever is left is certainly over)."""
    expires = expiry(item.get("expires_at"))
    return expires is not None and expires + timedelta(seconds=GRACE_SECONDS) <= now


def reason(item: Item, live_run_ids: set[str], now: datetime) -> str:
    """Why ``item`` is garbage ("" when it is not)."""
    return cloud.reason(expired(item, now), item.get("expires_at"), item["run_id"],
                        live_run_ids)


# -- listing --------------------------------------------------------------------------


def _everything(clients: Clients, project: str, region: str | None,
                warnings: list[str] | None) -> list[Item]:
    """Instances, firewall rules and resource policies with a run id, in KINDS order;
    resource policies of ``region`` only, or of every region when it is None."""
    items = [*instances(clients, project, warnings), *firewalls(clients, project)]
    try:
        items += resource_policies(clients, project, region, warnings)
    except ComposerError as exc:
        if warnings is None:
            raise
        warnings.append(f"resource policies of {project} not listed: {exc.message}")
    return items


def _last(link: str) -> str:
    return link.rstrip("/").rsplit("/", 1)[-1]


def _item(kind: str, project: str, name: str, facts: dict[str, str], state: str,
          **where: str) -> Item:
    return {"kind": kind, "id": name, "project": project, **where,
            "run_id": facts[RUN_LABEL], "job": facts.get(JOB_LABEL),
            "expires_at": facts.get(EXPIRES_LABEL), "state": state}


def instances(clients: Clients, project: str, warnings: list[str] | None = None) -> list[Item]:
    """Every instance of ``project`` labelled with a run id (all zones)."""
    def listing(label_filter: str | None) -> list[Item]:
        request: dict[str, Any] = {"project": project}
        if label_filter:
            request["filter"] = label_filter
        found = []
        with calling("instances", "aggregatedList"):
            pages = clients.instances.aggregated_list(request=request)
            for _scope, scoped in pages:
                for raw in scoped.instances:
                    labels = dict(raw.labels)
                    if node_of_run(raw.name, labels.get(RUN_LABEL)):
                        found.append(_item(INSTANCE, project, raw.name, labels, raw.status,
                                           zone=_last(raw.zone)))
            for unreachable in getattr(pages, "unreachables", None) or ():
                if warnings is not None:
                    warnings.append(f"instances in {unreachable} could not be listed")
        return found

    try:
        found = listing(RUN_FILTER)
    except ComposerError as exc:
        if status(exc.__cause__ or exc) != 400:
            raise
        # An endpoint that does not take the label filter: list all, check each.
        found = listing(None)
    return sorted(found, key=lambda item: (item["zone"], item["id"]))


def firewalls(clients: Clients, project: str) -> list[Item]:
    found = []
    with calling("firewalls", "list"):
        for raw in clients.firewalls.list(project=project):
            facts = named_for_run(raw.name, raw.description)
            if facts is not None:
                state = "disabled" if raw.disabled else "enabled"
                found.append(_item(FIREWALL, project, raw.name, facts, state,
                                   network=_last(raw.network)))
    return sorted(found, key=lambda item: item["id"])


def resource_policies(clients: Clients, project: str, region: str | None,
                      warnings: list[str] | None = None) -> list[Item]:
    found = []
    if region is None:
        with calling("resourcePolicies", "aggregatedList"):
            scoped = [(raw, _last(raw.region)) for _scope, page in
                      clients.resource_policies.aggregated_list(
                          request={"project": project})
                      for raw in page.resource_policies]
    else:
        with calling("resourcePolicies", "list"):
            scoped = [(raw, region) for raw in
                      clients.resource_policies.list(project=project, region=region)]
    for raw, where in scoped:
        facts = named_for_run(raw.name, raw.description)
        if facts is not None:
            found.append(_item(RESOURCE_POLICY, project, raw.name, facts, raw.status,
                               region=where))
    return sorted(found, key=lambda item: (item["region"], item["id"]))
