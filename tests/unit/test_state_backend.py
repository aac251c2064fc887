"""``[state]``: the section's checks, the backend settings ``init`` gets, the record's
copy of them, and what a pulled state says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from composer.backend import Backend, configured, resources_in, storage_endpoint
from composer.engine import init_args
from composer.spec import StateSpec, expanded, parse_spec
from tests.unit.test_spec import minimal_doc, problems_of, toml_dumps

CREDENTIAL_KEYS = {"access_key", "secret_key", "token", "access_token", "credentials",
                   "encryption_key", "sse_customer_key", "profile"}


def with_state(**state: Any) -> dict[str, Any]:
    return {**minimal_doc(), "state": state}


def test_without_a_state_section_the_state_is_local(tmp_path: Path) -> None:
    spec = parse_spec(toml_dumps(minimal_doc()), tmp_path / "job.toml")
    assert spec.state == StateSpec() and not spec.state.remote
    assert Backend.for_run(spec.state, "r1") is None
    assert "state" not in expanded(spec)  # specs without [state] expand as before


def test_an_s3_section_is_read_and_expanded(tmp_path: Path) -> None:
    doc = with_state(backend="s3", bucket="team-state", region="eu-west-1",
                     endpoint="http://127.0.0.1:9000")
    spec = parse_spec(toml_dumps(doc), tmp_path / "job.toml")
    assert spec.state == StateSpec("s3", "team-state", "composer", "eu-west-1",
                                   "http://127.0.0.1:9000")
    assert expanded(spec)["state"] == {"backend": "s3", "bucket": "team-state",
                                       "prefix": "composer", "region": "eu-west-1",
                                       "endpoint": "http://127.0.0.1:9000"}


@pytest.mark.parametrize(("state", "expected"), [
    ({"backend": "s3", "region": "us-east-1"}, "state.bucket: required for the \"s3\""),
    ({"backend": "s3", "bucket": "b-1"}, "state.region: required for the \"s3\""),
    ({"backend": "gcs", "bucket": "b-1", "region": "us"}, "state.region: the \"gcs\" backend "
                                                          "takes no region"),
    ({"bucket": "b-1"}, "state.bucket: is for a bucket; the \"local\" backend"),
    ({"backend": "s4"}, "state.backend: must be one of 'local', 's3', 'gcs', got \"s4\""),
    ({"backend": "gcs", "bucket": "Bad_Bucket!"}, "state.bucket: 'Bad_Bucket!' is not a "
                                                  "bucket name"),
    ({"backend": "gcs", "bucket": "b-1", "prefix": "/lead"}, "state.prefix: '/lead' is not"),
    ({"backend": "gcs", "bucket": "b-1", "endpoint": "127.0.0.1:4443"},
     "state.endpoint: '127.0.0.1:4443' is not an http:// or https:// URL"),
    ({"backend": "s3", "bucket": "b-1", "region": "r", "endpoint": "http://k:s@h:9000"},
     "holds a user name or password: credentials come from the environment only"),
    ({"backend": "gcs", "bucket": "b-1", "bucket_name": "x"},
     "state.bucket_name: unknown key"),
])
def test_a_wrong_state_section_is_named(tmp_path: Path, state: dict[str, Any],
                                        expected: str) -> None:
    found = problems_of(tmp_path, with_state(**state))
    assert any(expected in p for p in found), found


def test_s3_settings_hold_where_never_who() -> None:
    plain = Backend.for_run(StateSpec("s3", "b-1", "team/ci", "us-east-1"), "r1")
    assert plain is not None
    assert plain.key == "team/ci/r1/terraform.tfstate"
    assert dict(plain.config()) == {"bucket": "b-1", "key": "team/ci/r1/terraform.tfstate",
                                    "region": "us-east-1", "use_lockfile": "true"}
    store = Backend.for_run(StateSpec("s3", "b-1", "team/ci", "us-east-1",
                                      "http://127.0.0.1:9000"), "r1")
    assert store is not None
    config = dict(store.config())
    assert config["endpoints"] == '{s3="http://127.0.0.1:9000"}'
    for flag in ("use_path_style", "skip_credentials_validation", "skip_requesting_account_id",
                 "skip_metadata_api_check", "skip_region_validation"):
        assert config[flag] == "true"
    for backend in (plain, store):
        assert not CREDENTIAL_KEYS & set(dict(backend.config()))
    assert init_args(store.init_args())[:3] == ["init", "-input=false", "-no-color"]
    assert "-backend-config=key=team/ci/r1/terraform.tfstate" in init_args(store.init_args())


def test_gcs_settings_name_the_run_folder_and_the_json_api() -> None:
    backend = Backend.for_run(StateSpec("gcs", "b-1", "composer", None,
                                        "http://127.0.0.1:4443"), "r1")
    assert backend is not None
    assert backend.key == "composer/r1/default.tfstate"
    assert backend.config() == [
        ("bucket", "b-1"), ("prefix", "composer/r1"),
        ("storage_custom_endpoint", "http://127.0.0.1:4443/storage/v1/")]
    assert storage_endpoint("https://h/storage/v1") == "https://h/storage/v1/"
    assert storage_endpoint("https://h/") == "https://h/storage/v1/"
    assert backend.url == "gs://b-1/composer/r1/default.tfstate at http://127.0.0.1:4443"


def test_the_record_copy_gives_the_same_backend_back() -> None:
    backend = Backend.for_run(StateSpec("s3", "b-1", "p", "us-east-1"), "r1")
    assert backend is not None
    assert Backend.from_record(json.loads(json.dumps(backend.to_record()))) == backend
    for junk in (None, [], {"backend": "local"}, {"backend": "s3", "bucket": 3, "path": "p"},
                 {"backend": "azurerm", "bucket": "b", "path": "p"}):
        assert Backend.from_record(junk) is None


def test_a_pulled_state_counts_its_instances() -> None:
    assert resources_in("") == 0
    assert resources_in(json.dumps({"resources": []})) == 0
    assert resources_in(json.dumps({"resources": [
        {"type": "terraform_data", "instances": [{}, {}]},
        {"type": "aws_instance", "instances": []}]})) == 2
    assert resources_in("{not json") is None


def test_configured_reads_the_backend_init_chose(tmp_path: Path) -> None:
    assert configured(tmp_path) is None
    (tmp_path / ".terraform").mkdir()
    saved = tmp_path / ".terraform" / "terraform.tfstate"
    saved.write_text(json.dumps({"backend": {"type": "gcs", "config": {}}}))
    assert configured(tmp_path) == "gcs"
    saved.write_text(json.dumps({"backend": {"type": "local"}}))
    assert configured(tmp_path) is None


def test_missing_backend_credentials_are_exit_2_before_a_run(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from composer.backend import Backend, check_credentials
    from composer.errors import ExitCode, PreflightError

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "GOOGLE_APPLICATION_CREDENTIALS",
                 "GOOGLE_OAUTH_ACCESS_TOKEN", "GOOGLE_CREDENTIALS",
                 "GOOGLE_BACKEND_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    for kind, region, said in (("s3", "us-east-1", "AWS_PROFILE"),
                               ("gcs", None, "gcloud auth application-default login")):
        backend = Backend(kind, "bucket", "composer/r1", region, None)
        with pytest.raises(PreflightError) as caught:
            check_credentials(backend)
        assert caught.value.exit_code == ExitCode.INVALID_INPUT
        assert said in (caught.value.hint or "")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    check_credentials(Backend("s3", "bucket", "composer/r1", "us-east-1", None))
    check_credentials(None)
