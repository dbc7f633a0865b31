"""The offline study's report: does SoftStep learn sparse similarity, and does it help?

Built from result files only, over whatever datasets, heads, variants and protocols exist:

- :mod:`.variants`: what a result file ran, read from its resolved config: its protocol, its base head, and its
  variant (a control such as the frozen step, or a setting such as ``norm=exclude_self``).
- :mod:`.mechanism`: per split, what the step did: exact zeros, mass removed, how far its parameters moved; and the
  compute the files record.
- :mod:`.grid`: one cell per dataset × head × variant × protocol (the run chosen on validation), and each cell's
  paired tests against the best linear head, the same head without the step, and the frozen-step control.
- :mod:`.ranking`: over datasets, per protocol: average ranks, the Friedman test, Wilcoxon–Holm against linear,
  Nemenyi for the critical-difference diagram, wins/ties/losses.
- :mod:`.verdicts`: the three answers, computed from the numbers.
- :mod:`.write`: ``offline_study.md`` and ``offline_study.csv``; :mod:`.figures`: the CD diagram and the step's
  trajectories over epochs.

``scripts/study_report.py`` is the command line (docs/offline-study.md).
"""
