"""Alternating pairs: a case and its baseline measured in turns, the order flipping each pair, so that what
drifts on a machine while a bench runs (another process, a cache warming, a disk filling) falls on both;
reported as the median and the spread (min to max) of each, and of the ratio within each pair."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any, TypeVar

Measured = TypeVar("Measured")


def spread(values: list[float], digits: int = 3) -> dict[str, float]:
    """Median, min and max of ``values``, rounded."""
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits)}


def alternating(case: Callable[[], Measured], baseline: Callable[[], Measured],
                count: int) -> list[tuple[Measured, Measured]]:
    """``count`` pairs of (case, baseline) measurements: case first in even pairs, baseline first in odd ones."""
    pairs = []
    for pair in range(count):
        if pair % 2 == 0:
            first = case()
            pairs.append((first, baseline()))
        else:
            second = baseline()
            pairs.append((case(), second))
    return pairs


def ratios(pairs: list[tuple[Any, Any]], of: Callable[[Any, Any], float], digits: int = 3) -> dict[str, float]:
    """The spread of ``of(case, baseline)`` over the pairs."""
    return spread([of(case, baseline) for case, baseline in pairs], digits)
