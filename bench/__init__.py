"""Benchmarks of composer against the same work done by hand, measured side by side.

``python -m bench`` runs them all and prints one table; see docs/benchmarks.md.
"""

from __future__ import annotations
