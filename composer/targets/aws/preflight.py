"""AWS preflight: every check that can fail, run before anything is created or spent.

``preflight(spec)`` asks AWS (read-only calls: sts, ec2 Describe*, ssm, service-quotas)
whether the ``[aws]`` section can work, and returns the pins for ``lock.json``
(``target.resolved``): the account, the AMI behind the image, the zone, subnet and
instance type chosen, and the facts of every instance type. Problems are collected
and raised together as one ``AwsPreflightError`` (exit 2), each naming the spec
field to change. Credentials and the region are checked first; without them
nothing else can be asked.

Choice of zone and type: the first instance type (in the spec's order) that is
offered in a candidate zone (in order) with a usable subnet; candidates are
``aws.zones``, or every zone of the region offering the first type. Every other
(type, zone) pair that fits, in the same order, is kept in the pins (``candidates``):
when a zone has no capacity for a type, the run fails over to the next one
(``composer/attempts.py``). The vCPU quota is read for the first choice only.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from composer.errors import PreflightError, Problem
from composer.targets.aws.images import Image, resolve_image
from composer.targets.aws.render import aws_section
from composer.targets.aws.session import (
    FALLBACK_REGION,
    account_id,
    calling,
    client,
    describe,
    error_code,
    home_region,
    import_boto3,
    is_credentials_error,
    known_regions,
    make_session,
    other_errors,
    translate,
)
from composer.targets.cloud import CloudPreflightError

if TYPE_CHECKING:
    from composer.spec import Spec
    from composer.targets.aws.config import AwsSpec

# vCPU quotas of EC2's instance families (service code "ec2"), by market.
STANDARD = "Standard (A, C, D, H, I, M, R, T, Z)"
QUOTA_CODES: dict[str, dict[str, str]] = {
    "on-demand": {STANDARD: "L-1216C47A", "G and VT": "L-DB2E81BA", "P": "L-417A185B",
                  "F": "L-74FC7D96", "Inf": "L-1945791B", "X": "L-7295265B",
                  "DL": "L-6E869C2A", "Trn": "L-2C3B7624", "HPC": "L-F7808C92"},
    "spot": {STANDARD: "L-34B43A08", "G and VT": "L-3819A6DF", "P": "L-7212CCBC",
             "F": "L-88CF9481", "Inf": "L-B5D1601B", "X": "L-E3A00192",
             "DL": "L-85EED4F7", "Trn": "L-6B0D517C"},
}  # fmt: skip
_PREFIX_FAMILIES = (("inf", "Inf"), ("trn", "Trn"), ("dl", "DL"), ("hpc", "HPC"),
                    ("vt", "G and VT"), ("mac", ""), ("u-", ""), ("u7", ""))
_LETTER_FAMILIES = {**dict.fromkeys("acdhimrtz", STANDARD), "g": "G and VT", "p": "P",
                    "f": "F", "x": "X"}
DEFAULT_VPC_HINT = ("create one (aws ec2 create-default-vpc --region {region}) or set "
                    "aws.subnet_id to a subnet of yours")


def quota_family(instance_type: str) -> str | None:
    """The vCPU quota family of an instance type ("P" for p4d.24xlarge), or None."""
    for prefix, family in _PREFIX_FAMILIES:
        if instance_type.startswith(prefix):
            return family or None
    return _LETTER_FAMILIES.get(instance_type[:1])


def quota_code(instance_type: str, market: str) -> tuple[str, str] | None:
    """``(family, quota code)`` of the type's vCPU quota in ``market``, or None."""
    family = quota_family(instance_type)
    code = QUOTA_CODES.get(market, {}).get(family or "")
    return (family, code) if family and code else None


class AwsPreflightError(CloudPreflightError):
    """Every problem the AWS preflight found, one line each."""

    target = "aws"


@dataclass(frozen=True)
class TypeInfo:
    name: str
    vcpus: int
    gpus: int
    gpu_model: str | None
    memory_mib: int
    efa: bool
    architectures: tuple[str, ...]

    def pin(self) -> dict[str, Any]:
        return {"vcpus": self.vcpus, "gpus": self.gpus, "gpu_model": self.gpu_model,
                "memory_mib": self.memory_mib, "efa": self.efa}


def type_info(raw: dict[str, Any]) -> TypeInfo:
    """The facts composer uses from one ``describe_instance_types`` entry."""
    gpus = raw.get("GpuInfo", {}).get("Gpus", [])
    models = [" ".join(x for x in (g.get("Manufacturer"), g.get("Name")) if x) for g in gpus]
    return TypeInfo(
        name=raw["InstanceType"],
        vcpus=int(raw.get("VCpuInfo", {}).get("DefaultVCpus", 0)),
        gpus=sum(int(g.get("Count", 0)) for g in gpus),
        gpu_model=", ".join(dict.fromkeys(models)) or None,
        memory_mib=int(raw.get("MemoryInfo", {}).get("SizeInMiB", 0)),
        efa=bool(raw.get("NetworkInfo", {}).get("EfaSupported", False)),
        architectures=tuple(raw.get("ProcessorInfo", {}).get("SupportedArchitectures", ())),
    )


def preflight(spec: Spec, session: Any = None) -> dict[str, Any]:
    """Check ``spec``'s ``[aws]`` section against AWS; return the pins for the lock."""
    import_boto3()
    aws = aws_section(spec)
    session = session if session is not None else make_session(aws.region)
    account = account_id(session, aws.region)
    check_region(session, aws.region)
    run = _Preflight(spec, aws, session, client(session, "ec2", aws.region))
    return run.pins(account)


def check_region(session: Any, region: str) -> None:
    """``PreflightError`` naming ``aws.region`` unless the account can use ``region``."""
    from botocore.exceptions import ClientError

    home = home_region(session, region)
    with calling("ec2", "DescribeRegions", error=PreflightError):
        try:
            regions = _regions(session, home)
        except ClientError as exc:  # a disabled opt-in region's endpoint refuses the call
            if home == FALLBACK_REGION or not is_credentials_error(exc):
                raise
            regions = _regions(session, FALLBACK_REGION)
    if region not in regions:
        choices = sorted(set(regions) | known_regions(session))
        close = difflib.get_close_matches(region, choices, n=1)
        suggestion = f"; did you mean '{close[0]}'?" if close else ""
        raise PreflightError(f"aws.region: unknown region '{region}'{suggestion}",
                             hint="aws ec2 describe-regions lists the regions of the account")
    if regions[region].get("OptInStatus") == "not-opted-in":
        raise PreflightError(
            f"aws.region: region '{region}' is not enabled for this account",
            hint="enable it (AWS console: Account > AWS Regions) or choose another region",
        )


def _regions(session: Any, asked: str) -> dict[str, dict[str, Any]]:
    answer = client(session, "ec2", asked).describe_regions(AllRegions=True)
    return {r["RegionName"]: r for r in answer.get("Regions", [])}


@dataclass
class _Preflight:
    """One preflight: the lookups, in order, and what they found or found wrong."""

    spec: Spec
    aws: AwsSpec
    session: Any
    ec2: Any
    problems: list[Problem] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def problem(self, path: str, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(path, message))
        if hint:
            self.hints.append(hint)

    def pins(self, account: str) -> dict[str, Any]:
        types = self.instance_types()
        zones = self.zones()
        offered = self.offerings(list(types))
        candidates = self.candidates(types, zones, offered)
        self.check_offered(types, candidates, offered)
        self.check_gpus_and_efa(types)
        image = self.image(types)
        login_user = self.login_user(image)
        choices = self.network(types, candidates, offered)
        chosen_type, zone, subnet, vpc = choices[0] if choices else (None, "", "", "")
        if chosen_type is not None:
            self.check_quota(types[chosen_type])
        if not self.problems and (image is None or chosen_type is None):
            self.problem("aws.instance_types", "no instance type and zone can be chosen")
        if self.problems:
            raise AwsPreflightError(self.problems, self.hints)
        assert image is not None
        return {
            "account_id": account, "region": self.aws.region, "image": self.aws.image,
            "ami_id": image.ami_id, "architecture": image.architecture,
            "login_user": login_user, "instance_type": chosen_type, "zone": zone,
            "subnet": subnet, "vpc_id": vpc,
            "types": {name: info.pin() for name, info in types.items()},
            "candidates": [{"instance_type": name, "zone": where, "subnet": net, "vpc_id": v}
                           for name, where, net, v in choices],
            "warnings": list(self.warnings),
        }  # fmt: skip

    # -- instance types and zones -------------------------------------------------

    def instance_types(self) -> dict[str, TypeInfo]:
        """The spec's types that exist, in the spec's order; a problem for each unknown one."""
        wanted = list(self.aws.instance_types)
        found: dict[str, TypeInfo] = {}
        pages = self.ec2.get_paginator("describe_instance_types").paginate(
            Filters=[{"Name": "instance-type", "Values": wanted}])
        with calling("ec2", "DescribeInstanceTypes", error=PreflightError):
            for page in pages:
                for raw in page.get("InstanceTypes", []):
                    found[raw["InstanceType"]] = type_info(raw)
        for index, name in enumerate(wanted):
            if name not in found:
                self.problem(f"aws.instance_types[{index}]",
                             f"unknown instance type '{name}' in {self.aws.region}",
                             "aws ec2 describe-instance-types lists the region's types")
        return {name: found[name] for name in wanted if name in found}

    def zones(self) -> list[str]:
        """The region's availability zones (Local and Wavelength Zones left out)."""
        with calling("ec2", "DescribeAvailabilityZones", error=PreflightError):
            raw = self.ec2.describe_availability_zones().get("AvailabilityZones", [])
        return sorted(z["ZoneName"] for z in raw
                      if z.get("ZoneType", "availability-zone") == "availability-zone")

    def offerings(self, types: list[str]) -> dict[str, set[str]]:
        """For each type, the zones of the region that offer it."""
        offered: dict[str, set[str]] = {name: set() for name in types}
        if not types:
            return offered
        pages = self.ec2.get_paginator("describe_instance_type_offerings").paginate(
            LocationType="availability-zone",
            Filters=[{"Name": "instance-type", "Values": types}])
        with calling("ec2", "DescribeInstanceTypeOfferings", error=PreflightError):
            for page in pages:
                for item in page.get("InstanceTypeOfferings", []):
                    offered.setdefault(item["InstanceType"], set()).add(item["Location"])
        return offered

    def candidates(self, types: dict[str, TypeInfo], zones: list[str],
                   offered: dict[str, set[str]]) -> list[str]:
        """``aws.zones`` that exist (in order), or every zone offering the first type."""
        if self.aws.zones:
            for index, zone in enumerate(self.aws.zones):
                if zone not in zones:
                    self.problem(f"aws.zones[{index}]",
                                 f"'{zone}' is not an availability zone of {self.aws.region}",
                                 f"zones of {self.aws.region}: {', '.join(zones)}")
            return [zone for zone in self.aws.zones if zone in zones]
        first = next(iter(types), None)
        return [zone for zone in zones if first and zone in offered.get(first, set())]

    def check_offered(self, types: dict[str, TypeInfo], candidates: list[str],
                      offered: dict[str, set[str]]) -> None:
        for index, name in enumerate(self.aws.instance_types):
            if name not in types:
                continue
            where = offered.get(name, set())
            if not where:
                self.problem(f"aws.instance_types[{index}]",
                             f"{name} is not offered in any zone of {self.aws.region}",
                             "choose a type the region offers, or another aws.region")
            elif not where.intersection(candidates):
                self.problem(f"aws.instance_types[{index}]",
                             f"{name} is not offered in {_zone_list(candidates)}; "
                             f"it is offered in {', '.join(sorted(where))}",
                             "add one of those zones to aws.zones, or remove the type")

    def check_gpus_and_efa(self, types: dict[str, TypeInfo]) -> None:
        want = self.spec.cluster.gpus_per_node
        for index, name in enumerate(self.aws.instance_types):
            info = types.get(name)
            if info is None:
                continue
            if info.gpus != want:
                noun = "GPU" if info.gpus == 1 else "GPUs"
                self.problem(f"aws.instance_types[{index}]",
                             f"{name} has {info.gpus} {noun}; gpus_per_node = {want}",
                             f"set cluster.gpus_per_node to the type's GPU count, or choose "
                             f"types with {want} GPUs each")
            if self.aws.efa and not info.efa:
                self.problem(f"aws.instance_types[{index}]",
                             f"{name} does not support EFA; efa = true",
                             "choose EFA types (aws ec2 describe-instance-types --filters "
                             "Name=network-info.efa-supported,Values=true) or set aws.efa = false")

    # -- image and login user -----------------------------------------------------

    def image(self, types: dict[str, TypeInfo]) -> Image | None:
        try:
            image = resolve_image(self.session, self.aws.region, self.aws.image)
        except PreflightError as exc:
            path, _, message = exc.message.partition(": ")
            self.problem(path, message, exc.hint)
            return None
        for index, name in enumerate(self.aws.instance_types):
            info = types.get(name)
            if info is not None and image.architecture not in info.architectures:
                self.problem(
                    "aws.image",
                    f"{image.ami_id} ({image.name}) is {image.architecture}; "
                    f"aws.instance_types[{index}] {name} runs {', '.join(info.architectures)}",
                    "use an image built for the types' architecture, or types for the image's",
                )
        return image

    def login_user(self, image: Image | None) -> str | None:
        if self.aws.ssh_user or image is None:
            return self.aws.ssh_user
        if image.login_user is None:
            self.problem("aws.ssh_user",
                         f"required for image {image.ami_id} ('{image.name}', owner "
                         f"{image.owner}): composer cannot tell its login user",
                         "set [aws] ssh_user to the image's login user "
                         "(ubuntu, ec2-user, admin, rocky...)")
        return image.login_user

    # -- subnet, zone and type ----------------------------------------------------

    def network(self, types: dict[str, TypeInfo], candidates: list[str],
                offered: dict[str, set[str]]) -> list[tuple[str, str, str, str]]:
        """Every ``(instance type, zone, subnet id, vpc id)`` that fits, best first (the
        spec's type order, then its zone order); empty, with a problem, if none does."""
        if self.aws.subnet_id:
            subnets = self.given_subnet(self.aws.subnet_id, candidates)
        else:
            subnets = self.default_subnets()
        zones = list(subnets) if self.aws.subnet_id else candidates
        fits = [(name, zone, *subnets[zone]) for name in types for zone in zones
                if zone in subnets and zone in offered.get(name, set())]
        if fits:
            return fits
        usable = [name for name in types if offered.get(name, set()) & set(zones)]
        if self.aws.subnet_id and subnets and types:
            self.problem("aws.subnet_id",
                         f"{self.aws.subnet_id} is in {zones[0]}, where none of "
                         f"{', '.join(types)} is offered",
                         "choose a subnet in a zone offering the types, or other types")
        elif subnets and usable:  # else the offerings' problems already say why
            self.problem("aws.instance_types",
                         f"none of {', '.join(types)} is offered in a candidate zone with a "
                         f"default subnet (candidate zones {', '.join(zones)}; default "
                         f"subnets in {', '.join(sorted(subnets))})",
                         "choose types offered there, or set aws.zones / aws.subnet_id")
        return []

    def given_subnet(self, subnet_id: str, candidates: list[str]) -> dict[str, tuple[str, str]]:
        from botocore.exceptions import ClientError

        try:
            found = self.ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"]
        except ClientError as exc:
            if not error_code(exc).startswith("InvalidSubnetID"):
                raise translate(exc, "ec2", "DescribeSubnets", PreflightError) from exc
            found = []
        except other_errors() as exc:
            raise translate(exc, "ec2", "DescribeSubnets", PreflightError) from exc
        if not found:
            self.problem("aws.subnet_id", f"subnet '{subnet_id}' not found in "
                         f"{self.aws.region}", "aws ec2 describe-subnets lists the subnets")
            return {}
        zone = found[0]["AvailabilityZone"]
        if self.aws.zones and zone not in candidates:
            self.problem("aws.subnet_id", f"{subnet_id} is in {zone}, which aws.zones "
                         f"does not list ({', '.join(self.aws.zones)})",
                         "add the subnet's zone to aws.zones, or leave aws.zones out")
            return {}
        return {zone: (subnet_id, found[0]["VpcId"])}

    def default_subnets(self) -> dict[str, tuple[str, str]]:
        """Zone -> (subnet, vpc) of the default VPC's default subnets."""
        region = self.aws.region
        with calling("ec2", "DescribeVpcs", error=PreflightError):
            vpcs = self.ec2.describe_vpcs(
                Filters=[{"Name": "is-default", "Values": ["true"]}]).get("Vpcs", [])
        if not vpcs:
            self.problem("aws.subnet_id", f"not set, and {region} has no default VPC "
                         "to take a subnet from", DEFAULT_VPC_HINT.format(region=region))
            return {}
        vpc = vpcs[0]["VpcId"]
        with calling("ec2", "DescribeSubnets", error=PreflightError):
            subnets = self.ec2.describe_subnets(Filters=[
                {"Name": "vpc-id", "Values": [vpc]},
                {"Name": "default-for-az", "Values": ["true"]},
            ]).get("Subnets", [])
        found = {s["AvailabilityZone"]: (s["SubnetId"], vpc) for s in subnets}
        if not found:
            self.problem("aws.subnet_id", f"not set, and the default VPC {vpc} of {region} "
                         "has no default subnet",
                         "create one (aws ec2 create-default-subnet --availability-zone ZONE) "
                         "or set aws.subnet_id")
        return found

    # -- quota ----------------------------------------------------------------------

    def check_quota(self, info: TypeInfo) -> None:
        market = self.aws.market
        nodes = self.spec.cluster.nodes
        need = nodes * info.vcpus
        family_code = quota_code(info.name, market)
        if family_code is None:
            self.warnings.append(f"no known {market} vCPU quota for {info.name}: make sure "
                                 f"the account may run {need} vCPUs of it")
            return
        family, code = family_code
        value = self.read_quota(code, need)
        if value is None or value >= need:
            return
        index = self.aws.instance_types.index(info.name)
        self.problem(
            "cluster.nodes",
            f"{nodes} × {info.name} (aws.instance_types[{index}]) need {need} vCPUs; the "
            f"{market} {family} vCPU quota ({code}) in {self.aws.region} is {value:g}",
            f"request an increase (aws service-quotas request-service-quota-increase "
            f"--service-code ec2 --quota-code {code} --desired-value {need} --region "
            f"{self.aws.region}), lower cluster.nodes, or choose other aws.instance_types",
        )

    def read_quota(self, code: str, need: int) -> float | None:
        """The quota's value, or None (and a warning) when it cannot be read."""
        from botocore.exceptions import ClientError

        try:
            quotas = client(self.session, "service-quotas", self.aws.region)
            answer = quotas.get_service_quota(ServiceCode="ec2", QuotaCode=code)
            return float(answer["Quota"]["Value"])
        except (ClientError, PreflightError, KeyError, *other_errors()) as exc:
            reason = describe(exc) if not isinstance(exc, KeyError) else "no value"
            self.warnings.append(f"could not read the vCPU quota {code} in {self.aws.region} "
                                 f"({reason}): make sure it covers {need} vCPUs")
            return None


def _zone_list(zones: list[str]) -> str:
    if not zones:
        return "any candidate zone"
    return ("zone " if len(zones) == 1 else "zones ") + ", ".join(zones)
