"""A local HTTP fake of the Compute Engine REST API (``/compute/v1/...``), for
google-cloud-compute clients pointed at it through ``COMPOSER_GCE_ENDPOINT``.

It serves what composer's preflight and gc read and delete: projects.get,
regions.get/list (with quotas), zones.get/list, machineTypes.get/list,
acceleratorTypes.get/list, images.get/getFromFamily, networks.get,
subnetworks.get/list, instances.aggregatedList/list/get/delete,
firewalls.list/get/delete, resourcePolicies.aggregatedList/list/get/delete and the
zone, region and global operations' get/wait. Resources, lists, aggregated lists,
operations and errors have the JSON shapes of the API reference
(https://cloud.google.com/compute/docs/reference/rest/v1): ``items`` (a list, or a
map of ``zones/Z`` / ``regions/R`` scopes, each with its resources or a
``NO_RESULTS_ON_PAGE`` warning), ``nextPageToken``, ``selfLink`` on
``https://www.googleapis.com/compute/v1/``, errors as
``{"error": {"code", "message", "errors": [{"message", "domain", "reason"}]}}``.

A delete answers with a ``RUNNING`` operation; the resource goes when the operation is
next asked about (then ``DONE``). Filters: ``labels.KEY:*`` and ``labels.KEY = "V"``
(AIP-160, as the reference documents them); any other filter is refused with a 400.
The state is a ``World``, seeded per test (``gce_world.seed``).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BASE = "https://www.googleapis.com/compute/v1/"
PREFIX = "/compute/v1/projects/"


@dataclass
class World:
    """Everything the fake knows, keyed the way the API addresses it."""

    project: str
    number: str = "123456789012"
    regions: dict[str, dict[str, Any]] = field(default_factory=dict)
    zones: dict[str, dict[str, Any]] = field(default_factory=dict)
    machine_types: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # zone
    accelerator_types: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    images: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # project
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    subnetworks: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # region
    instances: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # zone
    firewalls: dict[str, dict[str, Any]] = field(default_factory=dict)
    resource_policies: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Projects the caller may not see (403), besides unknown ones (404).
    forbidden: set[str] = field(default_factory=set)
    #: Answer every request for these path fragments with (status, reason, message).
    failing: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    #: Make deletes of these resource names end in an operation error.
    failing_deletes: set[str] = field(default_factory=set)
    #: Refuse every filter (as a server that does not know the syntax would).
    refuse_filters: bool = False
    page_size: int = 500
    #: "METHOD path" of each request, and "delete KIND NAME" as the resource goes.
    log: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1000))

    def link(self, path: str, project: str | None = None) -> str:
        return f"{BASE}projects/{project or self.project}/{path}"

    def new_id(self) -> str:
        return str(next(self.ids))


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "errors": [
            {"message": self.message, "domain": "global", "reason": self.reason}]}}


def not_found(what: str) -> ApiError:
    return ApiError(404, "notFound", f"The resource '{what}' was not found")


Route = Callable[["World", dict[str, str], dict[str, str]], Any]
ROUTES: list[tuple[str, re.Pattern[str], Route]] = []


def route(method: str, pattern: str) -> Callable[[Route], Route]:
    regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")

    def register(handler: Route) -> Route:
        ROUTES.append((method, regex, handler))
        return handler
    return register


# -- lists and filters ------------------------------------------------------------------


def matches(world: World, item: dict[str, Any], expression: str | None) -> bool:
    if not expression:
        return True
    if world.refuse_filters:
        raise ApiError(400, "invalid", f"Invalid value for field 'filter': '{expression}'. "
                       "Invalid list filter expression.")
    labels = item.get("labels", {})
    has = re.fullmatch(r"\s*labels\.([a-z0-9_-]+)\s*:\s*\*\s*", expression)
    if has:
        return has.group(1) in labels
    equal = re.fullmatch(r'\s*labels\.([a-z0-9_-]+)\s*=\s*"?([a-z0-9_-]*)"?\s*', expression)
    if equal:
        return labels.get(equal.group(1)) == equal.group(2)
    raise ApiError(400, "invalid", f"Invalid value for field 'filter': '{expression}'. "
                   "Invalid list filter expression.")


def page(world: World, items: list[Any], query: dict[str, str]) -> tuple[list[Any], str | None]:
    size = min(int(query.get("maxResults", world.page_size)), world.page_size)
    start = int(query.get("pageToken") or 0)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def listing(world: World, kind: str, path: str, items: list[dict[str, Any]],
            query: dict[str, str]) -> dict[str, Any]:
    chosen = [i for i in items if matches(world, i, query.get("filter"))]
    shown, token = page(world, chosen, query)
    answer: dict[str, Any] = {"kind": f"compute#{kind}List", "id": f"projects/{world.project}/"
                              f"{path}", "selfLink": world.link(path)}
    if shown:
        answer["items"] = shown
    if token:
        answer["nextPageToken"] = token
    return answer


def aggregated(world: World, kind: str, key: str, scopes: dict[str, list[dict[str, Any]]],
               query: dict[str, str]) -> dict[str, Any]:
    """``items``: every scope, with its resources or the NO_RESULTS_ON_PAGE warning."""
    flat = [(scope, item) for scope, found in sorted(scopes.items()) for item in found
            if matches(world, item, query.get("filter"))]
    shown, token = page(world, flat, query)
    items: dict[str, Any] = {}
    for scope in sorted(scopes):
        mine = [item for s, item in shown if s == scope]
        items[scope] = {key: mine} if mine else {"warning": {
            "code": "NO_RESULTS_ON_PAGE",
            "message": f"There are no results for scope '{scope}' on this page.",
            "data": [{"key": "scope", "value": scope}]}}
    answer = {"kind": f"compute#{kind}AggregatedList", "id": f"projects/{world.project}/"
              f"aggregated/{key}", "items": items, "selfLink": world.link(f"aggregated/{key}")}
    if token:
        answer["nextPageToken"] = token
    return answer


def get(table: dict[str, Any], name: str, what: str) -> Any:
    if name not in table:
        raise not_found(what)
    return table[name]


# -- projects, regions, zones, types ----------------------------------------------------


@route("GET", "{project}")
def _project(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    return {"kind": "compute#project", "id": world.number, "name": world.project,
            "selfLink": world.link("")[:-1], "defaultNetworkTier": "PREMIUM",
            "creationTimestamp": "2020-01-01T00:00:00.000-08:00"}


@route("GET", "{project}/regions/{region}")
def _region(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    return get(world.regions, p["region"], f"projects/{world.project}/regions/{p['region']}")


@route("GET", "{project}/regions")
def _regions(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    return listing(world, "region", "regions", list(world.regions.values()), q)


@route("GET", "{project}/zones/{zone}")
def _zone(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    return get(world.zones, p["zone"], f"projects/{world.project}/zones/{p['zone']}")


@route("GET", "{project}/zones")
def _zones(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    region = re.fullmatch(r'\s*region\s*=\s*"?(.+?)"?\s*', q.pop("filter", "") or "")
    found = [z for z in world.zones.values()
             if region is None or z["region"].endswith(f"/regions/{region.group(1)}")]
    return listing(world, "zone", "zones", found, q)


@route("GET", "{project}/zones/{zone}/machineTypes/{name}")
def _machine_type(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    what = f"projects/{world.project}/zones/{p['zone']}/machineTypes/{p['name']}"
    return get(world.machine_types.get(p["zone"], {}), p["name"], what)


@route("GET", "{project}/zones/{zone}/machineTypes")
def _machine_types(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    found = list(world.machine_types.get(p["zone"], {}).values())
    return listing(world, "machineType", f"zones/{p['zone']}/machineTypes", found, q)


@route("GET", "{project}/zones/{zone}/acceleratorTypes/{name}")
def _accelerator_type(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    what = f"projects/{world.project}/zones/{p['zone']}/acceleratorTypes/{p['name']}"
    return get(world.accelerator_types.get(p["zone"], {}), p["name"], what)


@route("GET", "{project}/zones/{zone}/acceleratorTypes")
def _accelerator_types(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    found = list(world.accelerator_types.get(p["zone"], {}).values())
    return listing(world, "acceleratorType", f"zones/{p['zone']}/acceleratorTypes", found, q)


# -- images and networks ----------------------------------------------------------------


@route("GET", "{project}/global/images/family/{family}")
def _image_family(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    images = [i for i in world.images.get(p["project"], {}).values()
              if i.get("family") == p["family"]
              and i.get("deprecated", {}).get("state") not in ("DEPRECATED", "OBSOLETE",
                                                                "DELETED")]
    if not images:
        raise not_found(f"projects/{p['project']}/global/images/family/{p['family']}")
    return max(images, key=lambda i: i["creationTimestamp"])


@route("GET", "{project}/global/images/{name}")
def _image(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    return get(world.images.get(p["project"], {}), p["name"],
               f"projects/{p['project']}/global/images/{p['name']}")


@route("GET", "{project}/global/networks/{name}")
def _network(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    return get(world.networks, p["name"], f"projects/{world.project}/global/networks/{p['name']}")


@route("GET", "{project}/regions/{region}/subnetworks/{name}")
def _subnetwork(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    what = f"projects/{world.project}/regions/{p['region']}/subnetworks/{p['name']}"
    return get(world.subnetworks.get(p["region"], {}), p["name"], what)


@route("GET", "{project}/regions/{region}/subnetworks")
def _subnetworks(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    found = list(world.subnetworks.get(p["region"], {}).values())
    network = re.fullmatch(r'\s*network\s*=\s*"?(.+?)"?\s*', q.pop("filter", "") or "")
    if network:
        found = [s for s in found if s["network"] == network.group(1)]
    return listing(world, "subnetwork", f"regions/{p['region']}/subnetworks", found, q)


# -- instances, firewalls, resource policies --------------------------------------------


@route("GET", "{project}/aggregated/instances")
def _instances_aggregated(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    scopes = {f"zones/{z}": list(world.instances.get(z, {}).values()) for z in world.zones}
    return aggregated(world, "instance", "instances", scopes, q)


@route("GET", "{project}/zones/{zone}/instances")
def _instances(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    found = list(world.instances.get(p["zone"], {}).values())
    return listing(world, "instance", f"zones/{p['zone']}/instances", found, q)


@route("GET", "{project}/zones/{zone}/instances/{name}")
def _instance(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    what = f"projects/{world.project}/zones/{p['zone']}/instances/{p['name']}"
    return get(world.instances.get(p["zone"], {}), p["name"], what)


@route("DELETE", "{project}/zones/{zone}/instances/{name}")
def _delete_instance(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    table = world.instances.get(p["zone"], {})
    item = _instance(world, p, q)
    item["status"] = "STOPPING"
    return operation(world, "delete", item, f"zones/{p['zone']}",
                     lambda: table.pop(p["name"], None), "instance")


@route("GET", "{project}/global/firewalls")
def _firewalls(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    return listing(world, "firewall", "global/firewalls", list(world.firewalls.values()), q)


@route("GET", "{project}/global/firewalls/{name}")
def _firewall(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    return get(world.firewalls, p["name"], f"projects/{world.project}/global/firewalls/{p['name']}")


@route("DELETE", "{project}/global/firewalls/{name}")
def _delete_firewall(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    item = _firewall(world, p, q)
    return operation(world, "delete", item, "global",
                     lambda: world.firewalls.pop(p["name"], None), "firewall")


@route("GET", "{project}/aggregated/resourcePolicies")
def _policies_aggregated(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    scopes = {f"regions/{r}": list(world.resource_policies.get(r, {}).values())
              for r in world.regions}
    return aggregated(world, "resourcePolicy", "resourcePolicies", scopes, q)


@route("GET", "{project}/regions/{region}/resourcePolicies")
def _policies(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    found = list(world.resource_policies.get(p["region"], {}).values())
    return listing(world, "resourcePolicy", f"regions/{p['region']}/resourcePolicies", found, q)


@route("GET", "{project}/regions/{region}/resourcePolicies/{name}")
def _policy(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    what = f"projects/{world.project}/regions/{p['region']}/resourcePolicies/{p['name']}"
    return get(world.resource_policies.get(p["region"], {}), p["name"], what)


@route("DELETE", "{project}/regions/{region}/resourcePolicies/{name}")
def _delete_policy(world: World, p: dict[str, str], q: dict[str, str]) -> Any:
    table = world.resource_policies.get(p["region"], {})
    item = _policy(world, p, q)
    in_use = [i["name"] for zone in world.instances.values() for i in zone.values()
              if item["selfLink"] in i.get("resourcePolicies", [])]
    if in_use:
        raise ApiError(400, "resourceInUseByAnotherResource",
                       f"The resource_policy resource '{item['selfLink']}' is already being "
                       f"used by '{in_use[0]}'")
    return operation(world, "delete", item, f"regions/{p['region']}",
                     lambda: table.pop(p["name"], None), "resource-policy")


# -- operations -------------------------------------------------------------------------


def operation(world: World, kind: str, target: dict[str, Any], scope: str,
              finish: Callable[[], Any], noun: str) -> dict[str, Any]:
    """A RUNNING operation on ``target``; ``finish`` runs when it is next asked about."""
    name = f"operation-{world.new_id()}-{kind}"
    op: dict[str, Any] = {
        "kind": "compute#operation", "id": world.new_id(), "name": name,
        "operationType": kind, "targetLink": target["selfLink"],
        "targetId": target.get("id", ""), "status": "RUNNING", "progress": 0,
        "user": "someone@example.com", "insertTime": "2030-01-02T04:00:00.000-08:00",
        "startTime": "2030-01-02T04:00:00.000-08:00",
        "selfLink": world.link(f"{scope}/operations/{name}")}
    if scope.startswith(("zones/", "regions/")):
        op[scope.split("/")[0][:-1]] = world.link(scope)
    op["_finish"] = (finish, f"{kind} {noun} {target['name']}", target["name"])
    world.operations[name] = op
    return public(op)


def public(op: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in op.items() if not k.startswith("_")}


def advance(world: World, name: str, what: str) -> dict[str, Any]:
    op = get(world.operations, name, what)
    finish = op.pop("_finish", None)
    if finish is not None:
        done, line, target = finish
        op.update(status="DONE", progress=100, endTime="2030-01-02T04:00:05.000-08:00")
        if target in world.failing_deletes:
            op.update(httpErrorStatusCode=400, httpErrorMessage="BAD REQUEST", error={
                "errors": [{"code": "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE",
                            "message": f"The resource '{target}' is in use"}]})
        else:
            done()
            world.log.append(line)
    return public(op)


for _scope in ("zones/{zone}", "regions/{region}", "global"):
    for _method, _suffix in (("GET", ""), ("POST", "/wait")):
        route(_method, "{project}/" + _scope + "/operations/{name}" + _suffix)(
            lambda world, p, q: advance(world, p["name"], f"operations/{p['name']}"))


# -- the server -------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    world: World  # set on the subclass each server makes
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        return None

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.answer("GET")

    def do_POST(self) -> None:  # noqa: N802
        self.answer("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self.answer("DELETE")

    def answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        world = self.world
        try:
            with world.lock:
                world.log.append(f"{method} {url.path}")
                status, body = 200, self.dispatch(method, url.path, query)
        except ApiError as exc:
            status, body = exc.code, exc.body()
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def dispatch(self, method: str, path: str, query: dict[str, str]) -> Any:
        world = self.world
        for fragment, (code, why, message) in world.failing.items():
            if fragment in path:
                raise ApiError(code, why, message)
        if not path.startswith(PREFIX):
            raise ApiError(404, "notFound", f"no such path {path}")
        rest = path[len(PREFIX):]
        project = rest.split("/", 1)[0]
        if project in world.forbidden:
            raise ApiError(403, "forbidden", f"Required 'compute.projects.get' permission for "
                           f"'projects/{project}'")
        known = {world.project, *world.images}
        if project not in known or (project != world.project and "/global/images" not in rest):
            raise ApiError(404, "notFound", f"The resource 'projects/{project}' was not found")
        for verb, regex, handler in ROUTES:
            found = regex.match(rest)
            if found and verb == method:
                return handler(world, found.groupdict(), query)
        raise ApiError(404, "notFound", f"no such method {method} {path}")


@contextmanager
def serve(world: World) -> Iterator[str]:
    """Serve ``world`` on 127.0.0.1; yields the endpoint ``http://127.0.0.1:PORT``."""
    handler = type("WorldHandler", (Handler,), {"world": world})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
