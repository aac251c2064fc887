"""google-cloud-compute, imported lazily: credentials, the clients, and Compute Engine
errors as composer errors.

``google-cloud-compute`` is the ``[gcp]`` extra. Credentials are Application Default
Credentials (``google.auth.default()``: ``GOOGLE_APPLICATION_CREDENTIALS``, or
``gcloud auth application-default login``, or a VM's service account).

``COMPOSER_GCE_ENDPOINT`` (``http://127.0.0.1:PORT``) points every client at another
Compute Engine REST endpoint, an emulator or a test's fake, with anonymous credentials
(an emulator checks none); everything else runs as it does against Google.

Every call has a timeout: one HTTP request waits at most ``CALL_TIMEOUT_S``; reads are
retried on throttling, 5xx answers and dropped connections until ``DEADLINE_S``, so an
endpoint that accepts and never answers fails in about a minute; a whole call, pages
included, ends within ``bounded.WALL_S`` whatever the endpoint does. Every failure becomes
a ``ComposerError`` with the API's own message, never a traceback.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from composer.errors import ComposerError, PreflightError

PACKAGE = "composer-runs"
INSTALL_HINT = f"pip install '{PACKAGE}[gcp]'"
ENDPOINT_ENV = "COMPOSER_GCE_ENDPOINT"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
CREDENTIALS_HINT = (
    "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS "
    "to a service account key file"
)
CALL_TIMEOUT_S = 15.0  # one HTTP request
DEADLINE_S = 60.0  # one read, retries included
#: The Compute Engine clients composer uses: attribute of ``Clients`` -> client class.
CLIENT_CLASSES = {
    "projects": "ProjectsClient",
    "regions": "RegionsClient",
    "zones": "ZonesClient",
    "machine_types": "MachineTypesClient",
    "accelerator_types": "AcceleratorTypesClient",
    "images": "ImagesClient",
    "networks": "NetworksClient",
    "subnetworks": "SubnetworksClient",
    "instances": "InstancesClient",
    "firewalls": "FirewallsClient",
    "resource_policies": "ResourcePoliciesClient",
    "zone_operations": "ZoneOperationsClient",
    "region_operations": "RegionOperationsClient",
    "global_operations": "GlobalOperationsClient",
}
#: Methods that change something: sent once (no retry), still with a timeout.
WRITES = ("delete", "insert", "patch", "update", "set_labels")


def import_compute() -> Any:
    """The ``google.cloud.compute_v1`` module; ``PreflightError`` saying how to install
    it when it is missing."""
    try:
        return importlib.import_module("google.cloud.compute_v1")
    except ImportError:
        raise PreflightError(
            "the gcp target needs google-cloud-compute, which is not installed",
            hint=f"install composer with its gcp extra: {INSTALL_HINT}",
        ) from None


def endpoint() -> str | None:
    """``COMPOSER_GCE_ENDPOINT`` without a trailing slash; None when unset or empty."""
    value = os.environ.get(ENDPOINT_ENV, "").strip().rstrip("/")
    if not value:
        return None
    if not value.startswith(("http://", "https://")):
        scheme, sep, _rest = value.partition("://")
        said = f"has the scheme {scheme!r}; only http:// and https:// are served" if sep \
            else "has no scheme: the clients would take it for an https host name"
        raise PreflightError(
            f"{ENDPOINT_ENV}={value!r} {said}",
            hint=f"write it with its scheme, e.g. {ENDPOINT_ENV}=http://127.0.0.1:8080, "
                 "or unset it to use Google's endpoints")
    return value


@dataclass(frozen=True)
class Clients:
    """The Compute Engine clients of one project; each call through them has composer's
    timeout and retry settings."""

    project: str
    endpoint: str | None
    projects: Any
    regions: Any
    zones: Any
    machine_types: Any
    accelerator_types: Any
    images: Any
    networks: Any
    subnetworks: Any
    instances: Any
    firewalls: Any
    resource_policies: Any
    zone_operations: Any
    region_operations: Any
    global_operations: Any


def make_clients(project: str) -> Clients:
    """Clients for ``project``: ADC against Google, or anonymous against
    ``COMPOSER_GCE_ENDPOINT``. ``PreflightError`` (exit 2) without credentials."""
    compute = import_compute()
    where = endpoint()
    if where is not None:
        from google.auth.credentials import AnonymousCredentials

        credentials: Any = AnonymousCredentials()
        options: dict[str, Any] | None = {"api_endpoint": where}
    else:
        credentials = default_credentials()
        options = None
    made = {}
    with calling("client", "create", error=PreflightError):
        for attribute, class_name in CLIENT_CLASSES.items():
            client = getattr(compute, class_name)(credentials=credentials,
                                                  client_options=options)
            made[attribute] = Timed(client)
    return Clients(project=project, endpoint=where, **made)


def default_credentials() -> Any:
    """Application Default Credentials; ``PreflightError`` naming how to get them."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    named = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    try:
        credentials, _project = google.auth.default(scopes=list(SCOPES))
    except DefaultCredentialsError as exc:
        raise PreflightError(f"no Google Cloud credentials found ({one_line(str(exc))})",
                             hint=CREDENTIALS_HINT) from None
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
        # google.auth reads the file GOOGLE_APPLICATION_CREDENTIALS names without
        # guarding every shape: a directory, a JSON array, a key without its fields.
        where = f"GOOGLE_APPLICATION_CREDENTIALS ({named})" if named else \
            "the Application Default Credentials file"
        raise PreflightError(
            f"{where} is not a credentials file google.auth can read: "
            f"{type(exc).__name__}: {one_line(str(exc))}",
            hint="point GOOGLE_APPLICATION_CREDENTIALS at a service account key (JSON) or "
                 "unset it and run 'gcloud auth application-default login'") from None
    return credentials


def retry_policy() -> Any:
    """Reads: retried on throttling, 5xx and dropped connections, until ``DEADLINE_S``."""
    import requests
    from google.api_core import exceptions as gx
    from google.api_core import retry

    transient = retry.if_exception_type(
        gx.TooManyRequests, gx.InternalServerError, gx.BadGateway, gx.ServiceUnavailable,
        gx.GatewayTimeout, requests.exceptions.ConnectionError, requests.exceptions.Timeout)
    return retry.Retry(predicate=transient, initial=1.0, maximum=8.0, multiplier=2.0,
                       timeout=DEADLINE_S)


class Timed:
    """A client whose every method call gets ``timeout`` (and, for reads, ``retry``)
    unless the caller gives them."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._retry = retry_policy()

    @property
    def client(self) -> Any:
        return self._client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name.startswith("_") or not callable(method):
            return method
        retry = None if name.startswith(WRITES) else self._retry
        what = f"{type(self._client).__name__.removesuffix('Client')}.{name}"
        return partial(_timed_call, method, retry, what)


def _timed_call(method: Callable[..., Any], retry: Any, what: str, *args: Any,
                **kwargs: Any) -> Any:
    """The call with composer's timeout and retry, bounded (``bounded.py``): a listing
    comes back whole, as a list."""
    from composer.targets.gcp.bounded import bounded

    kwargs.setdefault("timeout", CALL_TIMEOUT_S)
    kwargs.setdefault("retry", retry)
    return bounded(lambda: method(*args, **kwargs), what)


# -- errors ---------------------------------------------------------------------------


def api_errors() -> tuple[type[BaseException], ...]:
    """Everything a client call can raise that composer answers with a message."""
    import requests
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    return (GoogleAPIError, GoogleAuthError, requests.exceptions.RequestException)


def status(exc: BaseException) -> int | None:
    """The HTTP status of a Compute Engine answer (None: no answer came)."""
    exc = _cause(exc)
    code = getattr(exc, "code", None)
    return int(code) if isinstance(code, int) else None


def reason(exc: BaseException) -> str:
    """The API's ``errors[0].reason`` ("notFound", "forbidden", ...), or ""."""
    errors = getattr(_cause(exc), "errors", None) or []
    first = errors[0] if errors else None
    return str(first.get("reason", "")) if isinstance(first, dict) else ""


def describe(exc: BaseException) -> str:
    """One line: the API's message (without the request's URL), or the error's own."""
    exc = _cause(exc)
    response = getattr(exc, "response", None)
    try:
        message = response.json()["error"]["message"]  # type: ignore[union-attr]
        if isinstance(message, str) and message:
            return f"{status(exc) or ''} {one_line(message)}".strip()
    except Exception:  # noqa: BLE001 - not a JSON error answer: fall back to the text
        pass
    text = getattr(exc, "message", None) or str(exc)
    return one_line(str(text)) or type(exc).__name__


def one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[0] if lines else "")[:300]


def _cause(exc: BaseException) -> BaseException:
    """The last error behind a ``RetryError`` (the retries' deadline passed)."""
    from google.api_core.exceptions import RetryError

    while isinstance(exc, RetryError) and exc.cause is not None:
        exc = exc.cause
    return exc


def is_credentials_error(exc: BaseException) -> bool:
    from google.auth.exceptions import GoogleAuthError, TransportError

    exc = _cause(exc)
    if isinstance(exc, TransportError):
        return False  # the token endpoint could not be reached: a network problem
    return isinstance(exc, GoogleAuthError) or status(exc) == 401


def is_unreachable(exc: BaseException) -> bool:
    import requests
    from google.auth.exceptions import TransportError

    return isinstance(_cause(exc), (requests.exceptions.RequestException, TransportError))


def translate(exc: BaseException, resource: str, operation: str,
              error: type[ComposerError] = ComposerError) -> ComposerError:
    """The composer error for a failed ``resource`` ``operation`` call."""
    what = f"Compute Engine {resource}.{operation}"
    if is_credentials_error(exc):
        return PreflightError(f"Google Cloud credentials refused ({what}: {describe(exc)})",
                              hint=CREDENTIALS_HINT)
    if is_unreachable(exc):
        return error(f"{what} failed: {describe(exc)}",
                     hint="Compute Engine cannot be reached from here: check the network, "
                          f"a proxy (HTTPS_PROXY) and {ENDPOINT_ENV} if set")
    return error(f"{what} failed: {describe(exc)}",
                 hint="check gcp.project, the credentials' roles (docs/targets/gcp.md) "
                      f"and {ENDPOINT_ENV} if set")


@contextmanager
def calling(resource: str, operation: str,
            error: type[ComposerError] = ComposerError) -> Iterator[None]:
    """Turn any client failure raised inside into a composer error (``error`` class)."""
    try:
        yield
    except ComposerError:
        raise
    except api_errors() as exc:
        raise translate(exc, resource, operation, error) from exc
