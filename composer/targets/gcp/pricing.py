"""One GCP node's hourly price, for the estimate and the budget gate (``composer/cost.py``).

From the Cloud Billing Catalog API (``google-cloud-billing``, the ``[gcp]`` extra):
the public SKUs of Compute Engine (service ``6F81-5844-456A``) in USD. A machine type is
priced by its parts: its series' vCPU SKU (``E2 Instance Core``, ``N1 Predefined
Instance Core``, ``N2D AMD Instance Core``, ``Compute optimized Core``…) × its vCPUs,
its RAM SKU × its memory in GiB, and its GPUs' SKU (``Nvidia L4 GPU``, ``Nvidia Tesla T4
GPU``) × their count (bundled with the type, or attached as ``[gcp] accelerator``). A
SKU counts when it is of resource family ``Compute``, lists the region among its
``serviceRegions``, and has the usage type of ``[gcp] provisioning``: ``OnDemand`` for
standard, ``Preemptible`` (Spot) for spot. Its price is the first tier of its latest
``pricingInfo``; the date is that entry's ``effectiveTime``. A part with no SKU makes the
price unreadable, said with what was looked for: never a guess.

``COMPOSER_BILLING_ENDPOINT`` (``http://127.0.0.1:PORT``) points the client at another
Catalog API endpoint (a test's fake) with anonymous credentials, as
``COMPOSER_GCE_ENDPOINT`` does for Compute Engine. Against Google the Application
Default Credentials are used; the Catalog API needs no IAM role (its SKUs are public),
but the Cloud Billing API (``cloudbilling.googleapis.com``) must be enabled in the
credentials' quota project.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from composer.cost import CURRENCY, Price
from composer.errors import ComposerError, PreflightError
from composer.targets.gcp.config import series

if TYPE_CHECKING:
    from composer.spec import Spec

ENDPOINT_ENV = "COMPOSER_BILLING_ENDPOINT"
COMPUTE_SERVICE = "services/6F81-5844-456A"
PAGE_SIZE = 5000
MAX_PAGES = 100
#: The description of a series' vCPU SKU, less " running in <place>" ({S}: "E2", "N2D").
CORE_NAMES = ("{S} Instance Core", "{S} Predefined Instance Core", "{S} AMD Instance Core")
#: Series whose SKUs are named otherwise.
NAMED_SERIES = {"c2": "Compute optimized", "m1": "Memory-optimized Instance"}
USAGE = {"standard": "OnDemand", "spot": "Preemptible"}
UNITS = {"core": "h", "ram": "GiBy.h", "gpu": "h"}


def price(spec: Spec, pins: dict[str, Any], skus: list[dict[str, Any]] | None = None) -> Price:
    """The hourly price of one node of the machine type ``pins`` chose."""
    config = spec.target_config
    machine_type = str(pins.get("machine_type") or config.machine_types[0])
    region = str(pins.get("region") or config.region)
    info = (pins.get("types") or {}).get(machine_type)
    provisioning = getattr(config, "provisioning", "standard")
    if not isinstance(info, dict):
        return Price.unreadable(f"Cloud Billing Catalog API ({machine_type}, {region})",
                                f"preflight found no vCPUs and memory for {machine_type}")
    source = (f"Cloud Billing Catalog API ({provisioning} {machine_type}"
              + (f" with {info['gpus']} {info['gpu_model']}" if info.get("gpus") else "")
              + f", {region})")
    try:
        listed = skus if skus is not None else list_skus()
    except ComposerError as exc:
        return Price.unreadable(source, exc.message)
    wanted = parts_wanted(machine_type, info)
    return machine_price(listed, wanted, region, USAGE[provisioning], source)


def parts_wanted(machine_type: str, info: dict[str, Any]) -> list[tuple[str, str, float]]:
    """``(kind, model, quantity)`` for each part of one node: its vCPUs, its RAM in GiB
    and its GPUs (model: the series, or the accelerator type)."""
    kind = series(machine_type)
    wanted = [("core", kind, float(info["vcpus"])),
              ("ram", kind, float(info["memory_mb"]) / 1024)]
    if info.get("gpus") and info.get("gpu_model"):
        wanted.append(("gpu", str(info["gpu_model"]), float(info["gpus"])))
    return wanted


def machine_price(skus: list[dict[str, Any]], wanted: list[tuple[str, str, float]],
                  region: str, usage: str, source: str) -> Price:
    """The sum of each wanted part's rate × its quantity (``skus``: REST-shaped SKUs)."""
    parts: list[dict[str, Any]] = []
    for kind, model, quantity in wanted:
        found = [r for sku in skus if (r := _rate(sku, kind, model, region, usage))]
        if not found:
            what = f"{model} GPU" if kind == "gpu" else f"{model.upper()} {kind}"
            return Price.unreadable(
                source, f"no {usage} SKU for {what} in {region} among {len(skus)} "
                        "Compute Engine SKUs")
        rate = max(found, key=lambda r: r["usd_per_unit"])
        parts.append({**rate, "part": kind, "quantity": round(quantity, 6)})
    hourly = round(sum(p["usd_per_unit"] * p["quantity"] for p in parts), 9)
    dates = [p["effective"] for p in parts if p.get("effective")]
    return Price(hourly, source, as_of=max(dates) if dates else None, parts=tuple(parts))


def _rate(sku: dict[str, Any], kind: str, model: str, region: str,
          usage: str) -> dict[str, Any] | None:
    """The part's rate from ``sku`` when it is the SKU of that part, else None."""
    category = sku.get("category") or {}
    if category.get("resourceFamily") != "Compute" or category.get("usageType") != usage:
        return None
    if region not in (sku.get("serviceRegions") or ()):
        return None
    description = str(sku.get("description", ""))
    if not _describes(description, kind, model):
        return None
    infos = sku.get("pricingInfo") or []
    if not infos:
        return None
    info = infos[-1]
    expression = info.get("pricingExpression") or {}
    if expression.get("usageUnit") != UNITS[kind]:
        return None
    tiers = sorted(expression.get("tieredRates") or [],
                   key=lambda t: float(t.get("startUsageAmount") or 0))
    if not tiers:
        return None
    unit = tiers[0].get("unitPrice") or {}
    if unit.get("currencyCode", CURRENCY) != CURRENCY:
        return None
    usd = int(unit.get("units") or 0) + int(unit.get("nanos") or 0) / 1e9
    return {"sku": str(sku.get("skuId", "")), "description": description,
            "usd_per_unit": usd, "unit": UNITS[kind], "effective": info.get("effectiveTime")}


def _describes(description: str, kind: str, model: str) -> bool:
    body = description.split(" running in ", 1)[0]
    body = body.replace(" attached to Spot Preemptible VMs", "")
    for prefix in ("Spot Preemptible ", "Preemptible "):
        body = body.removeprefix(prefix)
    if kind == "gpu":
        return body.endswith(" GPU") and _gpu_words(body[:-4]) == _gpu_words(model)
    part = "Core" if kind == "core" else "Ram"
    named = NAMED_SERIES.get(model)
    if named is not None:
        return body == f"{named} {part}"
    return body in {name.format(S=model.upper()).replace("Core", part) for name in CORE_NAMES}


def _gpu_words(name: str) -> set[str]:
    """``nvidia-tesla-a100`` and ``Nvidia Tesla A100`` alike: {"a100"}."""
    words = name.lower().replace("-", " ").split()
    return {w for w in words if w not in ("nvidia", "tesla")}


# -- the Catalog API -------------------------------------------------------------------


def endpoint() -> str | None:
    value = os.environ.get(ENDPOINT_ENV, "").strip().rstrip("/")
    if not value:
        return None
    if not value.startswith(("http://", "https://")):
        raise PreflightError(f"{ENDPOINT_ENV}={value!r} has no http:// or https:// scheme",
                             hint=f"write it with its scheme, e.g. {ENDPOINT_ENV}="
                                  "http://127.0.0.1:8080, or unset it to use Google's")
    return value


def make_client() -> Any:
    """A Catalog API client (REST): anonymous at ``COMPOSER_BILLING_ENDPOINT``, else with
    the Application Default Credentials."""
    from composer.targets.gcp.session import INSTALL_HINT, default_credentials

    try:
        billing = importlib.import_module("google.cloud.billing_v1")
    except ImportError:
        raise PreflightError("reading GCP prices needs google-cloud-billing, which is not "
                             "installed", hint=f"install composer with its gcp extra: "
                                               f"{INSTALL_HINT}") from None
    where = endpoint()
    if where is not None:
        from google.auth.credentials import AnonymousCredentials

        credentials: Any = AnonymousCredentials()
        options: dict[str, Any] | None = {"api_endpoint": where}
    else:
        credentials, options = default_credentials(), None
    with billing_errors("client"):
        return billing.CloudCatalogClient(credentials=credentials, transport="rest",
                                          client_options=options)


def list_skus(client: Any = None) -> list[dict[str, Any]]:
    """Every public Compute Engine SKU in USD, as the REST API spells them; bounded in
    time and pages like every Compute Engine call (``bounded.py``)."""
    from composer.targets.gcp.bounded import bounded, unreadable
    from composer.targets.gcp.session import CALL_TIMEOUT_S, retry_policy

    client = client if client is not None else make_client()
    what = "Cloud Billing Catalog skus.list"

    def read() -> list[dict[str, Any]]:
        pager = client.list_skus(request={"parent": COMPUTE_SERVICE, "currency_code": CURRENCY,
                                          "page_size": PAGE_SIZE},
                                 timeout=CALL_TIMEOUT_S, retry=retry_policy())
        found: list[dict[str, Any]] = []
        seen: set[str] = set()
        for count, page in enumerate(pager.pages, start=1):
            if count > MAX_PAGES:
                raise unreadable(f"{what}: more than {MAX_PAGES} pages; stopped")
            found.extend(type(sku).to_dict(sku, preserving_proto_field_name=False)
                         for sku in page.skus)
            token = page.next_page_token
            if token and token in seen:
                raise unreadable(f"{what}: page token {token[:40]!r} came back again")
            seen.add(token)
        return found

    with billing_errors("skus.list"):
        return bounded(read, what)  # type: ignore[no-any-return]


@contextmanager
def billing_errors(operation: str) -> Iterator[None]:
    """A failed Catalog API call as a ``ComposerError`` with the API's own message."""
    from composer.targets.gcp.session import (
        CREDENTIALS_HINT,
        api_errors,
        describe,
        is_credentials_error,
    )

    try:
        yield
    except ComposerError:
        raise
    except api_errors() as exc:
        what = f"Cloud Billing Catalog API {operation} failed: {describe(exc)}"
        if is_credentials_error(exc):
            raise ComposerError(what, hint=CREDENTIALS_HINT) from exc
        raise ComposerError(what, hint="enable the Cloud Billing API "
                                       "(cloudbilling.googleapis.com) in the credentials' "
                                       f"quota project; check {ENDPOINT_ENV} if set") from exc
