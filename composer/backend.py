"""Remote Terraform state: where a run's state lives when ``[state]`` names a bucket.

The rendered root module holds only an empty ``backend "s3" {}`` or ``backend "gcs" {}``
block; everything else reaches ``terraform init`` as ``-backend-config`` pairs built
here. Terraform saves those pairs in ``.terraform/terraform.tfstate`` in plain text, so
they never include a credential: credentials come from the environment only
(``AWS_*`` / ``GOOGLE_*``, as the AWS and Google clients read them).

Each run has its own state object: ``<prefix>/<run-id>/terraform.tfstate`` in S3 (locked
with ``use_lockfile``, a conditional write of ``….tflock`` beside it; no DynamoDB), and
``<prefix>/<run-id>/default.tfstate`` in Cloud Storage (the GCS backend names the object
after the workspace and locks it natively). The settings (``Backend.to_record``) go into
the record's ``lock.json`` under ``state``, so ``composer down`` on another machine finds
the state from the record alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composer.spec import StateSpec

LOCK_KEY = "state"
"""The key of ``lock.json`` that holds a run's backend settings."""


@dataclass(frozen=True)
class Backend:
    """One run's remote state: ``kind`` (``s3`` or ``gcs``) and where in which bucket."""

    kind: str
    bucket: str
    path: str
    """The run's folder in the bucket: ``<prefix>/<run-id>``."""
    region: str | None = None
    endpoint: str | None = None

    @classmethod
    def for_run(cls, state: StateSpec, run_id: str) -> Backend | None:
        """The backend of run ``run_id``, None for the work dir's local state."""
        if not state.remote:
            return None
        assert state.bucket is not None
        return cls(state.backend, state.bucket, f"{state.prefix}/{run_id}", state.region,
                   state.endpoint)

    @property
    def key(self) -> str:
        """The state object's name in the bucket."""
        name = "terraform.tfstate" if self.kind == "s3" else "default.tfstate"
        return f"{self.path}/{name}"

    @property
    def url(self) -> str:
        scheme = "s3" if self.kind == "s3" else "gs"
        where = f" at {self.endpoint}" if self.endpoint else ""
        return f"{scheme}://{self.bucket}/{self.key}{where}"

    def config(self) -> list[tuple[str, str]]:
        """``-backend-config`` pairs: where the state is, never who may read it."""
        if self.kind == "s3":
            pairs = [("bucket", self.bucket), ("key", self.key),
                     ("region", self.region or ""), ("use_lockfile", "true")]
            if self.endpoint:
                pairs += [("endpoints", f"{{s3={json.dumps(self.endpoint)}}}"),
                          ("use_path_style", "true"),
                          ("skip_credentials_validation", "true"),
                          ("skip_requesting_account_id", "true"),
                          ("skip_metadata_api_check", "true"),
                          ("skip_region_validation", "true")]
            return pairs
        pairs = [("bucket", self.bucket), ("prefix", self.path)]
        if self.endpoint:
            pairs.append(("storage_custom_endpoint", storage_endpoint(self.endpoint)))
        return pairs

    def init_args(self) -> list[str]:
        return [f"-backend-config={k}={v}" for k, v in self.config()]

    def to_record(self) -> dict[str, Any]:
        return {"backend": self.kind, "bucket": self.bucket, "path": self.path,
                "key": self.key, "region": self.region, "endpoint": self.endpoint}

    @classmethod
    def from_record(cls, data: Any) -> Backend | None:
        """The backend a record's ``lock.json`` names (None: local state, or none said)."""
        if not isinstance(data, dict) or data.get("backend") not in ("s3", "gcs"):
            return None
        bucket, path = data.get("bucket"), data.get("path")
        if not isinstance(bucket, str) or not isinstance(path, str):
            return None
        region, endpoint = data.get("region"), data.get("endpoint")
        return cls(str(data["backend"]), bucket, path,
                   region if isinstance(region, str) else None,
                   endpoint if isinstance(endpoint, str) else None)


def storage_endpoint(endpoint: str) -> str:
    """The GCS backend's ``storage_custom_endpoint``: the JSON API's base, which must end
    in ``/storage/v1/`` (without it every call goes astray)."""
    base = endpoint.rstrip("/")
    if base.endswith("/storage/v1"):
        return base + "/"
    return base + "/storage/v1/"


def backend_block(kind: str) -> str:
    """A root module that holds nothing but the backend: enough to read a state."""
    return f'terraform {{\n  backend "{kind}" {{}}\n}}\n'


def configured(tf_dir: Path) -> str | None:
    """The backend ``init`` configured in ``tf_dir`` (``s3``, ``gcs``), None for local
    state or before ``init``."""
    try:
        data = json.loads((tf_dir / ".terraform" / "terraform.tfstate").read_text())
        kind = data["backend"]["type"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return kind if isinstance(kind, str) and kind != "local" else None


def resources_in(state_json: str) -> int | None:
    """How many resource instances a pulled state holds; 0 for an empty answer (no
    state yet), None when it cannot be read."""
    if not state_json.strip():
        return 0
    try:
        data = json.loads(state_json)
        return sum(len(r.get("instances") or []) for r in data.get("resources") or [])
    except (ValueError, AttributeError, TypeError):
        return None


def check_credentials(backend: Backend | None) -> None:
    """Before a run exists: the credentials Terraform's backend will look for are there
    (exit 2 naming them), rather than a failed run at ``init``. What the credentials may
    do, and whether the bucket exists, only ``init`` finds out."""
    from composer.errors import PreflightError

    if backend is None:
        return
    if backend.kind == "s3":
        try:
            import botocore.session
        except ImportError:
            return  # composer cannot look; Terraform says at init
        if botocore.session.Session().get_credentials() is None:
            raise PreflightError(
                f"state: no AWS credentials for the s3 backend ({backend.url})",
                hint="set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: "
                     "the backend takes credentials from the environment only")
        return
    if any(os.environ.get(name) for name in (
            "GOOGLE_OAUTH_ACCESS_TOKEN", "GOOGLE_BACKEND_CREDENTIALS", "GOOGLE_CREDENTIALS")):
        return
    try:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError
    except ImportError:
        return
    try:
        google.auth.default()
    except (DefaultCredentialsError, OSError, ValueError) as exc:
        raise PreflightError(
            f"state: no Google Cloud credentials for the gcs backend ({backend.url}): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            hint="run 'gcloud auth application-default login', or set "
                 "GOOGLE_APPLICATION_CREDENTIALS (or GOOGLE_OAUTH_ACCESS_TOKEN)") from None
