"""Series in metrics files, and their PNG plots (matplotlib: the ``plots`` extra).

A series is a list of at least two numbers anywhere in a metrics file (a loss
curve: ``{"loss": [2.3, 1.1, 0.7]}``). Each gets one PNG under ``plots/`` in the
record, named from the file and the key (sanitized, with a short hash so that two
names never collide). The same data gives the same bytes: the Agg canvas, matplotlib's
default style whatever the user's matplotlibrc says, a fixed size and DPI, and no
``Software`` or time in the PNG's metadata. Records are compared, so are plots.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from dataclasses import dataclass
from typing import Any

PLOTS_DIR = "plots"
INSTALL_HINT = "pip install 'composer-runs[plots]'"
MAX_POINTS = 20_000  # longer series are thinned (every n-th point, the last kept)
SIZE_IN = (6.4, 3.6)
DPI = 100


@dataclass(frozen=True)
class Series:
    """A list of numbers at ``key`` (a flattened path: ``a.b``, ``l[0]``) in ``file``."""

    file: str
    key: str
    values: tuple[float, ...]

    @property
    def plot_name(self) -> str:
        """``plots/<file>-<key>-<hash>.png``, safe as a path and as a link."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{self.file}-{self.key}").strip("-.")[:60]
        digest = hashlib.sha256(f"{self.file}\0{self.key}".encode()).hexdigest()[:8]
        return f"{PLOTS_DIR}/{slug or 'series'}-{digest}.png"

    def summary(self) -> str:
        finite = [v for v in self.values if math.isfinite(v)]
        text = f"{len(self.values)} values, last {_num(self.values[-1])}"
        if finite:
            text += f" (min {_num(min(finite))}, max {_num(max(finite))})"
        return text


def _num(value: float) -> str:
    return f"{value:.6g}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_series(value: Any) -> bool:
    return isinstance(value, list) and len(value) >= 2 and all(_is_number(v) for v in value)


def find_series(file: str, data: Any, prefix: str = "") -> list[Series]:
    """Every series in a metrics file's JSON value, in document order."""
    found: list[Series] = []
    if is_series(data):
        found.append(Series(file, prefix, tuple(float(v) for v in data)))
    elif isinstance(data, dict):
        for key, value in data.items():
            found += find_series(file, value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += find_series(file, value, f"{prefix}[{index}]")
    return found


def available() -> bool:
    """Whether matplotlib can be imported here."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _thinned(values: tuple[float, ...]) -> tuple[list[int], list[float]]:
    step = max(1, math.ceil(len(values) / MAX_POINTS))
    xs = list(range(0, len(values), step))
    if xs[-1] != len(values) - 1:
        xs.append(len(values) - 1)
    return xs, [values[i] if math.isfinite(values[i]) else math.nan for i in xs]


def plot_png(series: Series) -> bytes:
    """The series as a line plot, PNG bytes; the same series gives the same bytes.
    Raises ImportError without matplotlib."""
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    xs, ys = _thinned(series.values)
    with matplotlib.style.context("default"):
        fig = Figure(figsize=SIZE_IN, dpi=DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.plot(xs, ys, linewidth=1.2, marker="o" if len(xs) <= 50 else None, markersize=3)
        # user text, drawn as text: no mathtext ($...$) from a key
        ax.set_title(f"{series.file}: {series.key}", fontsize=10, usetex=False,
                     parse_math=False)
        ax.set_xlabel("index")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, linewidth=0.4, alpha=0.6)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    return out.getvalue()
