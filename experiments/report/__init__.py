"""The paper's tables and figures, built from result files only (never from the trainer).

- :mod:`experiments.report.tables`: Table 1, its comparison with the paper's numbers, and the
  tuning tables of appendix A.
- :mod:`experiments.report.figures`: Figures 2–5 (matplotlib, Agg backend).

``scripts/make_tables.py`` and ``scripts/make_figures.py`` are thin command lines over these.
"""
