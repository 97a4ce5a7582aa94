"""Small-sample statistics for ablations: means with 95% t-intervals over seeds, and differences between cells.

Seeds are few (3 is typical), so intervals use Student's t with n - 1 degrees of freedom; differences from the
base cell are *paired* by seed when both cells ran the same seeds (same seed = same data order, which removes that
part of the run-to-run noise), and fall back to Welch's unequal-variance interval otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Two-sided 95% quantiles t_{0.975, df} for df = 1..30 (standard tables, 3 decimals).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_Z975 = 1.959964


def t975(df: float) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (fractional df interpolated: Welch)."""
    if not df > 0 or math.isnan(df):
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if df > 30:
        z = _Z975  # Cornish-Fisher expansion: accurate to 1e-4 above 30 degrees of freedom
        return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
    if df < 1:
        return _T975[0]
    lo = int(math.floor(df))
    if lo == df or lo >= 30:
        return _T975[lo - 1]
    frac = df - lo
    return _T975[lo - 1] * (1 - frac) + _T975[lo] * frac


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% interval half-width (``half`` is None for a single value: no interval)."""

    mean: float
    half: float | None
    n: int

    @property
    def low(self) -> float | None:
        return None if self.half is None else self.mean - self.half

    @property
    def high(self) -> float | None:
        return None if self.half is None else self.mean + self.half

    @property
    def excludes_zero(self) -> bool:
        return self.half is not None and (self.low > 0 or self.high < 0)

    def format(self, digits: int = 3, signed: bool = False) -> str:
        """``0.512 ± 0.034`` (``± n/a`` when one value gave no interval)."""
        m = f"{self.mean:+.{digits}f}" if signed else f"{self.mean:.{digits}f}"
        return f"{m} ± {self.half:.{digits}f}" if self.half is not None else f"{m} (n=1)"


def _sd(values: list[float]) -> float:
    n = len(values)
    m = sum(values) / n
    return math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))


def mean_ci(values: list[float]) -> Interval:
    """Mean of ``values`` and the half-width of its 95% t-interval (None for fewer than two values)."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        raise ValueError("mean_ci needs at least one value")
    n = len(vals)
    m = sum(vals) / n
    if n < 2:
        return Interval(m, None, n)
    return Interval(m, t975(n - 1) * _sd(vals) / math.sqrt(n), n)


def diff_ci(cell: dict[int, float], base: dict[int, float]) -> Interval:
    """``cell - base`` with a 95% interval; inputs map seed -> value.

    Paired over the seeds both share when there are at least two; otherwise Welch's interval over all values
    (no interval when either side has a single value).
    """
    common = sorted(set(cell) & set(base))
    if len(common) >= 2:
        return mean_ci([cell[s] - base[s] for s in common])
    a, b = list(cell.values()), list(base.values())
    if not a or not b:
        raise ValueError("diff_ci needs values on both sides")
    d = sum(a) / len(a) - sum(b) / len(b)
    if len(a) < 2 or len(b) < 2:
        return Interval(d, None, min(len(a), len(b)))
    va, vb = _sd(a) ** 2 / len(a), _sd(b) ** 2 / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(d, 0.0, min(len(a), len(b)))
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    return Interval(d, t975(df) * se, min(len(a), len(b)))
