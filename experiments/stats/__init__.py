"""Experiment statistics: pure functions over per-variant aggregates.

The statistics (``moments``, ``frequentist``, ``bayesian``, ``srm``, ``power``, ``sequential``,
``decision``, assembled by ``analysis``) are pure functions of
:class:`~experiments.stats.moments.Moments` (users ``n``, the sum and the sum of squares of one
value per user), which SQL produces in one pass. ``models`` and ``rollup`` keep those aggregates
incrementally, ``services`` brings one experiment's rollup up to date on demand, ``selectors``
reads them (and writes nothing), ``api`` and ``admin_views`` show them. Formulas and their
sources are documented in ``docs/statistics.md``.
"""
