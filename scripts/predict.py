#!/usr/bin/env python
"""Predict new data with saved models: a finished run's splits, or one saved model's files.

    python scripts/predict.py MODEL --input FILE --out FILE.csv [--split S] [--explain K]

MODEL is a run folder, results/runs/<dataset>/<extractor>/<head>/<run_id>, whose splits were saved
(``save_model``) or that holds a final model (``final=true``), or one saved model's files by their stem or
either file (``house.json``, written by ``SoftStepRegressor.save("house")``; or a run's ``models/model_0.json``).
``--split`` (run folders) is ``all`` (the default: the final model where the run has one, else the saved
splits' predictions averaged), ``final``, ``splits`` or a split number. ``--input`` is new data of the model's
type: a table file with the feature columns, a text table with the text column, or a folder of image or
audio files. The output CSV has a ``prediction`` column in the target's units and, with ``--explain K``,
``weight_share`` (the weight the K neighbours carry) and ``effective_neighbors`` (1/Σw²) per prediction,
and ``neighbor_k`` (the training item: its row number in the table, or its file relative to the dataset
root), ``target_k`` (its target) and ``weight_k`` for k = 1..K.
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
    p.add_argument(
        "run_dir",
        type=Path,
        metavar="MODEL",
        help="a run folder (results/runs/<dataset>/<extractor>/<head>/<run_id>) or a saved model (<name>.json)",
    )
    p.add_argument(
        "--split",
        default="all",
        help="run folders: all (default: the run's final model where it has one, else the saved splits averaged), "
        "final, splits (the saved splits averaged), or a saved split's number",
    )
    p.add_argument(
        "--input", type=Path, required=True, help="a table file, a text table, or a folder of images / audio"
    )
    p.add_argument("--out", type=Path, required=True, help="the output CSV")
    p.add_argument(
        "--explain",
        type=int,
        default=0,
        metavar="K",
        help="add the K training items with the largest weights, their targets, the weight share and 1/sum(w^2)",
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
