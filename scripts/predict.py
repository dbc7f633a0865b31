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

import os
import signal
import sys


class Interrupted(BaseException):  # not an Exception: no library's `except Exception` may catch it
    """SIGINT or SIGTERM during a prediction: stop with one line, the earlier output file intact."""


_received: list[
    int
] = []  # the signals _interrupt was sent: an import that turns Interrupted into another error still stops


def _interrupt(signum, frame):
    _received.append(signum)
    raise Interrupted(signum)


def _stopped_while_starting(signum, frame) -> None:
    name = signal.Signals(signum).name
    print(f"predict.py: stopped by {name} while starting; nothing was written", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(128 + signum)  # not SystemExit: an import it interrupts (omegaconf's) may turn it into a traceback


if __name__ == "__main__":  # before the slow imports (torch): a stop during start-up is one line, not a traceback
    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, _stopped_while_starting)

import argparse  # noqa: E402 - after the signal handlers
from pathlib import Path  # noqa: E402


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


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # the same inode: a hard link or another path to it
    except OSError:
        return False


def out_refusal(out: Path, inputs: Path, model: Path) -> str | None:
    """Why ``--out`` must not be written, or None: it is the input or a file of the model (one of a saved model's
    two files, or anything inside a run folder or an input folder), by path as given, resolved, or by inode (a
    hard link)."""
    from softstep.saved_format import paths

    inputs, model, out = inputs.expanduser(), model.expanduser(), out.expanduser()
    places = [(inputs, "the --input file")] + (
        [(model, "the model's run folder")] if model.is_dir() else [(f, "a file of the model") for f in paths(model)]
    )
    mine = {out.absolute(), out.resolve()}
    for place, what in places:
        theirs = {place.absolute(), place.resolve()}
        inside = place.is_dir() and any(t in m.parents for m in mine for t in theirs)
        if mine & theirs or inside:
            return f"--out {out} is {what} ({place}) or inside it; write the predictions elsewhere"
        if out.is_file():
            files = (
                [place] if place.is_file() else [f for f in place.rglob("*") if f.is_file()] if place.is_dir() else []
            )
            linked = next((f for f in files if _same_file(out, f)), None)
            if linked is not None:
                return (
                    f"--out {out} is the same file as {linked} ({what}, a link to it); write the predictions elsewhere"
                )
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if __name__ == "__main__":  # from here a stop is caught below and leaves the earlier --out file intact
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, _interrupt)
        code = _predict(args)
    except BaseException as e:
        if not (_received or isinstance(e, (Interrupted, KeyboardInterrupt))):
            raise
        signum = e.args[0] if isinstance(e, Interrupted) and e.args else _received[0] if _received else signal.SIGINT
        name = signal.Signals(signum).name
        print(
            f"predict.py: stopped by {name}; {args.out} was not written (an earlier file there is intact)",
            file=sys.stderr,
            flush=True,
        )
        return 128 + signum
    if __name__ == "__main__":  # done: a stop while the interpreter shuts down (its handlers gone) changes nothing
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
    return code


def _predict(args) -> int:
    from data.base import DataError
    from experiments.models.predict import PredictError, models_line, predict
    from experiments.models.schema import SavedModelError
    from softstep.safe_io import atomic_write_bytes
    from softstep.saved_fields import one_line

    why = out_refusal(args.out, args.input, args.run_dir)
    if why:
        print(f"predict.py: error: {one_line(why)}", file=sys.stderr)
        return 2
    try:
        out = predict(args.run_dir, args.input, split=args.split, explain=args.explain, device=args.device)
        readable = out.round({"prediction": out.attrs.get("decimals", 12)})  # the label range's resolution
        if out.attrs.get("decimals") == 0 and readable["prediction"].abs().max() < 2**53:
            readable["prediction"] = readable["prediction"].astype("int64")  # 18299, not 18299.0
        atomic_write_bytes(args.out, readable.to_csv(index=False).encode("utf-8"))  # all of it, or the old file
    except (PredictError, SavedModelError, DataError, OSError) as e:
        print(f"predict.py: error: {one_line(str(e))}", file=sys.stderr)  # a string from a file cannot forge a line
        return 2
    print(f"wrote {len(out)} predictions to {args.out}, {models_line(args.run_dir, args.split)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
