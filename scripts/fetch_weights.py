#!/usr/bin/env python
"""Download every pretrained weight the paper's experiments need into one cache folder.

Run on a machine with internet (a login node); compute nodes then read the folder offline:

    python scripts/fetch_weights.py --cache-dir /project/softstep-weights            # fetch
    python scripts/fetch_weights.py --cache-dir /project/softstep-weights --dry-run  # list only
    export SOFTSTEP_WEIGHTS=/project/softstep-weights HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

Layout: ``<cache>/hf/<model id>/`` (save_pretrained: config, safetensors weights, tokenizer or
feature extractor) and ``<cache>/torchvision/<arch>.pth`` (state dicts). See extractors/weights.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extractors.weights import PAPER_WEIGHTS, fetch  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache-dir", required=True, type=Path, help="folder to fill (created if needed)")
    p.add_argument("--dry-run", action="store_true", help="list what would be fetched and where; download nothing")
    p.add_argument("--only", nargs="+", metavar="EXTRACTOR", help=f"a subset of: {' '.join(w.extractor for w in PAPER_WEIGHTS)}")
    p.add_argument("--force", action="store_true", help="fetch again even if present")
    a = p.parse_args(argv)
    fetch(a.cache_dir, dry_run=a.dry_run, only=a.only, force=a.force)
    if not a.dry_run:
        print(f"\ndone. On the compute nodes:\n  export SOFTSTEP_WEIGHTS={a.cache_dir.resolve()} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
