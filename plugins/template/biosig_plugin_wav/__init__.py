"""The ``wav`` plugin: WAV audio, such as heart sounds or machine sounds.

* Inputs: ``.wav`` files, or directories searched (recursively) for them. One recording per
  file, any number of channels. Its id is the file's stem, or where files found together
  share a stem (``normal/a01.wav``, ``murmur/a01.wav``) the shortest trailing path that
  tells them apart (``normal/a01``).
* Samples: 8-bit unsigned, 16-, 32- and 64-bit integer PCM, scaled to [-1, 1), and 32- and
  64-bit float as stored; read with ``scipy.io.wavfile`` memory-mapped, so a long file is
  streamed a chunk at a time and never read whole. 24-bit files cannot be memory-mapped
  and are refused with a note on converting them.
* Rate: each file's own, resampled to the model's 4000 Hz (enough for heart sounds, up to
  2 kHz; machine sounds keep their lower band). ``--highpass`` adds a high-pass filter.
* Labels (``--labels``): ``folder`` (the name of the folder a file is in: ``normal/x.wav``)
  or a table, ``id<TAB>class`` or ``id<TAB>start<TAB>stop<TAB>class`` in samples at the
  file's rate, naming a file by its id, stem or name (``a01``, ``a01.wav``).
* Windows of 2 s (8000 samples) every second, each z-scored; splits by file.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from biosig import (
    BiosigError,
    Chain,
    DemoData,
    IdentityPreprocessor,
    LabelledInterval,
    Plugin,
    PluginDefaults,
    PluginOption,
    Preprocessor,
    Recording,
    RecordingError,
    StreamingFilter,
    StreamingResampler,
    band_pass_sos,
    expand_inputs,
    table_intervals,
    whole_recording_intervals,
)

from .reader import WavRecording, read_header

__version__ = "0.1.0"

SUFFIX = ".wav"


class WavPlugin(Plugin):
    # No docstring of its own: `plugins show` then prints the module's.

    # The plugin contract this was written against, as a literal: biosig refuses a plugin
    # whose contract version it does not support rather than misreading it.
    api_version = 1
    name = "wav"
    version = __version__
    summary = "WAV audio (heart sounds, machine sounds): any channels, 8/16/32-bit or float"
    defaults = PluginDefaults(
        sample_rate=4000.0,
        window=8000,
        hop=4000,
        normalization="window",
        split="auto",
        labels="folder",  # one folder per class unless --labels says otherwise
    )
    label_keywords = ("folder",)
    label_formats = (
        "folder (the folder a file is in), or a table: id<TAB>class, "
        "id<TAB>start<TAB>stop<TAB>class"
    )
    options = (
        PluginOption(
            "highpass",
            0.0,
            "high-pass cutoff in Hz, applied before resampling (drift, rumble) [0: off]",
            float,
            preprocessing=True,  # it changes what the model sees: kept with the model
        ),
    )

    def configure(self, values: dict) -> None:
        """Set options, checking them at once rather than at the first recording."""
        super().configure(values)
        cutoff = self.settings["highpass"]
        if not (math.isfinite(cutoff) and cutoff >= 0):
            raise BiosigError(f"--highpass {cutoff}: give a cutoff in Hz, or 0 for none")

    # ------------------------------------------------------------------ files and recordings

    def find(self, inputs: Sequence[str | Path]) -> list[Path]:
        files: list[Path] = []
        for path in expand_inputs(inputs):  # globs expanded; a missing path is an error
            if path.is_dir():
                found = sorted(
                    p
                    for p in path.rglob("*")
                    if p.suffix.lower() == SUFFIX and p.is_file() and not p.name.startswith(".")
                )
                if not found:
                    raise BiosigError(f"{path}: no {SUFFIX} files found there")
                files.extend(found)
            elif path.suffix.lower() == SUFFIX:
                files.append(path)
            else:
                raise BiosigError(f"{path}: not a {SUFFIX} file")
        # Ids over all the files found, so `predict` given the inputs `train` was given
        # names recordings as `train` did.
        self._ids = unique_ids(files)
        return files

    def open(self, path: Path) -> Iterator[Recording | RecordingError]:
        path = Path(path)
        rec_id = getattr(self, "_ids", {}).get(path.resolve(), path.stem)
        # Reads the header only; a damaged file raises RecordingError naming it.
        yield read_header(path, rec_id)

    def preprocessor(self, recording: Recording, fs_out: float) -> Preprocessor:
        """High-pass (with ``--highpass``) at the file's rate, then resample to the model's.

        Both stages carry their state from chunk to chunk, so a recording fed in one chunk
        or in many gives the same samples (the plugin contract)."""
        n_channels = len(recording.channels)
        stages: list[Preprocessor] = []
        sos = band_pass_sos(recording.fs, self.settings["highpass"] or None, None)
        if sos is not None:
            stages.append(StreamingFilter(sos, n_channels, recording.fs))
        if recording.fs != fs_out:
            stages.append(StreamingResampler(recording.fs, fs_out, n_channels))
        if not stages:
            return IdentityPreprocessor(fs_out, n_channels)
        return Chain(*stages)

    # ------------------------------------------------------------------ labels

    def labels(self, source: Path | str, recordings: Sequence[Recording]) -> list[LabelledInterval]:
        if source == "folder":
            table = {rec.id: _path_of(rec).parent.name for rec in recordings}
            return whole_recording_intervals(table, recordings, Path("--labels folder"))
        path = Path(source)
        if not path.exists():
            raise BiosigError(f"--labels {source}: not a file, nor 'folder'")
        ids = {rec.id for rec in recordings}
        stems: dict[str, list[str]] = {}
        for rec in recordings:
            stems.setdefault(_path_of(rec).stem, []).append(rec.id)

        def resolve(key: str) -> str:
            """A table's key as a recording id: the id itself, or a file's name or stem
            (``a01.wav``, ``./a01``) where just one file has it."""
            key = key.replace("\\", "/").removeprefix("./")
            if key.lower().endswith(SUFFIX):
                key = key[: -len(SUFFIX)]
            if key in ids:
                return key
            found = stems.get(key, [])
            return found[0] if len(found) == 1 else key

        return table_intervals(path, recordings, resolve_id=resolve)

    # ------------------------------------------------------------------ demo data

    def make_demo_data(self, directory: Path, seed: int = 0) -> DemoData:
        from .synthetic import write_demo_data

        return write_demo_data(Path(directory), seed=seed)


def _path_of(recording: Recording) -> Path:
    if not isinstance(recording, WavRecording):
        raise BiosigError(f"recording {recording.id}: not read by the {WavPlugin.name} plugin")
    return recording.source


def unique_ids(paths: Sequence[Path]) -> dict[Path, str]:
    """An id for each file (by resolved path): its stem where no other file has that stem,
    else the shortest trailing path, without the suffix, that no other file shares."""
    files = list(dict.fromkeys(Path(p).resolve() for p in paths))

    def trailing(path: Path, k: int) -> str:
        folders = path.parent.parts[1:]  # not the root
        return "/".join((*folders[max(len(folders) - k, 0) :], path.stem))

    ids: dict[Path, str] = {}
    depth = max((len(p.parts) for p in files), default=0)
    for k in range(depth):
        names = {path: trailing(path, k) for path in files if path not in ids}
        if not names:
            break
        counts = Counter(trailing(path, k) for path in files)
        ids.update((path, name) for path, name in names.items() if counts[name] == 1)
    for path in files:
        ids.setdefault(path, str(path))  # a.wav beside a.WAV: only the full path tells
    return ids
