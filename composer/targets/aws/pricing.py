"""One AWS node's hourly price, for the estimate and the budget gate (``composer/cost.py``).

- ``market = "on-demand"``: the Price List Query API (``pricing`` GetProducts, whose
  endpoint is in us-east-1) for the instance type preflight chose, in the region
  (``regionCode``: the region's code, which unlike its long name is spelled the same
  everywhere), Linux, shared tenancy, no pre-installed software, capacity status
  ``Used``: the ``OnDemand`` term's USD rate per hour, and the list's publication date.
- ``market = "spot"``: ``ec2 DescribeSpotPriceHistory`` for Linux/UNIX in the candidate
  zones (``aws.zones``, else every zone of the region), from now: the latest price per
  zone; the estimate takes the highest, since the run may land in any of them.

A price that cannot be read comes back as ``Price.unreadable`` with AWS's own message,
never a guess. IAM: ``pricing:GetProducts``, ``ec2:DescribeSpotPriceHistory``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from composer.cost import Price
from composer.errors import ComposerError
from composer.targets.aws.render import aws_section
from composer.targets.aws.session import calling, client, make_session

if TYPE_CHECKING:
    from composer.spec import Spec

PRICING_REGION = "us-east-1"
SERVICE_CODE = "AmazonEC2"
SPOT_PRODUCT = "Linux/UNIX"
MAX_PAGES = 20
#: The on-demand product: one instance type, one region, as a plain Linux VM.
PRODUCT_FILTERS = (("operatingSystem", "Linux"), ("tenancy", "Shared"),
                   ("preInstalledSw", "NA"), ("capacitystatus", "Used"))


def price(spec: Spec, pins: dict[str, Any], session: Any = None) -> Price:
    """The hourly price of one node of the type ``pins`` chose, in ``aws.market``."""
    aws = aws_section(spec)
    instance_type = str(pins.get("instance_type") or aws.instance_types[0])
    region = str(pins.get("region") or aws.region)
    session = session if session is not None else make_session(region)
    if aws.market == "spot":
        return spot_price(session, region, instance_type, list(aws.zones))
    return on_demand_price(session, region, instance_type)


def on_demand_price(session: Any, region: str, instance_type: str) -> Price:
    source = f"AWS Price List API (on-demand {instance_type}, Linux, {region})"
    filters = [{"Type": "TERM_MATCH", "Field": name, "Value": value}
               for name, value in (("instanceType", instance_type), ("regionCode", region),
                                   *PRODUCT_FILTERS)]
    try:
        pricing = client(session, "pricing", PRICING_REGION)
        with calling("pricing", "GetProducts"):
            answer = pricing.get_products(ServiceCode=SERVICE_CODE, FormatVersion="aws_v1",
                                          Filters=filters, MaxResults=100)
    except ComposerError as exc:
        return Price.unreadable(source, exc.message)
    parts = [rate for raw in answer.get("PriceList") or [] for rate in on_demand_rates(raw)]
    if not parts:
        return Price.unreadable(source, f"the price list has no on-demand USD hourly price "
                                        f"for {instance_type} in {region}")
    dates = [p["published"] for p in parts if p.get("published")]
    return Price(max(p["usd_per_hour"] for p in parts), source,
                 as_of=max(dates) if dates else None, parts=tuple(parts))


def on_demand_rates(raw: Any) -> list[dict[str, Any]]:
    """The USD hourly rates of one PriceList entry (a JSON document as text): each
    ``terms.OnDemand.*.priceDimensions.*`` with unit ``Hrs`` and a price above 0."""
    try:
        product = json.loads(raw) if isinstance(raw, str) else raw
        terms = product["terms"]["OnDemand"]
        sku = str(product.get("product", {}).get("sku", ""))
    except (ValueError, TypeError, KeyError, AttributeError):
        return []
    published = product.get("publicationDate")
    rates = []
    for term in terms.values() if isinstance(terms, dict) else ():
        dimensions = term.get("priceDimensions", {}) if isinstance(term, dict) else {}
        for dim in dimensions.values() if isinstance(dimensions, dict) else ():
            try:
                usd = float(dim["pricePerUnit"]["USD"])
            except (KeyError, TypeError, ValueError):
                continue
            if dim.get("unit") == "Hrs" and usd > 0:
                rates.append({"sku": sku, "usd_per_hour": usd,
                              "description": str(dim.get("description", "")),
                              "published": published or term.get("effectiveDate")})
    return rates


def spot_price(session: Any, region: str, instance_type: str, zones: list[str]) -> Price:
    where = ", ".join(zones) if zones else f"every zone of {region}"
    source = f"EC2 spot price history ({instance_type}, {SPOT_PRODUCT}, {where}; the " \
             "highest zone)"
    ask: dict[str, Any] = {"InstanceTypes": [instance_type],
                           "ProductDescriptions": [SPOT_PRODUCT],
                           "StartTime": datetime.now(UTC)}
    if zones:
        ask["Filters"] = [{"Name": "availability-zone", "Values": zones}]
    latest: dict[str, dict[str, Any]] = {}
    try:
        ec2 = client(session, "ec2", region)
        pages = ec2.get_paginator("describe_spot_price_history").paginate(
            **ask, PaginationConfig={"MaxItems": 1000})
        with calling("ec2", "DescribeSpotPriceHistory"):
            for index, page in enumerate(pages):
                for item in page.get("SpotPriceHistory", []):
                    _keep_latest(latest, item)
                if index + 1 >= MAX_PAGES:
                    break
    except ComposerError as exc:
        return Price.unreadable(source, exc.message)
    if not latest:
        return Price.unreadable(source, f"no spot price for {instance_type} in {where}")
    parts = tuple(latest[zone] for zone in sorted(latest))
    highest = max(parts, key=lambda p: p["usd_per_hour"])
    return Price(highest["usd_per_hour"], source, as_of=highest["timestamp"], parts=parts)


def _keep_latest(latest: dict[str, dict[str, Any]], item: dict[str, Any]) -> None:
    try:
        zone, usd = str(item["AvailabilityZone"]), float(item["SpotPrice"])
    except (KeyError, TypeError, ValueError):
        return
    stamp = item.get("Timestamp")
    when = stamp.isoformat() if isinstance(stamp, datetime) else str(stamp or "")
    if zone not in latest or when > latest[zone]["timestamp"]:
        latest[zone] = {"zone": zone, "usd_per_hour": usd, "timestamp": when}
