"""``[gcp] network`` / ``subnetwork``: resolved to self links.

``network`` is a name in ``gcp.project`` (default ``default``) or
``projects/P/global/networks/N``; ``subnetwork`` a name in ``gcp.region`` or
``projects/P/regions/R/subnetworks/S``. Without a subnetwork: an auto-mode network's
subnetwork in the region, or a custom-mode network's only one there; a legacy network
(no subnetworks) takes none.
"""

from __future__ import annotations

import re
from typing import Any

from composer.errors import PreflightError
from composer.targets.gcp.config import GcpSpec
from composer.targets.gcp.images import Reporter
from composer.targets.gcp.session import Clients, api_errors, describe, status, translate

DEFAULT = "default"
NETWORK = re.compile(r"projects/([^/]+)/global/networks/([^/]+)")
SUBNETWORK = re.compile(r"projects/([^/]+)/regions/([^/]+)/subnetworks/([^/]+)")


def _path(text: str) -> str:
    return text.split("/compute/v1/", 1)[-1] if "://" in text else text


def resolve_network(clients: Clients, gcp: GcpSpec,
                    report: Reporter) -> tuple[str | None, str | None]:
    """(network self link, subnetwork self link or None); problems name the field."""
    written = gcp.network or DEFAULT
    found = NETWORK.fullmatch(_path(written))
    project, name = (found.group(1), found.group(2)) if found else (gcp.project, written)
    try:
        network = clients.networks.get(project=project, network=name)
    except api_errors() as exc:
        if status(exc) != 404:
            raise translate(exc, "networks", "get", PreflightError) from exc
        if gcp.network is None:
            report.problem("gcp.network", f"not set, and project {gcp.project} has no "
                           "'default' network",
                           f"create one (gcloud compute networks create default "
                           f"--subnet-mode=auto --project {gcp.project}) or set gcp.network "
                           "(and gcp.subnetwork) to a network of yours")
        else:
            report.problem("gcp.network", f"network '{written}' not found ({describe(exc)})",
                           "gcloud compute networks list shows the project's networks")
        return None, None
    if gcp.subnetwork:
        return network.self_link, given_subnetwork(clients, gcp, network, report)
    return network.self_link, regional_subnetwork(gcp, network, report)


def given_subnetwork(clients: Clients, gcp: GcpSpec, network: Any,
                     report: Reporter) -> str | None:
    written = gcp.subnetwork or ""
    found = SUBNETWORK.fullmatch(_path(written))
    project, region, name = found.groups() if found else (gcp.project, gcp.region, written)
    if region != gcp.region:
        report.problem("gcp.subnetwork", f"'{written}' is in {region}, not gcp.region "
                       f"{gcp.region}", "name a subnetwork of the run's region")
        return None
    try:
        subnet = clients.subnetworks.get(project=project, region=region, subnetwork=name)
    except api_errors() as exc:
        if status(exc) != 404:
            raise translate(exc, "subnetworks", "get", PreflightError) from exc
        report.problem("gcp.subnetwork", f"subnetwork '{written}' not found in {region} "
                       f"({describe(exc)})",
                       f"gcloud compute networks subnets list --regions {region}")
        return None
    if subnet.network.rstrip("/") != network.self_link.rstrip("/"):
        report.problem("gcp.subnetwork", f"'{written}' belongs to network "
                       f"{subnet.network.rsplit('/', 1)[-1]}, not {network.name}",
                       "name a subnetwork of gcp.network, or that subnetwork's network")
        return None
    return str(subnet.self_link)


def regional_subnetwork(gcp: GcpSpec, network: Any, report: Reporter) -> str | None:
    links = list(network.subnetworks)
    if not links and not network.auto_create_subnetworks:
        return None  # a legacy network: instances take no subnetwork
    mine = [link for link in links if f"/regions/{gcp.region}/subnetworks/" in link]
    if len(mine) == 1:
        return mine[0]
    if not mine:
        mode = "auto-mode" if network.auto_create_subnetworks else "custom-mode"
        report.problem("gcp.subnetwork", f"not set, and {mode} network {network.name} has "
                       f"no subnetwork in {gcp.region}",
                       f"create one (gcloud compute networks subnets create NAME --network "
                       f"{network.name} --region {gcp.region} --range CIDR) and set "
                       "gcp.subnetwork, or choose another gcp.network / gcp.region")
        return None
    names = ", ".join(link.rsplit("/", 1)[-1] for link in mine)
    report.problem("gcp.subnetwork", f"not set, and network {network.name} has several "
                   f"subnetworks in {gcp.region}: {names}", "set gcp.subnetwork to one of them")
    return None
