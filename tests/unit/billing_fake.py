"""A local HTTP fake of the Cloud Billing Catalog API, for google-cloud-billing's REST
client pointed at it through ``COMPOSER_BILLING_ENDPOINT``.

It serves ``GET /v1/services/{service}/skus`` with ``pageSize`` and ``pageToken``; a SKU
has the shape of the API reference
(https://cloud.google.com/billing/docs/reference/rest/v1/services.skus/list):
``name``, ``skuId``, ``description``, ``category{serviceDisplayName, resourceFamily,
resourceGroup, usageType}``, ``serviceRegions``, ``pricingInfo[]{effectiveTime, summary,
pricingExpression{usageUnit, usageUnitDescription, baseUnit, displayQuantity,
tieredRates[]{startUsageAmount, unitPrice{currencyCode, units, nanos}}},
currencyConversionRate}``, ``serviceProviderName``; a page is ``{"skus": [...],
"nextPageToken": "..."}`` (empty on the last). Errors are
``{"error": {"code", "message", "status"}}``. The SKUs below are named as Compute
Engine's are, with round made-up prices.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

COMPUTE = "6F81-5844-456A"
EFFECTIVE = "2026-01-05T08:00:00.000000Z"
REGION = "us-central1"


def sku(description: str, usage: str, usd: float, unit: str = "h",
        regions: tuple[str, ...] = (REGION,), group: str = "CPU",
        family: str = "Compute", sku_id: str | None = None) -> dict[str, Any]:
    """One SKU of Compute Engine as the API answers it."""
    units, nanos = int(usd), round((usd - int(usd)) * 1e9)
    ident = sku_id or hashlib.sha256(f"{description}|{usage}|{regions}".encode()).hexdigest()
    ident = f"{ident[:4]}-{ident[4:8]}-{ident[8:12]}".upper()
    return {
        "name": f"services/{COMPUTE}/skus/{ident}", "skuId": ident,
        "description": description,
        "category": {"serviceDisplayName": "Compute Engine", "resourceFamily": family,
                     "resourceGroup": group, "usageType": usage},
        "serviceRegions": list(regions),
        "pricingInfo": [{
            "effectiveTime": EFFECTIVE, "summary": "",
            "pricingExpression": {
                "usageUnit": unit, "usageUnitDescription": "hour", "baseUnit": "s",
                "baseUnitDescription": "second", "baseUnitConversionFactor": 3600,
                "displayQuantity": 1,
                "tieredRates": [{"startUsageAmount": 0,
                                 "unitPrice": {"currencyCode": "USD", "units": str(units),
                                               "nanos": nanos}}]},
            "currencyConversionRate": 1}],
        "serviceProviderName": "Google",
    }


def compute_catalog() -> list[dict[str, Any]]:
    """The SKUs the tests price machines from, among others that must not match."""
    return [
        sku("E2 Instance Core running in Americas", "OnDemand", 0.02),
        sku("E2 Instance Ram running in Americas", "OnDemand", 0.003, "GiBy.h", group="RAM"),
        sku("Spot Preemptible E2 Instance Core running in Americas", "Preemptible", 0.007),
        sku("Spot Preemptible E2 Instance Ram running in Americas", "Preemptible", 0.001,
            "GiBy.h", group="RAM"),
        # decoys: another region, a custom type, a commitment, a series with a longer name
        sku("E2 Instance Core running in Belgium", "OnDemand", 0.9, regions=("europe-west1",)),
        sku("E2 Custom Instance Core running in Americas", "OnDemand", 0.8),
        sku("Commitment v1: E2 Cpu in Americas for 1 Year", "Commit1Yr", 0.01),
        sku("N2D AMD Instance Core running in Americas", "OnDemand", 0.7),
        sku("N1 Predefined Instance Core running in Americas", "OnDemand", 0.03,
            group="N1Standard"),
        sku("N1 Predefined Instance Ram running in Americas", "OnDemand", 0.004, "GiBy.h",
            group="N1Standard"),
        sku("Nvidia Tesla T4 GPU running in Americas", "OnDemand", 0.35, group="GPU"),
        sku("G2 Instance Core running in Americas", "OnDemand", 0.025),
        sku("G2 Instance Ram running in Americas", "OnDemand", 0.0029, "GiBy.h", group="RAM"),
        sku("Nvidia L4 GPU running in Americas", "OnDemand", 0.56, group="GPU"),
        sku("Nvidia L4 GPU attached to Spot Preemptible VMs running in Americas",
            "Preemptible", 0.22, group="GPU"),
        sku("Nvidia Tesla A100 80GB GPU running in Americas", "OnDemand", 9.9, group="GPU"),
        sku("Storage PD Capacity", "OnDemand", 0.04, "GiBy.mo", family="Storage"),
    ]


@dataclass
class Catalog:
    """What the fake serves: SKUs per service id, and what it was asked."""

    skus: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {COMPUTE: compute_catalog()})
    #: Answer every request with (status, message) instead.
    failing: tuple[int, str] | None = None
    #: Most SKUs on one page (the API allows up to 5000).
    page_limit: int = 5000
    log: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler(BaseHTTPRequestHandler):
    catalog: Catalog
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        return None

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with self.catalog.lock:
            self.catalog.log.append(f"GET {url.path}?{url.query}")
            status, body = self.dispatch(url.path, query)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def dispatch(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        catalog = self.catalog
        if catalog.failing is not None:
            code, message = catalog.failing
            return code, error(code, message)
        parts = path.strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["v1", "services"] or parts[3] != "skus":
            return 404, error(404, f"no such path {path}")
        if parts[2] not in catalog.skus:
            return 404, error(404, f"Service {parts[2]} not found")
        if query.get("currencyCode", "USD") != "USD":
            return 400, error(400, "the fake serves USD only")
        listed = catalog.skus[parts[2]]
        size = min(int(query.get("pageSize") or 5000), catalog.page_limit)
        start = int(query.get("pageToken") or 0)
        page = listed[start:start + size]
        after = start + size
        return 200, {"skus": page, "nextPageToken": str(after) if after < len(listed) else ""}


def error(code: int, message: str) -> dict[str, Any]:
    status = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}
    return {"error": {"code": code, "message": message,
                      "status": status.get(code, "INTERNAL")}}


@contextmanager
def serve(catalog: Catalog) -> Iterator[str]:
    """Serve ``catalog`` on 127.0.0.1; yields the endpoint ``http://127.0.0.1:PORT``."""
    handler = type("CatalogHandler", (Handler,), {"catalog": catalog})
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
