"""Bring your own audio: a folder of audio files plus a CSV of file names and targets.

``dataset=audio_folder dataset.loader.root=DIR`` with ``DIR/labels.csv`` holding the columns
``file`` (relative to ``DIR``) and ``target``. Audio is read with soundfile (WAV, FLAC, OGG,
MP3...), averaged to mono and resampled to ``sample_rate`` (16 kHz for HuBERT and Whisper).
``seconds`` fixes the length (one window: ``first``, ``center`` or ``loudest``; shorter clips are
zero-padded); ``seconds: null`` keeps whole clips. Default extractor: hubert_base.
"""

from __future__ import annotations

from pathlib import Path

from . import checks
from .base import RegressionData
from .folder import load_folder
from .media import AudioFile

DOC = checks.BYO_DOC


def load(
    root: str,
    csv: str = "labels.csv",
    file_column: str = "file",
    target_column: str = "target",
    name: str = "audio_folder",
    sample_rate: int = 16000,
    seconds: float | None = None,
    window: str = "first",
    denoise: bool = False,
    log_target: bool | str = False,
    dropna: bool = False,
    doc=None,
) -> RegressionData:
    audio = AudioFile(sample_rate=int(sample_rate), seconds=seconds, window=window, denoise=bool(denoise))
    return load_folder(
        root,
        csv,
        file_column,
        target_column,
        name=name,
        modality="audio",
        load=audio,
        describe=audio.describe(),
        doc=Path(doc) if doc else DOC,
        log_target=log_target,
        dropna=dropna,
    )
