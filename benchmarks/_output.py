"""Where a benchmark's markdown goes: a git-ignored scratch file unless ``--write`` or ``--out`` says otherwise.

A benchmark run on a laptop must not replace the committed numbers (``results/benchmarks/<name>.md``, measured on
the machines their headers name) by accident: by default it writes ``results/benchmarks/scratch/<name>.md``;
``--write`` writes the committed file, ``--out PATH`` any path.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results" / "benchmarks"
SCRATCH = COMMITTED / "scratch"


def add_arguments(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """``--write`` and ``--out PATH`` (one or the other) for benchmark ``name``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--write",
        action="store_true",
        help=f"write the committed results/benchmarks/{name}.md (default: results/benchmarks/scratch/{name}.md, "
        "git-ignored)",
    )
    group.add_argument("--out", type=Path, default=None, help="write the table to this path instead")
    parser.set_defaults(output_name=name)
    return parser


def path(args: argparse.Namespace) -> Path:
    """The file the parsed ``args`` choose: ``--out``, else the committed file with ``--write``, else the scratch one."""
    if args.out is not None:
        return Path(args.out)
    return (COMMITTED if args.write else SCRATCH) / f"{args.output_name}.md"


#: a section another benchmark owns inside a file (``<!-- name: begin ... -->`` … ``<!-- name: end -->``)
MARKED = re.compile(r"<!-- (\w+): begin.*?<!-- \1: end -->\n?", re.S)


def write(args: argparse.Namespace, text: str) -> Path:
    """Write ``text`` where ``args`` say and print where it went. Marked sections of the file that ``text`` lacks
    (e.g. ``benchmarks.rank_strength``'s in ``heads.md``) are kept, at the end."""
    out = path(args)
    if out.is_file():
        kept = [m.group(0) for m in MARKED.finditer(out.read_text()) if f"<!-- {m.group(1)}: begin" not in text]
        if kept:
            text = text.rstrip("\n") + "\n\n" + "\n".join(k.rstrip("\n") + "\n" for k in kept)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    note = (
        ""
        if args.write or args.out is not None
        else f" (scratch, git-ignored; --write replaces the committed results/benchmarks/{args.output_name}.md)"
    )
    print(f"wrote {out}{note}", flush=True)
    return out
