"""Container argv builders (pure), the pinned reference, the probe's ladder, drift kind."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from composer import containers
from composer.containers import ContainerRun, Mount, RuntimeOptions
from composer.reproduce import pin_drift

REF = "localhost/composer-train@sha256:" + "a" * 64
OPTS = RuntimeOptions("runc", (("nofile", 1024, 1024), ("nproc", 1024, 1024)))


def run(runtime: str, **kw) -> ContainerRun:  # type: ignore[no-untyped-def]
    base = {"env": ("COMPOSER_OUTPUT_DIR", "SEED"), "options": OPTS,
            "mounts": (Mount("/data", "/data", True),)}
    return ContainerRun(runtime, REF, **(base | kw))


def expand(run_: ContainerRun, env: dict[str, str], *command: str) -> list[str]:
    """What the node's shell makes of the wrapped command: the engine's final argv."""
    wrapped = containers.wrap(run_, list(command))
    script = wrapped[2].replace('exec ', 'printf "%s\\n" ', 1)
    done = subprocess.run(["sh", "-c", script, *wrapped[3:]], env=env, capture_output=True,
                          text=True, check=True)
    return done.stdout.splitlines()


NODE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "COMPOSER_WORK_DIR": "/w/node-0",
            "PWD": "/w/node-0/code"}


def test_podman_ssh_argv() -> None:
    argv = expand(run("podman"), NODE_ENV, "python", "train.py", "--x", "a b")
    assert argv == [
        "podman", "run", "--rm", "--network", "host", "--runtime", "runc",
        "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
        "-v", "/w/node-0:/w/node-0", "-w", argv[14],
        "-v", "/data:/data:ro", "-e", "COMPOSER_OUTPUT_DIR", "-e", "SEED",
        REF, "python", "train.py", "--x", "a b",
    ]


def test_workdir_is_the_prelude_directory(tmp_path: Path) -> None:
    env = {**NODE_ENV, "COMPOSER_WORK_DIR": str(tmp_path)}
    wrapped = containers.wrap(run("podman"), ["true"])
    script = wrapped[2].replace("exec ", 'printf "%s\\n" ', 1)
    out = subprocess.run(["sh", "-c", script, *wrapped[3:]], env=env, cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[out.index("-w") + 1] == str(tmp_path)
    assert out[out.index(f"{tmp_path}:{tmp_path}") - 1] == "-v"


def test_env_values_never_on_the_command_line() -> None:
    argv = expand(run("podman", env=("HF_TOKEN",)), {**NODE_ENV, "HF_TOKEN": "s3cret"}, "x")
    assert "s3cret" not in " ".join(argv)
    assert argv[argv.index("HF_TOKEN") - 1] == "-e"


def test_podman_mpi_argv_passes_rank_variables_and_pmix_dirs(tmp_path: Path) -> None:
    server = tmp_path / "prte.host.0"
    server.mkdir()
    env = {**NODE_ENV, "PMIX_SERVER_TMPDIR": str(server), "PMIX_SYSTEM_TMPDIR": str(server),
           "OPAL_PREFIX": "/host/venv"}
    argv = expand(run("podman", mpi=True), env, "python", "train.py")
    text = " ".join(argv)
    for word in ("--ipc host", "--pid host", "-e PMIX_*", "-e OMPI_*", "-e PRTE_*",
                 f"-v {server}:{server}"):
        assert word in text
    assert text.count(str(server)) == 2  # one mount, though both variables name it
    assert argv[-3:] == [REF, "python", "train.py"]


def test_mpi_script_unsets_the_hosts_opal_prefix(tmp_path: Path) -> None:
    wrapped = containers.wrap(run("podman", mpi=True), ["true"])
    script = wrapped[2].replace("exec ", 'env; : ', 1)
    out = subprocess.run(["sh", "-c", script, *wrapped[3:]],
                         env={**NODE_ENV, "OPAL_PREFIX": "/host"}, capture_output=True,
                         text=True, check=True).stdout
    assert "OPAL_PREFIX" not in out


def test_docker_argv_lists_rank_variables() -> None:
    env = {**NODE_ENV, "PMIX_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4", "PRTE_X": "1",
           "OTHER": "no"}
    argv = expand(run("docker", mpi=True, gpus=True), env, "python", "t.py")
    assert argv[:5] == ["docker", "run", "--rm", "--network", "host"]
    assert "--runtime" not in argv  # a podman option only
    assert argv[argv.index("--gpus") + 1] == "all"
    pairs = {argv[i + 1] for i, w in enumerate(argv) if w == "-e"}
    assert {"PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "PRTE_X"} <= pairs and "OTHER" not in pairs


def test_podman_gpus() -> None:
    argv = containers.engine_argv(run("podman", gpus=True))
    assert argv[argv.index("--device") + 1] == "nvidia.com/gpu=all"
    assert "--device" not in containers.engine_argv(run("podman"))


def test_apptainer_argv() -> None:
    sif = "/images/train.sif"
    argv = expand(ContainerRun("apptainer", sif, env=("SEED",), gpus=True,
                               mounts=(Mount("/data", "/d", True),)), NODE_ENV, "python", "t.py")
    assert argv[:3] == ["apptainer", "exec", "--nv"]
    assert argv[3:5] == ["--bind", "/w/node-0:/w/node-0"]
    assert "--bind" in argv and "/data:/d:ro" in argv
    assert "-e" not in argv and "--ulimit" not in argv  # apptainer inherits the environment
    assert argv[-3:] == [sif, "python", "t.py"]


def test_string_command_runs_under_sh_inside() -> None:
    argv = expand(run("podman"), NODE_ENV, *["sh", "-c", "echo hi > x"])
    assert argv[-3:] == ["sh", "-c", "echo hi > x"]
    wrapped = containers.wrap(run("podman"), "echo hi > x")
    assert wrapped[-3:] == ["sh", "-c", "echo hi > x"]


def test_labels_and_no_runtime_option() -> None:
    argv = containers.engine_argv(run("podman", options=RuntimeOptions(),
                                      labels=(("composer.run", "r1"),)))
    assert "--runtime" not in argv and "--ulimit" not in argv
    assert argv[argv.index("--label") + 1] == "composer.run=r1"


def test_unknown_runtime() -> None:
    with pytest.raises(ValueError):
        containers.engine_argv(ContainerRun("none", "x"))


def test_script_quotes_hostile_words() -> None:
    hostile = Mount("/a b;rm -rf x", "/c", False)
    argv = expand(run("podman", mounts=(hostile,), env=("A",)), NODE_ENV, "$(echo no)")
    assert "/a b;rm -rf x:/c" in argv and argv[-1] == "$(echo no)"
    assert shlex.split(containers.script(run("podman")))  # parses as shell words


def test_repository_of_a_tag() -> None:
    assert containers._repository("localhost/x:latest") == "localhost/x"
    assert containers._repository("reg:5000/x") == "reg:5000/x"
    assert containers._repository("reg:5000/x:1@sha256:ab") == "reg:5000/x"


def test_ulimit_ladder_stays_below_hard_limits() -> None:
    import resource

    hard = {"nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
            "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[1]}
    ladder = containers.ulimit_ladder()
    assert ladder and len(ladder) == len(set(ladder))
    for step in ladder:
        for name, soft, high in step:
            assert soft <= high
            assert hard[name] == resource.RLIM_INFINITY or high <= hard[name]
    assert all(soft <= 1024 for _, soft, _ in ladder[-1])


def test_probe_cache_round_trip(tmp_path: Path) -> None:
    cache = tmp_path / "probe.json"
    containers._write_cache(cache, "k", OPTS)
    assert containers._read_cache(cache, "k") == OPTS
    assert containers._read_cache(cache, "other") is None
    cache.write_text("not json")
    assert containers._read_cache(cache, "k") is None


def test_missing_engine_is_a_preflight_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from composer.errors import ExitCode, PreflightError

    monkeypatch.setattr(containers.shutil, "which", lambda name: None)
    with pytest.raises(PreflightError) as info:
        containers.pin_image("docker", "x:1")
    assert info.value.exit_code == ExitCode.INVALID_INPUT
    assert "docker is not installed" in info.value.message


def test_apptainer_pin_is_the_sif_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(containers.shutil, "which", lambda name: "/usr/bin/" + name)
    sif = tmp_path / "t.sif"
    sif.write_bytes(b"sif")
    pin = containers.pin_image("apptainer", str(sif))
    assert pin["digest"].startswith("sha256:") and pin["ref"] == str(sif)


def test_image_digest_change_is_image_drift() -> None:
    def lock(digest: str) -> dict:
        return {"container": {"runtime": "podman", "image": "x:latest", "digest": digest,
                              "ref": f"x@{digest}"}}

    drifts = pin_drift(lock("sha256:aa"), lock("sha256:bb"))
    assert [(d.kind, d.name, d.old, d.new) for d in drifts] == [
        ("image", "container.digest", "sha256:aa", "sha256:bb")]
    assert pin_drift(lock("sha256:aa"), lock("sha256:aa")) == []
    assert [d.kind for d in pin_drift({}, lock("sha256:aa"))] == ["image"] * 3


def test_image_id_change_is_image_drift_when_pinned_by_id() -> None:
    def lock(image_id: str) -> dict:
        return {"container": {"runtime": "docker", "image": "x:latest", "digest": None,
                              "id": image_id, "ref": image_id, "pinned_by": "id"}}

    drifts = pin_drift(lock("sha256:aa"), lock("sha256:bb"))
    assert [(d.kind, d.name, d.old, d.new) for d in drifts] == [
        ("image", "container.id", "sha256:aa", "sha256:bb")]
    assert pin_drift(lock("sha256:aa"), lock("sha256:aa")) == []


def test_a_lock_without_pinned_by_compares_what_it_ran() -> None:
    by_id = {"runtime": "docker", "image": "x", "digest": None, "id": "sha256:aa"}
    assert containers.drift_pins(by_id)["container.id"] == "sha256:aa"
    by_digest = {**by_id, "digest": "sha256:dd"}
    assert containers.drift_pins(by_digest)["container.digest"] == "sha256:dd"
    assert "container.id" not in containers.drift_pins(by_digest)


def test_client_env_is_docker_variables_that_are_set() -> None:
    environ = {"DOCKER_HOST": "unix:///s.sock", "DOCKER_CONTEXT": "", "DOCKER_CONFIG": "/c",
               "PATH": "/bin", "CONTAINER_HOST": "x"}
    assert containers.client_env("docker", environ) == {"DOCKER_HOST": "unix:///s.sock",
                                                        "DOCKER_CONFIG": "/c"}
    assert containers.client_env("podman", environ) == {}


def test_daemon_text_names_docker_host() -> None:
    assert containers.daemon_text({"DOCKER_HOST": "tcp://h:2375"}) == "DOCKER_HOST=tcp://h:2375"
    assert containers.daemon_text({}) == \
        "unix:///var/run/docker.sock (DOCKER_HOST is not set)"
    assert containers.daemon_text({"DOCKER_CONTEXT": "remote"}).startswith(
        "DOCKER_CONTEXT=remote")


def test_docker_example_differs_from_podman_only_in_runtime() -> None:
    import tomllib

    example = Path(__file__).resolve().parents[2] / "examples" / "train-container"
    podman = tomllib.loads((example / "job.toml").read_text())
    docker = tomllib.loads((example / "job-docker.toml").read_text())
    assert (podman["container"]["runtime"], docker["container"]["runtime"]) == \
        ("podman", "docker")
    for spec in (podman, docker):
        del spec["container"]["runtime"], spec["job"]["description"]
    assert podman == docker


def test_cloud_nodes_get_the_gpus_the_spec_asks_for_whatever_this_machine_has(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """composer on a laptop or CI box without a GPU: a G2 node's container still gets
    ``--gpus``; the local target's nodes are this machine, so it decides there."""
    from composer.run import nodes_have_gpus
    from composer.targets import get_target
    from tests.unit.gcp_fakes import gcp_spec

    monkeypatch.setattr(containers, "gpus_present", lambda: False)
    gpu_spec = gcp_spec(gpus_per_node=1, machine_types=("g2-standard-8",))
    assert nodes_have_gpus(gpu_spec, get_target("gcp"))
    assert not nodes_have_gpus(gcp_spec(), get_target("gcp"))
    assert not nodes_have_gpus(gpu_spec, get_target("local"))
    monkeypatch.setattr(containers, "gpus_present", lambda: True)
    assert nodes_have_gpus(gpu_spec, get_target("local"))
