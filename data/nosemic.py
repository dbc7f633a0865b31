"""NoseMic (Butkow et al. 2024): 30 s of in-ear audio → heart rate (beats per minute).

1,297 thirty-second recordings of heart-rate-induced sounds in the ear canal, under several
activities. Appendix B: denoised with noisereduce, encoded with the Whisper-tiny audio encoder,
mean-pooled over time.

The authors share the data on request; this loader reads it arranged as one audio file per clip
plus a label table (``labels.csv``: a ``file`` column with paths relative to the root and an
``hr`` column in bpm; both names are config fields), see ``data/nosemic/README.md``. Audio is
resampled to 16 kHz (Whisper's rate), denoised (``noisereduce.reduce_noise``, non-stationary, on
the whole clip), then cut or zero-padded to exactly 30 s (Whisper's window).
"""

from __future__ import annotations

from . import audio_folder, checks
from .base import RegressionData

NAME = "nosemic"


def load(
    root: str = "data/nosemic",
    csv: str = "labels.csv",
    file_column: str = "file",
    target_column: str = "hr",
    sample_rate: int = 16000,
    seconds: float | None = 30.0,
    window: str = "first",
    denoise: bool = True,
) -> RegressionData:
    return audio_folder.load(
        root,
        csv=csv,
        file_column=file_column,
        target_column=target_column,
        name=NAME,
        sample_rate=sample_rate,
        seconds=seconds,
        window=window,
        denoise=denoise,
        doc=checks.readme(NAME),
    )
