#!/usr/bin/env python
"""Predict new data with a finished run's saved models.

    python scripts/predict.py RUN_DIR --split S --input FILE --out FILE.csv [--explain K]

RUN_DIR is a run folder, results/runs/<dataset>/<extractor>/<head>/<run_id>, whose splits were
saved (``save_model``), or that holds a final model (``final=true``). ``--split`` is ``all`` (the
default: the final model where the run has one, else the saved splits' predictions averaged), ``final``
or a split number. ``--input`` is new data of the run's type: a table file with the feature columns, a
text table with the text column, or a folder of image or audio files. The output CSV has a
``prediction`` column in the target's units and, with ``--explain K``, ``neighbor_1..K`` (the
training item: its row number in the table, or its file) and ``weight_1..K``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data.base import DataError
from experiments.models.predict import PredictError, models_line, predict
from experiments.models.schema import SavedModelError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path, help="results/runs/<dataset>/<extractor>/<head>/<run_id>")
    p.add_argument(
        "--split",
        default="all",
        help="all (default: the run's final model where it has one, else the saved splits averaged), final, "
        "splits (the saved splits averaged), or a saved split's number",
    )
    p.add_argument(
        "--input", type=Path, required=True, help="a table file, a text table, or a folder of images / audio"
    )
    p.add_argument("--out", type=Path, required=True, help="the output CSV")
    p.add_argument(
        "--explain", type=int, default=0, metavar="K", help="add the K training items with the largest weights"
    )
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.out.expanduser().resolve() == args.input.expanduser().resolve():
        print(
            f"predict.py: error: --out {args.out} is the --input file; write the predictions elsewhere", file=sys.stderr
        )
        return 2
    try:
        out = predict(args.run_dir, args.input, split=args.split, explain=args.explain, device=args.device)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        out.to_csv(args.out, index=False)
    except (PredictError, SavedModelError, DataError, OSError) as e:
        print(f"predict.py: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(out)} predictions to {args.out}, {models_line(args.run_dir, args.split)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
