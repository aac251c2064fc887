"""AWS prices for the estimate: the Price List API through botocore's Stubber (moto has
no pricing API), spot prices from moto's DescribeSpotPriceHistory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from composer.cost import Price
from composer.targets.aws.pricing import (
    PRICING_REGION,
    on_demand_price,
    on_demand_rates,
    price,
    spot_price,
)
from tests.unit.aws_fakes import (
    REGION,
    StubbedSession,
    aws_env,  # noqa: F401 - fixture
    aws_spec,
    stubbed_client,
)

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")
from botocore.stub import ANY  # noqa: E402 - after the importorskip

PUBLISHED = "2026-02-03T19:52:34Z"


@pytest.fixture
def session(aws_env: None) -> Iterator[Any]:  # noqa: F811
    with moto.mock_aws():
        yield boto3.Session(region_name=REGION)


def product(instance_type: str, usd: str, unit: str = "Hrs") -> str:
    """One PriceList entry as the Price List API sends it: a JSON document, as text."""
    sku = "8XZ4T6HTVKYM3DUE"
    return json.dumps({
        "product": {"productFamily": "Compute Instance", "sku": sku, "attributes": {
            "instanceType": instance_type, "regionCode": REGION, "operatingSystem": "Linux",
            "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used",
            "location": "US East (N. Virginia)"}},
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {
            "offerTermCode": "JRTCKXETXF", "sku": sku, "effectiveDate": "2026-02-01T00:00:00Z",
            "priceDimensions": {f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                "unit": unit, "pricePerUnit": {"USD": usd}, "rateCode": "x",
                "description": f"${usd} per On Demand Linux {instance_type} Instance Hour",
                "beginRange": "0", "endRange": "Inf", "appliesTo": []}},
            "termAttributes": {}}}},
        "version": "20260203195234", "publicationDate": PUBLISHED,
    })


def expected_filters(instance_type: str) -> list[dict[str, str]]:
    pairs = [("instanceType", instance_type), ("regionCode", REGION),
             ("operatingSystem", "Linux"), ("tenancy", "Shared"), ("preInstalledSw", "NA"),
             ("capacitystatus", "Used")]
    return [{"Type": "TERM_MATCH", "Field": f, "Value": v} for f, v in pairs]


def stub_pricing(session: Any) -> tuple[StubbedSession, Any]:
    made, stub = stubbed_client(session, "pricing")
    assert made.meta.region_name == PRICING_REGION
    return StubbedSession(session, {"pricing": made}), stub


def test_on_demand_price_reads_the_hourly_usd_rate_and_its_date(session: Any) -> None:
    stubbed, stub = stub_pricing(session)
    stub.add_response("get_products", {"FormatVersion": "aws_v1",
                                       "PriceList": [product("g5.xlarge", "1.0060000000")]},
                      {"ServiceCode": "AmazonEC2", "FormatVersion": "aws_v1",
                       "Filters": expected_filters("g5.xlarge"), "MaxResults": ANY})
    with stub:
        found = on_demand_price(stubbed, REGION, "g5.xlarge")
    stub.assert_no_pending_responses()
    assert found.hourly == pytest.approx(1.006)
    assert found.as_of == PUBLISHED and found.error is None
    assert "on-demand g5.xlarge" in found.source and REGION in found.source
    assert found.parts[0]["sku"] == "8XZ4T6HTVKYM3DUE"


def test_on_demand_price_through_the_target(session: Any) -> None:
    stubbed, stub = stub_pricing(session)
    stub.add_response("get_products", {"PriceList": [product("t3.micro", "0.0104")]},
                      {"ServiceCode": "AmazonEC2", "FormatVersion": "aws_v1",
                       "Filters": expected_filters("t3.micro"), "MaxResults": ANY})
    pins = {"instance_type": "t3.micro", "region": REGION, "zone": "us-east-1a"}
    with stub:
        found = price(aws_spec(nodes=3), pins, stubbed)
    assert found.hourly == pytest.approx(0.0104)


def test_a_refused_price_list_is_said_plainly(session: Any) -> None:
    stubbed, stub = stub_pricing(session)
    stub.add_client_error("get_products", "AccessDeniedException",
                          "User is not authorized to perform: pricing:GetProducts")
    with stub:
        found = on_demand_price(stubbed, REGION, "g5.xlarge")
    assert found.hourly is None
    assert found.error is not None and "pricing GetProducts" in found.error
    assert "pricing:GetProducts" in found.error


def test_an_empty_or_unusable_price_list_is_no_price(session: Any) -> None:
    stubbed, stub = stub_pricing(session)
    stub.add_response("get_products", {"PriceList": [
        product("g5.xlarge", "0.0000000000"), product("g5.xlarge", "3", unit="Quantity"),
        "not json"]})
    with stub:
        found = on_demand_price(stubbed, REGION, "g5.xlarge")
    assert found.hourly is None
    assert found.error == "the price list has no on-demand USD hourly price for g5.xlarge " \
                          f"in {REGION}"


def test_on_demand_rates_takes_the_highest_of_several_products() -> None:
    rates = on_demand_rates(product("m5.large", "0.096")) + \
        on_demand_rates(json.loads(product("m5.large", "0.1")))
    assert sorted(r["usd_per_hour"] for r in rates) == [0.096, 0.1]


def test_spot_price_is_the_latest_per_zone_and_the_highest_zone_counts(session: Any) -> None:
    ec2 = session.client("ec2", region_name=REGION)
    calls: list[dict[str, Any]] = []

    def answer(params: dict[str, Any], **_: Any) -> None:
        calls.append(params)

    ec2.meta.events.register("provide-client-params.ec2.DescribeSpotPriceHistory", answer)
    found = spot_price(StubbedSession(session, {"ec2": ec2}), REGION, "t3.micro",
                       ["us-east-1a", "us-east-1b"])
    assert found.error is None, found.error
    assert {p["zone"] for p in found.parts} == {"us-east-1a", "us-east-1b"}
    assert found.hourly == max(p["usd_per_hour"] for p in found.parts) > 0
    assert found.as_of and found.as_of.startswith("2006-01-02")  # moto's fixed timestamp
    asked = calls[0]
    assert asked["InstanceTypes"] == ["t3.micro"]
    assert asked["ProductDescriptions"] == ["Linux/UNIX"]
    assert isinstance(asked["StartTime"], datetime)
    assert asked["Filters"] == [{"Name": "availability-zone",
                                 "Values": ["us-east-1a", "us-east-1b"]}]


def test_spot_history_keeps_the_latest_price_of_each_zone(session: Any) -> None:
    ec2, stub = stubbed_client(session, "ec2")
    old, new = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    stub.add_response("describe_spot_price_history", {"SpotPriceHistory": [
        {"AvailabilityZone": "us-east-1a", "SpotPrice": "0.9", "Timestamp": old,
         "InstanceType": "g5.xlarge", "ProductDescription": "Linux/UNIX"},
        {"AvailabilityZone": "us-east-1a", "SpotPrice": "0.4", "Timestamp": new,
         "InstanceType": "g5.xlarge", "ProductDescription": "Linux/UNIX"},
        {"AvailabilityZone": "us-east-1b", "SpotPrice": "0.5", "Timestamp": old,
         "InstanceType": "g5.xlarge", "ProductDescription": "Linux/UNIX"},
    ]})
    with stub:
        found = spot_price(StubbedSession(session, {"ec2": ec2}), REGION, "g5.xlarge", [])
    assert [(p["zone"], p["usd_per_hour"]) for p in found.parts] == \
        [("us-east-1a", 0.4), ("us-east-1b", 0.5)]
    assert found.hourly == 0.5 and found.as_of == old.isoformat()
    assert "every zone of us-east-1" in found.source


def test_no_spot_price_in_the_zones_is_said(session: Any) -> None:
    found = spot_price(session, REGION, "t3.micro", ["us-east-1zz"])
    assert found == Price.unreadable(found.source, "no spot price for t3.micro in us-east-1zz")


def test_spot_market_is_priced_from_the_spot_history(session: Any) -> None:
    spec = aws_spec(market="spot", zones=["us-east-1a"])
    found = price(spec, {"instance_type": "t3.micro", "region": REGION}, session)
    assert found.hourly is not None and found.source.startswith("EC2 spot price history")


def test_every_pricing_call_is_in_the_iam_policy(session: Any) -> None:
    from tests.unit.test_aws_preflight import policy_actions

    calls: set[str] = set()

    def record(model: Any, **_: Any) -> None:
        calls.add(f"{model.service_model.signing_name}:{model.name}")

    session.events.register("before-parameter-build", record)
    stubbed, stub = stub_pricing(session)
    stub.add_response("get_products", {"PriceList": [product("t3.micro", "0.0104")]})
    with stub:
        on_demand_price(stubbed, REGION, "t3.micro")
    spot_price(session, REGION, "t3.micro", [])
    assert calls == {"pricing:GetProducts", "ec2:DescribeSpotPriceHistory"}
    assert calls <= policy_actions()
