"""Experiment statistics: pure functions over per-variant aggregates.

Every test here works from :class:`~experiments.stats.moments.Moments` (users ``n``, the sum and
the sum of squares of one value per user), which SQL produces in one pass; nothing in this
package touches the database except ``selectors`` and ``rollup``. Formulas and their sources are
documented in ``docs/statistics.md``.
"""
