"""Whether a failed ``apply`` ran out of cloud capacity, read from Terraform's diagnostics.

The providers print the cloud's own error code inside their diagnostic, e.g. the AWS
provider (aws-sdk-go-v2)::

    Error: creating EC2 Instance: operation error EC2: RunInstances, https response
    error StatusCode: 500, RequestID: ..., api error InsufficientInstanceCapacity: We
    currently do not have sufficient p4d.24xlarge capacity in the Availability Zone you
    requested (us-east-1a). ...

older ones ``Error launching source instance: InsufficientInstanceCapacity: ...``; the
Google provider prints the operation's error, whose code it may leave out::

    Error: Error waiting for instance to create: The zone
    'projects/p/zones/us-central1-a' does not have enough resources available to
    fulfill the request.  '(resource type:compute)'.

Capacity errors are the ones another zone or machine type, or the same one later, may
not have: AWS ``InsufficientInstanceCapacity``, ``Unsupported`` (the type is not
offered in that zone), ``SpotMaxPriceTooLow``, ``MaxSpotInstanceCountExceeded``; GCE
``ZONE_RESOURCE_POOL_EXHAUSTED`` (also ``_WITH_DETAILS``), any ``*_STOCKOUT``, the
"does not have enough resources" text, and for spot VMs ``QUOTA_EXCEEDED``. Anything
else (a bad image, missing permissions, an on-demand quota) is not: it fails the run
as before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_AWS_CODES = ("InsufficientInstanceCapacity", "SpotMaxPriceTooLow",
              "MaxSpotInstanceCountExceeded")
_AWS = re.compile(r"\b(" + "|".join(_AWS_CODES) + r")\b")
# "Unsupported" is a common word: only as the API error code.
_AWS_UNSUPPORTED = re.compile(
    r"(?:api error |Error launching source instance: |\bCode: ?)(Unsupported)\b")
_GCE = re.compile(r"\b(ZONE_RESOURCE_POOL_EXHAUSTED(?:_WITH_DETAILS)?|[A-Z_]*STOCKOUT)\b")
_GCE_TEXT = re.compile(r"does not have enough resources available to fulfill the request")
_QUOTA = re.compile(r"\b(QUOTA_EXCEEDED|quotaExceeded)\b|Quota '([A-Z0-9_]+)' exceeded")


def capacity_error(diagnostics: Sequence[str], spot: bool = False) -> str | None:
    """The capacity error code that ``diagnostics`` (Terraform's, as
    ``TerraformError.diagnostics`` holds them) name, or None when the failure is another
    kind. ``spot``: the run asked for spot/preemptible nodes, whose quota running out is a
    capacity error too."""
    text = "\n".join(diagnostics)
    for pattern in (_AWS, _AWS_UNSUPPORTED, _GCE):
        found = pattern.search(text)
        if found:
            return found.group(1)
    if _GCE_TEXT.search(text):
        return "ZONE_RESOURCE_POOL_EXHAUSTED"
    if spot:
        quota = _QUOTA.search(text)
        if quota:
            return "QUOTA_EXCEEDED" + (f" ({quota.group(2)})" if quota.group(2) else "")
    return None


def first_line(diagnostics: Sequence[str], limit: int = 300) -> str:
    """A short form of the error for the attempts list."""
    text = " ".join(" ".join(diagnostics).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
