"""The paper's tables and figures, built from result files only (never from the trainer).

- :mod:`experiments.report.fmt`: how numbers and text are written (significant digits, CSV, LaTeX, Markdown).
- :mod:`experiments.report.cells`: the statistics of a table cell (n, mean, sample std), the paired
  Wilcoxon test, one configuration per cell, and which runs make Table 1 (``select_runs``).
- :mod:`experiments.report.table1`: Table 1 (Markdown, LaTeX, CSV).
- :mod:`experiments.report.paper`: Table 1 beside the paper's numbers.
- :mod:`experiments.report.tuning`: the tuning tables of appendix A.
- :mod:`experiments.report.figures`: Figures 2–5 (matplotlib, Agg backend).

Names and orders of heads and datasets come from :mod:`experiments.report.names`.
``scripts/make_tables.py`` and ``scripts/make_figures.py`` are thin command lines over these.
"""
