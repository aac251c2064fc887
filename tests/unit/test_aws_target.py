"""The AWS target's glue: warnings it adds to preflight, its teardown sweep when nothing
was applied, and the hints for a machine that cannot reach AWS or the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from composer.engine import REGISTRY_HINT, make_engine
from composer.errors import TerraformError
from composer.targets.aws.session import translate
from composer.targets.aws.target import AwsTarget
from tests.unit.aws_fakes import aws_env, aws_spec  # noqa: F401 - fixture

moto = pytest.importorskip("moto")
botocore = pytest.importorskip("botocore")


@pytest.mark.parametrize(("cidrs", "warned"), [
    (("0.0.0.0/0",), True), (("::/0", "203.0.113.0/24"), True), (("203.0.113.7/32",), False),
])
def test_an_open_ssh_cidr_is_a_printed_warning(aws_env: None, cidrs: tuple[str, ...],  # noqa: F811
                                               warned: bool) -> None:
    with moto.mock_aws():
        pins = AwsTarget().preflight(aws_spec(ssh_cidrs=cidrs))
    said = [w for w in pins["warnings"] if w.startswith("aws.ssh_cidrs:")]
    assert bool(said) == warned, pins["warnings"]


def test_sweep_of_a_run_that_never_ran_init_asks_aws_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # would fail if asked
    work = tmp_path / "20260101-000000-abcdef"
    (work / "tf").mkdir(parents=True)
    (work / "tf" / "terraform.tfvars.json").write_text('{"region": "us-east-1"}')
    assert AwsTarget().sweep(work) == []


def test_an_unreachable_endpoint_says_so() -> None:
    exc = botocore.exceptions.EndpointConnectionError(endpoint_url="https://sts.example")
    error = translate(exc, "sts", "GetCallerIdentity")
    assert "cannot be reached" in (error.hint or "") and "HTTPS_PROXY" in (error.hint or "")


def test_init_that_cannot_reach_the_registry_names_the_mirror_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPOSER_HOME", str(tmp_path / "home"))
    engine = make_engine("embedded")

    def unreachable(*args: object, **kwargs: object) -> None:
        raise TerraformError("init", 1, ["Error: Failed to query available provider packages: "
                                         "could not connect to registry.terraform.io"])

    monkeypatch.setattr(engine, "run", unreachable)
    with pytest.raises(TerraformError) as caught:
        engine.init(tmp_path)
    assert caught.value.hint == REGISTRY_HINT and "COMPOSER_PROVIDER_MIRROR" in REGISTRY_HINT
