"""boto3, imported lazily: the session, the clients, and AWS errors as composer errors.

boto3 is the ``[aws]`` extra. It reads ``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` and ``AWS_ENDPOINT_URL`` (a moto server, for instance)
itself; nothing here overrides them. Every botocore failure becomes a
``ComposerError`` naming the service and operation, never a traceback.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from composer.errors import ComposerError, PreflightError

PACKAGE = "composer-runs"
INSTALL_HINT = f"pip install '{PACKAGE}[aws]'"
CREDENTIALS_HINT = (
    "set AWS_PROFILE to a profile of ~/.aws/config (aws configure / aws sso login), "
    "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for "
    "temporary credentials)"
)
# Standard retry mode: throttling and 5xx answers are retried, a few times, with backoff.
RETRIES = {"mode": "standard", "max_attempts": 4}
FALLBACK_REGION = "us-east-1"


def import_boto3() -> ModuleType:
    """The boto3 module; ``PreflightError`` saying how to install it when it is missing."""
    try:
        return importlib.import_module("boto3")
    except ImportError:
        raise PreflightError(
            "the aws target needs boto3, which is not installed",
            hint=f"install composer with its aws extra: {INSTALL_HINT}",
        ) from None


def make_session(region: str) -> Any:
    """A boto3 Session for ``region`` (profile, keys and endpoint from the environment)."""
    boto3 = import_boto3()
    with calling("sts", "session", error=PreflightError):
        return boto3.Session(region_name=region)


CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 10, 15


def client(session: Any, service: str, region: str) -> Any:
    """A client of ``service`` in ``region`` with composer's retry settings."""
    from botocore.config import Config

    # An endpoint that accepts and never answers fails in about a minute (4 tries),
    # not botocore's default of 60 s a read.
    config = Config(retries=dict(RETRIES), user_agent_extra="composer",
                    connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S)
    with calling(service, "client", error=PreflightError):
        return session.client(service, region_name=region, config=config)


def known_regions(session: Any) -> set[str]:
    """The regions botocore knows of, in every partition (no call made)."""
    known: set[str] = set()
    for partition in session.get_available_partitions():
        known.update(session.get_available_regions("ec2", partition_name=partition))
    return known


def home_region(session: Any, region: str) -> str:
    """Where to ask about ``region``: itself when botocore knows it, else us-east-1
    (a typo has no endpoint; a region newer than botocore is listed there)."""
    return region if region in known_regions(session) else FALLBACK_REGION


def account_id(session: Any, region: str) -> str:
    """The account the credentials belong to (``sts get_caller_identity``), asked in
    ``region``'s home and, when that refuses the credentials, in us-east-1 (the STS
    endpoint of an opt-in region not enabled for the account refuses every token)."""
    from botocore.exceptions import ClientError

    home = home_region(session, region)
    with calling("sts", "GetCallerIdentity", error=PreflightError):
        try:
            return _caller_account(session, home)
        except ClientError as exc:
            if home == FALLBACK_REGION or not is_credentials_error(exc):
                raise
            return _caller_account(session, FALLBACK_REGION)


def _caller_account(session: Any, region: str) -> str:
    return str(client(session, "sts", region).get_caller_identity()["Account"])


def other_errors() -> tuple[type[Exception], ...]:
    """botocore's failures other than ``ClientError`` (an AWS answer with an error code):
    its own errors, and an answer it cannot parse (a proxy's or a fake's error page)."""
    from botocore.exceptions import BotoCoreError
    from botocore.parsers import ResponseParserError

    return (BotoCoreError, ResponseParserError)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ``ClientError`` ("" for other errors)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def describe(exc: BaseException) -> str:
    """One line for a botocore error: the AWS code and message, or botocore's own text."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        code = response["Error"].get("Code", "")
        message = response["Error"].get("Message", "")
        return f"{code}: {message}" if code and message else (code or message or str(exc))
    text = str(exc).strip()
    # One line: some errors (an unparsable answer) carry a whole HTML page.
    return text.splitlines()[0][:300] if text else type(exc).__name__


def is_credentials_error(exc: BaseException) -> bool:
    from botocore import exceptions as bx

    missing = (bx.NoCredentialsError, bx.PartialCredentialsError, bx.ProfileNotFound,
               bx.SSOError, bx.TokenRetrievalError, bx.CredentialRetrievalError)
    if isinstance(exc, missing):
        return True
    return error_code(exc) in {"InvalidClientTokenId", "UnrecognizedClientException",
                               "ExpiredToken", "ExpiredTokenException", "SignatureDoesNotMatch",
                               "AuthFailure"}


def translate(exc: BaseException, service: str, operation: str,
              error: type[ComposerError] = ComposerError) -> ComposerError:
    """The composer error for a botocore failure of ``service`` ``operation``."""
    if is_credentials_error(exc):
        return PreflightError(
            f"no usable AWS credentials ({service} {operation}: {describe(exc)})",
            hint=CREDENTIALS_HINT,
        )
    if type(exc).__name__ in ("EndpointConnectionError", "ConnectTimeoutError",
                              "ProxyConnectionError", "SSLError"):
        return error(f"AWS {service} {operation} failed: {describe(exc)}",
                     hint="AWS cannot be reached from here: check the network, a proxy "
                          "(HTTPS_PROXY) and AWS_ENDPOINT_URL if set")
    return error(f"AWS {service} {operation} failed: {describe(exc)}",
                 hint="check the region, the credentials' permissions (docs/targets/aws.md, "
                      "IAM policy) and AWS_ENDPOINT_URL if set")


@contextmanager
def calling(service: str, operation: str,
            error: type[ComposerError] = ComposerError) -> Iterator[None]:
    """Turn any botocore error raised inside into a composer error (``error`` class)."""
    from botocore.exceptions import ClientError

    try:
        yield
    except (ClientError, *other_errors()) as exc:
        raise translate(exc, service, operation, error) from exc
