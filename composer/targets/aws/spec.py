"""The ``[aws]`` section of a job spec: its fields and its check, giving ``AwsSpec``.

Only the form of each value is checked here (no AWS call): whether the region, the
instance types and the image exist is preflight's work (``preflight.py``).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from composer.spec.check import Checker, Table
from composer.spec.fields import MISSING, Section, boolean, choice, integer, other, string
from composer.spec.model import ClusterSpec
from composer.spec.text import describe, join, quote
from composer.targets.aws.config import DEFAULT_ROOT_VOLUME_GB, MARKETS, PLACEMENTS, AwsSpec
from composer.targets.forms import (
    CIDR,
    UNIX_USER,
    UNIX_USER_RULE,
    check_cidrs,
    matching,
    strings_schema,
)

REGION = r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}"
ZONE_SUFFIX = r"[a-z]|(-[a-z0-9]+)+"  # us-east-1 + "a", or a Local Zone's "-bos-1a"
INSTANCE_TYPE = r"[a-z][a-z0-9-]*\.[a-z0-9]+(-[a-z0-9]+)*"
AMI = r"ami-([0-9a-f]{8}|[0-9a-f]{17})"
SSM = r"ssm:/[A-Za-z0-9_.\-/]{1,2040}"
SUBNET = r"subnet-([0-9a-f]{8}|[0-9a-f]{17})"
PRICE = r"[0-9]{1,10}(\.[0-9]{1,10})?"
RESERVED_TAG_PREFIXES = ("aws:", "composer:")
MAX_TAGS = 40  # AWS allows 50 tags on a resource; composer sets some of its own
MAX_TAG_KEY, MAX_TAG_VALUE = 128, 256
SSM_EXAMPLE = ("ssm:/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3"
               "/ami-id")
_RESERVED = "^([aA][wW][sS]|[cC][oO][mM][pP][oO][sS][eE][rR]):"


FIELDS = (
    string("region", 'an AWS region name, e.g. `"us-east-1"`', required=True, pattern=REGION),
    other("zones", "array of strings", 'zone names of `region` (`"us-east-1a"`), in order of '
          "preference; no zone twice", strings_schema(REGION + f"({ZONE_SUFFIX})"),
          shown_default="every zone of the region that offers the first instance type"),
    other("instance_types", "array of strings", 'instance types (`family.size`, e.g. '
          '`"g5.12xlarge"`), in order of preference; at least one, none twice',
          strings_schema(INSTANCE_TYPE), required=True),
    string("image", 'an AMI id (`"ami-"` and 8 or 17 hex digits) or `"ssm:"` and a '
           f'parameter path (`"{SSM_EXAMPLE}"`), resolved to an AMI id pinned in `lock.json`',
           required=True, pattern=f"{AMI}|{SSM}"),
    string("ssh_user", "the login user on the image, a Unix user name; needed when composer "
           "cannot tell it from the image's family", pattern=UNIX_USER,
           shown_default="from the image's family"),
    choice("market", '`"on-demand"` or `"spot"`', MARKETS, default="on-demand"),
    other("max_spot_price", "string or number", 'only with `market = "spot"`: the most to pay, '
          'in USD per instance-hour (`"1.25"`); more than 0',
          {"anyOf": [{"type": "string", "pattern": f"^{PRICE}$"},
                     {"type": "number", "exclusiveMinimum": 0}]},
          shown_default="none (up to the on-demand price)"),
    choice("placement", '`"cluster"` (a cluster placement group: nodes close together) or '
           '`"none"`', PLACEMENTS, shown_default='`"cluster"` when `nodes` > 1, else `"none"`'),
    boolean("efa", "attach an Elastic Fabric Adapter to each node (the type must support it)",
            False),
    integer("root_volume_gb", "8–16384; the root volume's size in GB", 8, 16384,
            default=DEFAULT_ROOT_VOLUME_GB),
    string("subnet_id", '`"subnet-"` and 8 or 17 hex digits', pattern=SUBNET,
           shown_default="a default subnet of the region's default VPC"),
    other("ssh_cidrs", "array of strings", "IPv4 or IPv6 CIDR blocks that may reach port 22 "
          '(`"203.0.113.7/32"`); at least one; `"0.0.0.0/0"` only when written out',
          strings_schema(CIDR), required=True),
    other("tags", "table of strings", f"extra tags on every resource: keys of 1–{MAX_TAG_KEY} "
          "characters, not starting with `aws:` or `composer:`; values of at most "
          f"{MAX_TAG_VALUE} characters; at most {MAX_TAGS} tags",
          {"type": "object", "maxProperties": MAX_TAGS,
           "propertyNames": {"minLength": 1, "maxLength": MAX_TAG_KEY,
                             "not": {"pattern": _RESERVED}},
           "additionalProperties": {"type": "string", "maxLength": MAX_TAG_VALUE}},
          default={}),
)


def check_aws(c: Checker, table: Table, cluster: ClusterSpec | None) -> AwsSpec | None:
    count = c.count()
    region = _region(c, *c.get(table, AWS, "region"))
    zones = _zones(c, *c.get(table, AWS, "zones"), region)
    types = _instance_types(c, *c.get(table, AWS, "instance_types"))
    image = _image(c, *c.get(table, AWS, "image"))
    user = matching(c, *c.get(table, AWS, "ssh_user"), UNIX_USER, UNIX_USER_RULE)
    market = c.value(table, AWS, "market")
    price = _spot_price(c, *c.get(table, AWS, "max_spot_price"), market)
    nodes = cluster.nodes if cluster is not None else 1
    placement = c.described(*c.get(table, AWS, "placement"), AWS.field("placement"))
    efa = c.value(table, AWS, "efa")
    volume = c.value(table, AWS, "root_volume_gb")
    subnet = matching(c, *c.get(table, AWS, "subnet_id"), SUBNET,
                       'must be a subnet id: "subnet-" and 8 or 17 hex digits '
                       '("subnet-0123456789abcdef0")')
    cidrs = check_cidrs(c, *c.get(table, AWS, "ssh_cidrs"))
    tags = _tags(c, *c.get(table, AWS, "tags"))
    c.unknown_keys(table, AWS)
    if c.count() != count or region is None or image is None or not types or not cidrs:
        return None
    return AwsSpec(
        region=region, instance_types=types, image=image, ssh_cidrs=cidrs, zones=zones,
        ssh_user=user, market=market or "on-demand", max_spot_price=price,
        placement=placement or ("cluster" if nodes > 1 else "none"), efa=efa,
        root_volume_gb=volume, subnet_id=subnet, tags=tags,
    )


def _region(c: Checker, value: Any, path: str) -> str | None:
    return matching(c, value, path, REGION, 'must be an AWS region name such as "us-east-1"')


def _zones(c: Checker, value: Any, path: str, region: str | None) -> tuple[str, ...]:
    def rule(zone: str) -> str | None:
        if not re.fullmatch(REGION + f"({ZONE_SUFFIX})", zone):
            return f'must be a zone name such as "us-east-1a" (the region and a letter), ' \
                   f"got {quote(zone)}"
        if region is not None and not (
            zone.startswith(region) and re.fullmatch(ZONE_SUFFIX, zone[len(region):])
        ):
            return (f"zone {quote(zone)} is not in aws.region {quote(region)}; "
                    f"the region's zones are {region}a, {region}b, ...")
        return None

    return () if value is MISSING else c.strings(value, path, "zone names", rule)


def _instance_types(c: Checker, value: Any, path: str) -> tuple[str, ...]:
    def rule(name: str) -> str | None:
        if re.fullmatch(INSTANCE_TYPE, name):
            return None
        close = name.strip().lower()
        hint = f'; did you mean "{close}"?' if re.fullmatch(INSTANCE_TYPE, close) else ""
        return f'must be an instance type such as "g5.12xlarge" (family.size), got ' \
               f"{quote(name)}{hint}"

    return () if value is MISSING else c.strings(value, path, "instance types", rule)


def _image(c: Checker, value: Any, path: str) -> str | None:
    text = c.string(value, path, nonempty=True)
    if text is None or re.fullmatch(f"{AMI}|{SSM}", text):
        return text
    if text.startswith("ami-"):
        rule = 'an AMI id is "ami-" and 8 or 17 lowercase hex digits ("ami-0123456789abcdef0")'
    elif text.startswith(("ssm:", "resolve:ssm:")):
        rule = (f'an SSM parameter is "ssm:" and its path, which starts with "/" '
                f'("{SSM_EXAMPLE}")')
    else:
        rule = ('must be an AMI id ("ami-0123456789abcdef0") or "ssm:" and a parameter path '
                f'("{SSM_EXAMPLE}"); image names are not looked up')
    return c.add(path, f"{rule}, got {quote(text)}")


def _spot_price(c: Checker, value: Any, path: str, market: str | None) -> str | None:
    if value is MISSING:
        return None
    if market is not None and market != "spot":
        return c.add(path, f'applies only with market = "spot" (aws.market is "{market}"); '
                           'set aws.market = "spot" or remove it')
    rule = 'must be a price in USD per instance-hour such as "1.25"'
    if isinstance(value, str):
        if not re.fullmatch(PRICE, value):
            return c.add(path, f"{rule}, got {describe(value)}")
        text = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            return c.add(path, f"{rule}, got {describe(value)}")
        text = format(Decimal(str(value)), "f")
    else:
        return c.add(path, f"{rule} (a string or a number), got {describe(value)}")
    if Decimal(text) <= 0:
        return c.add(path, f"must be more than 0, got {describe(value)}")
    return text


def _tags(c: Checker, value: Any, path: str) -> tuple[tuple[str, str], ...]:
    if value is MISSING:
        return ()
    if not isinstance(value, dict):
        return c.add(path, f'must be a table of "key" = "value", got {describe(value)}') or ()
    if len(value) > MAX_TAGS:
        c.add(path, f"has {len(value)} tags; at most {MAX_TAGS} (AWS allows 50 on a resource, "
                    "and composer sets its own)")
    pairs = []
    for key, raw in value.items():
        where = join(path, key)
        name = c.string(key, where, nonempty=True)
        if name is not None and len(name) > MAX_TAG_KEY:
            name = c.add(where, f"tag key is {len(name)} characters; AWS allows at most "
                                f"{MAX_TAG_KEY}")
        if name is not None and name.lower().startswith(RESERVED_TAG_PREFIXES):
            prefix = name.split(":")[0] + ":"
            owner = "AWS" if prefix.lower() == "aws:" else "composer (composer:run-id, ...)"
            name = c.add(where, f"tag keys starting with {quote(prefix)} are reserved for "
                                f"{owner}; choose another key")
        if isinstance(raw, (bool, int, float)):
            c.add(where, f"must be a string; quote it (got {describe(raw)})")
            continue
        text = c.string(raw, where)
        if text is not None and len(text) > MAX_TAG_VALUE:
            text = c.add(where, f"tag value is {len(text)} characters; AWS allows at most "
                                f"{MAX_TAG_VALUE}")
        if name is not None and text is not None:
            pairs.append((name, text))
    return tuple(sorted(pairs))


def expand_aws(config: AwsSpec) -> dict[str, Any]:
    """``[aws]`` as written, defaults filled in, for ``composer validate --json`` and the
    record."""
    return {
        "region": config.region, "zones": list(config.zones),
        "instance_types": list(config.instance_types), "image": config.image,
        "ssh_user": config.ssh_user, "market": config.market,
        "max_spot_price": config.max_spot_price, "placement": config.placement,
        "efa": config.efa, "root_volume_gb": config.root_volume_gb,
        "subnet_id": config.subnet_id, "ssh_cidrs": list(config.ssh_cidrs),
        "tags": dict(config.tags),
    }


AWS = Section(
    "aws", 'The AWS target\'s own section: required with cluster.target = "aws".',
    fields=FIELDS, target="aws", check=check_aws, expand=expand_aws,
    extra={"dependencies": {"max_spot_price": {
        "required": ["market"], "properties": {"market": {"const": "spot"}}}}},
)
