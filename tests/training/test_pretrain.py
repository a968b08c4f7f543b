"""Self-supervised pretraining: span masks, the masked-only loss, the reconstructor on
variable-length batches, the ``biosig pretrain`` command, and loading a pretrained backbone
into a classifier."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_helpers import meta_for
from safetensors.torch import load_file

from biosig.checkpoint import save_checkpoint
from biosig.errors import BiosigError
from biosig.nn.model import SignalNet, model_config
from biosig.training.pretraining import (
    BACKBONE_MODULES,
    Reconstructor,
    load_pretrained_backbone,
    mask_spans,
    pretrained_settings,
    reconstruction_loss,
)

# ---------------------------------------------------------------------------- helpers


def runs_of(row: torch.Tensor) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of ``True`` in a 1-D bool tensor."""
    padded = torch.cat((torch.tensor([False]), row, torch.tensor([False]))).int()
    edges = padded.diff()
    return list(
        zip(
            torch.nonzero(edges == 1).flatten().tolist(),
            torch.nonzero(edges == -1).flatten().tolist(),
            strict=True,
        )
    )


def tiny_reconstructor(in_channels: int = 1, seed: int = 0) -> Reconstructor:
    torch.manual_seed(seed)
    return Reconstructor(SignalNet(model_config("tiny", in_channels, 1))).eval()


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Give every tensor (BatchNorm statistics too) values no initialisation gives."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith("num_batches_tracked"):
                tensor.fill_(seed + 7)


def backbone_names(model: SignalNet) -> list[str]:
    return [k for k in model.state_dict() if k.split(".")[0] in BACKBONE_MODULES]


# ---------------------------------------------------------------------------- masks


def test_mask_spans_lie_inside_each_items_valid_samples_and_honour_the_ratio() -> None:
    lengths = torch.tensor([1000, 640, 333, 97, 1000])
    mask = mask_spans(lengths, 1000, 0.3, 32, torch.Generator().manual_seed(0))
    assert mask.shape == (5, 1000) and mask.dtype == torch.bool
    span_lengths = []
    for row, n in zip(mask, lengths.tolist(), strict=True):
        assert not row[n:].any(), "a masked sample in the padding"
        assert row[:n].sum().item() == round(0.3 * n)
        runs = runs_of(row)
        # separate contiguous spans (runs_of merges touching ones), about masked / span many
        assert len(runs) == max(1, round(round(0.3 * n) / 32))
        span_lengths += [b - a for a, b in runs]
    # span lengths vary (a random composition), around the asked-for mean
    assert len(set(span_lengths)) > 5
    assert 24 <= np.mean(span_lengths) <= 40


def test_mask_spans_mean_span_over_many_items() -> None:
    mask = mask_spans(torch.full((200,), 512), 512, 0.15, 16, torch.Generator().manual_seed(1))
    spans = [b - a for row in mask for a, b in runs_of(row)]
    assert abs(np.mean(spans) - 16) < 1.5
    assert mask.float().mean().item() == pytest.approx(round(0.15 * 512) / 512)


def test_mask_spans_are_reproducible_and_differ_between_seeds() -> None:
    lengths = torch.tensor([256, 200, 64])
    a = mask_spans(lengths, 256, 0.3, 16, torch.Generator().manual_seed(3))
    b = mask_spans(lengths, 256, 0.3, 16, torch.Generator().manual_seed(3))
    c = mask_spans(lengths, 256, 0.3, 16, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_mask_spans_short_items_and_bad_settings() -> None:
    mask = mask_spans(torch.tensor([0, 1, 2, 3]), 8, 0.9, 4, torch.Generator().manual_seed(0))
    # nothing to hide in 0 or 1 sample; otherwise at least one hidden and one left visible
    assert mask.sum(1).tolist() == [0, 0, 1, 2]
    assert not mask[:, 3:].any()
    for ratio, span in ((0.0, 4), (1.0, 4), (0.3, 0)):
        with pytest.raises(ValueError):
            mask_spans(torch.tensor([8]), 8, ratio, span)
    with pytest.raises(ValueError):
        mask_spans(torch.tensor([9]), 8, 0.3, 4)


# ---------------------------------------------------------------------------- the loss


def test_loss_counts_only_masked_valid_samples() -> None:
    generator = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 3, 50, generator=generator)
    target = torch.randn(2, 3, 50, generator=generator)
    lengths = torch.tensor([50, 30])
    mask = torch.zeros(2, 50, dtype=torch.bool)
    mask[0, 10:20] = True
    mask[1, 5:9] = True
    mask[1, 35:40] = True  # in item 1's padding: must not count although set
    loss = reconstruction_loss(pred, target, mask, lengths)
    inside = mask & (torch.arange(50) < lengths[:, None])
    expected = ((pred - target) ** 2).permute(1, 0, 2)[:, inside].mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)

    changed = target.clone()
    changed[0, :, 30:] = 99.0  # unmasked, valid
    changed[1, :, 0:5] = -99.0  # unmasked, valid
    changed[1, :, 30:] = float("nan")  # padding (masked there or not)
    assert reconstruction_loss(pred, changed, mask, lengths).item() == loss.item()

    changed = target.clone()
    changed[1, 2, 6] += 1.0  # one masked valid sample of one channel
    assert reconstruction_loss(pred, changed, mask, lengths).item() != loss.item()
    assert reconstruction_loss(pred, target, torch.zeros_like(mask), lengths).item() == 0.0


def test_reconstructor_never_sees_masked_or_padded_samples() -> None:
    """End to end: the batch is both input and target. Changing a padded sample changes
    nothing; changing a masked one changes the target but not the prediction."""
    model = tiny_reconstructor(in_channels=2)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, 2, 200, generator=generator)
    lengths = torch.tensor([200, 150, 77])
    mask = mask_spans(lengths, 200, 0.3, 16, torch.Generator().manual_seed(2))
    with torch.no_grad():
        pred = model(x, lengths, mask)
        loss = model.loss(x, lengths, mask)
        padded = x.clone()
        padded[1, :, 150:] = 1e6
        padded[2, :, 77:] = float("nan")
        assert torch.equal(model(padded, lengths, mask), pred)
        assert model.loss(padded, lengths, mask).item() == loss.item()

        hidden = x.clone()
        b, t = torch.nonzero(mask)[len(torch.nonzero(mask)) // 2].tolist()
        hidden[b, :, t] += 5.0
        assert torch.equal(model(hidden, lengths, mask), pred)
        assert model.loss(hidden, lengths, mask).item() != loss.item()

        visible = x.clone()
        t = int(torch.nonzero(~mask[0])[0])
        visible[0, :, t] += 5.0
        assert not torch.equal(model(visible, lengths, mask), pred)


def test_variable_length_batches_are_exact_and_train() -> None:
    model = tiny_reconstructor()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 1, 300, generator=generator)
    lengths = torch.tensor([123, 250, 61])  # none fills T: encode trims to 250
    mask = mask_spans(lengths, 300, 0.3, 16, torch.Generator().manual_seed(0))
    with torch.no_grad():
        pred = model(x, lengths, mask)
        assert pred.shape == x.shape
        for i, n in enumerate(lengths.tolist()):
            alone = model(x[i : i + 1, :, :n], None, mask[i : i + 1, :n])
            torch.testing.assert_close(pred[i, :, :n], alone[0], atol=1e-5, rtol=1e-4)

    model.train()
    loss = model.loss(x, lengths, mask)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.decoder.weight.grad is not None
    assert model.backbone.stem.conv.weight.grad is not None
    assert model.backbone.head.weight.grad is None  # the classifier head takes no part


# ---------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory: pytest.TempPathFactory, run_cli) -> Path:
    """``biosig pretrain`` for 3 epochs on noisy sines of varied lengths (some shorter than
    the window), one ``.npy`` file each, with a training pipeline file whose labels and
    training settings pretraining ignores."""
    root = tmp_path_factory.mktemp("pretrain")
    data = root / "sines"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(36):
        n = int(rng.integers(30, 64) if i % 6 == 0 else rng.integers(60, 240))
        t = np.arange(n)
        x = 2.0 * np.sin(2 * np.pi * rng.uniform(0.03, 0.08) * t + rng.uniform(0, 6.3))
        np.save(data / f"s{i:02d}.npy", (x + 0.05 * rng.normal(size=n)).astype(np.float32))
    pipeline = root / "task.toml"
    pipeline.write_text(
        'plugin = "numpy"\nlabels = "labels.tsv"\n[model]\npreset = "tiny"\nwindow = 64\n'
        'hop = 64\n[train]\nepochs = 3\nbatch_size = 8\nlr = 3e-3\nloss = "focal"\n'
        'augment = ["noise"]\nclass_weights = true\npatience = 2\n'
    )
    out = root / "run"
    result = run_cli(
        "pretrain", "--pipeline", pipeline, "--input", data, "--out", out,
        "--mask-span", "8", "--val-fraction", "0.25", "--device", "cpu",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "pretrained backbone written to" in result.out
    return out


def test_pretrain_command_writes_a_checkpoint_and_history(pretrained_run: Path) -> None:
    checkpoint = pretrained_run / "pretrained"
    assert (checkpoint / "model.safetensors").is_file()
    meta = json.loads((checkpoint / "biosig.json").read_text())
    assert meta["pretrained"] is True
    assert meta["window"] == 64 and meta["hop"] == 64 and meta["sample_rate"] == 1.0
    assert meta["normalization"] == {"mode": "window"}
    assert meta["plugin"]["name"] == "numpy"
    assert meta["model"]["stage_channels"] == [16, 32, 64, 64]
    settings = meta["pretraining"]
    assert settings["mask_ratio"] == 0.3 and settings["mask_span"] == 8
    assert settings["mask_value"] == "zero" and settings["epoch"] == 3
    assert settings["split"] == "group"

    with (pretrained_run / "history.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    val = [float(r["val_loss"]) for r in rows]
    zero = float(rows[-1]["val_zero_loss"])
    assert settings["val_loss"] == pytest.approx(val[-1])
    # sines are predictable from their neighbourhood: reconstruction beats the mean
    assert val[-1] < val[0]
    assert val[-1] < 0.7 * zero


def test_predicting_with_a_pretrained_backbone_says_to_fine_tune_it(
    pretrained_run: Path, run_cli
) -> None:
    result = run_cli(
        "predict", "--model", pretrained_run / "pretrained", pretrained_run, "--device", "cpu"
    )
    assert result.code == 2
    assert len(result.err_lines) == 1
    assert "a pretrained backbone, not a classifier" in result.err
    assert "biosig train --init" in result.err


def test_pretrained_run_fills_a_classifiers_backbone(pretrained_run: Path) -> None:
    settings = pretrained_settings(pretrained_run)  # the run directory finds `pretrained`
    assert settings.meta.pretrained and settings.meta.preset == "tiny"
    meta = settings.meta
    assert (meta.window, meta.hop, meta.normalization.mode) == (64, 64, "window")
    model = SignalNet(settings.classifier_config(n_classes=3, dropout=0.2))
    assert model.config.n_classes == 3 and model.config.dropout == 0.2
    assert load_pretrained_backbone(model, pretrained_run) == backbone_names(model)
    with torch.no_grad():
        logits = model.eval()(torch.randn(2, 1, 64), torch.tensor([64, 40]))
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    with pytest.raises(BiosigError, match="cannot change model_dim"):
        settings.classifier_config(n_classes=3, model_dim=32)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "x.npy"], "--plugin is required"),
        (["--plugin", "numpy"], "no --input given"),
        (["--plugin", "numpy", "--input", "x.npy", "--labels", "y.npy"], "no such option"),
        (["--plugin", "numpy", "--input", "x.npy", "--mask-ratio", "1.5"], "--mask-ratio"),
        (["--plugin", "numpy", "--input", "missing.npy"], "missing.npy"),
        (["--plugin", "nope", "--input", "x.npy"], "nope"),
    ],
)
def test_pretrain_bad_input_is_one_error_line(
    run_cli, in_tmp: Path, args: list[str], message: str
) -> None:
    result = run_cli("pretrain", *args)
    assert result.code != 0
    assert len(result.err_lines) == 1, result.err
    assert result.err_lines[0].startswith("error:") and message in result.err_lines[0]
    assert not (in_tmp / "runs").exists()


# ---------------------------------------------------------------------------- loading


def test_load_pretrained_backbone_copies_exactly_the_backbone(tmp_path: Path) -> None:
    source = tiny_reconstructor(seed=1)
    randomise(source, seed=1)
    save_checkpoint(
        tmp_path / "pre",
        source,
        meta_for(source.config, [], 64, pretrained=True),
    )
    torch.manual_seed(5)
    model = SignalNet(model_config("tiny", 1, 4))
    before = {k: v.clone() for k, v in model.state_dict().items()}

    loaded = load_pretrained_backbone(model, tmp_path / "pre")

    assert loaded == backbone_names(model)
    assert any(k.endswith("running_var") for k in loaded)  # BatchNorm statistics too
    theirs = source.backbone.state_dict()
    for name, tensor in model.state_dict().items():
        if name in loaded:
            assert torch.equal(tensor, theirs[name]), name
        else:
            assert name.startswith(("pool.", "head.")), name
            assert torch.equal(tensor, before[name]), name


def test_load_backbone_from_a_trained_classifier(tmp_path: Path) -> None:
    """Any biosig model gives its backbone the same way (its head is not taken)."""
    trained = SignalNet(model_config("tiny", 2, 3))
    randomise(trained, seed=2)
    save_checkpoint(tmp_path / "run" / "best", trained, meta_for(trained.config, ["a", "b", "c"]))
    model = SignalNet(model_config("tiny", 2, 5))
    head = model.head.weight.clone()
    loaded = load_pretrained_backbone(model, tmp_path / "run")
    assert loaded == backbone_names(model)
    assert torch.equal(model.proj.weight, trained.proj.weight)
    assert torch.equal(model.head.weight, head)
    assert not pretrained_settings(tmp_path / "run").meta.pretrained


def test_load_pretrained_backbone_refuses_another_architecture(tmp_path: Path) -> None:
    source = tiny_reconstructor()
    save_checkpoint(tmp_path / "pre", source, meta_for(source.config, [], pretrained=True))
    with pytest.raises(BiosigError) as error:
        load_pretrained_backbone(SignalNet(model_config("small", 1, 2)), tmp_path / "pre")
    text = str(error.value)
    assert str(tmp_path / "pre") in text
    assert "stage_channels 16,32,64,64 (checkpoint) vs 32,64,128,256 (model)" in text
    assert "model_dim 64 (checkpoint) vs 128 (model)" in text
    with pytest.raises(BiosigError, match="in_channels 1 .checkpoint. vs 3"):
        load_pretrained_backbone(SignalNet(model_config("tiny", 3, 2)), tmp_path / "pre")
    with pytest.raises(BiosigError, match="model not found"):
        load_pretrained_backbone(SignalNet(model_config("tiny", 1, 2)), tmp_path / "nope")


def test_an_interrupted_pretraining_resumes_to_the_uninterrupted_end(
    tmp_path: Path, synthetic_npy: Path, run_cli
) -> None:
    import biosig.training.trainer as trainer_module

    args = (
        "pretrain", "--plugin", "numpy", "--input", synthetic_npy / "signals.npy",
        "--preset", "tiny", "--epochs", "3", "--window", "128", "--hop", "64",
        "--mask-span", "8", "--device", "cpu",
    )  # fmt: skip
    full = run_cli(*args, "--out", "full", cwd=tmp_path)
    assert full.code == 0, full.err
    real = trainer_module.write_history

    def interrupt(path, rows):
        real(path, rows)
        if len(rows) == 2:  # killed after epoch 2's history, before its checkpoint and state
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer_module, "write_history", interrupt)
        cut = run_cli(*args, "--out", "cut", cwd=tmp_path)
    assert cut.code == 130

    resumed = run_cli("pretrain", "--resume", "cut", cwd=tmp_path)
    assert resumed.code == 0, resumed.err
    assert "resuming cut after epoch 1 of 3" in resumed.out
    weights = [
        load_file(tmp_path / run / "pretrained" / "model.safetensors") for run in ("full", "cut")
    ]
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=0, atol=0, msg=key)
    losses = [
        [{k: v for k, v in row.items() if k != "seconds"} for row in history_rows(tmp_path / run)]
        for run in ("full", "cut")
    ]
    assert losses[0] == losses[1] and len(losses[0]) == 3

    again = run_cli("pretrain", "--resume", "cut", cwd=tmp_path)
    assert again.code == 0 and "finished all 3 epochs: nothing to resume" in again.out
    refused = run_cli("pretrain", "--resume", "cut", "--lr", "0.1", cwd=tmp_path)
    assert refused.code != 0 and "--lr cannot be given with --resume" in refused.err


def history_rows(run: Path) -> list[dict[str, str]]:
    with (run / "history.tsv").open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))
