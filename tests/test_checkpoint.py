"""Checkpoints: safetensors weights plus JSON metadata, written atomically, never unpickled."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from biosig import __version__
from biosig.atomic import atomic_directory, atomic_file
from biosig.checkpoint import (
    FORMAT_VERSION,
    META,
    WEIGHTS,
    load_checkpoint,
    read_meta,
    resolve_checkpoint,
    save_checkpoint,
)
from biosig.errors import BiosigError
from biosig.model import SignalNet, model_config

# ---------------------------------------------------------------------------- helpers


def trained_like_model(seed: int = 0, channels: int = 2, classes: int = 3) -> SignalNet:
    """A tiny model whose BatchNorm statistics have moved off their defaults."""
    torch.manual_seed(seed)
    model = SignalNet(model_config("tiny", channels, classes))
    model.train()
    with torch.no_grad():
        model(torch.randn(4, channels, 96) * 3 + 1)
    return model.eval()


def meta_for(model: SignalNet) -> dict:
    return {
        "model": dataclasses.asdict(model.config),
        "classes": ["a", "b", "c"],
        "plugin": {"name": "numpy", "version": "0.1.0"},
        "window": 96,
        "hop": 48,
        "normalization": {"mode": "window"},
    }


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, SignalNet]:
    model = trained_like_model()
    return save_checkpoint(tmp_path / "ckpt", model, meta_for(model)), model


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
    assert {k: meta[k] for k in meta_for(model)} == json.loads(json.dumps(meta_for(model)))
    assert read_meta(path) == meta
    assert load_checkpoint(path)[1] == meta


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

    path = save_checkpoint(tmp_path / "ckpt", Wrapper(model), meta_for(model))
    assert load_file(str(path / WEIGHTS)).keys() == model.state_dict().keys()


def test_save_replaces_older_checkpoint_whole(tmp_path: Path) -> None:
    first, second = trained_like_model(0), trained_like_model(1)
    path = save_checkpoint(tmp_path / "ckpt", first, meta_for(first))
    (path / "stale.txt").write_text("from an older run")
    save_checkpoint(path, second, {**meta_for(second), "classes": ["x", "y", "z"]})
    assert sorted(p.name for p in path.iterdir()) == [META, WEIGHTS]
    loaded, meta = load_checkpoint(path)
    assert meta["classes"] == ["x", "y", "z"]
    assert torch.equal(loaded.head.weight, second.head.weight)
    assert leftovers(tmp_path, {"ckpt"}) == []


# ------------------------------------------------------------------------------ resolving


def test_resolve_accepts_checkpoint_dir_and_run_dir(tmp_path: Path) -> None:
    model = trained_like_model()
    best = save_checkpoint(tmp_path / "run" / "best", model, meta_for(model))
    save_checkpoint(tmp_path / "run" / "last", model, meta_for(model))
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
    path = save_checkpoint(tmp_path / "ckpt", small, meta_for(small))
    meta = json.loads((path / META).read_text())
    meta["model"]["in_channels"] = 2  # config no longer matches the stored tensors
    (path / META).write_text(json.dumps(meta))
    with pytest.raises(BiosigError, match=f"{path / WEIGHTS}: cannot load weights"):
        load_checkpoint(path)


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


def test_save_checkpoint_failure_keeps_old_checkpoint(saved, monkeypatch) -> None:
    path, model = saved

    def broken(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr("biosig.checkpoint.save_file", broken)
    with pytest.raises(OSError, match="no space"):
        save_checkpoint(path, trained_like_model(5), meta_for(model))
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
