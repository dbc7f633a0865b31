"""How the report writes numbers and text: significant digits, mean ± std, CSV, LaTeX, Markdown, files.

- **Numbers** are printed with 3 significant digits, trailing zeros kept (``0.360``, ``303``).
- **(n=k)** follows a value whose number of splits k differs from the table's expected one
  (:func:`n_note`).
- :data:`MISSING` (``–``) stands for a cell without results.
- CSV numbers keep 12 significant digits; a missing one is the empty string (:func:`csv_number`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

MISSING = "–"


def sig(x: float, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits, trailing zeros kept: 0.36 → ``0.360``, 303.4 → ``303``."""
    if x is None or not math.isfinite(x):
        return "nan"
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    decimals = digits - 1 - mag
    text = _fixed(x, decimals)
    if abs(float(text)) >= 10 ** (mag + 1):  # rounding carried into the next digit: 9.996 → 10.0
        text = _fixed(x, decimals - 1)
    return text


def _fixed(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}" if decimals >= 0 else str(int(round(x, decimals)))


def mean_std(mean: float, std: float) -> str:
    """``mean ± std`` (or the mean alone when std is undefined, i.e. one split)."""
    return sig(mean) if math.isnan(std) else f"{sig(mean)} ± {sig(std)}"


def n_note(n: int, expected: int) -> str:
    """`` (n=k)`` when a cell has k splits and the table expects another number, else nothing."""
    return "" if n == expected else f" (n={n})"


def csv_number(x: float | None) -> str:
    """A number for CSV: 12 significant digits, empty for missing."""
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, ".12g")


def csv_text(header: Iterable, rows: Iterable[Iterable]) -> str:
    """``header`` and ``rows`` as CSV text (``\\n`` line ends)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text (dataset and head names)."""
    text = text.replace("\\", "\0")
    for ch in "&%$#_{}":
        text = text.replace(ch, "\\" + ch)
    return text.replace("\0", r"\textbackslash{}")


def md_table(header: list[str], rows: list[list[str]], align: list[str]) -> str:
    """A Markdown table: ``header``, the ``align`` row (``---``, ``---:``), then ``rows``."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_texts(out_dir: str | Path, texts: Mapping[str, str]) -> list[Path]:
    """Write each ``{file name: text}`` into ``out_dir`` (created if need be); return the paths in order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in texts.items():
        path = out_dir / name
        path.write_text(text)
        paths.append(path)
    return paths
