"""Behaviour of the SignalClassifier and its config."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from biosig.model import (
    PRESETS,
    ModelConfig,
    SignalClassifier,
    count_parameters,
    model_config,
)


def build(preset: str = "tiny", in_channels: int = 1, n_classes: int = 3, **overrides):
    torch.manual_seed(0)
    return SignalClassifier(model_config(preset, in_channels, n_classes, **overrides))


@pytest.fixture(scope="module")
def counts() -> dict[str, int]:
    return {name: count_parameters(build(name)) for name in PRESETS}


def test_preset_parameter_counts(counts: dict[str, int]) -> None:
    assert set(counts) == {"tiny", "small", "base"}
    assert 2.04e6 <= counts["small"] <= 2.76e6, counts["small"]
    assert counts["tiny"] < counts["small"] < counts["base"]
    assert 8e6 <= counts["base"] <= 15e6, counts["base"]


def test_small_preset_follows_design() -> None:
    cfg = model_config("small", 1, 2)
    assert cfg.stage_channels == (32, 64, 128, 256)
    assert cfg.dilations == (1, 2, 4)
    assert cfg.stem_kernel == 15


@pytest.mark.parametrize("in_channels", [1, 3, 12])
def test_output_shapes(in_channels: int) -> None:
    model = build(in_channels=in_channels, n_classes=5).eval()
    x = torch.randn(4, in_channels, 300)
    logits = model(x)
    assert logits.shape == (4, 5)
    logits2, attention = model(x, return_attention=True)
    torch.testing.assert_close(logits2, logits)
    n_tokens = model.token_lengths(300)
    assert n_tokens == 38 and attention.shape == (4, model.config.pool_heads, n_tokens)
    torch.testing.assert_close(attention.sum(-1), torch.ones(4, model.config.pool_heads))


def test_encode_and_token_lengths() -> None:
    model = build().eval()
    assert model.downsample_factor == 8
    lengths = torch.tensor([1024, 999, 517, 7])
    tokens, token_lengths = model.encode(torch.randn(4, 1, 1024), lengths)
    assert tokens.shape == (4, 128, model.config.model_dim)
    assert token_lengths.tolist() == [128, 125, 65, 1]
    assert torch.equal(model.token_lengths(lengths), token_lengths)
    assert torch.all(tokens[3, 1:] == 0)  # padded tokens are zeroed
    _, full = model.encode(torch.randn(2, 1, 20))
    assert full.tolist() == [3, 3]


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_padding_is_exact(preset: str) -> None:
    model = build(preset, in_channels=2)
    # A few training-mode passes give BatchNorm non-trivial running statistics, so the
    # eval-mode shift would leak into padding if any layer forgot to re-zero it.
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 2, 256) * 2 + 1)
    model.eval()
    lengths = torch.tensor([1024, 999, 517, 7])
    x = torch.randn(4, 2, 1024)
    x = torch.where(torch.arange(1024) < lengths[:, None, None], x, 0.0)
    with torch.no_grad():
        batched, attention = model(x, lengths, return_attention=True)
        for i, length in enumerate(lengths.tolist()):
            alone = model(x[i : i + 1, :, :length])
            torch.testing.assert_close(batched[i : i + 1], alone, atol=1e-5, rtol=0)
            n_valid = model.token_lengths(length)
            assert torch.all(attention[i, :, n_valid:] == 0)
        # Whatever the padding holds (even NaN), it must not reach the valid outputs.
        garbage = torch.where(torch.arange(1024) < lengths[:, None, None], x, float("nan"))
        torch.testing.assert_close(model(garbage, lengths), batched, atol=0, rtol=0)


def test_full_lengths_match_no_lengths() -> None:
    model = build().eval()
    x = torch.randn(3, 1, 200)
    with torch.no_grad():
        torch.testing.assert_close(model(x, torch.full((3,), 200)), model(x))


@pytest.mark.parametrize("length", range(1, 11))
def test_very_short_inputs(length: int) -> None:
    model = build(in_channels=3)
    x = torch.randn(2, 3, length)
    assert model(x).shape == (2, 3)  # training mode: BatchNorm still has 2 items
    model.eval()
    with torch.no_grad():
        out = model(x, torch.tensor([length, 1]))
    assert out.shape == (2, 3) and torch.isfinite(out).all()


def test_gradients_reach_the_stem() -> None:
    model = build()
    x = torch.randn(4, 1, 256)
    loss = F.cross_entropy(model(x, torch.tensor([256, 200, 31, 8])), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    grad = model.stem.conv.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())


def test_same_seed_same_outputs() -> None:
    x = torch.randn(2, 1, 128)
    a, b = build().eval(), build().eval()
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    torch.manual_seed(1)
    c = SignalClassifier(model_config("tiny", 1, 3)).eval()
    with torch.no_grad():
        assert not torch.equal(a(x), c(x))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_config_json_round_trip(preset: str) -> None:
    cfg = model_config(preset, 12, 7, dropout=0.2)
    restored = ModelConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert restored == cfg
    assert isinstance(restored.stage_channels, tuple) and isinstance(restored.dilations, tuple)


@pytest.mark.parametrize(
    "overrides",
    [
        {"model_dim": 100, "n_heads": 3},
        {"model_dim": 96, "n_heads": 32},  # odd head dim: rotary needs pairs
        {"pool_heads": 5},
        {"kernel_size": 4},
        {"stage_channels": ()},
        {"dilations": (1, 0)},
        {"dropout": 1.0},
        {"se_reduction": 0},
        {"blocks_per_stage": 1.5},
    ],
)
def test_invalid_config_raises(overrides: dict) -> None:
    with pytest.raises(ValueError):
        model_config("tiny", 1, 2, **overrides)
    with pytest.raises(ValueError, match="n_classes"):
        ModelConfig(n_classes=0)


def test_unknown_preset_or_field_raises() -> None:
    with pytest.raises(ValueError, match="tiny, small, base"):
        model_config("huge", 1, 2)
    with pytest.raises(ValueError, match="no_such_field"):
        model_config("tiny", 1, 2, no_such_field=1)


def test_bad_inputs_raise() -> None:
    model = build(in_channels=2)
    with pytest.raises(ValueError, match="expected input"):
        model(torch.randn(2, 3, 64))
    with pytest.raises(ValueError, match="lengths"):
        model(torch.randn(2, 2, 64), torch.tensor([65, 10]))
    with pytest.raises(ValueError, match="lengths"):
        model(torch.randn(2, 2, 64), torch.tensor([0, 10]))


def test_steps_every_item_pads_are_trimmed_exactly() -> None:
    torch.manual_seed(0)
    model = SignalClassifier(model_config("tiny", 2, 3)).eval()
    x = torch.randn(3, 2, 300)
    lengths = torch.tensor([300, 210, 97])
    padded = torch.cat([x, torch.zeros(3, 2, 724)], dim=-1)  # a 1024-sample window
    with torch.no_grad():
        short, att_short = model(x, lengths, return_attention=True)
        long, att_long = model(padded, lengths, return_attention=True)
    torch.testing.assert_close(short, long, atol=1e-5, rtol=1e-5)
    assert att_long.shape[-1] == att_short.shape[-1] == 300 // 8 + 1  # ceil(300 / 8)
