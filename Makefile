# composer: two commands on a fresh Debian/Ubuntu machine.
#   make demo   set up .venv, make sure sshd is there, run examples/hello-mpi
#   make test   lint and run every test (unit, golden, integration; containers with podman)
#   make image  build the container example's image into podman's local store (cached)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench venv sshd podman image train train-container clean

demo: venv sshd podman
	$(BIN)/composer up examples/hello-mpi/job.toml

train: venv sshd
	$(BIN)/composer up examples/train-local/job.toml

train-container: venv sshd image
	$(BIN)/composer up examples/train-container/job.toml

# images/build.sh skips the build when the image already carries its inputs' hash.
image: podman
	images/build.sh

test: venv sshd podman lint
	$(BIN)/python -m pytest

bench: venv sshd
	$(BIN)/python -m bench

lint: venv
	$(BIN)/ruff check composer tests examples bench

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[mpi,examples,dev]'
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

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
