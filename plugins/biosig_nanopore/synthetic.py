"""Synthetic Oxford Nanopore raw-signal reads, written as real FAST5 and POD5 files.

The squiggles come from a small physical caricature of nanopore sequencing:

* **k-mer current model** - a fixed table (built from a constant seed, so it never changes
  between runs) maps each of the 1024 DNA 5-mers to a mean current of roughly 60-120 pA, the
  range of the R9.4 "450 bps 5-mer" models. The level is mostly set by the central bases, as in
  real pores, plus an interaction term so that neighbouring k-mers are not simply additive.
* **translocation** - each base dwells a gamma-distributed number of samples (shape 2,
  at least 2), with a per-read speed of 400-450 bases/s, i.e. about 9-10 samples per base at
  4 kHz but highly variable, so the same sequence never produces the same time course twice.
* **noise** - white Gaussian noise of 1.5-2.5 pA, a slow baseline wander of a couple of pA, and a
  per-read gain/shift (as pores and flow cells differ). A reader that normalises each read by
  its median and MAD removes the gain/shift, and so must any class difference survive that.
* **read start** - the open pore (200-250 pA, also recorded as ``median_before``) for a few
  hundred samples, then a fixed, low-complexity adapter sequence that the motor drags through
  slowly (long dwells, narrow current range), then the insert.

Two classes, :data:`CLASSES`:

``motif``
    the random insert carries :data:`MOTIF`, a fixed 12-mer whose k-mer levels swing between
    the extremes of the table, at random positions every 60-200 bases (about 5% of bases), so
    every window of a few thousand samples holds several copies of its distinctive "zig-zag";
``plain``
    the same random insert without the motif.

Read lengths, channels, speeds, noise and calibration are drawn identically for both classes,
so nothing but the sequence content tells them apart; overall level and spread are erased by
per-read normalisation and are not informative.

Files are written in the real on-disk layouts (see ``../shared/data/nanopore/README.md``):
multi-read FAST5 v2.2 through h5py (gzip or VBZ, HDF5 filter 32020) and POD5 through the
``pod5`` package. ``pA = (raw + offset) * range / digitisation`` in both formats.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # h5py and pod5 are imported where used, so the model works without them
    import h5py

CLASSES = ("motif", "plain")

#: Bases in alphabetical order; sequences are arrays of indices into this string.
BASES = "ACGT"
#: k of the k-mer model: 5 like the R9.4 models (R10 uses 9, which is overkill here).
K = 5
#: The class-``motif`` marker. Chosen (by searching the seeded table once) so that its eight
#: complete 5-mers alternate between low and high currents - a sawtooth that a convolution
#: picks out of the random background, while its bases are an ordinary mix (no homopolymers).
MOTIF = "CTAGCGTGTATG"
#: Bases between motif starts in class ``motif`` (uniform, inclusive).
MOTIF_GAP = (60, 200)
#: A fixed, low-complexity stand-in for the sequencing adapter at every read start.
ADAPTER = "TTTTTAATTTTTAACCTTTTTAAT"

#: FAST5 / POD5 calibration of a MinION: a 13-bit ADC, so raw values lie in -4096..4095.
DIGITISATION = 8192.0
ADC_MIN, ADC_MAX = -4096, 4095
#: zstd level 1, delta + zig-zag on 2-byte integers, filter version 0: what ``ont_fast5_api``
#: (``VbzCompression``) and the ``h5repack -f UD=32020,5,0,0,2,1,1`` recipe of the VBZ plugin
#: use; readable with the ``vbz_h5py_plugin`` filter.
VBZ_FILTER = 32020
VBZ_OPTS = (0, 2, 1, 1)
#: Samples per HDF5 chunk: small enough that a reader can decompress part of a long read.
FAST5_CHUNK = 16384
#: Default insert length in bases: with the open pore and adapter, about 20k-60k samples at
#: 4 kHz (5-15 s), short reads by nanopore standards but long enough to cut many windows.
DEFAULT_BASES = (2000, 6000)

_MODEL_SEED = 20240501  # the k-mer table is part of the "chemistry": never reseeded per run


def _build_kmer_levels() -> np.ndarray:
    """Mean current (pA) of every 5-mer, indexed by base-4 number of the k-mer (first base most
    significant). Central positions weigh most, like the real pore constriction."""
    rng = np.random.default_rng(_MODEL_SEED)
    weights = np.array([0.35, 0.8, 1.0, 0.7, 0.3])
    effects = rng.normal(0.0, 1.0, size=(K, 4))
    digits = (np.arange(4**K)[:, None] // 4 ** np.arange(K - 1, -1, -1)) % 4
    additive = (weights * effects[np.arange(K), digits]).sum(axis=1)
    levels = additive + rng.normal(0.0, 0.35, size=4**K)
    levels = (levels - levels.mean()) / levels.std()
    # R9.4-like spread: mean ~85 pA, sd ~11 pA, nothing outside 60-120 pA.
    return np.clip(85.0 + 11.0 * levels, 60.0, 120.0)


#: The fixed k-mer current model, ``KMER_LEVELS[index]`` in pA (float64, 1024 entries).
KMER_LEVELS = _build_kmer_levels()


def _encode(sequence: str) -> np.ndarray:
    return np.array([BASES.index(b) for b in sequence], dtype=np.int64)


def kmer_indices(sequence: np.ndarray) -> np.ndarray:
    """Index into :data:`KMER_LEVELS` of every complete k-mer of a base-index sequence."""
    n = len(sequence) - K + 1
    index = np.zeros(max(n, 0), dtype=np.int64)
    for j in range(K):  # K vectorised passes, not a loop over bases
        index = index * 4 + sequence[j : j + n]
    return index


@dataclass
class SyntheticRead:
    """One read as the sequencer stores it: ADC counts plus the calibration to get pA back.

    ``pA = (raw + offset) * range / digitisation``; ``start_time`` is in samples since the
    start of the run, as in FAST5 ``Raw`` attributes and POD5 ``start_sample``.
    """

    read_id: str
    label: str
    raw: np.ndarray
    digitisation: float
    offset: float
    range: float
    sample_rate: float
    channel: int
    read_number: int
    start_time: int
    start_mux: int = 1
    median_before: float = 220.0

    @property
    def scale(self) -> float:
        """pA per ADC count (POD5 ``calibration.scale``)."""
        return self.range / self.digitisation

    @property
    def pa(self) -> np.ndarray:
        """The calibrated signal in picoamps (float32, as ``pod5`` returns it)."""
        return ((self.raw.astype(np.float64) + self.offset) * self.scale).astype(np.float32)


def _random_sequence(
    rng: np.random.Generator, label: str, n_bases: int, motif_gap: tuple[int, int] = MOTIF_GAP
) -> np.ndarray:
    """Random insert (uniform bases); class ``motif`` gets :data:`MOTIF` overwritten into it."""
    if label not in CLASSES:
        raise ValueError(f"unknown synthetic class {label!r}; expected one of {CLASSES}")
    sequence = rng.integers(0, 4, size=n_bases)
    if label == "motif":
        motif = _encode(MOTIF)
        # Enough gaps to run past the end; the first copy lands anywhere in the first gap so
        # windows do not all see a motif at the same phase.
        gaps = rng.integers(motif_gap[0], motif_gap[1] + 1, size=n_bases // motif_gap[0] + 2)
        starts = rng.integers(0, motif_gap[1]) + np.concatenate([[0], np.cumsum(gaps)])
        starts = starts[starts + len(motif) <= n_bases]
        sequence[(starts[:, None] + np.arange(len(motif))).ravel()] = np.tile(motif, len(starts))
    return sequence


def _dwells(rng: np.random.Generator, n: int, mean: float, minimum: int = 2) -> np.ndarray:
    """Samples spent on each of ``n`` k-mers: gamma(2) around ``mean``, floor ``minimum``."""
    shape = 2.0
    return np.maximum(np.rint(rng.gamma(shape, mean / shape, size=n)), minimum).astype(np.int64)


def simulate_read(
    rng: np.random.Generator,
    label: str,
    n_bases: int,
    sample_rate: float = 4000.0,
    motif_gap: tuple[int, int] = MOTIF_GAP,
) -> np.ndarray:
    """Raw current (float32 pA) of one read of class ``label`` with an insert of ``n_bases``.

    Open pore (200-250 pA, 150-350 samples at 4 kHz), a slow low-complexity adapter, then the
    insert translocating at 400-450 bases/s. The whole read is built with ``np.repeat`` of
    k-mer levels by dwell times, so cost is linear in samples with no Python per-sample loop.
    Sample counts scale with ``sample_rate`` (dwells are drawn in seconds, then sampled).
    """
    if n_bases < K:
        raise ValueError(f"n_bases must be at least {K}, got {n_bases}")
    per_second = sample_rate / 4000.0  # durations below are quoted at 4 kHz
    speed = rng.uniform(400.0, 450.0)  # bases per second for this read
    open_pore = rng.uniform(200.0, 250.0)

    # Adapter: fixed sequence, motor-stalled (dwells ~4x an insert base), narrow range because
    # its k-mers are mostly T/A runs; a read's first few hundred ms look like this in real data.
    adapter = _encode(ADAPTER)
    insert = _random_sequence(rng, label, n_bases, motif_gap)
    # Join adapter and insert so k-mers spanning the junction exist, like a real ligation.
    levels = KMER_LEVELS[kmer_indices(np.concatenate([adapter, insert]))]
    n_adapter_kmers = len(adapter) - K + 1
    base_dwell = sample_rate / speed
    dwells = np.concatenate(
        [
            _dwells(rng, n_adapter_kmers, 4.0 * base_dwell, minimum=4),
            _dwells(rng, len(levels) - n_adapter_kmers, base_dwell),
        ]
    )
    # Pull the adapter levels towards their mean so it reads as "low complexity".
    adapter_levels = levels[:n_adapter_kmers]
    levels[:n_adapter_kmers] = adapter_levels.mean() + 0.4 * (
        adapter_levels - adapter_levels.mean()
    )

    n_open = int(rng.integers(150, 351) * per_second)
    body = np.repeat(levels, dwells)
    signal = np.concatenate([np.full(n_open, open_pore), body])
    n = len(signal)

    # Per-read gain and shift of the insert (pore-to-pore variation), slow baseline wander
    # (linear interpolation between knots ~1 s apart) and white measurement noise.
    gain = rng.uniform(0.9, 1.1)
    shift = rng.uniform(-6.0, 6.0)
    signal[n_open:] = gain * signal[n_open:] + shift
    knots = np.arange(0, n + int(sample_rate), int(sample_rate))
    signal += np.interp(np.arange(n), knots, rng.normal(0.0, 1.0, size=len(knots)))
    signal += rng.normal(0.0, rng.uniform(1.5, 2.5), size=n)
    return signal.astype(np.float32)


def _uuid4(rng: np.random.Generator) -> str:
    """A version-4 UUID drawn from ``rng`` (so ids are reproducible, unlike ``uuid.uuid4``)."""
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def to_raw(pa: np.ndarray, digitisation: float, offset: float, range_: float) -> np.ndarray:
    """Quantise pA to ADC counts, the inverse of ``(raw + offset) * range / digitisation``.

    Rounding keeps the round trip within half a quantisation step (``range / digitisation``,
    ~0.18 pA); values are clipped to the 13-bit ADC range, which lies inside int16.
    """
    counts = np.rint(pa.astype(np.float64) * digitisation / range_ - offset)
    return np.clip(counts, ADC_MIN, ADC_MAX).astype(np.int16)


def synthetic_reads(
    n_reads: int,
    seed: int = 0,
    sample_rate: float = 4000.0,
    n_bases: tuple[int, int] = DEFAULT_BASES,
    motif_gap: tuple[int, int] = MOTIF_GAP,
) -> list[SyntheticRead]:
    """``n_reads`` reads with balanced, shuffled classes, as one MinION run would record them.

    ``n_bases`` is the (inclusive) range of insert lengths; both classes draw from the same
    range. ``motif_gap`` is the range of bases between motif copies in ``motif`` reads
    (smaller: an easier task). One ADC ``range`` per run (it is a property of the device)
    and one integer ``offset`` per channel, as in real MinION files. ``range`` is a float32
    value so that the POD5 ``scale`` (stored as float32) equals ``range / digitisation`` exactly.
    """
    rng = np.random.default_rng(seed)
    labels = [CLASSES[i % len(CLASSES)] for i in range(n_reads)]
    rng.shuffle(labels)
    adc_range = float(np.float32(rng.uniform(1400.0, 1500.0)))
    channel_offsets: dict[int, float] = {}
    start_time = int(rng.integers(60, 600) * sample_rate)  # the first read starts minutes in
    reads = []
    for number, label in enumerate(labels):
        channel = int(rng.integers(1, 513))
        offset = channel_offsets.setdefault(channel, float(rng.integers(-5, 41)))
        n = int(rng.integers(n_bases[0], n_bases[1] + 1))
        pa = simulate_read(rng, label, n, sample_rate, motif_gap)
        reads.append(
            SyntheticRead(
                read_id=_uuid4(rng),
                label=label,
                raw=to_raw(pa, DIGITISATION, offset, adc_range),
                digitisation=DIGITISATION,
                offset=offset,
                range=adc_range,
                sample_rate=float(sample_rate),
                channel=channel,
                read_number=1000 + 7 * number + int(rng.integers(0, 7)),
                start_time=start_time,
                start_mux=int(rng.integers(1, 5)),
                # The open-pore current the read began from, as MinKNOW records it (the
                # open-pore stretch is at least 150 samples at 4 kHz, so this stays inside it).
                median_before=float(np.median(pa[: max(1, int(100 * sample_rate / 4000))])),
            )
        )
        start_time += len(pa) + int(rng.integers(1, 5) * sample_rate)
    return reads


def _run_metadata(reads: Sequence[SyntheticRead]) -> tuple[str, dict[str, str], dict[str, str]]:
    """``(run_id, context_tags, tracking_id)`` shared by every read of a file.

    Plausible MinION/LSK109 values with the same keys as real files, derived from the read
    ids so the same reads always get the same metadata (and so are byte-for-byte stable).
    """
    rng = np.random.default_rng([int(uuid.UUID(r.read_id)) % 2**63 for r in reads[:4]])
    run_id = rng.bytes(20).hex()
    sample_rate = f"{reads[0].sample_rate:.0f}"
    context_tags = {
        "experiment_duration_set": "2880",
        "experiment_type": "genomic_dna",
        "fast5_raw": "1",
        "flowcell_type": "flo-min106",
        "local_basecalling": "0",
        "sample_frequency": sample_rate,
        "sequencing_kit": "sqk-lsk109",
        "user_filename_input": "biosig_synthetic",
    }
    tracking_id = {
        "asic_id": str(int(rng.integers(10**8, 10**9))),
        "device_id": "MN00000",
        "device_type": "minion",
        "exp_script_purpose": "sequencing_run",
        "exp_start_time": "2024-05-01T09:00:00Z",
        "flow_cell_id": "SYN00001",
        "hostname": "biosig-synthetic",
        "operating_system": "synthetic",
        "protocol_run_id": _uuid4(rng),
        "run_id": run_id,
        "sample_id": "biosig_synthetic",
        "version": "synthetic",
    }
    return run_id, context_tags, tracking_id


def _bytes_attrs(group: h5py.Group, values: dict[str, str]) -> None:
    # Fixed-length byte strings (HDF5 H5T_STRING, not variable-length): what MinKNOW writes.
    for key, value in values.items():
        group.attrs[key] = np.bytes_(value.encode())


def write_multi_fast5(
    path: str | Path, reads: Sequence[SyntheticRead], compression: str = "gzip"
) -> None:
    """Write ``reads`` as one multi-read FAST5 (v2.2) file, signals gzip- or VBZ-compressed.

    Layout (mirrors MinKNOW's)::

        /                         attrs file_version=b"2.2", file_type=b"multi-read"
        /read_<id>                attrs run_id
        /read_<id>/Raw            attrs read_id, duration, read_number, start_time, start_mux,
                                  median_before;  dataset Signal (int16, chunked, compressed)
        /read_<id>/channel_id     attrs channel_number (bytes), digitisation, offset, range,
                                  sampling_rate (float64)
        /read_<id>/context_tags   bytes attrs, hard links to one group per file (as MinKNOW)
        /read_<id>/tracking_id    likewise

    ``compression="vbz"`` needs the VBZ HDF5 plugin (``import vbz_h5py_plugin``), to write and
    to read.
    """
    import h5py

    if compression == "vbz":
        import vbz_h5py_plugin  # noqa: F401 - registers HDF5 filter 32020 on import

        filter_kwargs: dict = {"compression": VBZ_FILTER, "compression_opts": VBZ_OPTS}
    elif compression == "gzip":
        filter_kwargs = {"compression": "gzip", "compression_opts": 1}  # ont_fast5_api GZIP
    else:
        raise ValueError(f"compression must be 'gzip' or 'vbz', got {compression!r}")
    if not reads:
        raise ValueError("no reads to write")

    run_id, context_tags, tracking_id = _run_metadata(reads)
    with h5py.File(path, "w") as f:
        f.attrs["file_version"] = np.bytes_(b"2.2")
        f.attrs["file_type"] = np.bytes_(b"multi-read")
        shared: str | None = None
        for read in reads:
            group = f.create_group(f"read_{read.read_id}")
            group.attrs["run_id"] = np.bytes_(run_id.encode())
            raw = group.create_group("Raw")
            raw.attrs["read_id"] = np.bytes_(read.read_id.encode())
            raw.attrs["duration"] = np.uint32(len(read.raw))
            raw.attrs["read_number"] = np.int32(read.read_number)
            raw.attrs["start_time"] = np.uint64(read.start_time)
            raw.attrs["start_mux"] = np.uint8(read.start_mux)
            raw.attrs["median_before"] = np.float64(read.median_before)
            raw.create_dataset(
                "Signal",
                data=read.raw.astype(np.int16, copy=False),
                chunks=(max(1, min(len(read.raw), FAST5_CHUNK)),),
                **filter_kwargs,
            )
            channel = group.create_group("channel_id")
            channel.attrs["channel_number"] = np.bytes_(str(read.channel).encode())
            channel.attrs["digitisation"] = np.float64(read.digitisation)
            channel.attrs["offset"] = np.float64(read.offset)
            channel.attrs["range"] = np.float64(read.range)
            channel.attrs["sampling_rate"] = np.float64(read.sample_rate)
            if shared is None:
                shared = group.name
                _bytes_attrs(group.create_group("context_tags"), context_tags)
                _bytes_attrs(group.create_group("tracking_id"), tracking_id)
            else:  # hard links, so the run-level groups are stored once per file
                group["context_tags"] = f[f"{shared}/context_tags"]
                group["tracking_id"] = f[f"{shared}/tracking_id"]


def write_pod5(path: str | Path, reads: Sequence[SyntheticRead]) -> None:
    """Write ``reads`` as one POD5 file (VBZ-compressed signal) with ``pod5.Writer``.

    Calibration is ``offset`` and ``scale = range / digitisation``, so ``signal_pa`` equals
    the FAST5 formula; the sample rate goes into the (shared) ``RunInfo``. An existing file is
    replaced (``pod5.Writer`` itself refuses to overwrite).
    """
    import pod5

    if not reads:
        raise ValueError("no reads to write")
    run_id, context_tags, tracking_id = _run_metadata(reads)
    started = datetime.datetime(2024, 5, 1, 9, 0, tzinfo=datetime.timezone.utc)
    run_info = pod5.RunInfo(
        acquisition_id=run_id,
        acquisition_start_time=started,
        adc_max=ADC_MAX,
        adc_min=ADC_MIN,
        context_tags=context_tags,
        experiment_name="biosig_synthetic",
        flow_cell_id=tracking_id["flow_cell_id"],
        flow_cell_product_code="FLO-MIN106",
        protocol_name="sequencing/synthetic:FLO-MIN106:SQK-LSK109",
        protocol_run_id=tracking_id["protocol_run_id"],
        protocol_start_time=started,
        sample_id=tracking_id["sample_id"],
        sample_rate=int(round(reads[0].sample_rate)),
        sequencing_kit="sqk-lsk109",
        sequencer_position="MN00000",
        sequencer_position_type="MinION Mk1B",
        software="biosig synthetic generator",
        system_name="biosig-synthetic",
        system_type="synthetic",
        tracking_id=tracking_id,
    )
    end_reason = pod5.EndReason.from_reason_with_default_forced(pod5.EndReasonEnum.SIGNAL_POSITIVE)
    records = [
        pod5.Read(
            read_id=uuid.UUID(read.read_id),
            pore=pod5.Pore(channel=read.channel, well=read.start_mux, pore_type="not_set"),
            calibration=pod5.Calibration.from_range(read.offset, read.range, read.digitisation),
            read_number=read.read_number,
            start_sample=read.start_time,
            median_before=read.median_before,
            end_reason=end_reason,
            run_info=run_info,
            signal=read.raw.astype(np.int16, copy=False),
        )
        for read in reads
    ]
    path = Path(path)
    path.unlink(missing_ok=True)
    with pod5.Writer(path, software_name="biosig synthetic generator") as writer:
        writer.add_reads(records)


def _batches(items: Sequence[SyntheticRead], size: int) -> Iterable[Sequence[SyntheticRead]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def write_synthetic_run(
    directory: str | Path,
    n_reads: int = 120,
    seed: int = 0,
    sample_rate: float = 4000.0,
    reads_per_file: int = 20,
    formats: Sequence[str] = ("fast5", "pod5"),
    n_bases: tuple[int, int] = DEFAULT_BASES,
    motif_gap: tuple[int, int] = MOTIF_GAP,
) -> tuple[list[Path], Path]:
    """Write a labelled synthetic run: ``directory/reads/*.fast5|*.pod5`` and ``labels.tsv``.

    Reads are split into files of ``reads_per_file``; file ``i`` takes the ``i``-th kind in
    the cycle gzip FAST5, VBZ FAST5, POD5 (restricted to ``formats``), so every layout is
    exercised and classes are mixed within each file. ``labels.tsv`` has the header
    ``read_id<TAB>class`` and one line per read. Earlier ``batch_*`` files in ``reads/`` are
    removed so a re-run with fewer reads leaves no unlabelled files behind.

    Returns ``(files, labels_path)``.
    """
    unknown = set(formats) - {"fast5", "pod5"}
    if unknown or not formats:
        raise ValueError(f"formats must be drawn from 'fast5', 'pod5'; got {tuple(formats)}")
    if reads_per_file < 1:
        raise ValueError(f"reads_per_file must be positive, got {reads_per_file}")
    kinds = [k for k in ("gzip", "vbz", "pod5") if ("pod5" if k == "pod5" else "fast5") in formats]

    directory = Path(directory)
    reads_dir = directory / "reads"
    reads_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*reads_dir.glob("batch_*.fast5"), *reads_dir.glob("batch_*.pod5")]:
        stale.unlink()

    reads = synthetic_reads(
        n_reads, seed=seed, sample_rate=sample_rate, n_bases=n_bases, motif_gap=motif_gap
    )
    files = []
    for index, batch in enumerate(_batches(reads, reads_per_file)):
        kind = kinds[index % len(kinds)]
        if kind == "pod5":
            path = reads_dir / f"batch_{index:03d}.pod5"
            write_pod5(path, batch)
        else:
            path = reads_dir / f"batch_{index:03d}_{kind}.fast5"
            write_multi_fast5(path, batch, compression=kind)
        files.append(path)

    labels_path = directory / "labels.tsv"
    lines = ["read_id\tclass", *(f"{r.read_id}\t{r.label}" for r in reads)]
    labels_path.write_text("\n".join(lines) + "\n")
    return files, labels_path
