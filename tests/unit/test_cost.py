"""The estimate, the budget gate ([limits] max_cost) and the spend (composer/cost.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from composer import cost
from composer.cost import BudgetError, Cost, Price
from composer.errors import ComposerError, ExitCode, SpecError
from composer.records.read import summary
from composer.spec import LimitsSpec, Spec, expanded, parse_spec
from composer.targets.base import Target
from composer.targets.local.target import LocalTarget
from tests.unit.aws_fakes import aws_spec

LIST_PRICE = Price(3.06, "a price list (on-demand x.large, r-1)", as_of="2026-02-03")


class Priced(LocalTarget):
    """A target whose price is given (or raises)."""

    def __init__(self, answer: Price | None | ComposerError) -> None:
        self.answer = answer

    def price(self, spec: Spec, pins: dict[str, Any]) -> Price | None:  # type: ignore[override]
        if isinstance(self.answer, ComposerError):
            raise self.answer
        return self.answer


def spec_with(nodes: int = 2, max_duration: float | None = 7200.0,
              max_cost: float | None = None) -> Spec:
    return replace(aws_spec(nodes=nodes),
                   limits=LimitsSpec(max_duration, defaulted=False, max_cost=max_cost))


def test_the_estimate_is_nodes_times_price_times_max_duration() -> None:
    found = cost.check(spec_with(), Priced(LIST_PRICE), {})
    assert found.estimate == pytest.approx(2 * 3.06 * 2)
    assert found.line() == ("cost estimate: 2 node(s) × 3.06 USD/h × 2h = 12.24 USD "
                            "(a price list (on-demand x.large, r-1), as of 2026-02-03)")


def test_an_estimate_over_max_cost_is_refused_with_exit_2() -> None:
    with pytest.raises(BudgetError) as refused:
        cost.check(spec_with(max_cost=10), Priced(LIST_PRICE), {})
    error = refused.value
    assert error.exit_code == ExitCode.INVALID_INPUT
    assert error.message.startswith("estimated cost 12.24 USD (2 node(s) × 3.06 USD/h × 2h")
    assert "is more than limits.max_cost = 10.00 USD" in error.message
    assert error.hint is not None and "[limits] max_cost" in error.hint


def test_an_estimate_within_max_cost_passes_and_says_the_budget() -> None:
    found = cost.check(spec_with(max_cost=12.24), Priced(LIST_PRICE), {})
    assert found.line().endswith("; [limits] max_cost 12.24 USD")


def test_a_gate_that_cannot_see_is_closed() -> None:
    unreadable = Price.unreadable("AWS Price List API (x)", "AccessDeniedException: no")
    with pytest.raises(BudgetError) as refused:
        cost.check(spec_with(max_cost=100), Priced(unreadable), {})
    assert "cannot be estimated" in refused.value.message
    assert "AccessDeniedException: no" in refused.value.message
    assert "limits.max_cost" in refused.value.message
    assert refused.value.hint is not None and "docs/targets/aws.md" in refused.value.hint
    with pytest.raises(BudgetError, match="this target reads no prices"):
        cost.check(spec_with(max_cost=100), Priced(None), {})


def test_a_price_that_raises_is_unreadable_not_a_failure() -> None:
    found = cost.check(spec_with(), Priced(ComposerError("no credentials")), {})
    assert found.hourly is None
    assert found.line() == ("cost estimate: unknown: the price could not be read from the aws "
                            "price list (no credentials)")


def test_no_max_duration_leaves_no_bound() -> None:
    found = cost.check(spec_with(max_duration=None), Priced(LIST_PRICE), {})
    assert found.estimate is None and 'max_duration = "none"' in found.line()
    with pytest.raises(BudgetError, match='max_duration = "none" leaves the cost without'):
        cost.check(spec_with(max_duration=None, max_cost=5), Priced(LIST_PRICE), {})


def test_the_local_target_costs_nothing_and_accepts_max_cost() -> None:
    spec = spec_with(max_cost=0.01, max_duration=None)
    found = cost.check(spec, LocalTarget(), {})
    assert found.estimate is None and found.hourly == 0
    assert found.line() == ("cost estimate: 0 USD (local target: the nodes are processes on "
                            "this machine); [limits] max_cost 0.01 USD")
    assert cost.check(spec_with(max_cost=0.01), LocalTarget(), {}).estimate == 0


def test_the_base_target_reads_no_price() -> None:
    assert Target.price(LocalTarget(), spec_with(), {}) is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_spend_is_nodes_times_apply_end_to_destroy_end_times_price() -> None:
    clock = Clock()
    run = Cost(2, 2.0, LIST_PRICE, 20.0, _clock=clock)
    run.applied()
    clock.now += 1800
    run.destroyed()
    clock.now += 600  # the record is made later: not counted
    settled = run.settle("destroyed")
    assert settled["node_hours"] == 1.0
    assert settled["spend"] == pytest.approx(3.06)
    assert settled["estimate"] == pytest.approx(12.24) and settled["max_cost"] == 20.0
    assert "spend_note" not in settled
    assert cost.spend_line(settled) == "cost: 3.06 USD (1 node-hours)"


def test_spend_adds_up_every_attempt_that_held_nodes() -> None:
    """A lost node's retry (or a failover after nodes came up) pays for both clusters."""
    clock = Clock()
    run = Cost(2, 2.0, LIST_PRICE, 20.0, _clock=clock)
    run.applied()
    clock.now += 900  # the first attempt's nodes, until it was torn down
    run.destroyed()
    clock.now += 300  # between attempts: nothing held
    run.applied()
    clock.now += 900
    run.destroyed()
    assert run.settle("destroyed")["node_hours"] == 1.0


def test_a_kept_cluster_says_its_spend_goes_on() -> None:
    clock = Clock()
    run = Cost(1, 1.0, LIST_PRICE, _clock=clock)
    run.applied()
    clock.now += 3600
    settled = run.settle("kept")
    assert settled["spend"] == pytest.approx(3.06)
    assert "until composer down" in settled["spend_note"]


def test_no_apply_no_spend() -> None:
    settled = Cost(4, 1.0, LIST_PRICE).settle("destroyed")
    assert settled["spend"] == 0.0 and settled["node_hours"] == 0.0
    unknown = Cost(4, 1.0, Price.unreadable("s", "e"))
    unknown.applied()
    assert unknown.settle("destroyed")["spend"] is None
    assert unknown.settle("destroyed")["error"] == "e"


def test_the_lock_holds_the_price_used() -> None:
    entry = Cost(1, 1.0, replace(LIST_PRICE, parts=({"sku": "X"},))).lock_entry()
    assert entry == {"hourly_per_node": 3.06, "currency": "USD",
                     "source": LIST_PRICE.source, "as_of": "2026-02-03",
                     "parts": [{"sku": "X"}], "error": None}
    assert json.loads(json.dumps(entry)) == entry


def test_runs_lists_spend_else_estimate() -> None:
    settled = Cost(2, 2.0, LIST_PRICE).settle("destroyed")
    listed = summary("r1", "c" * 40, json.dumps({"cost": settled}).encode())
    assert listed.cost == {"estimate": pytest.approx(12.24), "spend": 0.0, "currency": "USD"}
    assert cost.cost_cell(listed.cost) == "0 USD"
    assert cost.cost_cell({"estimate": 12.24, "spend": None}) == "12.24 USD est."
    assert cost.cost_cell(summary("r0", "c" * 40, b"{}").cost) == "-"


def spec_text(limits: str) -> str:
    return ('[job]\nname = "j"\n[cluster]\ntarget = "local"\nnodes = 1\n[run]\n'
            f'command = "true"\n[limits]\n{limits}\n')


def test_max_cost_in_the_spec(tmp_path: Path) -> None:
    spec = parse_spec(spec_text('max_cost = 25\nmax_duration = "2h"'), tmp_path / "job.toml")
    assert spec.limits == LimitsSpec(7200.0, defaulted=False, max_cost=25.0)
    assert expanded(spec)["limits"] == {"max_cost": 25.0, "max_duration": 7200.0}
    alone = parse_spec(spec_text("max_cost = 0.5"), tmp_path / "job.toml")
    assert alone.limits == LimitsSpec(max_cost=0.5)
    unbounded = parse_spec(spec_text('max_cost = 3\nmax_duration = "none"'),
                           tmp_path / "job.toml")
    assert unbounded.limits == LimitsSpec(None, defaulted=False, max_cost=3.0)


@pytest.mark.parametrize(("value", "said"), [
    ('"25"', 'must be a number of USD, got string "25" (write it without quotes'),
    ("0", "must be a number of USD more than 0, got integer 0"),
    ("-3.5", "must be a number of USD more than 0"),
    ("nan", "must be a finite number of USD"),
    ("1e400", "must be a finite number of USD, got float inf (TOML reads numbers past"),
    ("true", "must be a number of USD, got boolean"),
])
def test_a_bad_max_cost_names_the_field(tmp_path: Path, value: str, said: str) -> None:
    with pytest.raises(SpecError) as bad:
        parse_spec(spec_text(f"max_cost = {value}"), tmp_path / "job.toml")
    text = str(bad.value)
    assert "limits.max_cost" in text and said in text, text


def test_the_gate_counts_every_cluster_retries_may_make() -> None:
    run = Cost(2, 1.0, LIST_PRICE, 20.0, attempts=4)  # [run] retries.max = 3
    assert run.estimate == pytest.approx(2 * 3.06 * 4)
    with pytest.raises(BudgetError) as caught:
        cost.gate(run, "aws")
    assert "× 4 attempts" in caught.value.message
    assert "× 4 attempts (1 + [run] retries.max)" in run.line()


def test_with_a_budget_failover_stays_on_the_priced_type() -> None:
    def placement(pins: dict[str, Any]) -> dict[str, Any]:
        return {"zone": pins["zone"], "type": pins["instance_type"]}

    candidates = [{"zone": "a", "instance_type": "g5.xlarge"},
                  {"zone": "b", "instance_type": "g5.xlarge"},
                  {"zone": "a", "instance_type": "p4d.24xlarge"}]
    gated = Cost(1, 1.0, LIST_PRICE, 20.0)
    kept, dropped = cost.within_budget(gated, candidates, placement)
    assert [c["zone"] for c in kept] == ["a", "b"] and dropped == ["p4d.24xlarge"]
    assert cost.within_budget(Cost(1, 1.0, LIST_PRICE), candidates, placement) == \
        (candidates, [])
