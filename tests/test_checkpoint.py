"""Checkpoints: safetensors weights plus JSON metadata, written atomically, never unpickled."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from checkpoint_helpers import meta_for
from safetensors import SafetensorError
from safetensors.torch import load_file

from biosig import __version__
from biosig.atomic import atomic_directory, atomic_file
from biosig.checkpoint import (
    FORMAT_VERSION,
    META,
    WEIGHTS,
    CheckpointMeta,
    load_checkpoint,
    read_meta,
    resolve_checkpoint,
    save_checkpoint,
)
from biosig.errors import BiosigError
from biosig.nn.model import SignalNet, model_config

# ---------------------------------------------------------------------------- helpers


def trained_like_model(seed: int = 0, channels: int = 2, classes: int = 3) -> SignalNet:
    """A tiny model whose BatchNorm statistics have moved off their defaults."""
    torch.manual_seed(seed)
    model = SignalNet(model_config("tiny", channels, classes))
    model.train()
    with torch.no_grad():
        model(torch.randn(4, channels, 96) * 3 + 1)
    return model.eval()


def meta_of(model: SignalNet, **fields) -> CheckpointMeta:
    return meta_for(model.config, ["a", "b", "c"], **fields)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, SignalNet]:
    model = trained_like_model()
    return save_checkpoint(tmp_path / "ckpt", model, meta_of(model)), model


def leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


# ----------------------------------------------------------------------------- round trip


def test_round_trip_gives_identical_weights_and_outputs(saved) -> None:
    path, model = saved
    assert sorted(p.name for p in path.iterdir()) == [META, WEIGHTS]
    loaded, meta = load_checkpoint(path)
    assert not loaded.training
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    x = torch.randn(3, 2, 96)
    lengths = torch.tensor([96, 50, 7])
    with torch.no_grad():
        assert torch.equal(model(x, lengths), loaded(x, lengths))
    assert loaded.config == model.config


def test_metadata_is_json_with_format_and_version(saved) -> None:
    path, model = saved
    meta = json.loads((path / META).read_text(encoding="utf-8"))
    assert meta["format"] == FORMAT_VERSION
    assert meta["biosig_version"] == __version__
    assert meta["model"] == json.loads(json.dumps(dataclasses.asdict(model.config)))
    assert (meta["classes"], meta["window"], meta["hop"]) == (["a", "b", "c"], 96, 48)
    assert meta["normalization"] == {"mode": "window"}
    assert read_meta(path) == meta_of(model)
    assert load_checkpoint(path)[1] == meta_of(model)


def test_weights_are_plain_safetensors(saved) -> None:
    path, model = saved
    tensors = load_file(str(path / WEIGHTS))
    assert tensors.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(tensors[key], value)
    header_size = int.from_bytes((path / WEIGHTS).read_bytes()[:8], "little")
    header = json.loads((path / WEIGHTS).read_bytes()[8 : 8 + header_size])
    assert header["__metadata__"] == {"format": "pt"}


def test_loading_never_unpickles(saved, monkeypatch) -> None:
    path, model = saved

    def refuse(*args, **kwargs):
        raise AssertionError("checkpoint loading must not unpickle")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    loaded, _ = load_checkpoint(path)
    assert torch.equal(loaded.head.weight, model.head.weight)


def test_save_unwraps_wrapped_model(tmp_path: Path) -> None:
    model = trained_like_model()

    class Wrapper(torch.nn.Module):  # stands in for DistributedDataParallel
        def __init__(self, module: torch.nn.Module) -> None:
            super().__init__()
            self.module = module

    path = save_checkpoint(tmp_path / "ckpt", Wrapper(model), meta_of(model))
    assert load_file(str(path / WEIGHTS)).keys() == model.state_dict().keys()


def test_save_replaces_older_checkpoint_whole(tmp_path: Path) -> None:
    first, second = trained_like_model(0), trained_like_model(1)
    path = save_checkpoint(tmp_path / "ckpt", first, meta_of(first))
    (path / "stale.txt").write_text("from an older run")
    save_checkpoint(path, second, meta_for(second.config, ["x", "y", "z"]))
    assert sorted(p.name for p in path.iterdir()) == [META, WEIGHTS]
    loaded, meta = load_checkpoint(path)
    assert meta.classes == ("x", "y", "z")
    assert torch.equal(loaded.head.weight, second.head.weight)
    assert leftovers(tmp_path, {"ckpt"}) == []


# ------------------------------------------------------------------------------ resolving


def test_resolve_accepts_checkpoint_dir_and_run_dir(tmp_path: Path) -> None:
    model = trained_like_model()
    best = save_checkpoint(tmp_path / "run" / "best", model, meta_of(model))
    save_checkpoint(tmp_path / "run" / "last", model, meta_of(model))
    assert resolve_checkpoint(tmp_path / "run") == best
    assert resolve_checkpoint(best) == best
    loaded, _ = load_checkpoint(tmp_path / "run")
    assert torch.equal(loaded.head.weight, model.head.weight)


def test_missing_model_is_an_error_naming_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(BiosigError, match=f"{missing}: model not found"):
        load_checkpoint(missing)


def test_directory_without_checkpoint_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / META).write_text("{}")
    for directory in (tmp_path / "empty", tmp_path / "half"):
        with pytest.raises(BiosigError, match=f"{directory}: not a biosig model"):
            resolve_checkpoint(directory)


def test_wrong_format_version_names_metadata_file(saved) -> None:
    path, _ = saved
    meta = json.loads((path / META).read_text())
    (path / META).write_text(json.dumps({**meta, "format": FORMAT_VERSION + 1}))
    with pytest.raises(BiosigError, match=f"{path / META}: checkpoint format 2"):
        load_checkpoint(path)


def test_unreadable_metadata_names_file(saved) -> None:
    path, _ = saved
    (path / META).write_text("{not json")
    with pytest.raises(BiosigError, match=f"{path / META}: unreadable"):
        read_meta(path)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b"\x00garbage that is no safetensors header", id="garbage"),
        pytest.param(lambda b: b"", id="empty"),
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
    ],
)
def test_corrupt_weights_name_weights_file(saved, damage) -> None:
    path, _ = saved
    weights = path / WEIGHTS
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(BiosigError, match=f"{weights}: cannot load weights"):
        load_checkpoint(path)


def test_weights_of_another_architecture_name_weights_file(tmp_path: Path) -> None:
    small = trained_like_model(channels=1)
    path = save_checkpoint(tmp_path / "ckpt", small, meta_of(small))
    meta = json.loads((path / META).read_text())
    meta["model"]["in_channels"] = 2  # config no longer matches the stored tensors
    (path / META).write_text(json.dumps(meta))
    with pytest.raises(BiosigError, match=f"{path / WEIGHTS}: does not match biosig.json: "):
        load_checkpoint(path)


# ------------------------------------------------------------------------- tampered metadata


def _tamper(path: Path, change) -> None:
    meta = json.loads((path / META).read_text(encoding="utf-8"))
    changed = change(meta)
    (path / META).write_text(json.dumps(meta if changed is None else changed), encoding="utf-8")


TAMPERED = {
    "a list": (lambda m: [m], "a JSON table expected"),
    "no model": (lambda m: m.__delitem__("model"), "model must be a table"),
    "model a list": (lambda m: m.update(model=[1]), "model must be a table"),
    "unknown model field": (lambda m: m["model"].update(colour=1), "model: .*colour"),
    "negative width": (
        lambda m: m["model"].update(model_dim=-4),
        "model: invalid model config: model_dim must be",
    ),
    "no window": (lambda m: m.__delitem__("window"), "window must be an integer"),
    "window 1e9": (lambda m: m.update(window=10**9), "window must be an integer from 1"),
    "window a float": (lambda m: m.update(window=96.5), "window must be an integer"),
    "hop 0": (lambda m: m.update(hop=0), "hop must be an integer"),
    "ensemble 5000": (lambda m: m.update(ensemble=5000), "ensemble must be an integer"),
    "rate 0": (lambda m: m.update(sample_rate=0), "sample_rate must be a positive"),
    "rate a string": (lambda m: m.update(sample_rate="8e2"), "sample_rate must be a positive"),
    "rate NaN": (lambda m: m.update(sample_rate=float("nan")), "sample_rate must be a positive"),
    "classes a string": (lambda m: m.update(classes="abc"), "classes must be a list of names"),
    "a phantom class": (lambda m: m["classes"].append("d"), "4 classes named for a model of 3"),
    "a class twice": (lambda m: m.update(classes=["a", "a", "b"]), "classes are named twice"),
    "no plugin": (lambda m: m.__delitem__("plugin"), "plugin must be a table"),
    "plugin unnamed": (lambda m: m["plugin"].__delitem__("name"), "plugin needs a name"),
    "plugin options a list": (lambda m: m["plugin"].update(options=[]), "plugin needs a name"),
    "no normalization": (
        lambda m: m.__delitem__("normalization"),
        "normalization: normalisation must be a table",
    ),
    "unknown normalization": (
        lambda m: m.update(normalization={"mode": "zscore"}),
        "normalization: unknown normalisation 'zscore'",
    ),
    "dataset without statistics": (
        lambda m: m.update(normalization={"mode": "dataset"}),
        "normalization: dataset normalisation needs finite numbers as mean",
    ),
    "channels miscounted": (lambda m: m.update(channels=["x"]), "1 channels named for a model"),
    "pretrained a string": (lambda m: m.update(pretrained="yes"), "pretrained must be true"),
    "training a list": (lambda m: m.update(training=[]), "training must be a table"),
}


@pytest.mark.parametrize("name", sorted(TAMPERED))
def test_tampered_metadata_is_one_error_naming_file_and_field(saved, name) -> None:
    path, _ = saved
    change, message = TAMPERED[name]
    _tamper(path, change)
    with pytest.raises(BiosigError, match=f"^{path / META}: {message}"):
        load_checkpoint(path)


def test_metadata_claiming_a_model_larger_than_its_weights_is_refused_before_building(
    saved, monkeypatch
) -> None:
    path, _ = saved
    _tamper(path, lambda m: m["model"].update(model_dim=4096, n_layers=48))
    built = []
    monkeypatch.setattr("biosig.checkpoint.build_classifier", lambda *a: built.append(a))
    with pytest.raises(BiosigError, match=f"{path / WEIGHTS}: holds .* fewer than the"):
        load_checkpoint(path)
    assert built == []


def test_metadata_round_trips_through_json(saved) -> None:
    path, model = saved
    meta = meta_of(
        model,
        channels=("x", "y"),
        ensemble=1,
        training={"epoch": 3},
        metrics={"accuracy": 0.5},
    )
    assert CheckpointMeta.from_json(json.loads(json.dumps(meta.to_json()))) == meta


# --------------------------------------------------------------------------------- atomic


def test_atomic_directory_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_directory(target) as tmp:
        assert tmp != target and tmp.parent == tmp_path
        (tmp / "new.txt").write_text("new")
        assert (target / "old.txt").read_text() == "old"  # untouched until the end
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert leftovers(tmp_path, {"out"}) == []


def test_atomic_directory_failure_keeps_old(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("half")
        raise RuntimeError("disk on fire")
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    assert (target / "old.txt").read_text() == "old"
    assert leftovers(tmp_path, {"out"}) == []


def test_atomic_directory_failure_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_directory(tmp_path / "a" / "b") as tmp:
        (tmp / "x").write_text("x")
        raise KeyboardInterrupt
    assert list((tmp_path / "a").iterdir()) == []


@pytest.mark.parametrize(
    "error",
    [OSError("no space left on device"), SafetensorError("Error while serializing: I/O")],
    ids=["oserror", "safetensors"],
)
def test_save_checkpoint_failure_names_it_and_keeps_old_checkpoint(
    saved, monkeypatch, error
) -> None:
    path, model = saved

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr("biosig.checkpoint.save_file", broken)
    with pytest.raises(BiosigError, match=f"^{path}: cannot write the checkpoint"):
        save_checkpoint(path, trained_like_model(5), meta_of(model))
    loaded, _ = load_checkpoint(path)
    assert torch.equal(loaded.head.weight, model.head.weight)
    assert leftovers(path.parent, {path.name}) == []


def test_atomic_file_writes_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "table.tsv"
    with atomic_file(target) as handle:
        handle.write("first\n")
        assert not target.exists()
    assert target.read_text() == "first\n"
    with atomic_file(target, "wb") as handle:
        handle.write(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert leftovers(target.parent, {"table.tsv"}) == []


def test_atomic_file_failure_keeps_old(tmp_path: Path) -> None:
    target = tmp_path / "table.tsv"
    target.write_text("complete\n")
    with pytest.raises(ValueError, match="bad row"), atomic_file(target) as handle:
        handle.write("partial")
        raise ValueError("bad row")
    assert target.read_text() == "complete\n"
    assert leftovers(tmp_path, {"table.tsv"}) == []


def test_atomic_file_failure_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError), atomic_file(tmp_path / "new.csv") as handle:
        handle.write("partial")
        raise ValueError
    assert list(tmp_path.iterdir()) == []


def _dead_pid() -> int:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def test_litter_of_a_killed_writer_is_cleared_by_the_next_write(tmp_path: Path) -> None:
    dead, alive = _dead_pid(), os.getppid()
    (tmp_path / f".table.tsv.tmp-{dead}").write_text("half a table")
    (tmp_path / f".table.tsv.tmp-{alive}").write_text("another process, still writing")
    (tmp_path / f".best.tmp-{dead}").mkdir()
    (tmp_path / f".best.tmp-{dead}" / "model.safetensors").write_bytes(b"half")
    (tmp_path / "best").mkdir()
    with atomic_file(tmp_path / "table.tsv") as handle:
        handle.write("whole")
    with atomic_directory(tmp_path / "best") as tmp:
        (tmp / "x").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f".table.tsv.tmp-{alive}",
        "best",
        "table.tsv",
    ]


def test_an_output_moved_aside_by_a_killed_writer_is_put_back(tmp_path: Path) -> None:
    dead = _dead_pid()
    old = tmp_path / f".best.old-{dead}"  # killed between moving best aside and replacing it
    old.mkdir()
    (old / "model.safetensors").write_bytes(b"the previous model")
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "best"):
        raise RuntimeError("this write fails too")
    assert (tmp_path / "best" / "model.safetensors").read_bytes() == b"the previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
