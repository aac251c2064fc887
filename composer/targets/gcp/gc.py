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

import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from composer.errors import ComposerError
from composer.targets import cloud
from composer.targets.gcp.session import Clients, api_errors, calling, describe, status
from composer.targets.gcp.target import GRACE_SECONDS

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
POLL_S = (0.2, 5.0)  # first and longest pause between looks at an operation
IN_USE = "resourceInUseByAnotherResource"

Item = dict[str, Any]


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
                    if _node_of_run(raw.name, labels.get(RUN_LABEL)):
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


def description_facts(text: str | None) -> dict[str, str]:
    """``{"composer-run-id": ..., ...}`` from a description, as the module writes it."""
    return dict(re.findall(r"(?:^|\s)(composer-[a-z-]+)=(\S+)", text or ""))


#: What modules/gcp-cluster names a run's firewall rules and policy: ``composer-<run
#: id>-`` and one of these. A label or description alone could be copied or forged.
RULE_SUFFIXES = ("ssh", "ssh-ipv6", "internal", "placement")


def _node_of_run(name: str, run_id: str | None) -> bool:
    """``name`` is a node of the run the label names: ``composer-<run id>-node-<rank>``
    (a VM made from a composer node's template or image keeps its labels, not its name)."""
    return bool(run_id) and re.fullmatch(
        re.escape(f"{NAME_PREFIX}{run_id}-node-") + r"[0-9]+", name) is not None


def _named_for_run(name: str, description: str | None) -> dict[str, str] | None:
    """The facts of a firewall rule or policy named ``composer-<run id>-<suffix>`` (the
    module's names) whose description names that run id; None for anything else."""
    facts = description_facts(description)
    run_id = facts.get(RUN_LABEL)
    if run_id and name in {f"{NAME_PREFIX}{run_id}-{suffix}" for suffix in RULE_SUFFIXES}:
        return facts
    return None


def firewalls(clients: Clients, project: str) -> list[Item]:
    found = []
    with calling("firewalls", "list"):
        for raw in clients.firewalls.list(project=project):
            facts = _named_for_run(raw.name, raw.description)
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
        facts = _named_for_run(raw.name, raw.description)
        if facts is not None:
            found.append(_item(RESOURCE_POLICY, project, raw.name, facts, raw.status,
                               region=where))
    return sorted(found, key=lambda item: (item["region"], item["id"]))


# -- removal ----------------------------------------------------------------------------


def remove(clients: Clients, items: Iterable[Item], timeout: float = 600.0) -> list[Item]:
    """Delete ``items`` (from ``scan`` or ``leftovers_of``): instances first, waiting
    (at most ``timeout`` seconds in all) until their deletion is done, then firewall
    rules and resource policies. Each item comes back with ``removed`` and ``error``."""
    items = list(items)
    deadline = time.monotonic() + timeout
    errors: dict[int, str | None] = {}
    for kind in KINDS:
        started = []
        for index, item in enumerate(items):
            if item["kind"] != kind:
                continue
            error, operation = _start_delete(clients, item, deadline)
            errors[index] = error
            if operation is not None:
                started.append((index, operation))
        for index, operation in started:
            errors[index] = _wait(clients, items[index], operation, deadline)
    return [{**item, "removed": errors.get(i) is None and item["kind"] in KINDS,
             "error": errors.get(i, f"unknown kind {item['kind']!r}")}
            for i, item in enumerate(items)]


class _Kind:
    """How to look up, delete and wait for one kind of resource."""

    def __init__(self, resource: str, get: Callable[[Clients, Item], Any],
                 delete: Callable[[Clients, Item], Any],
                 wait: Callable[[Clients, Item, str], Any],
                 carries: Callable[[Any, Item], bool]) -> None:
        self.resource, self.get, self.delete, self.wait, self.carries = \
            resource, get, delete, wait, carries


def _instance_carries(raw: Any, item: Item) -> bool:
    run_id = dict(raw.labels).get(RUN_LABEL)
    return run_id == item["run_id"] and _node_of_run(raw.name, run_id)


def _named_carries(raw: Any, item: Item) -> bool:
    facts = _named_for_run(raw.name, raw.description)
    return facts is not None and facts[RUN_LABEL] == item["run_id"]


_KINDS = {
    INSTANCE: _Kind(
        "instances",
        lambda c, i: c.instances.get(project=i["project"], zone=i["zone"], instance=i["id"]),
        lambda c, i: c.instances.delete(project=i["project"], zone=i["zone"],
                                        instance=i["id"]),
        lambda c, i, op: c.zone_operations.get(project=i["project"], zone=i["zone"],
                                               operation=op),
        _instance_carries),
    FIREWALL: _Kind(
        "firewalls",
        lambda c, i: c.firewalls.get(project=i["project"], firewall=i["id"]),
        lambda c, i: c.firewalls.delete(project=i["project"], firewall=i["id"]),
        lambda c, i, op: c.global_operations.get(project=i["project"], operation=op),
        _named_carries),
    RESOURCE_POLICY: _Kind(
        "resourcePolicies",
        lambda c, i: c.resource_policies.get(project=i["project"], region=i["region"],
                                             resource_policy=i["id"]),
        lambda c, i: c.resource_policies.delete(project=i["project"], region=i["region"],
                                                resource_policy=i["id"]),
        lambda c, i, op: c.region_operations.get(project=i["project"], region=i["region"],
                                                 operation=op),
        _named_carries),
}


def _start_delete(clients: Clients, item: Item,
                  deadline: float) -> tuple[str | None, str | None]:
    """(error, operation name): the item looked up again, and deleted when it still
    carries its run id. While the API says another resource still uses it (a policy of
    instances being deleted), tried again until ``deadline``."""
    kind = _KINDS[item["kind"]]
    pause = POLL_S[0]
    while True:
        try:
            current = kind.get(clients, item)
            if not kind.carries(current, item):
                return LEFT_ALONE, None
            return None, kind.delete(clients, item).name
        except api_errors() as exc:
            if status(exc) == 404:
                return LEFT_ALONE, None
            if _in_use(exc) and time.monotonic() + pause < deadline:
                time.sleep(pause)
                pause = min(pause * 2, POLL_S[1])
                continue
            return f"{kind.resource}.delete: {describe(exc)}", None


def _in_use(exc: BaseException) -> bool:
    from composer.targets.gcp.session import reason as api_reason

    return api_reason(exc) == IN_USE or "in use" in describe(exc).lower() or \
        "being used" in describe(exc).lower()


def _wait(clients: Clients, item: Item, operation: str, deadline: float) -> str | None:
    """Poll the delete ``operation`` until it is done: its error text, or None."""
    kind = _KINDS[item["kind"]]
    pause = POLL_S[0]
    while True:
        try:
            current = kind.wait(clients, item, operation)
        except api_errors() as exc:
            return f"{kind.resource}.delete: waiting for {operation}: {describe(exc)}"
        if _done(current):
            return _operation_error(current)
        if time.monotonic() + pause >= deadline:
            return f"{kind.resource}.delete: {operation} not done in time"
        time.sleep(pause)
        pause = min(pause * 2, POLL_S[1])


def _done(operation: Any) -> bool:
    from google.cloud.compute_v1 import Operation

    return bool(operation.status == Operation.Status.DONE)


def _operation_error(operation: Any) -> str | None:
    errors = list(operation.error.errors) if operation.error else []
    if not errors:
        return None
    text = "; ".join(f"{e.code}: {e.message}" if e.code else e.message for e in errors)
    return f"{operation.operation_type or 'operation'} {operation.name} failed: {text}"
