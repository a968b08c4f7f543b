"""Reading WAV files lazily: the header once in ``open``, the samples a chunk at a time.

``scipy.io.wavfile.read(path, mmap=True)`` parses the header (RIFF, RIFX and RF64; PCM and
IEEE float, WAVE_FORMAT_EXTENSIBLE included) and memory-maps the samples instead of reading
them. The map is dropped at once: only the sample format and where the samples start are
kept, and ``chunks`` maps the file again for as long as it is being read. So ten thousand
recordings opened for training hold no open files, and threads reading different
recordings share nothing.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from biosig import BiosigError, RecordingError
from scipy.io import wavfile

#: Integer samples are divided by this to lie in [-1, 1); 8-bit WAV is unsigned, offset 128.
_SCALE = {1: 2.0**7, 2: 2.0**15, 4: 2.0**31, 8: 2.0**63}


class WavRecording:
    """One WAV file: every channel, samples as float32 in [-1, 1) (float files as stored)."""

    def __init__(
        self,
        id: str,
        path: Path,
        fs: float,
        n_channels: int,
        n_samples: int,
        dtype: np.dtype,
        offset: int,
    ) -> None:
        self.id = id
        self.source = path
        self.fs = float(fs)
        self.channels = tuple(f"ch{i}" for i in range(n_channels))
        self.n_samples = int(n_samples)
        self.dtype = np.dtype(dtype)
        self.offset = int(offset)

    def chunks(self, n: int) -> Iterator[np.ndarray]:
        try:
            samples = np.memmap(
                self.source,
                dtype=self.dtype,
                mode="r",
                offset=self.offset,
                shape=(self.n_samples, len(self.channels)),
            )
        except FileNotFoundError:
            raise RecordingError(f"{self.source}: file not found (was it moved?)") from None
        except (OSError, ValueError) as exc:
            raise RecordingError(f"{self.source}: cannot be read any more ({exc})") from None
        for start in range(0, self.n_samples, n):
            yield to_float32(samples[start : start + n].T)

    def __repr__(self) -> str:
        return (
            f"WavRecording(id={self.id!r}, fs={self.fs:g}, channels={len(self.channels)}, "
            f"n_samples={self.n_samples}, dtype={self.dtype}, source={str(self.source)!r})"
        )


def to_float32(block: np.ndarray) -> np.ndarray:
    """``[C, n]`` samples as float32: integers scaled to [-1, 1), floats as they are."""
    out = np.array(block, dtype=np.float32)  # a copy: never a view of the map
    kind, size = block.dtype.kind, block.dtype.itemsize
    if kind == "u":  # 8-bit PCM: 0..255 around 128
        out -= 128.0
    if kind in "ui":
        out *= np.float32(1.0 / _SCALE[size])
    return out


def read_header(path: Path, rec_id: str) -> WavRecording:
    """The recording in ``path``, its samples not read; :class:`biosig.RecordingError`
    naming the file (and what to do) when it cannot be streamed."""
    try:
        with warnings.catch_warnings():
            # Chunks scipy does not know (bext, id3, cue) are skipped without a word.
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            fs, samples = wavfile.read(path, mmap=True)
    except FileNotFoundError:
        raise BiosigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise BiosigError(f"{path}: is a directory, not a WAV file") from None
    except Exception as exc:  # scipy raises ValueError, struct.error, even UnboundLocalError
        raise RecordingError(f"{path}: {_reason(exc)}") from None
    n_channels = 1 if samples.ndim == 1 else samples.shape[1]
    n_samples = samples.shape[0]
    dtype, offset = samples.dtype, getattr(samples, "offset", None)
    del samples  # drop the map: chunks() maps the file again when it is read
    if dtype.kind not in "uif" or dtype.itemsize not in _SCALE:
        raise RecordingError(f"{path}: samples of type {dtype} are not supported")
    if offset is None:
        raise RecordingError(f"{path}: its samples could not be memory-mapped")
    if n_samples == 0:
        raise RecordingError(f"{path}: holds no samples")
    if not fs > 0:
        raise RecordingError(f"{path}: its header gives a sample rate of {fs} Hz")
    return WavRecording(rec_id, path, fs, n_channels, n_samples, dtype, offset)


def _reason(exc: Exception) -> str:
    """What is wrong with a file scipy could not read, in the user's terms."""
    text = str(exc)
    if "not understood" in text or "Not a WAV file" in text:
        return "not a WAV file (it does not start with a RIFF/WAVE header)"
    if "cannot reshape array" in text:  # scipy's [n, C] view of a data chunk ending mid-frame
        return "its data is not a whole number of frames (truncated?)"
    if "mmap length is greater than file size" in text:
        return "truncated: the file ends before the samples its header announces"
    if "container size" in text:
        return (
            "24-bit (or other 3-, 5-, 6- or 7-byte) samples cannot be memory-mapped, so they "
            "cannot be streamed; convert the file to 16- or 32-bit integers or float "
            "(sox in.wav -b 32 out.wav)"
        )
    if "Unknown wave file format" in text or "Unsupported bit depth" in text:
        return f"unsupported WAV encoding ({text.split('. Supported')[0]}); use PCM or float"
    if isinstance(exc, struct.error):
        return "truncated or damaged: its header is incomplete"
    if isinstance(exc, (UnboundLocalError, NameError)) or "end of file" in text.lower():
        return "truncated or damaged: no sample data found"
    return f"not a readable WAV file ({type(exc).__name__}: {text})"
