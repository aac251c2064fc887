"""Metrics with their samples, targets and verdicts; the tables printed at the end."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Metric:
    """One figure: its samples (one per repetition), median, spread and target."""

    name: str
    label: str
    unit: str
    samples: list[float] = field(default_factory=list)
    target: float | None = None
    higher_is_better: bool = False
    target_text: str | None = None
    error: str | None = None

    @property
    def value(self) -> float | None:
        good = [s for s in self.samples if math.isfinite(s)]
        return statistics.median(good) if good else None

    @property
    def low(self) -> float | None:
        return min(self.samples) if self.samples else None

    @property
    def high(self) -> float | None:
        return max(self.samples) if self.samples else None

    @property
    def passed(self) -> bool | None:
        value = self.value
        if value is None or self.target is None:
            return None
        return value >= self.target if self.higher_is_better else value <= self.target

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "ERROR"
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "MISS"

    def target_label(self) -> str:
        if self.target_text is not None:
            return self.target_text
        if self.target is None:
            return "-"
        sign = ">=" if self.higher_is_better else "<="
        return f"{sign} {fmt(self.target, self.unit)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, "unit": self.unit, "value": self.value, "min": self.low,
            "max": self.high, "samples": self.samples, "target": self.target,
            "target_text": self.target_label(),
            "direction": "higher" if self.higher_is_better else "lower",
            "pass": self.passed, "verdict": self.verdict, "error": self.error,
        }


def fmt(value: float | None, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    return f"{value:.3g} {unit}"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def spread(values: Sequence[float], unit: str = "s") -> str:
    good = [v for v in values if math.isfinite(v)]
    if not good:
        return "-"
    digits = 3 if unit == "s" and max(good) < 1 else 2
    return f"{min(good):.{digits}f}-{max(good):.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """A plain text table; columns in ``right`` are right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            out.append(str(cell).rjust(widths[i]) if i in right else str(cell).ljust(widths[i]))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def results_table(metrics: Sequence[Metric]) -> str:
    rows = [
        [m.label, fmt(m.value, m.unit), spread(m.samples, m.unit), m.target_label(), m.verdict]
        for m in metrics
    ]
    return table(["metric", "value", "min-max", "target", "result"], rows, {1, 2})
