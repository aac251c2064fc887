"""GCP preflight: every check that can fail, run before anything is created or spent.

``preflight(spec)`` asks Compute Engine (read-only calls) whether the ``[gcp]`` section
can work and returns the pins for ``lock.json`` (``target.resolved``): the project
number, the region, the zone and machine type chosen, the image's self link, the
network and subnetwork, the facts of each machine type, the quotas read. Problems are
raised together as one ``GcpPreflightError`` (exit 2), each naming the field to
change. Credentials, the project and the region come first, one at a time: without
them nothing else can be asked.

Choice of zone and machine type: the first machine type (in the spec's order) that
exists in a candidate zone (in order) where its GPUs fit: a type of a series whose GPUs
come with it (A2, A3, G2...) must have ``cluster.gpus_per_node`` of them; another type
with GPUs needs ``gcp.accelerator`` offered in that zone with enough cards per VM.
Candidates are ``gcp.zones``, or every zone of the region, that are UP. Every other
(zone, machine type) pair that fits, in the same order, is kept in the pins
(``candidates``): when a zone has no capacity, the run fails over to the next one
(``composer/attempts.py``). Quotas are read for the first choice only.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from composer.errors import PreflightError, Problem
from composer.targets.cloud import CloudPreflightError
from composer.targets.gcp import capacity
from composer.targets.gcp.config import GcpSpec, bundles_gpus, series
from composer.targets.gcp.images import resolve_image
from composer.targets.gcp.networks import resolve_network
from composer.targets.gcp.session import (
    Clients,
    api_errors,
    calling,
    describe,
    is_credentials_error,
    make_clients,
    status,
    translate,
)

if TYPE_CHECKING:
    from composer.spec import Spec

NO_SUCH_TYPE = "no such machine type in this zone"
PROJECT_HINT = ("check gcp.project (gcloud projects list shows the projects the "
                "credentials can see) and that the Compute Engine API is enabled in it")


class GcpPreflightError(CloudPreflightError):
    """Every problem the GCP preflight found, one line each."""

    target = "gcp"


@dataclass(frozen=True)
class TypeInfo:
    name: str
    vcpus: int
    memory_mb: int
    gpus: int  # bundled with the type (0 for N1 and CPU-only types)
    gpu_model: str | None  # the bundled accelerator type ("nvidia-l4")
    architecture: str

    def pin(self, gpus: int, model: str | None) -> dict[str, Any]:
        return {"vcpus": self.vcpus, "memory_mb": self.memory_mb, "gpus": gpus,
                "gpu_model": model, "bundled": bundles_gpus(self.name)}


def type_info(raw: Any) -> TypeInfo:
    accelerators = list(raw.accelerators)
    return TypeInfo(name=raw.name, vcpus=int(raw.guest_cpus), memory_mb=int(raw.memory_mb),
                    gpus=sum(int(a.guest_accelerator_count) for a in accelerators),
                    gpu_model=accelerators[0].guest_accelerator_type if accelerators else None,
                    architecture=raw.architecture or "")


def preflight(spec: Spec, clients: Clients | None = None) -> dict[str, Any]:
    """Check ``spec``'s ``[gcp]`` section against Compute Engine; return the pins."""
    gcp = spec.target_config
    assert isinstance(gcp, GcpSpec), "preflight of a spec without a [gcp] section"
    clients = clients if clients is not None else make_clients(gcp.project)
    number = project_number(clients, gcp.project)
    region = check_region(clients, gcp.project, gcp.region)
    return _Preflight(spec, gcp, clients, region).pins(number)


def project_number(clients: Clients, project: str) -> str:
    """The project's number; ``PreflightError`` naming gcp.project when the credentials
    cannot see it."""
    try:
        return str(clients.projects.get(project=project).id)
    except api_errors() as exc:
        if is_credentials_error(exc):
            raise translate(exc, "projects", "get", PreflightError) from exc
        if status(exc) in (403, 404):
            raise PreflightError(f"gcp.project: project '{project}' cannot be used with these "
                                 f"credentials ({describe(exc)})", hint=PROJECT_HINT) from exc
        raise translate(exc, "projects", "get", PreflightError) from exc


def check_region(clients: Clients, project: str, region: str) -> Any:
    """The ``Region`` (with its quotas); ``PreflightError`` naming gcp.region unless it
    exists and is UP."""
    try:
        found = clients.regions.get(project=project, region=region)
    except api_errors() as exc:
        if status(exc) != 404:
            raise translate(exc, "regions", "get", PreflightError) from exc
        with calling("regions", "list", error=PreflightError):
            names = [r.name for r in clients.regions.list(project=project)]
        close = difflib.get_close_matches(region, names, n=1)
        suggestion = f"; did you mean '{close[0]}'?" if close else ""
        raise PreflightError(f"gcp.region: unknown region '{region}'{suggestion}",
                             hint="gcloud compute regions list shows the regions") from exc
    if found.status != "UP":
        raise PreflightError(f"gcp.region: region '{region}' is {found.status}, not UP",
                             hint="choose another gcp.region")
    return found


@dataclass
class _Preflight:
    """One preflight after the project and region: the lookups, and what they found."""

    spec: Spec
    gcp: GcpSpec
    clients: Clients
    region: Any
    problems: list[Problem] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    types: dict[str, TypeInfo] = field(default_factory=dict)

    def problem(self, path: str, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(path, message))
        if hint:
            self.hints.append(hint)

    def pins(self, number: str) -> dict[str, Any]:
        zones = self.zones()
        fits = self.choose(zones) if zones else []
        chosen = fits[0] if fits else None
        image = resolve_image(self.clients, self.gcp, self)
        network, subnetwork = resolve_network(self.clients, self.gcp, self)
        zone, machine_type = chosen or (None, None)
        quotas: dict[str, Any] = {}
        if machine_type is not None:
            info = self.types[machine_type]
            if image is not None:
                self.check_architecture(info, image)
            quotas = self.check_quotas(info)
            self.check_placement(machine_type)
        if self.problems:
            raise GcpPreflightError(self.problems, self.hints)
        assert image is not None and zone is not None and machine_type is not None
        return {
            "project": self.gcp.project, "project_number": number,
            "region": self.gcp.region, "zone": zone, "machine_type": machine_type,
            "image": self.gcp.image, "image_self_link": image.self_link,
            "login_user": self.gcp.ssh_user, "accelerator": self.accelerator(machine_type),
            "network": network, "subnetwork": subnetwork,
            "types": {name: info.pin(*self.gpus_of(name)) for name, info in self.types.items()},
            "candidates": [{"zone": where, "machine_type": name,
                            "accelerator": self.accelerator(name)} for where, name in fits],
            "quotas": quotas, "warnings": list(self.warnings),
        }  # fmt: skip

    # -- zones and machine types -----------------------------------------------------

    def zones(self) -> list[str]:
        """Candidate zones that are UP, in order; problems for unknown ones."""
        with calling("zones", "list", error=PreflightError):
            listed = {z.name: z.status for z in self.clients.zones.list(project=self.gcp.project)
                      if z.region.rstrip("/").endswith(f"/regions/{self.gcp.region}")}
        regional = sorted(listed)
        for index, zone in enumerate(self.gcp.zones):
            if zone not in listed:
                self.problem(f"gcp.zones[{index}]",
                             f"'{zone}' is not a zone of {self.gcp.region}",
                             f"zones of {self.gcp.region}: {', '.join(regional)}")
            elif listed[zone] != "UP":
                self.warnings.append(f"gcp.zones[{index}]: {zone} is {listed[zone]}: "
                                     "not considered")
        wanted = [z for z in self.gcp.zones if z in listed] if self.gcp.zones else regional
        up = [z for z in wanted if listed[z] == "UP"]
        if wanted and not up:
            self.problem("gcp.zones", f"none of {', '.join(wanted)} is UP",
                         "choose other zones or another gcp.region")
        return up

    def choose(self, zones: list[str]) -> list[tuple[str, str]]:
        """Every (zone, machine type) that fits, the first one chosen; one problem listing
        every pair tried and why when none does."""
        tried: list[str] = []
        fits: list[tuple[str, str]] = []
        for index, machine_type in enumerate(self.gcp.machine_types):
            whys = []
            for zone in zones:
                why = self.unfit(zone, machine_type)
                if why is None:
                    if tried and not fits:
                        self.warnings.append(
                            f"gcp.machine_types: using {machine_type} in {zone}; passed over "
                            + "; ".join(tried))
                    fits.append((zone, machine_type))
                    continue
                whys.append(why)
                if not fits:
                    tried.append(f"{zone} {machine_type}: {why}")
            if zones and whys and len(whys) == len(zones) and \
                    all(why == NO_SUCH_TYPE for why in whys):
                self.warnings.append(f"gcp.machine_types[{index}]: {machine_type} exists in "
                                     "none of the candidate zones (a misspelt name?)")
        if fits:
            return fits
        gpus = self.spec.cluster.gpus_per_node
        self.problem("gcp.machine_types",
                     "no candidate zone and machine type fit the run:\n    "
                     + "\n    ".join(tried),
                     f"choose gcp.machine_types and gcp.zones that go together (each "
                     f"with {gpus} GPU(s) per node, cluster.gpus_per_node), or another "
                     "gcp.region; gcloud compute machine-types list --zones ZONE and "
                     "gcloud compute accelerator-types list show what each zone offers")
        return []

    def unfit(self, zone: str, machine_type: str) -> str | None:
        """Why ``machine_type`` in ``zone`` cannot run a node (None: it can)."""
        project, want = self.gcp.project, self.spec.cluster.gpus_per_node
        try:
            raw = self.clients.machine_types.get(project=project, zone=zone,
                                                 machine_type=machine_type)
        except api_errors() as exc:
            if status(exc) == 404:
                return NO_SUCH_TYPE
            raise translate(exc, "machineTypes", "get", PreflightError) from exc
        info = self.types.setdefault(machine_type, type_info(raw))
        if bundles_gpus(machine_type) or info.gpus:
            if info.gpus != want:
                return (f"comes with {info.gpus} GPU(s) ({info.gpu_model}); "
                        f"cluster.gpus_per_node = {want}")
            return None
        if not want:
            return None
        if series(machine_type) != "n1":
            return "takes no attached GPUs (only N1 types do; A2, A3, G2 types come with theirs)"
        return self.accelerator_unfit(zone, want)

    def accelerator_unfit(self, zone: str, want: int) -> str | None:
        accelerator = self.gcp.accelerator
        if not accelerator:
            return "needs gcp.accelerator for its GPUs"
        try:
            raw = self.clients.accelerator_types.get(project=self.gcp.project, zone=zone,
                                                     accelerator_type=accelerator)
        except api_errors() as exc:
            if status(exc) == 404:
                return f"gcp.accelerator {accelerator} is not offered in this zone"
            raise translate(exc, "acceleratorTypes", "get", PreflightError) from exc
        most = int(raw.maximum_cards_per_instance)
        if most < want:
            return (f"at most {most} {accelerator} per VM; cluster.gpus_per_node = {want}")
        return None

    def gpus_of(self, machine_type: str) -> tuple[int, str | None]:
        info = self.types[machine_type]
        if info.gpus or bundles_gpus(machine_type):
            return info.gpus, info.gpu_model
        want = self.spec.cluster.gpus_per_node
        return (want, self.gcp.accelerator) if want and self.gcp.accelerator else (0, None)

    def accelerator(self, machine_type: str) -> dict[str, Any] | None:
        """``{type, count}`` to attach; None for CPU-only and bundled types."""
        info = self.types[machine_type]
        if info.gpus or bundles_gpus(machine_type) or not self.spec.cluster.gpus_per_node:
            return None
        return {"type": self.gcp.accelerator, "count": self.spec.cluster.gpus_per_node}

    # -- image, quotas, placement ----------------------------------------------------

    def check_architecture(self, info: TypeInfo, image: Any) -> None:
        if info.architecture and image.architecture and info.architecture != image.architecture:
            self.problem("gcp.image", f"{image.name} is {image.architecture}; "
                         f"{info.name} runs {info.architecture}",
                         "use an image built for the machine type's architecture")

    def check_quotas(self, info: TypeInfo) -> dict[str, Any]:
        """Each need against its quota; what was read (metric -> limit, usage, need)."""
        table = capacity.quota_table(self.region)
        region = self.gcp.region
        if not table:
            self.warnings.append(f"the quotas of {region} could not be read: make sure they "
                                 "cover the run")
            return {}
        gpus, model = self.gpus_of(info.name)
        read: dict[str, Any] = {}
        for need in capacity.needs(self.spec.cluster.nodes, info.name, info.vcpus, gpus,
                                   model, self.gcp.provisioning == "spot", table):
            metric = next((m for m in need.metrics if m in table), None)
            if metric is None:
                self.warnings.append(f"no {' or '.join(need.metrics)} quota listed in "
                                     f"{region}: make sure it covers {need.count} {need.what}")
                continue
            limit, usage = table[metric]
            read[metric] = {"limit": limit, "usage": usage, "need": need.count}
            if usage + need.count > limit:
                self.problem(need.field, f"{self.spec.cluster.nodes} × {info.name} need "
                             f"{need.count} {need.what}; quota {metric} in {region}: "
                             f"{usage:g} of {limit:g} in use",
                             f"request more {metric} (IAM & Admin > Quotas), lower "
                             f"{need.field}, or choose other gcp.machine_types / gcp.region")
        return read

    def check_placement(self, machine_type: str) -> None:
        if self.gcp.placement != "compact":
            return
        supported = capacity.compact_support(machine_type)
        if supported is False:
            self.problem("gcp.placement",
                         f"compact placement does not support {series(machine_type).upper()} "
                         f"machine types ({machine_type})",
                         'set gcp.placement = "none", or choose a series that supports it '
                         "(A2, A3, G2, C2, C3, N2, H3...)")
        elif supported is None:
            self.warnings.append(f"gcp.placement: not known whether {machine_type} takes a "
                                 'compact placement policy; if apply fails, set "none"')
