"""Sufficient statistics of one variant's per-user values for one metric."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Moments:
    """Count, sum and sum of squares of per-user values: all that a t-test needs.

    These are what SQL returns (``count(*)``, ``sum(v)``, ``sum(v*v)``) and, unlike means and
    variances, they add up across days, shards and partitions.
    """

    n: int
    total: float
    sum_sq: float

    @classmethod
    def from_values(cls, values: Iterable[float]) -> Moments:
        values = [float(v) for v in values]
        return cls(n=len(values), total=math.fsum(values), sum_sq=math.fsum(v * v for v in values))

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance (ddof = 1); NaN below two users.

        Computed as (Σx² - (Σx)²/n)/(n - 1), clamped at zero: the subtraction can go a hair
        negative in floating point when every value is equal.
        """
        if self.n < 2:
            return math.nan
        return max(0.0, (self.sum_sq - self.total * self.total / self.n) / (self.n - 1))

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)

    def __add__(self, other: Moments) -> Moments:
        return Moments(n=self.n + other.n, total=self.total + other.total, sum_sq=self.sum_sq + other.sum_sq)
