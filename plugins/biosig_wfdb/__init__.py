"""The ``ecg`` and ``eeg`` plugins: WFDB records and EDF/EDF+ files, streamed.

* Inputs: WFDB headers (``record.hea``, or ``record`` as WFDB tools name it; the ``.dat``
  beside it works too), EDF/EDF+ files, and directories searched recursively (the segments
  of a multi-segment record are read through its master header, never alone). A record
  present in both formats is read once, from the plugin's preferred one (WFDB for ``ecg``,
  EDF for ``eeg``, whose annotations EDF+ carries).
* Reading: the header first, then ``sampfrom``/``sampto`` blocks, so a 24-hour Holter record
  is never loaded whole. Channels are chosen by index (``--channels 0,1``; names repeat).
  Multi-rate records are read at their native rates and resampled, never frame-averaged.
  Multi-segment gaps are NaN: the windows that hold them are skipped.
* Preprocessing: causal band-pass (ECG 0.5–40 Hz, EEG 0.5–45 Hz) and optional mains notch
  carrying filter state across chunks, then resampling to the model rate (ECG 360 Hz, EEG
  160 Hz), so output is identical in one chunk or many. Windows are z-scored one by one.
  ECG's ``--signal rr`` gives the model each lead's beat-to-beat interval series instead of
  the leads (``rhythm.py``): what rhythm labels such as AF depend on.
* Labels (``--labels``): ``beats`` (AAMI classes N/S/V/F/Q, a window centred on each beat),
  ``rhythm`` (``+`` annotations ``(AFIB``, ``(N``… as segments), ``events`` (EDF+
  annotations, or a WFDB record's ``+``/``(T0`` intervals), from the annotation file chosen by
  ``--annotator``; or a table, ``record<TAB>class`` or ``record<TAB>start<TAB>stop<TAB>class``
  in original samples.
* Grouping for leakage-safe splits: by record, or by patient with ``--group-pattern``, a
  regular expression whose first group is the patient (``data_(\\d+)_`` for CPSC 2021).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from biosig import (
    BiosigError,
    Chain,
    DemoData,
    LabelledInterval,
    Plugin,
    PluginDefaults,
    PluginOption,
    Preprocessor,
    Recording,
    RecordingError,
    describe,
    expand_inputs,
    table_intervals,
)

__version__ = "0.1.0"

log = logging.getLogger("biosig")

LABEL_KEYWORDS = ("beats", "rhythm", "events")
#: Records slower than the model rate by more than this factor are not waveforms to read.
MAX_UPSAMPLING = 50


def _common_options(annotator: str, band: str) -> tuple[PluginOption, ...]:
    return (
        PluginOption(
            "channels",
            "",
            "channels to read, by index (e.g. 0,1; names can repeat) [all]",
            preprocessing=True,
        ),
        PluginOption(
            "band",
            band,
            "band-pass edges in Hz, 'low,high' ('0.5,' high-pass only; 'none' off)",
            preprocessing=True,
        ),
        PluginOption(
            "notch", 0.0, "mains notch in Hz (50 or 60; 0 is off)", float, preprocessing=True
        ),
        PluginOption("annotator", annotator, "annotation file extension to label from"),
        PluginOption(
            "group_pattern",
            "",
            "regex on record names whose first group is the patient, for splits [by record]",
        ),
        PluginOption(
            "unannotated",
            "",
            "rhythm class of a span before any rhythm mark (a record without any) [unlabelled]",
        ),
    )


class WfdbPlugin(Plugin):
    """What ``ecg`` and ``eeg`` share; they differ in defaults and preferred format."""

    unlabelled_hint = (
        "a record without rhythm marks (or the span before its first) is labelled only "
        "when --unannotated names its class, e.g. --unannotated N"
    )

    api_version = 1
    version = __version__
    label_keywords = LABEL_KEYWORDS
    label_formats = (
        "beats | rhythm | events (from the --annotator file or EDF+), or a table: "
        "record<TAB>class, record<TAB>start<TAB>stop<TAB>class"
    )
    prefer_edf = False

    # ------------------------------------------------------------------ files and records

    def find(self, inputs: Sequence[str | Path]) -> list[Path]:
        from .records import find_wfdb_records, open_wfdb

        files: list[Path] = []
        for path in expand_inputs([_header_for(i) for i in inputs]):
            if path.is_dir():
                files.extend(self._scan(path, find_wfdb_records))
                continue
            # `data_8_4*` names the record's .dat and .atr too: each stands for its header
            path = Path(_header_for(path))
            if path in files:
                continue
            kind = _kind(path)
            if kind is None:
                raise BiosigError(f"{path}: not a WFDB header (.hea) or an EDF file (.edf)")
            # A bad header, a missing .dat or a corrupt EDF header: said now, in one line.
            if kind == "wfdb":
                open_wfdb(path, self._channels())
            else:
                from .edf import open_edf

                open_edf(path, self._channels())
            files.append(path)
        return files

    def _scan(self, directory: Path, find_wfdb_records) -> list[Path]:
        headers = find_wfdb_records(directory)
        edfs = sorted(p for p in directory.rglob("*") if p.suffix.lower() == ".edf")
        if not headers and not edfs:
            raise BiosigError(f"{directory}: no WFDB records (.hea) or EDF files found there")
        primary, secondary = (edfs, headers) if self.prefer_edf else (headers, edfs)
        seen = {p.with_suffix("") for p in primary}
        doubles = [p for p in secondary if p.with_suffix("") in seen]
        if doubles:
            log.info("%d records are in both formats; reading each once", len(doubles))
        return sorted([*primary, *(p for p in secondary if p.with_suffix("") not in seen)])

    def open(self, path: Path) -> Iterator[Recording | RecordingError]:
        path = Path(path)
        if _kind(path) == "edf":
            from .edf import open_edf

            yield open_edf(path, self._channels())
        else:
            from .records import open_wfdb

            yield open_wfdb(path, self._channels())

    def configure(self, values: dict) -> None:
        """Set options, checking the filter band, notch and channels at once, before any
        file is read."""
        super().configure(values)
        low, high = self._band()
        if (low is not None and low < 0) or (low and high and low >= high):
            raise BiosigError(f"--band {self.settings['band']}: give 'low,high' with low < high")
        if float(self.settings["notch"]) < 0:
            raise BiosigError(f"--notch {self.settings['notch']:g}: give a frequency in Hz, or 0")
        self._channels()

    def _band(self) -> tuple[float | None, float | None]:
        from .preprocess import parse_band

        try:
            return parse_band(str(self.settings["band"]))
        except ValueError as exc:
            raise BiosigError(f"--band: {exc}") from None

    def _channels(self) -> list[int] | None:
        text = str(self.settings["channels"]).strip()
        if not text:
            return None
        try:
            return [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise BiosigError(
                f"--channels {text}: give channel indices such as 0,1 (names can repeat)"
            ) from None

    def preprocessor(self, recording: Recording, fs_out: float) -> Preprocessor:
        from .preprocess import filter_chain

        band = self._band()
        if fs_out > MAX_UPSAMPLING * recording.fs:
            # A numerics record (one frame a minute beside a MIMIC waveform record) is no
            # waveform; interpolating it thousands of times over would only cost time.
            raise RecordingError(
                f"{describe(recording)}: sampled at {recording.fs:g} Hz, too slowly for a "
                f"{fs_out:g} Hz model (more than {MAX_UPSAMPLING}x upsampling); a numerics "
                "or trend record?"
            )
        notch = float(self.settings["notch"] or 0) or None
        return filter_chain(len(recording.channels), recording.fs, fs_out, band, notch)

    # ------------------------------------------------------------------ labels and groups

    def labels(self, source: Path | str, recordings: Sequence[Recording]) -> list[LabelledInterval]:
        if not isinstance(source, str):
            return table_intervals(Path(source), recordings)
        from .annotations import (
            beat_intervals,
            edf_event_intervals,
            read_annotations,
            rhythm_intervals,
        )

        annotator = str(self.settings["annotator"])
        unannotated = str(self.settings["unannotated"]) or None
        intervals: list[LabelledInterval] = []
        for rec in recordings:
            if hasattr(rec, "annotations"):  # EDF+: annotations are in the file itself
                if source != "events":
                    raise BiosigError(
                        f"{rec.source}: an EDF file carries events, not {source} annotations; "
                        "use --labels events"
                    )
                intervals += edf_event_intervals(rec, rec.annotations())
                continue
            annotation = read_annotations(rec.record_path, annotator)
            if source == "beats":
                intervals += beat_intervals(rec, annotation)
            elif source in ("rhythm", "events"):
                intervals += rhythm_intervals(rec, annotation, unannotated)
            else:
                raise BiosigError(f"--labels {source}: choose {', '.join(LABEL_KEYWORDS)}")
        if not intervals:
            raise BiosigError(
                f"--labels {source}: no {source} found in the {annotator!r} annotations of "
                f"{len(recordings)} recordings"
            )
        return intervals

    def group(self, recording: Recording) -> str:
        pattern = str(self.settings["group_pattern"])
        if not pattern:
            return recording.id
        try:
            match = re.search(pattern, recording.id)
        except re.error as exc:
            raise BiosigError(
                f"--group-pattern {pattern!r}: not a regular expression ({exc})"
            ) from None
        if match is None:
            raise BiosigError(
                f"record {recording.id} does not match --group-pattern {pattern!r}; "
                "every record needs a patient for a leakage-safe split"
            )
        return match.group(1) if match.groups() else match.group(0)


class EcgPlugin(WfdbPlugin):
    """ECG records: WFDB (MIT-BIH, CPSC 2021, PTB…) or EDF."""

    name = "ecg"
    summary = "ECG from WFDB records or EDF: beats (AAMI), rhythm segments, record labels"
    # Plots draw leads on ECG paper; their units come from each record's header.
    plot_style = "ecg"
    defaults = PluginDefaults(sample_rate=360.0, window=3600, hop=1800, normalization="window")
    options = (
        *_common_options("atr", "0.5,40"),
        PluginOption(
            "signal",
            "leads",
            "what the model sees: 'leads' (filtered) or 'rr' (each lead's beat-to-beat "
            "intervals, for rhythm labels such as AF)",
            preprocessing=True,
        ),
    )
    signals = ("leads", "rr")

    def configure(self, values: dict) -> None:
        super().configure(values)
        if self.settings["signal"] not in self.signals:
            raise BiosigError(
                f"--signal {self.settings['signal']}: choose {' or '.join(self.signals)}"
            )

    def preprocessor(self, recording: Recording, fs_out: float) -> Preprocessor:
        chain = super().preprocessor(recording, fs_out)
        if self.settings["signal"] != "rr":
            return chain
        from .rhythm import RRIntervals

        return Chain(chain, RRIntervals(len(recording.channels), chain.fs_out))

    def make_demo_data(self, directory: Path, seed: int = 0) -> DemoData:
        from .synthetic import write_ecg_records

        headers = write_ecg_records(Path(directory), seed=seed)
        return DemoData(
            inputs=(Path(directory),),
            labels="rhythm",
            description=(
                f"{len(headers)} synthetic 2-lead ECG WFDB records of 6 patients, rhythm AFIB vs N"
            ),
            # CPSC 2021's conventions: no rhythm mark in a sinus record; split by patient.
            # The network alone tells these rhythms apart (held-out accuracy 1.0 with and
            # without the random-kernel branch, whose features cost most of the time).
            settings={
                "epochs": 6,
                "batch_size": 16,
                "kernel_features": 0,
                "options": {"unannotated": "N", "group_pattern": r"p(\d+)_"},
            },
        )


class EegPlugin(WfdbPlugin):
    """EEG recordings: EDF/EDF+ (with its event annotations) or WFDB."""

    name = "eeg"
    summary = "EEG from EDF/EDF+ (with annotations) or WFDB: event segments, record labels"
    # 2 s windows: several fit inside one 4 s motor-imagery event.
    defaults = PluginDefaults(sample_rate=160.0, window=320, hop=160, normalization="window")
    options = _common_options("event", "0.5,45")
    prefer_edf = True

    def make_demo_data(self, directory: Path, seed: int = 0) -> DemoData:
        from .synthetic import write_eeg_records

        files = write_eeg_records(Path(directory), seed=seed, edf=True)
        return DemoData(
            inputs=(Path(directory),),
            labels="events",
            description=f"{len(files)} synthetic 8-channel EEG EDF+ files, events T0/T1/T2",
            # 2016 random-kernel features rather than 9996: held-out accuracy 0.78 against
            # 0.73, in 25 s rather than 34.
            settings={
                "epochs": 8,
                "hop": 64,
                "batch_size": 32,
                "kernel_features": 2016,
                "options": {"group_pattern": r"S(\d+)R"},
            },
        )


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix == ".edf":
        return "edf"
    if suffix == ".hea":
        return "wfdb"
    return None


def _header_for(item: str | Path) -> str | Path:
    """A record named as WFDB tools name it (``mitdb/100``), or by one of its other files
    (``100.dat``, ``100.atr``), stands for its header."""
    path = Path(item)
    if path.suffix.lower() in (".hea", ".edf") or path.is_dir():
        return item
    for header in (Path(f"{path}.hea"), path.with_suffix(".hea")):
        if header.is_file():
            return header
    return item
