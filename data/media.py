"""Image and audio files → model-ready tensors. Each loader is a small picklable callable that
also describes itself (``describe()``), which goes into ``RegressionData.preprocessing``.

Audio is read with ``soundfile`` (torchaudio 2.11's ``load`` needs TorchCodec); torchaudio is
used only to resample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .base import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WINDOWS = ("first", "center", "loudest")


#: the largest image side a transform resizes or crops to
MAX_SIDE = 4096


def _tuple(x, field: str) -> tuple[float, ...]:
    """``x`` (one number or a list of them) as a tuple of finite floats, else a :class:`DataError` naming ``field``."""
    try:
        values = [x] if isinstance(x, (int, float)) else None if isinstance(x, (str, bytes, dict)) else list(x)
    except TypeError:  # not a sequence
        values = None
    if not values or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) <= 1e6 for v in values
    ):  # abs ≤ 1e6 is False for NaN too
        raise DataError(f"image {field} must be a number or a list of numbers within ±1e6; got {str(x)[:60]!r}")
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class ImageTransform:
    """PIL image → float tensor (C, H, W).

    mode : ``"L"`` (one grey channel) or ``"RGB"``; the image is converted first.
    size : resize to ``size`` × ``size`` (square, aspect ratio not kept, as in appendix B), or None.
    crop : then centre-crop to ``crop`` × ``crop``, or None.
    mean, std : per-channel normalisation after scaling to [0, 1]; one value or one per channel.
    """

    mode: str = "RGB"
    size: int | None = 224
    crop: int | None = None
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    def __post_init__(self):
        if self.mode not in ("L", "RGB"):
            raise DataError(f"image mode must be 'L' (grey) or 'RGB'; got {self.mode!r}")
        for field in ("size", "crop"):
            side = getattr(self, field)
            if side is not None and (isinstance(side, bool) or not isinstance(side, int) or not 1 <= side <= MAX_SIDE):
                raise DataError(f"image {field} must be null or an integer in [1, {MAX_SIDE}]; got {str(side)[:40]!r}")
        object.__setattr__(self, "mean", _tuple(self.mean, "mean"))
        object.__setattr__(self, "std", _tuple(self.std, "std"))
        if min(self.std) <= 0:
            raise DataError(f"image std must be > 0 (it divides); got {self.std}")
        channels = 1 if self.mode == "L" else 3
        for field in ("mean", "std"):
            if len(getattr(self, field)) not in (1, channels):
                raise DataError(
                    f"image {field} needs 1 or {channels} values for mode {self.mode!r}; got {getattr(self, field)}"
                )

    def __call__(self, img) -> torch.Tensor:
        return self.finish(self.decode(img))

    def decode(self, img) -> torch.Tensor:
        """PIL image → uint8 tensor (C, H, W), converted, resized and cropped: what the decoded-sample cache stores."""
        import torchvision.transforms.functional as TF

        img = img.convert(self.mode)
        if self.size:
            img = TF.resize(img, [int(self.size), int(self.size)], antialias=True)
        if self.crop:
            img = TF.center_crop(img, [int(self.crop), int(self.crop)])
        return TF.pil_to_tensor(img)

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (C, H, W) or a batch (B, C, H, W), on any device → float, scaled to [0, 1] and normalised."""
        x = x.float().div_(255.0)
        shape = (-1, 1, 1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return x.sub_(mean).div_(std)

    def describe(self) -> str:
        fmt = lambda v: ",".join(f"{a:g}" for a in v)  # noqa: E731
        return f"{self.mode}-resize{self.size}-crop{self.crop}-mean{fmt(self.mean)}-std{fmt(self.std)}"


@dataclass(frozen=True)
class ImageFile:
    """Image path → tensor; an unreadable or corrupt file raises a DataError that names it."""

    transform: ImageTransform

    def __call__(self, path) -> torch.Tensor:
        return self.finish(self.decode(path))

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        return self.transform.finish(x)

    def decode(self, path) -> torch.Tensor:
        """The file → uint8 (C, H, W); :meth:`finish` makes it model-ready (split so that the decoded form can be cached)."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                img.load()
                return self.transform.decode(img)
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
            raise DataError(f"cannot read image {path}: {type(e).__name__}: {e}") from e


@dataclass(frozen=True)
class AudioFile:
    """Audio path → 1-D float32 waveform at ``sample_rate``.

    Multi-channel audio is averaged to mono, then resampled. With ``denoise`` the whole clip
    goes through ``noisereduce.reduce_noise`` (non-stationary spectral gating, its default).
    With ``seconds`` set, one window of that length is kept: ``first`` (from the start),
    ``center``, or ``loudest`` (the window of highest energy, searched on a 10 ms grid); a
    shorter clip is zero-padded at the end, so every item has the same length.
    ``seconds=None`` keeps the whole clip (``collate`` zero-pads a batch to its longest clip).
    """

    sample_rate: int = 16000
    seconds: float | None = None
    window: str = "first"
    denoise: bool = False

    def __post_init__(self):
        if self.window not in WINDOWS:
            raise DataError(f"audio window must be one of {', '.join(WINDOWS)}; got {self.window!r}")
        if self.seconds is not None and self.seconds <= 0:
            raise DataError(f"audio seconds must be > 0 or null; got {self.seconds}")

    def read(self, path) -> np.ndarray:
        import soundfile as sf

        path = Path(path)
        try:
            wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as e:
            hint = ""
            if path.suffix.lower() in (".webm", ".m4a", ".mp4", ".aac"):
                hint = f" ({path.suffix} is not readable by libsndfile: convert to WAV first, e.g. ffmpeg -i IN -ar 16000 OUT.wav)"
            raise DataError(f"cannot read audio {path}: {type(e).__name__}: {e}{hint}") from e
        if wave.shape[0] == 0:
            raise DataError(f"audio {path} has no samples")
        wave = wave.mean(axis=1)
        if not np.isfinite(wave).all():
            raise DataError(f"audio {path} holds NaN or infinite samples")
        if sr != self.sample_rate:
            import torchaudio.functional as AF

            wave = AF.resample(torch.from_numpy(np.ascontiguousarray(wave)), int(sr), int(self.sample_rate)).numpy()
        return wave

    def __call__(self, path) -> torch.Tensor:
        wave = self.read(path)
        if self.denoise:
            import noisereduce

            wave = np.asarray(noisereduce.reduce_noise(y=wave, sr=self.sample_rate), dtype=np.float32)
        if self.seconds is not None:
            wave = select_window(
                wave, int(round(self.seconds * self.sample_rate)), self.window, hop=self.sample_rate // 100
            )
        return torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))

    def describe(self) -> str:
        return f"sr{self.sample_rate}-sec{self.seconds}-{self.window}-denoise{int(self.denoise)}"


def select_window(wave: np.ndarray, n: int, how: str, *, hop: int = 160) -> np.ndarray:
    """Exactly ``n`` samples of ``wave``: a window chosen by ``how`` (see :class:`AudioFile`), or zero-padded."""
    if len(wave) <= n:
        return np.pad(wave, (0, n - len(wave)))
    if how == "first":
        start = 0
    elif how == "center":
        start = (len(wave) - n) // 2
    else:  # loudest: energy of every window starting on the hop grid (plus the last one)
        energy = np.concatenate([[0.0], np.cumsum(wave.astype(np.float64) ** 2)])
        starts = np.unique(np.append(np.arange(0, len(wave) - n + 1, max(hop, 1)), len(wave) - n))
        start = int(starts[np.argmax(energy[starts + n] - energy[starts])])
    return wave[start : start + n]


def check_files(paths: Sequence[Path], *, name: str, table, column: str, root) -> None:
    """Every listed file exists; otherwise name the table, the column and the first missing files."""
    absent = [p for p in paths if not Path(p).is_file()]
    if absent:
        shown = "\n".join(f"    {p}" for p in absent[:5])
        raise DataError(
            f"dataset {name!r}: {len(absent)} of {len(paths)} files listed in {table} (column {column!r}) "
            f"are missing under {Path(root).resolve()}, e.g.\n{shown}"
        )
