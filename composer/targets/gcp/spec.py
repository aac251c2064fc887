"""The ``[gcp]`` section of a job spec: its fields and its check, giving ``GcpSpec``.

Only the form of each value is checked here (no Compute Engine call): whether the
project, the zones, the machine and accelerator types and the image exist is preflight's
work (``preflight.py``). One value may come from outside the spec: without
``gcp.project``, the project is ``GOOGLE_CLOUD_PROJECT`` of the environment the spec is
checked in (and the expanded spec, which the record keeps, says which).
"""

from __future__ import annotations

import re
from typing import Any

from composer.spec.check import Checker, Table
from composer.spec.fields import MISSING, Section, choice, integer, other, string
from composer.spec.model import ClusterSpec
from composer.spec.text import describe, join, quote
from composer.targets.forms import (
    CIDR,
    UNIX_USER,
    UNIX_USER_RULE,
    check_cidrs,
    matching,
    strings_schema,
)
from composer.targets.gcp.config import (
    DEFAULT_BOOT_DISK_GB,
    DEFAULT_SSH_USER,
    PLACEMENTS,
    PROVISIONING,
    GcpSpec,
    series,
)
from composer.targets.gcp.gpus import N1_GPU_COUNTS, check_accelerator, check_gpu_rules

PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
#: A Compute Engine resource name: images, families, networks, accelerator types.
NAME = r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?"
#: A project id; old domain-scoped projects are written "example.com:my-project".
PROJECT = r"([a-z][-a-z0-9.]{0,61}[a-z0-9]:)?[a-z][-a-z0-9]{4,28}[a-z0-9]"
REGION = r"[a-z]+-[a-z]+[0-9]{1,2}"
ZONE = REGION + r"-[a-z][a-z0-9]{0,7}"
MACHINE_TYPE = r"[a-z][a-z0-9]*(-[a-z0-9]+){1,8}"
#: What may stand before "projects/...": a self link, as the API gives it.
SELF_LINK = r"(https://(www|compute)\.googleapis\.com/compute/(v1|beta)/)?"
IMAGE = f"{SELF_LINK}projects/{PROJECT}/global/images/(family/)?{NAME}|{NAME}"
NETWORK = f"{SELF_LINK}projects/{PROJECT}/global/networks/{NAME}|{NAME}"
SUBNETWORK = f"{SELF_LINK}projects/{PROJECT}/regions/{REGION}/subnetworks/{NAME}|{NAME}"
LABEL_KEY = r"[a-z][a-z0-9_-]{0,62}"
LABEL_VALUE = r"[a-z0-9_-]{0,63}"
RESERVED_LABEL_PREFIXES = ("composer-", "goog")
MAX_LABELS = 64 - 3  # Compute Engine allows 64 labels on a resource; composer sets 3
#: Series that take GPUs as a separate accelerator (``guest_accelerator``): N1, whose
#: custom types are written "custom-8-32768". Other series without GPUs of their own take none.
IMAGE_EXAMPLE = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts"
IMAGE_FORMS = ('"projects/PROJECT/global/images/family/FAMILY", "projects/PROJECT/global/'
               'images/IMAGE" or an image name in gcp.project')
_RESERVED_LABEL = "^(composer-|goog)"

FIELDS = (
    string("project", "a project id: 6–30 characters of `a-z`, `0-9`, `-`, starting with a "
           'letter (`"my-project"`)', pattern=PROJECT,
           shown_default=f"`{PROJECT_ENV}` of the environment; required without it"),
    string("region", 'a Compute Engine region name, e.g. `"us-central1"`, `"europe-west4"`',
           required=True, pattern=REGION),
    other("zones", "array of strings", 'zone names of `region` (`"us-central1-a"`), in order '
          "of preference; no zone twice", strings_schema(ZONE),
          shown_default="every zone of the region"),
    other("machine_types", "array of strings", 'machine types (`"g2-standard-24"`, '
          '`"n1-standard-8"`, `"n2-custom-8-32768"`), in order of preference; at least one, '
          "none twice; either all with GPUs that come with the type (series "
          "A2, A3, A4, G2, G4) or none", strings_schema(MACHINE_TYPE), required=True),
    other("accelerator", "table", '`{ type = "nvidia-tesla-t4" }`: GPUs attached to each '
          "node of an N1 machine type, `cluster.gpus_per_node` of them; not with types whose "
          "GPUs come with the type",
          {"type": "object", "properties": {"type": {"type": "string",
                                                     "pattern": f"^(?:{NAME})$"}},
           "required": ["type"], "additionalProperties": False},
          shown_default="none"),
    string("image", 'an image family, `"projects/PROJECT/global/images/family/FAMILY"` '
           f'(`"{IMAGE_EXAMPLE}"`), one image, `"projects/PROJECT/global/images/IMAGE"`, '
           "or an image name in `project`; self links "
           '(`"https://www.googleapis.com/compute/v1/projects/..."`) too; resolved to one '
           "image, pinned in `lock.json`", required=True, pattern=IMAGE),
    string("ssh_user", "the user composer logs in as, made on each node from the "
           "instance's `ssh-keys`: a Unix user name, not `root` nor an account or group the "
           "images have (`daemon`, `sudo`...)", pattern=UNIX_USER,
           default=DEFAULT_SSH_USER, schema={"not": {"const": "root"}}),
    choice("provisioning", '`"standard"` or `"spot"` (Spot VMs: cheaper, may be stopped and '
           "deleted at any time)", PROVISIONING, default="standard"),
    choice("placement", '`"compact"` (a compact placement policy: nodes close together; '
           'needs `nodes` > 1) or `"none"`', PLACEMENTS,
           shown_default='`"compact"` when `nodes` > 1 and every machine type takes a '
                         'compact policy (N1 and E2 do not), else `"none"`'),
    integer("boot_disk_gb", "10–65536; the boot disk's size in GB", 10, 65536,
            default=DEFAULT_BOOT_DISK_GB),
    string("network", 'a VPC network: its name (`"default"`) or '
           '`"projects/PROJECT/global/networks/NETWORK"`', pattern=NETWORK,
           shown_default="the project's network named `default`"),
    string("subnetwork", "a subnetwork of `region`: its name or "
           '`"projects/PROJECT/regions/REGION/subnetworks/SUBNETWORK"`', pattern=SUBNETWORK,
           shown_default="the network's subnetwork in the region"),
    other("ssh_cidrs", "array of strings", "IPv4 or IPv6 CIDR blocks that may reach port 22 "
          '(`"203.0.113.7/32"`); at least one; `"0.0.0.0/0"` only when written out',
          strings_schema(CIDR), required=True),
    other("labels", "table of strings", "extra labels on every resource that takes labels: "
          "keys of 1–63 characters of `a-z`, `0-9`, `_`, `-`, starting with a letter, not "
          "with `composer-` or `goog`; values of at most 63 characters of `a-z`, `0-9`, `_`, "
          f"`-`; at most {MAX_LABELS} labels",
          {"type": "object", "maxProperties": MAX_LABELS,
           "propertyNames": {"pattern": f"^(?:{LABEL_KEY})$",
                             "not": {"pattern": _RESERVED_LABEL}},
           "additionalProperties": {"type": "string", "pattern": f"^(?:{LABEL_VALUE})$"}},
          default={}),
)


def check_gcp(c: Checker, table: Table, cluster: ClusterSpec | None) -> GcpSpec | None:
    count = c.count()
    project = _project(c, *c.get(table, GCP, "project"))
    region = _region(c, *c.get(table, GCP, "region"))
    zones = _zones(c, *c.get(table, GCP, "zones"), region)
    raw_types, types_path = c.get(table, GCP, "machine_types")
    types = _machine_types(c, raw_types, types_path)
    raw_accelerator, accelerator_path = c.get(table, GCP, "accelerator")
    accelerator = check_accelerator(c, raw_accelerator, accelerator_path, types)
    check_gpu_rules(c, raw_types, types, raw_accelerator is not MISSING, cluster)
    image = _image(c, *c.get(table, GCP, "image"))
    user = _ssh_user(c, *c.get(table, GCP, "ssh_user"))
    provisioning = c.value(table, GCP, "provisioning")
    placement = _placement(c, *c.get(table, GCP, "placement"), cluster, types)
    disk = c.value(table, GCP, "boot_disk_gb")
    network = matching(c, *c.get(table, GCP, "network"), NETWORK,
                       'must be a network name ("default") or '
                       '"projects/PROJECT/global/networks/NETWORK"')
    subnetwork = _subnetwork(c, *c.get(table, GCP, "subnetwork"), region)
    raw_cidrs, cidrs_path = c.get(table, GCP, "ssh_cidrs")
    cidrs = check_cidrs(c, raw_cidrs, cidrs_path)
    whole = isinstance(raw_cidrs, list) and len(cidrs) == len(raw_cidrs)
    if cidrs and whole and all(":" in cidr for cidr in cidrs):
        c.add(cidrs_path, "holds only IPv6 blocks, and the nodes' external addresses are "
                          "IPv4: composer could never reach them; add the IPv4 block composer "
                          'runs from ("203.0.113.7/32")')
    if accelerator and cluster is not None and cluster.gpus_per_node not in N1_GPU_COUNTS \
            and cluster.gpus_per_node > 0:
        c.add("cluster.gpus_per_node", f"is {cluster.gpus_per_node}; an N1 machine type takes "
                                       "1, 2, 4 or 8 attached GPUs")
    labels = _labels(c, *c.get(table, GCP, "labels"))
    c.unknown_keys(table, GCP)
    if (c.count() != count or project is None or region is None or image is None
            or not types or not cidrs):
        return None
    return GcpSpec(
        project=project, region=region, machine_types=types, image=image, ssh_cidrs=cidrs,
        zones=zones, accelerator=accelerator, ssh_user=user or DEFAULT_SSH_USER,
        provisioning=provisioning or "standard", placement=placement or "none",
        boot_disk_gb=disk, network=network, subnetwork=subnetwork, labels=labels,
    )


def _project(c: Checker, value: Any, path: str) -> str | None:
    if value is MISSING:
        found = c.environ.get(PROJECT_ENV, "")
        if not found.strip():
            return c.add(path, f'required: write project = "my-project" in [gcp], or set '
                               f"{PROJECT_ENV} in the environment")
        if not re.fullmatch(PROJECT, found):
            return c.add(path, f"not written, and {PROJECT_ENV} ({quote(found)}) is not a "
                               "project id (6-30 characters of a-z, 0-9, '-'); write gcp.project")
        return found
    text = c.string(value, path, nonempty=True)
    if text is None or re.fullmatch(PROJECT, text):
        return text
    if text.isdigit():
        hint = "; that is a project number: write the project's id (gcloud projects list)"
    elif re.fullmatch(PROJECT, text.strip().lower()):
        hint = f"; did you mean {quote(text.strip().lower())}?"
    else:
        hint = "; a project's display name is not its id (gcloud projects list shows both)"
    return c.add(path, "must be a project id: 6-30 characters of a-z, 0-9 and '-', starting "
                       f"with a letter, not ending with '-', got {quote(text)}{hint}")


def _region(c: Checker, value: Any, path: str) -> str | None:
    text = c.string(value, path, nonempty=True)
    if text is None or re.fullmatch(REGION, text):
        return text
    close = text.strip().lower()
    aws_style = re.fullmatch(r"([a-z]+-[a-z]+)-([0-9]{1,2})", close)
    if re.fullmatch(ZONE, close):
        hint = f"; that is a zone, of region {quote(close.rsplit('-', 1)[0])}"
    elif aws_style:
        hint = f'; did you mean "{aws_style[1]}{aws_style[2]}"?'
    elif re.fullmatch(REGION, close):
        hint = f"; did you mean {quote(close)}?"
    else:
        hint = ""
    return c.add(path, 'must be a Compute Engine region name such as "us-central1", got '
                       f"{quote(text)}{hint}")


def _zones(c: Checker, value: Any, path: str, region: str | None) -> tuple[str, ...]:
    def rule(zone: str) -> str | None:
        if not re.fullmatch(ZONE, zone):
            close = zone.strip().lower()
            glued = re.fullmatch(f"({REGION})([a-z])", close)
            if glued:
                close = f"{glued[1]}-{glued[2]}"
            hint = f"; did you mean {quote(close)}?" if re.fullmatch(ZONE, close) else ""
            return ('must be a zone name such as "us-central1-a" (the region, "-" and a '
                    f"letter), got {quote(zone)}{hint}")
        if region is not None and zone.rsplit("-", 1)[0] != region:
            return (f"zone {quote(zone)} is not in gcp.region {quote(region)}; the region's "
                    f"zones are {region}-a, {region}-b, ...")
        return None

    return () if value is MISSING else c.strings(value, path, "zone names", rule)


def _machine_types(c: Checker, value: Any, path: str) -> tuple[str, ...]:
    def rule(name: str) -> str | None:
        if re.fullmatch(MACHINE_TYPE, name) and len(name) <= 63:
            return None
        close = name.strip().lower()
        if re.fullmatch(r"[a-z0-9]+\.[a-z0-9-]+", close):
            hint = "; that is an AWS instance type"
        elif re.fullmatch(MACHINE_TYPE, close) and len(close) <= 63:
            hint = f"; did you mean {quote(close)}?"
        else:
            hint = ""
        return ('must be a Compute Engine machine type such as "g2-standard-24" or '
                f'"n2-custom-8-32768" (series-kind-size), got {quote(name)}{hint}')

    return () if value is MISSING else c.strings(value, path, "machine types", rule)


def _image(c: Checker, value: Any, path: str) -> str | None:
    text = c.string(value, path, nonempty=True)
    if text is None or re.fullmatch(IMAGE, text):
        return text
    close = text.strip().lower()
    family = re.fullmatch(f"(global/images/)?family/(?P<family>{NAME})", close)
    gcloud = re.fullmatch(f"(?P<project>{PROJECT})/(?P<name>{NAME})", close)
    if re.fullmatch(IMAGE, close):
        hint = f"; did you mean {quote(close)}?"
    elif family:
        hint = (f'; a family needs its project: "projects/PROJECT/global/images/family/'
                f'{family["family"]}"')
    elif gcloud:
        project, name = gcloud["project"], gcloud["name"]
        hint = (f'; did you mean "projects/{project}/global/images/family/{name}" (a family) '
                f'or "projects/{project}/global/images/{name}" (one image)?')
    elif close.startswith("ami-"):
        hint = "; that is an AWS AMI id"
    else:
        hint = ""
    return c.add(path, f'must be {IMAGE_FORMS}, such as "{IMAGE_EXAMPLE}", got '
                       f"{quote(text)}{hint}")


def _ssh_user(c: Checker, value: Any, path: str) -> str | None:
    if value is MISSING:
        return DEFAULT_SSH_USER
    user = matching(c, value, path, UNIX_USER, UNIX_USER_RULE)
    if user == "root":
        return c.add(path, "must not be \"root\": Compute Engine's guest agent makes no root "
                           'logins from ssh-keys; keep the default "composer" or name another '
                           "user (composer runs sudo where it needs root)")
    if user in SYSTEM_NAMES or (user or "").startswith(("systemd-", "_")):
        return c.add(path, f"{quote(user)} is a system account or group of the images (no "
                           'login shell, or not a user at all): keep the default "composer" '
                           "or name a user of your own")
    return user


#: Accounts and groups Debian, Ubuntu and Compute Engine's images already have: the
#: boot step would give their home an authorized key, or useradd would refuse the name.
SYSTEM_NAMES = frozenset((
    "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
    "www-data", "backup", "list", "irc", "gnats", "nobody", "nogroup", "sshd", "messagebus",
    "syslog", "uuidd", "tcpdump", "tss", "landscape", "pollinate", "polkitd", "dnsmasq",
    "lxd", "chrony", "ntp", "google-sudoers", "sudo", "adm", "wheel", "staff", "users",
    "disk", "kmem", "dialout", "cdrom", "floppy", "tape", "audio", "video", "plugdev",
    "netdev", "shadow", "utmp", "operator", "src", "sasl", "input", "kvm", "render",
    "docker", "crontab", "ssh",
))


def _placement(c: Checker, value: Any, path: str, cluster: ClusterSpec | None,
               types: tuple[str, ...]) -> str | None:
    from composer.targets.gcp.capacity import compact_support

    placement = c.described(value, path, GCP.field("placement"))
    nodes = None if cluster is None else cluster.nodes
    refused = [t for t in types if compact_support(t) is False]
    if placement is None and value is MISSING and nodes is not None:
        # Compact only where every candidate type takes it (not N1, E2...).
        return "compact" if nodes > 1 and not refused else "none"
    if placement == "compact" and nodes == 1:
        return c.add(path, 'compact places several nodes close together, and cluster.nodes '
                           'is 1: set gcp.placement = "none" or remove it')
    if placement == "compact" and refused:
        return c.add(path, f"compact placement is not offered for {quote(refused[0])} "
                           f"({series(refused[0]).upper()} series): set gcp.placement = "
                           '"none", or choose types of a series that takes it (N2, C2, A2, '
                           "A3, G2, ...)")
    return placement


def _subnetwork(c: Checker, value: Any, path: str, region: str | None) -> str | None:
    text = matching(c, value, path, SUBNETWORK, 'must be a subnetwork name or '
                    '"projects/PROJECT/regions/REGION/subnetworks/SUBNETWORK"')
    where = re.search(f"/regions/({REGION})/", text or "")
    if where and region is not None and where[1] != region:
        return c.add(path, f"is in region {quote(where[1])}, not gcp.region {quote(region)}: "
                           f"name a subnetwork of {region}")
    return text


def _labels(c: Checker, value: Any, path: str) -> tuple[tuple[str, str], ...]:
    if value is MISSING:
        return ()
    if not isinstance(value, dict):
        return c.add(path, f'must be a table of "key" = "value", got {describe(value)}') or ()
    if len(value) > MAX_LABELS:
        c.add(path, f"has {len(value)} labels; at most {MAX_LABELS} (Compute Engine allows 64 "
                    "on a resource, and composer sets 3 of its own)")
    pairs = []
    for key, raw in value.items():
        where = join(path, key)
        name = _label_key(c, key, where)
        if isinstance(raw, (bool, int, float)):
            c.add(where, f"must be a string; quote it (got {describe(raw)})")
            continue
        text = _label_text(c, c.string(raw, where), where, "value", LABEL_VALUE)
        if name is not None and text is not None:
            pairs.append((name, text))
    return tuple(sorted(pairs))


def _label_key(c: Checker, key: str, where: str) -> str | None:
    name = _label_text(c, c.string(key, where, nonempty=True), where, "key", LABEL_KEY)
    if name is not None and name.startswith(RESERVED_LABEL_PREFIXES):
        prefix = next(p for p in RESERVED_LABEL_PREFIXES if name.startswith(p))
        owner = ("composer (composer-run-id, ...)" if prefix == "composer-"
                 else "Google Cloud")
        return c.add(where, f"label keys starting with {quote(prefix)} are reserved for "
                            f"{owner}; choose another key")
    return name


def _label_text(c: Checker, text: str | None, where: str, what: str,
                pattern: str) -> str | None:
    if text is None or re.fullmatch(pattern, text):
        return text
    if len(text) > 63:
        return c.add(where, f"label {what} is {len(text)} characters; Compute Engine allows "
                            "at most 63")
    close = re.sub(r"[^a-z0-9_-]", "-", text.lower())
    hint = f"; did you mean {quote(close)}?" if re.fullmatch(pattern, close) else ""
    if text != text.lower() and text.lower() == close:
        return c.add(where, f"label {what}s are lowercase: use lowercase{hint}")
    rule = ("label keys are a-z, 0-9, '_' and '-', starting with a letter" if what == "key"
            else "label values are a-z, 0-9, '_' and '-'")
    return c.add(where, f"{rule}, got {quote(text)}{hint}")


def expand_gcp(config: GcpSpec) -> dict[str, Any]:
    """``[gcp]`` as checked, defaults filled in (``project`` too, when it came from
    ``GOOGLE_CLOUD_PROJECT``), for ``composer validate --json`` and the record."""
    return {
        "project": config.project, "region": config.region, "zones": list(config.zones),
        "machine_types": list(config.machine_types),
        "accelerator": None if config.accelerator is None else {"type": config.accelerator},
        "image": config.image, "ssh_user": config.ssh_user,
        "provisioning": config.provisioning, "placement": config.placement,
        "boot_disk_gb": config.boot_disk_gb, "network": config.network,
        "subnetwork": config.subnetwork, "ssh_cidrs": list(config.ssh_cidrs),
        "labels": dict(config.labels),
    }


GCP = Section(
    "gcp", 'The GCP target\'s own section: required with cluster.target = "gcp".',
    fields=FIELDS, target="gcp", check=check_gcp, expand=expand_gcp,
)
