"""Removing a GCP run's resources: instances first (waiting for each zone operation), then
firewall rules, then resource policies; each looked up again right before it is deleted
and left alone (``LEFT_ALONE``) when it is gone or no longer carries the run id."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from composer.targets.gcp.names import (
    FIREWALL,
    INSTANCE,
    KINDS,
    LEFT_ALONE,
    RESOURCE_POLICY,
    RUN_LABEL,
    Item,
    named_for_run,
    node_of_run,
)
from composer.targets.gcp.session import Clients, api_errors, describe, status

POLL_S = (0.2, 5.0)  # first and longest pause between looks at an operation
IN_USE = "resourceInUseByAnotherResource"

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
    return run_id == item["run_id"] and node_of_run(raw.name, run_id)


def _named_carries(raw: Any, item: Item) -> bool:
    facts = named_for_run(raw.name, raw.description)
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
