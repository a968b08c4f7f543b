"""Behaviour of the SignalNet and its config."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from checkpoint_helpers import meta_for

from biosig.checkpoint import load_checkpoint, save_checkpoint
from biosig.nn.model import (
    DEFAULT_MIN_TOKENS,
    PRESETS,
    EnsembleClassifier,
    ModelConfig,
    SignalNet,
    count_parameters,
    drop_path_rates,
    fit_to_data,
    fit_to_window,
    model_config,
    token_count,
    width_for_data,
)


def build(preset: str = "tiny", in_channels: int = 1, n_classes: int = 3, **overrides):
    torch.manual_seed(0)
    return SignalNet(model_config(preset, in_channels, n_classes, **overrides))


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
    assert cfg.stage_strides == (2, 2, 2)
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


@pytest.mark.parametrize(
    ("strides", "factor", "tokens"),
    [
        ((2, 2, 2), 8, [32, 32, 17, 3, 1]),
        ((2, 2, 1), 4, [64, 63, 33, 6, 2]),
        ((1, 2, 2), 4, [64, 63, 33, 6, 2]),
        ((1, 1, 2), 2, [128, 125, 66, 12, 4]),
        ((2, 1, 1), 2, [128, 125, 66, 12, 4]),
        ((1, 1, 1), 1, [256, 249, 131, 24, 7]),
    ],
)
def test_strides_set_factor_and_token_counts(strides, factor: int, tokens: list[int]) -> None:
    model = build(stage_strides=strides).eval()
    assert model.downsample_factor == factor
    lengths = torch.tensor([256, 249, 131, 24, 7])
    assert model.token_lengths(lengths).tolist() == tokens
    assert [model.token_lengths(n) for n in lengths.tolist()] == tokens  # plain ints too
    with torch.no_grad():
        encoded, token_lengths = model.encode(torch.randn(5, 1, 256), lengths)
    assert encoded.shape == (5, tokens[0], model.config.model_dim)
    assert token_lengths.tolist() == tokens


@pytest.mark.parametrize(
    ("preset", "strides"),
    [
        ("tiny", None),
        ("small", None),
        ("tiny", (1, 1, 2)),
        ("tiny", (2, 1, 1)),
        ("tiny", (1, 1, 1)),
    ],
)
def test_padding_is_exact(preset: str, strides: tuple[int, ...] | None) -> None:
    model = build(preset, in_channels=2, stage_strides=strides)
    # A few training-mode passes give BatchNorm non-trivial running statistics, so the
    # eval-mode shift would leak into padding if any layer forgot to re-zero it.
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 2, 128) * 2 + 1)
    model.eval()
    # Shorter items where the strides keep more tokens: the same checks at a fraction of the
    # cost (odd lengths still exercise every ceil of the mask arithmetic).
    lengths = torch.tensor([1024, 999, 517, 7] if strides is None else [120, 97, 41, 7])
    t = int(lengths[0])
    x = torch.randn(4, 2, t)
    x = torch.where(torch.arange(t) < lengths[:, None, None], x, 0.0)
    with torch.no_grad():
        batched, attention = model(x, lengths, return_attention=True)
        for i, length in enumerate(lengths.tolist()):
            alone = model(x[i : i + 1, :, :length])
            torch.testing.assert_close(batched[i : i + 1], alone, atol=1e-5, rtol=0)
            n_valid = model.token_lengths(length)
            assert torch.all(attention[i, :, n_valid:] == 0)
        # Whatever the padding holds (even NaN), it must not reach the valid outputs.
        garbage = torch.where(torch.arange(t) < lengths[:, None, None], x, float("nan"))
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
    c = SignalNet(model_config("tiny", 1, 3)).eval()
    with torch.no_grad():
        assert not torch.equal(a(x), c(x))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_config_json_round_trip(preset: str) -> None:
    base = model_config(preset, 12, 7, dropout=0.2)
    for cfg in (base, fit_to_data(fit_to_window(base, 40), 100)):
        restored = ModelConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
        assert restored == cfg
        for field in ("stage_channels", "stage_strides", "dilations"):
            assert isinstance(getattr(restored, field), tuple), field
    assert cfg.stage_strides == (2, 1, 1) and cfg.model_dim == 64  # the fitted one changed


def test_old_config_without_strides_loads_unchanged(tmp_path) -> None:
    # Checkpoints written before stage_strides existed have no such key in meta["model"].
    cfg = model_config("tiny", 2, 3)
    old = dataclasses.asdict(cfg)
    del old["stage_strides"]
    assert ModelConfig(**old) == cfg and ModelConfig(**old).stage_strides == (2, 2, 2)
    assert ModelConfig(stage_channels=(8, 16)).stage_strides == (2,)  # one per transition
    torch.manual_seed(0)
    from_old = SignalNet(ModelConfig(**old))
    reference = build(in_channels=2)  # the same seed, the default config
    assert from_old.downsample_factor == reference.downsample_factor == 8
    # The same seed gives the same weights: the field changes no parameter or RNG draw.
    pairs = zip(from_old.parameters(), reference.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    x = torch.randn(3, 2, 120)
    with torch.no_grad():
        from_old(x)  # non-trivial BatchNorm statistics for the saved model
    from_old.eval()
    reference.load_state_dict(from_old.state_dict(), strict=True)
    reference.eval()
    save_checkpoint(tmp_path / "old", from_old, meta_for(cfg, ["a", "b", "c"]))
    written = json.loads((tmp_path / "old" / "biosig.json").read_text(encoding="utf-8"))
    del written["model"]["stage_strides"]  # as a checkpoint of that time has it
    (tmp_path / "old" / "biosig.json").write_text(json.dumps(written), encoding="utf-8")
    loaded, meta = load_checkpoint(tmp_path / "old")
    assert loaded.config == meta.model == cfg
    lengths = torch.tensor([120, 61, 9])
    with torch.no_grad():
        expected = from_old(x, lengths)
        assert torch.equal(reference(x, lengths), expected)
        assert torch.equal(loaded(x, lengths), expected)


def test_fitted_strides_survive_a_checkpoint(tmp_path) -> None:
    torch.manual_seed(0)
    model = SignalNet(fit_to_window(model_config("tiny", 1, 2), 50)).eval()
    save_checkpoint(tmp_path / "fitted", model, meta_for(model.config, ["a", "b"]))
    loaded, meta = load_checkpoint(tmp_path / "fitted")
    assert meta.model.stage_strides == (2, 1, 1) and loaded.downsample_factor == 2
    x = torch.randn(2, 1, 50)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize(
    "overrides",
    [
        {"model_dim": 100, "n_heads": 3},
        {"model_dim": 96, "n_heads": 32},  # odd head dim: rotary needs pairs
        {"pool_heads": 5},
        {"kernel_size": 4},
        {"stage_channels": ()},
        {"stage_strides": (2, 2)},  # one per stage after the first: 3 for 4 stages
        {"stage_strides": (2, 2, 2, 2)},
        {"stage_strides": (2, 3, 2)},  # only 1 and 2
        {"stage_strides": (2, 0, 2)},
        {"stage_strides": (True, 2, 2)},
        {"dilations": (1, 0)},
        {"dropout": 1.0},
        {"drop_path": 1.0},
        {"drop_path": -0.1},
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
    model = SignalNet(model_config("tiny", 2, 3)).eval()
    x = torch.randn(3, 2, 300)
    lengths = torch.tensor([300, 210, 97])
    padded = torch.cat([x, torch.zeros(3, 2, 724)], dim=-1)  # a 1024-sample window
    with torch.no_grad():
        short, att_short = model(x, lengths, return_attention=True)
        long, att_long = model(padded, lengths, return_attention=True)
    torch.testing.assert_close(short, long, atol=1e-5, rtol=1e-5)
    assert att_long.shape[-1] == att_short.shape[-1] == 300 // 8 + 1  # ceil(300 / 8)


def test_short_window_keeps_one_token_per_sample() -> None:
    # Issue 7: a 24-sample series (e.g. UCR ItalyPowerDemand) must not become 3 tokens.
    cfg = fit_to_window(model_config("tiny", 1, 2), 24)
    assert cfg.stage_strides == (1, 1, 1)
    torch.manual_seed(0)
    model = SignalNet(cfg).eval()
    x = torch.randn(5, 1, 24)
    with torch.no_grad():
        tokens, token_lengths = model.encode(x)
        logits, attention = model(x, return_attention=True)
        padded = model(x, torch.tensor([24, 24, 20, 13, 1]))
    assert tokens.shape == (5, 24, 64) and token_lengths.tolist() == [24] * 5
    assert logits.shape == (5, 2) and attention.shape == (5, 4, 24)
    assert padded.shape == (5, 2) and torch.isfinite(padded).all()
    torch.testing.assert_close(padded[:2], logits[:2], atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("window", "strides", "tokens"),
    [
        (1, (1, 1, 1), 1),  # shorter than min_tokens: no downsampling at all
        (15, (1, 1, 1), 15),
        (24, (1, 1, 1), 24),  # factor 2 would leave 12
        (31, (2, 1, 1), 16),
        (63, (2, 2, 1), 16),
        (100, (2, 2, 1), 25),  # factor 8 would leave 13
        (127, (2, 2, 2), 16),
        (150, (2, 2, 2), 19),
        (1024, (2, 2, 2), 128),  # never more than the preset's
    ],
)
def test_fit_to_window(window: int, strides: tuple[int, ...], tokens: int) -> None:
    assert DEFAULT_MIN_TOKENS == 16
    cfg = fit_to_window(model_config("small", 1, 2), window)
    assert cfg.stage_strides == strides
    assert token_count(cfg, window) == tokens


def test_fit_to_window_rule_details() -> None:
    tiny = model_config("tiny", 1, 2)
    assert fit_to_window(tiny, 100, min_tokens=32).stage_strides == (2, 1, 1)  # 50 tokens
    assert fit_to_window(tiny, 100, min_tokens=1).stage_strides == (2, 2, 2)  # 13 tokens
    # An explicit pattern keeps its shape: the last stride-2 entry goes first, none is added.
    custom = dataclasses.replace(tiny, stage_strides=(1, 2, 2))
    assert fit_to_window(custom, 40).stage_strides == (1, 2, 1)
    assert fit_to_window(custom, 10_000).stage_strides == (1, 2, 2)
    flat = dataclasses.replace(tiny, stage_strides=(1, 1, 1))
    assert fit_to_window(flat, 10_000).stage_strides == (1, 1, 1)
    fitted = fit_to_window(tiny, 24)
    assert dataclasses.replace(fitted, stage_strides=(2, 2, 2)) == tiny  # nothing else changed
    # Strides do not change parameter shapes: the preset's weights load into the fitted model.
    SignalNet(fitted).load_state_dict(SignalNet(tiny).state_dict(), strict=True)
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="window"):
            fit_to_window(tiny, bad)
    assert fit_to_window(tiny, np.int64(24)) == fitted  # numpy sizes are fine
    with pytest.raises(ValueError, match="min_tokens"):
        fit_to_window(tiny, 100, min_tokens=0)


@pytest.mark.parametrize(
    ("n_examples", "width"),
    [(1, 32), (63, 32), (64, 64), (255, 64), (256, 128), (1023, 128), (1024, 256), (4096, 512)],
)
def test_width_for_data(n_examples: int, width: int) -> None:
    assert width_for_data(n_examples) == width


@pytest.mark.parametrize(
    ("preset", "n_examples", "channels", "model_dim", "ffn_hidden"),
    [
        ("small", 50, (32, 32, 32, 32), 32, 96),
        ("small", 200, (32, 64, 64, 64), 64, 192),
        ("small", 1000, (32, 64, 128, 128), 128, 352),
        ("small", 1024, (32, 64, 128, 256), 128, 352),  # the preset itself
        ("tiny", 50, (16, 32, 32, 32), 32, 96),
        ("tiny", 200, (16, 32, 64, 64), 64, 192),
        ("base", 50, (32, 32, 32, 32), 32, 96),
        ("base", 1000, (48, 96, 128, 128), 128, 352),
        ("base", 5000, (48, 96, 192, 384), 256, 704),
    ],
)
def test_fit_to_data(
    preset: str, n_examples: int, channels: tuple, model_dim: int, ffn_hidden: int
) -> None:
    full = model_config(preset, 1, 2)
    cfg = fit_to_data(full, n_examples)
    assert (cfg.stage_channels, cfg.model_dim, cfg.ffn_hidden) == (channels, model_dim, ffn_hidden)
    assert all(c <= f for c, f in zip(cfg.stage_channels, full.stage_channels, strict=True))
    assert cfg.model_dim <= full.model_dim
    kept = ("n_layers", "n_heads", "pool_heads", "stage_strides", "kernel_size", "dilations")
    assert all(getattr(cfg, name) == getattr(full, name) for name in kept)


def test_fit_to_data_shrinks_small_data_models(counts: dict[str, int]) -> None:
    # 50 windows no longer train the 2.4 M parameters of small.
    assert count_parameters(SignalNet(fit_to_data(model_config("small", 1, 3), 50))) < (
        counts["small"] / 10
    )
    assert fit_to_data(model_config("small", 1, 3), 10**6) == model_config("small", 1, 3)


def test_fit_to_data_keeps_head_divisibility() -> None:
    # model_dim 96 with 3 heads: a multiple of lcm(2 * 3, 4) = 12 at most 32 is 24.
    cfg = ModelConfig(model_dim=96, n_heads=3, pool_heads=4)
    fitted = fit_to_data(cfg, 50)
    assert fitted.model_dim == 24 and fitted.ffn_hidden == 64  # the default 8/3 width again
    # A custom SwiGLU width shrinks in proportion instead of being reset.
    custom = fit_to_data(dataclasses.replace(cfg, ffn_hidden=400), 50)
    assert custom.model_dim == 24 and custom.ffn_hidden == 100
    # 32 heads of even width need a multiple of 64: the cap of 32 cannot be met, the
    # narrowest valid width is kept instead of an invalid config.
    many_heads = fit_to_data(ModelConfig(model_dim=256, n_heads=32, pool_heads=8), 50)
    assert many_heads.model_dim == 64 and many_heads.stage_channels == (32, 32, 32, 32)
    for bad in (0, -1, 10.0):
        with pytest.raises(ValueError, match="n_examples"):
            fit_to_data(cfg, bad)
    assert fit_to_data(cfg, np.int64(50)) == fitted


def test_drop_path_rates_rise_to_the_configured_rate_at_the_last_block() -> None:
    config = model_config("tiny", 1, 2, drop_path=0.3)
    rates = drop_path_rates(config)
    n_blocks = len(config.stage_channels) * config.blocks_per_stage + config.n_layers
    assert len(rates) == n_blocks
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)
    assert np.all(np.diff(rates) > 0)
    model = SignalNet(config)
    built = [b.drop_path.rate for stage in model.stages for b in stage.blocks]
    built += [b.drop_path.rate for b in model.blocks]
    assert built == pytest.approx(list(rates))


def test_drop_path_changes_training_outputs_only() -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 1, 256)
    plain = SignalNet(model_config("tiny", 1, 3, dropout=0.0))
    dropped = SignalNet(model_config("tiny", 1, 3, dropout=0.0, drop_path=0.5))
    dropped.load_state_dict(plain.state_dict())  # the same parameters: no new ones
    plain.eval(), dropped.eval()
    with torch.no_grad():
        torch.testing.assert_close(dropped(x), plain(x))
        plain.train(), dropped.train()
        torch.manual_seed(1)
        a = dropped(x)
        torch.manual_seed(2)
        b = dropped(x)
        assert not torch.allclose(a, b)  # a random subset of blocks each pass
        assert not torch.allclose(a, plain(x))


def test_an_ensemble_averages_its_networks_probabilities_and_attention() -> None:
    torch.manual_seed(0)
    ensemble = EnsembleClassifier(model_config("tiny", 2, 3), 3).eval()
    x, lengths = torch.randn(5, 2, 200), torch.tensor([200, 150, 90, 200, 33])
    with torch.no_grad():
        members = [m(x, lengths, return_attention=True) for m in ensemble.members]
        mean = torch.stack([torch.softmax(logits, -1) for logits, _ in members]).mean(0)
        torch.testing.assert_close(torch.softmax(ensemble(x, lengths), -1), mean)
        log_p, weights = ensemble(x, lengths, return_attention=True)
        torch.testing.assert_close(log_p.exp(), mean)
        torch.testing.assert_close(weights, torch.stack([w for _, w in members]).mean(0))
        per_member = ensemble(x, lengths, per_member=True)
    assert per_member.shape == (3, 5, 3)
    torch.testing.assert_close(per_member[1], members[1][0])
    assert ensemble.downsample_factor == ensemble.members[0].downsample_factor
    assert count_parameters(ensemble) == 3 * count_parameters(ensemble.members[0])
    with pytest.raises(ValueError, match="n_members"):
        EnsembleClassifier(model_config("tiny", 2, 3), 0)
