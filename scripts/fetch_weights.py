#!/usr/bin/env python
"""Download every pretrained weight the paper's experiments need into one cache folder.

Run on a machine with internet (a login node); compute nodes then read the folder offline:

    python scripts/fetch_weights.py --cache-dir /project/softstep-weights            # fetch
    python scripts/fetch_weights.py --cache-dir /project/softstep-weights --dry-run  # list only
    export SOFTSTEP_WEIGHTS=/project/softstep-weights HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

Layout: ``<cache>/hf/<model id>/`` (save_pretrained: config, safetensors weights, tokenizer or
feature extractor) and ``<cache>/torchvision/<arch>.pth`` (state dicts). See extractors/weights.py.

What is fetched comes from ``configs/extractor/*.yaml``: each config's default ``builder.source``,
loaded by its ``builder._target_`` (configs whose source is ``random``, ``package`` or a local
path need nothing).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import OmegaConf

from experiments.protocol.compose import CONFIGS
from extractors.weights import Weight, fetch, hub_weight


def paper_weights(config_dir: Path = CONFIGS / "extractor") -> list[Weight]:
    """The hub weights the extractor configs in ``config_dir`` load by default, in file-name order."""
    weights = []
    for path in sorted(Path(config_dir).glob("*.yaml")):
        cfg = OmegaConf.load(path)
        w = hub_weight(cfg.name, cfg.builder._target_, cfg.builder.get("source"))
        if w is not None:
            weights.append(w)
    return weights


def main(argv=None) -> int:
    weights = paper_weights()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache-dir", required=True, type=Path, help="folder to fill (created if needed)")
    p.add_argument("--dry-run", action="store_true", help="list what would be fetched and where; download nothing")
    p.add_argument(
        "--only", nargs="+", metavar="EXTRACTOR", help=f"a subset of: {' '.join(w.extractor for w in weights)}"
    )
    p.add_argument("--force", action="store_true", help="fetch again even if present")
    a = p.parse_args(argv)
    fetch(a.cache_dir, weights, dry_run=a.dry_run, only=a.only, force=a.force)
    if not a.dry_run:
        print(
            f"\ndone. On the compute nodes:\n  export SOFTSTEP_WEIGHTS={a.cache_dir.resolve()} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
