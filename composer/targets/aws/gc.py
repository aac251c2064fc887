"""What runs left in AWS: tagged instances, security groups and placement groups.

Every resource composer's module creates carries the provider's default tags
``composer:run-id``, ``composer:job`` and ``composer:expires-at``. ``scan`` lists
those whose run has no live composer process here or whose expiry has passed;
``remove`` deletes them (instances first, then the groups they used);
``leftovers_of`` is the run driver's teardown sweep for one run.

A resource without the ``composer:run-id`` tag is never touched: every listing
asks AWS for the tag (``tag-key`` / ``tag:`` filters) and checks it again on the
answer, and ``remove`` looks each resource up again, tag included, right before
deleting it. Items are plain dicts (JSON for ``composer gc --json``):
kind, id, name, region, run_id, job, expires_at, state (+ reason from ``scan``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from composer.errors import ComposerError
from composer.targets import cloud
from composer.targets.aws.session import calling, client, describe, error_code, other_errors

RUN_TAG = "composer:run-id"
JOB_TAG = "composer:job"
EXPIRES_TAG = "composer:expires-at"
NEVER = "none"
#: The nodes power off this long after ``expires-at`` (modules/aws-cluster's
#: grace_minutes): a run is over for gc only then.
EXPIRY_GRACE = timedelta(minutes=30)
INSTANCE, SECURITY_GROUP, PLACEMENT_GROUP = "instance", "security-group", "placement-group"
LAUNCH_TEMPLATE = "launch-template"  # an EFA cluster's (modules/aws-cluster)
KINDS = (INSTANCE, LAUNCH_TEMPLATE, SECURITY_GROUP, PLACEMENT_GROUP)  # the order of removal
PRESENT_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")
WAIT_DELAY_S = 5.0
LEFT_ALONE = f"no longer there with its {RUN_TAG} tag: left alone"
CHUNK = 500

Filters = list[dict[str, Any]]


def scan(session: Any, region: str, live_run_ids: set[str], now: datetime,
         warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """Tagged resources in ``region`` whose run is not live here or whose expiry passed.

    A region whose placement groups cannot be listed (a moto server cannot) adds
    a line to ``warnings`` instead of failing; instances and groups must list.
    """
    found = []
    for item in tagged(session, region, [{"Name": "tag-key", "Values": [RUN_TAG]}], warnings):
        why = reason(item, live_run_ids, now)
        if why:
            found.append({**item, "reason": why, "expired": expired(item, now)})
    return found


def leftovers_of(session: Any, region: str, run_id: str) -> list[dict[str, Any]]:
    """What is still there tagged with ``run_id`` (after a destroy: what it missed)."""
    filters = [{"Name": f"tag:{RUN_TAG}", "Values": [run_id]}]
    return [item for item in tagged(session, region, filters, [])
            if item["run_id"] == run_id]


def expired(item: dict[str, Any], now: datetime) -> bool:
    """Past its ``expires-at`` and the grace the nodes themselves keep after it (by then
    they have powered off: whatever is left is certainly over)."""
    expires = expiry(item.get("expires_at"))
    return expires is not None and expires + EXPIRY_GRACE <= now


def reason(item: dict[str, Any], live_run_ids: set[str], now: datetime) -> str:
    """Why ``item`` is garbage ("" when it is not)."""
    return cloud.reason(expired(item, now), item.get("expires_at"), item["run_id"],
                        live_run_ids)


def expiry(text: str | None) -> datetime | None:
    """The moment an ``expires-at`` tag names; None for "none", missing or unreadable."""
    if not text or text == NEVER:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def tagged(session: Any, region: str, filters: Filters,
           warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """Every instance, security group and placement group matching ``filters``
    that carries a ``composer:run-id`` tag, in ``KINDS`` order."""
    ec2 = client(session, "ec2", region)
    items = [*_instances(ec2, region, filters), *_launch_templates(ec2, region, filters),
             *_security_groups(ec2, region, filters)]
    try:
        items += _placement_groups(ec2, region, filters)
    except ComposerError as exc:
        if warnings is None:
            raise
        warnings.append(f"placement groups in {region} not listed: {exc.message}")
    return items


def remove(session: Any, items: Iterable[dict[str, Any]],
           timeout: float = 600.0) -> list[dict[str, Any]]:
    """Delete ``items`` (from ``scan`` or ``leftovers_of``): instances first, waiting
    (at most ``timeout`` seconds) until they are terminated, then security groups and
    placement groups. Each item comes back with ``removed`` (bool) and ``error``."""
    items = list(items)
    results: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    for region in sorted({item["region"] for item in items}):
        ec2 = client(session, "ec2", region)
        mine = [(i, item) for i, item in enumerate(items) if item["region"] == region]
        for kind, remover in ((INSTANCE, _remove_instances),
                              (LAUNCH_TEMPLATE, _remove_launch_templates),
                              (SECURITY_GROUP, _remove_security_groups),
                              (PLACEMENT_GROUP, _remove_placement_groups)):
            batch = [(i, item) for i, item in mine if item["kind"] == kind]
            if batch:
                outcome = remover(ec2, region, [item for _, item in batch], deadline)
                for (i, item), error in zip(batch, outcome, strict=True):
                    results[i] = {**item, "removed": error is None, "error": error}
    return [results[i] for i in range(len(items))]


# -- listing --------------------------------------------------------------------------


def _tags(raw: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in raw.get("Tags") or []}


def _item(kind: str, region: str, ident: str, name: str, state: str,
          tags: dict[str, str]) -> dict[str, Any]:
    return {"kind": kind, "id": ident, "name": name, "region": region,
            "run_id": tags[RUN_TAG], "job": tags.get(JOB_TAG),
            "expires_at": tags.get(EXPIRES_TAG), "state": state}


def _instances(ec2: Any, region: str, filters: Filters) -> list[dict[str, Any]]:
    found = []
    states = {"Name": "instance-state-name", "Values": list(PRESENT_STATES)}
    pages = ec2.get_paginator("describe_instances").paginate(Filters=[*filters, states])
    with calling("ec2", "DescribeInstances"):
        for page in pages:
            for reservation in page.get("Reservations", []):
                for raw in reservation.get("Instances", []):
                    tags = _tags(raw)
                    state = raw.get("State", {}).get("Name", "")
                    if RUN_TAG in tags and state in PRESENT_STATES:
                        found.append(_item(INSTANCE, region, raw["InstanceId"],
                                           tags.get("Name", ""), state, tags))
    return found


def _paged(ec2: Any, region: str, filters: Filters, kind: str, operation: str,
           listed: str, id_key: str, name_key: str) -> list[dict[str, Any]]:
    """Every ``listed`` entry of the paginated ``operation`` that carries the run tag."""
    found = []
    method = re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()  # DescribeX -> describe_x
    pages = ec2.get_paginator(method).paginate(Filters=filters)
    with calling("ec2", operation):
        for page in pages:
            for raw in page.get(listed, []):
                tags = _tags(raw)
                if RUN_TAG in tags:
                    found.append(_item(kind, region, raw[id_key], raw.get(name_key, ""), "",
                                       tags))
    return found


def _security_groups(ec2: Any, region: str, filters: Filters) -> list[dict[str, Any]]:
    return _paged(ec2, region, filters, SECURITY_GROUP, "DescribeSecurityGroups",
                  "SecurityGroups", "GroupId", "GroupName")


def _launch_templates(ec2: Any, region: str, filters: Filters) -> list[dict[str, Any]]:
    return _paged(ec2, region, filters, LAUNCH_TEMPLATE, "DescribeLaunchTemplates",
                  "LaunchTemplates", "LaunchTemplateId", "LaunchTemplateName")


def _placement_groups(ec2: Any, region: str, filters: Filters) -> list[dict[str, Any]]:
    with calling("ec2", "DescribePlacementGroups"):
        groups = ec2.describe_placement_groups(Filters=filters).get("PlacementGroups", [])
    found = []
    for raw in groups:
        tags = _tags(raw)
        if RUN_TAG in tags and raw.get("State") != "deleted":
            found.append(_item(PLACEMENT_GROUP, region, raw.get("GroupId", raw["GroupName"]),
                               raw["GroupName"], raw.get("State", ""), tags))
    return found


# -- removal ----------------------------------------------------------------------------


def _still_tagged(current: list[dict[str, Any]], items: list[dict[str, Any]]) -> set[str]:
    """Ids of ``items`` that a fresh listing still shows with the same run-id tag."""
    now = {(c["id"], c["run_id"]) for c in current}
    return {item["id"] for item in items if (item["id"], item["run_id"]) in now}


def _remove_instances(ec2: Any, region: str, items: list[dict[str, Any]],
                      deadline: float) -> list[str | None]:
    ids = [item["id"] for item in items]
    id_filter = [{"Name": "instance-id", "Values": ids}, {"Name": "tag-key", "Values": [RUN_TAG]}]
    confirmed = sorted(_still_tagged(_instances(ec2, region, id_filter), items))
    errors: dict[str, str] = {}
    for start in range(0, len(confirmed), CHUNK):
        chunk = confirmed[start:start + CHUNK]
        try:
            with calling("ec2", "TerminateInstances"):
                ec2.terminate_instances(InstanceIds=chunk)
        except ComposerError as exc:
            errors.update(dict.fromkeys(chunk, exc.message))
    waiting = [i for i in confirmed if i not in errors]
    if waiting:
        errors.update(_wait_terminated(ec2, waiting, deadline))
    return [errors.get(item["id"]) if item["id"] in confirmed else LEFT_ALONE
            for item in items]


def _wait_terminated(ec2: Any, ids: list[str], deadline: float) -> dict[str, str]:
    from botocore.exceptions import WaiterError

    attempts = max(1, int((deadline - time.monotonic()) // WAIT_DELAY_S))
    try:
        ec2.get_waiter("instance_terminated").wait(
            InstanceIds=ids, WaiterConfig={"Delay": WAIT_DELAY_S, "MaxAttempts": attempts})
    except WaiterError as exc:
        return dict.fromkeys(ids, f"not terminated in time: {describe(exc)}")
    return {}


def _remove_security_groups(ec2: Any, region: str, items: list[dict[str, Any]],
                            deadline: float) -> list[str | None]:
    id_filter = [{"Name": "group-id", "Values": [item["id"] for item in items]},
                 {"Name": "tag-key", "Values": [RUN_TAG]}]
    return _delete_confirmed(items, _security_groups(ec2, region, id_filter), deadline,
                             "DeleteSecurityGroup",
                             lambda item: ec2.delete_security_group(GroupId=item["id"]))


def _remove_launch_templates(ec2: Any, region: str, items: list[dict[str, Any]],
                             deadline: float) -> list[str | None]:
    id_filter = [{"Name": "tag-key", "Values": [RUN_TAG]}]
    return _delete_confirmed(items, _launch_templates(ec2, region, id_filter), deadline,
                             "DeleteLaunchTemplate",
                             lambda item: ec2.delete_launch_template(LaunchTemplateId=item["id"]))


def _remove_placement_groups(ec2: Any, region: str, items: list[dict[str, Any]],
                             deadline: float) -> list[str | None]:
    name_filter = [{"Name": "group-name", "Values": [item["name"] for item in items]},
                   {"Name": "tag-key", "Values": [RUN_TAG]}]
    return _delete_confirmed(items, _placement_groups(ec2, region, name_filter), deadline,
                             "DeletePlacementGroup",
                             lambda item: ec2.delete_placement_group(GroupName=item["name"]))


def _delete_confirmed(items: list[dict[str, Any]], current: list[dict[str, Any]],
                      deadline: float, operation: str,
                      delete: Callable[[dict[str, Any]], Any]) -> list[str | None]:
    """``delete`` each item a fresh listing (``current``) still shows with its run id;
    the others are left alone. The error text per item, or None when deleted."""
    confirmed = _still_tagged(current, items)
    return [_retrying(lambda item=item: delete(item), operation, deadline)
            if item["id"] in confirmed else LEFT_ALONE for item in items]


def _retrying(call: Callable[[], Any], operation: str, deadline: float) -> str | None:
    """Run ``call``; while AWS answers that something still uses the resource (instances
    shutting down), try again until ``deadline``. The error text, or None when done."""
    from botocore.exceptions import ClientError

    while True:
        try:
            call()
            return None
        except ClientError as exc:
            code = error_code(exc)
            if code.endswith(("NotFound", ".Unknown")):
                return None  # already gone
            if code in ("DependencyViolation", "InvalidPlacementGroup.InUse") and \
                    time.monotonic() + WAIT_DELAY_S < deadline:
                time.sleep(WAIT_DELAY_S)
                continue
            return f"ec2 {operation}: {describe(exc)}"
        except other_errors() as exc:
            return f"ec2 {operation}: {describe(exc)}"
