"""What a run costs: the estimate before anything is made, the budget gate, and the
spend from the node-hours the run held.

1. ``check`` (the run driver, right after preflight): the target reads one node's hourly
   price (``Target.price``); the estimate is nodes × that price × ``[limits]
   max_duration``. With ``[limits] max_cost`` set, a run whose estimate is higher, whose
   price cannot be read, or whose duration has no bound is refused (``BudgetError``,
   exit 2) before anything is created: a gate that cannot see is closed.
2. The price read goes into ``lock.json`` (``cost``); the estimate and, at the end, the
   spend into ``result.json`` (``cost``): nodes × (end of apply .. end of destroy) ×
   the hourly price. A kept cluster's spend is counted to the run's end and says so.

Prices are the providers' public list prices in USD (``CURRENCY``): no discounts,
credits, disks, traffic or taxes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from composer.errors import ComposerError, PreflightError

if TYPE_CHECKING:
    from composer.spec import Spec
    from composer.targets.base import Target

CURRENCY = "USD"
FIELD = "limits.max_cost"
ERROR_ROOM = 300


class BudgetError(PreflightError):
    """The run would cost more than ``[limits] max_cost``, or its cost cannot be known."""


@dataclass(frozen=True)
class Price:
    """One node's hourly price, as a target read it.

    ``hourly`` None: the price could not be read; ``error`` says why. ``source`` names
    where it came from in words, ``as_of`` the date the price carries (a price list's
    publication, a spot price's timestamp), ``parts`` the rates it is the sum or the
    highest of (SKUs, zones), as recorded in ``lock.json``."""

    hourly: float | None
    source: str
    as_of: str | None = None
    currency: str = CURRENCY
    parts: tuple[dict[str, Any], ...] = ()
    error: str | None = None

    @classmethod
    def unreadable(cls, source: str, error: str) -> Price:
        """No price, and why (in one line: an API's error page may be a whole page)."""
        return cls(None, source, error=" ".join(error.split())[:ERROR_ROOM])

    def to_dict(self) -> dict[str, Any]:
        return {"hourly_per_node": self.hourly, "currency": self.currency,
                "source": self.source, "as_of": self.as_of, "parts": list(self.parts),
                "error": self.error}


@dataclass
class Cost:
    """A run's estimate, and the marks its spend is counted between."""

    nodes: int
    hours: float | None  # max_duration in hours; None: no limit
    price: Price | None  # None: the target has no price to read
    max_cost: float | None = None
    #: Clusters the run may make, each for up to ``hours``: 1 + ``[run] retries.max``.
    attempts: int = 1
    applied_at: float | None = None
    held_s: float = 0.0  # node-time of the attempts already destroyed, per node
    ever_applied: bool = False
    _clock: Any = field(default=time.time, repr=False)

    @property
    def hourly(self) -> float | None:
        return None if self.price is None else self.price.hourly

    @property
    def currency(self) -> str:
        return CURRENCY if self.price is None else self.price.currency

    @property
    def estimate(self) -> float | None:
        if self.hourly is None or self.hours is None:
            return None
        return round(self.nodes * self.hourly * self.hours * self.attempts, 6)

    def line(self) -> str:
        """The estimate in one line, for the terminal and composer.log."""
        budget = "" if self.max_cost is None else \
            f"; [limits] max_cost {money(self.max_cost)} {CURRENCY}"
        if self.price is None:
            return f"cost estimate: unknown (this target reads no prices){budget}"
        if self.hourly is None:
            return (f"cost estimate: unknown: the price could not be read from "
                    f"{self.price.source} ({self.price.error}){budget}")
        where = self.price.source + (f", as of {self.price.as_of}" if self.price.as_of else "")
        if self.hourly == 0:
            return f"cost estimate: 0 {self.currency} ({where}){budget}"
        rate = f"{self.nodes} node(s) × {money(self.hourly)} {self.currency}/h"
        if self.attempts > 1:
            rate += f" × {self.attempts} attempts (1 + [run] retries.max)"
        if self.estimate is None:
            return (f'cost estimate: {rate}, no total: [limits] max_duration = "none" '
                    f"({where}){budget}")
        return (f"cost estimate: {rate} × {hours_text(self.hours)} = "
                f"{money(self.estimate)} {self.currency} ({where}){budget}")

    def lock_entry(self) -> dict[str, Any]:
        """``lock.json`` ``cost``: the price the estimate used."""
        if self.price is None:
            return {"hourly_per_node": None, "currency": CURRENCY, "source": None,
                    "as_of": None, "parts": [], "error": "this target reads no prices"}
        return self.price.to_dict()

    def applied(self) -> None:
        """The nodes are up (apply finished): their time counts from here."""
        self.applied_at = self._clock()
        self.ever_applied = True

    def destroyed(self) -> None:
        """The nodes are gone: the time since ``applied`` is added to what the run held
        (an attempt before a failover or a retry, then the last one)."""
        now = self._clock()
        if self.applied_at is not None:
            self.held_s += max(0.0, now - self.applied_at)
            self.applied_at = None

    def settle(self, teardown: str | None) -> dict[str, Any]:
        """``result.json`` ``cost``: the estimate, and the spend so far (``teardown``: the
        teardown's status; a kept cluster's spend goes on after the run)."""
        out: dict[str, Any] = {
            "currency": self.currency, "hourly_per_node": self.hourly,
            "source": None if self.price is None else self.price.source,
            "as_of": None if self.price is None else self.price.as_of,
            "estimate": self.estimate, "estimate_hours": self.hours,
            "max_cost": self.max_cost, "nodes": self.nodes,
        }
        if self.price is not None and self.price.error:
            out["error"] = self.price.error
        held = self.held_s
        if self.applied_at is not None:  # still up: counted to now
            held += max(0.0, self._clock() - self.applied_at)
        if self.applied_at is None and not self.ever_applied:
            out.update(node_hours=0.0, spend=0.0 if self.hourly is not None else None,
                       spend_note="apply did not finish: no node time counted")
            return out
        node_hours = self.nodes * held / 3600
        out["node_hours"] = round(node_hours, 6)
        out["spend"] = None if self.hourly is None else round(node_hours * self.hourly, 6)
        if self.hourly is None:
            out["spend_note"] = "the price could not be read"
        elif teardown == "kept":
            out["spend_note"] = "counted to the end of the run; the kept cluster costs " \
                                "more until composer down removes it"
        elif teardown not in ("destroyed", "not-needed"):
            out["spend_note"] = "counted to the end of the run; the teardown did not " \
                                "finish, so the nodes may still cost more"
        return out

    def to_result(self) -> dict[str, Any]:
        """The estimate alone (no spend yet), for a record written before the end."""
        return {k: v for k, v in self.settle(None).items()
                if not k.startswith(("spend", "node_hours"))}


def check(spec: Spec, target: Target, pins: dict[str, Any]) -> Cost:
    """The run's estimate from the target's price, and the budget gate: raises
    ``BudgetError`` (exit 2) when ``[limits] max_cost`` is set and the estimate is over
    it or cannot be made. Nothing has been created when this runs."""
    try:
        price = target.price(spec, pins)
    except ComposerError as exc:
        price = Price.unreadable(f"the {spec.cluster.target} price list", exc.message)
    limits = spec.limits
    hours = None if limits.max_duration is None else limits.max_duration / 3600
    retries = spec.run.retries
    cost = Cost(spec.cluster.nodes, hours, price, limits.max_cost,
                attempts=1 + (retries.max if retries.on else 0))
    gate(cost, spec.cluster.target)
    return cost


def within_budget(cost: Cost, candidates: list[dict[str, Any]],
                  placement: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """With ``[limits] max_cost``, failover stays on the machine type that was priced
    (other zones only): another type has another price, which the gate never saw.
    Returns the candidates kept and what was left out, for the log."""
    if cost.max_cost is None or not candidates:
        return candidates, []
    priced = placement(candidates[0]).get("type")
    kept = [c for c in candidates if placement(c).get("type") == priced]
    dropped = sorted({str(placement(c).get("type")) for c in candidates} - {str(priced)})
    return kept, dropped


def gate(cost: Cost, target: str) -> None:
    if cost.max_cost is None:
        return
    budget = f"{FIELD} = {money(cost.max_cost)} {CURRENCY}"
    off = "or remove [limits] max_cost to run without a budget gate"
    if cost.price is None or cost.hourly is None:
        why = "this target reads no prices" if cost.price is None else \
            f"the price could not be read from {cost.price.source}: {cost.price.error}"
        raise BudgetError(
            f"{FIELD}: the run's cost cannot be estimated ({why}); with {budget} a run "
            "whose cost is unknown is refused",
            hint=f"fix what keeps the price from being read (docs/targets/{target}.md, "
                 f"Prices), {off}")
    if cost.hourly == 0:
        return
    if cost.estimate is None:
        raise BudgetError(
            f'{FIELD}: [limits] max_duration = "none" leaves the cost without a bound '
            f"({cost.nodes} node(s) × {money(cost.hourly)} {cost.currency}/h); "
            f"with {budget} the run is refused",
            hint=f"set [limits] max_duration (a duration such as \"2h\"), {off}")
    if cost.estimate > cost.max_cost:
        assert cost.hours is not None and cost.price is not None
        tries = f" × {cost.attempts} attempts" if cost.attempts > 1 else ""
        raise BudgetError(
            f"estimated cost {money(cost.estimate)} {cost.currency} ({cost.nodes} node(s) × "
            f"{money(cost.hourly)} {cost.currency}/h × {hours_text(cost.hours)}{tries}, "
            f"{cost.price.source}) is more than {budget}",
            hint="raise [limits] max_cost, shorten [limits] max_duration, lower [run] "
                 "retries.max, or ask for fewer or cheaper nodes")


def spend_line(settled: dict[str, Any]) -> str:
    """What the run cost, from ``Cost.settle``'s answer, in one line."""
    hours = f"{settled.get('node_hours', 0):.3g} node-hours"
    spend = settled.get("spend")
    note = f"; {settled['spend_note']}" if settled.get("spend_note") else ""
    if spend is None:
        return f"cost: unknown ({hours}){note}"
    return f"cost: {money(spend)} {settled.get('currency', CURRENCY)} ({hours}){note}"


def cost_cell(listed: dict[str, Any] | None) -> str:
    """``composer runs``' COST: the spend, else the estimate marked ``est.``, else -."""
    if not listed:
        return "-"
    currency = listed.get("currency") or CURRENCY
    if listed.get("spend") is not None:
        return f"{money(listed['spend'])} {currency}"
    if listed.get("estimate") is not None:
        return f"{money(listed['estimate'])} {currency} est."
    return "-"


def money(value: float) -> str:
    """An amount for people: cents from 1 up, four significant digits below."""
    if value == 0:
        return "0"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.4g}"


def hours_text(hours: float | None) -> str:
    if hours is None:
        return "no limit"
    if hours >= 1 and math.isclose(hours, round(hours)):
        return f"{round(hours)}h"
    if hours >= 1:
        return f"{hours:.2f}h"
    return f"{round(hours * 60, 1):g}m"
