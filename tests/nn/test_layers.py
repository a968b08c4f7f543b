"""Behaviour of the building blocks in biosig.nn.layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from biosig.nn.layers import (
    AttentionPool,
    DropPath,
    RMSNorm,
    RotaryEmbedding,
    SqueezeExcite1d,
    SwiGLU,
    downsample_lengths,
    lengths_to_mask,
    masked_mean,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --- rotary -------------------------------------------------------------------------------


def _rotated_scores(head_dim: int, seq_len: int) -> torch.Tensor:
    """Scores ``S[m, n] = rot(q, m) . rot(k, n)`` for one fixed q and k at every position."""
    rotary = RotaryEmbedding(head_dim)
    q = torch.randn(head_dim).expand(1, 1, seq_len, head_dim)
    k = torch.randn(head_dim).expand(1, 1, seq_len, head_dim)
    q_rot, k_rot = rotary(q, k)
    return q_rot[0, 0] @ k_rot[0, 0].T


def test_rotary_score_depends_only_on_relative_position() -> None:
    scores = _rotated_scores(head_dim=16, seq_len=64)
    for m, n in [(0, 0), (3, 1), (1, 7), (10, 2)]:
        for shift in (1, 5, 17, 40):
            torch.testing.assert_close(
                scores[m + shift, n + shift], scores[m, n], atol=1e-5, rtol=1e-5
            )


def test_rotary_score_changes_with_relative_offset() -> None:
    scores = _rotated_scores(head_dim=16, seq_len=32)
    row = scores[10]
    for offset in range(1, 8):
        assert not torch.allclose(row[10], row[10 + offset], atol=1e-3)


def test_rotary_preserves_norms_shape_and_dtype() -> None:
    rotary = RotaryEmbedding(8)
    q, k = torch.randn(2, 3, 20, 8), torch.randn(2, 3, 20, 8)
    q_rot, k_rot = rotary(q, k)
    assert q_rot.shape == q.shape and k_rot.shape == k.shape
    torch.testing.assert_close(q_rot.norm(dim=-1), q.norm(dim=-1))
    torch.testing.assert_close(k_rot.norm(dim=-1), k.norm(dim=-1))
    # Position 0 is not rotated at all.
    torch.testing.assert_close(q_rot[:, :, 0], q[:, :, 0])
    q_bf16, _ = rotary(q.bfloat16(), k.bfloat16())
    assert q_bf16.dtype == torch.bfloat16


def test_rotary_cache_grows_and_stays_consistent() -> None:
    rotary = RotaryEmbedding(8)
    q = torch.randn(1, 2, 40, 8)
    short, _ = rotary(q[:, :, :10], q[:, :, :10])
    long, _ = rotary(q, q)
    again, _ = rotary(q[:, :, :10], q[:, :, :10])
    torch.testing.assert_close(long[:, :, :10], short)
    torch.testing.assert_close(again, short)


def test_rotary_cache_built_in_inference_mode_still_trains() -> None:
    rotary = RotaryEmbedding(8)
    with torch.inference_mode():
        rotary(torch.randn(1, 1, 16, 8), torch.randn(1, 1, 16, 8))
    q = torch.randn(1, 1, 16, 8, requires_grad=True)
    q_rot, k_rot = rotary(q, q)
    (q_rot * k_rot).sum().backward()
    assert q.grad is not None


def test_rotary_rejects_odd_or_mismatched_head_dim() -> None:
    with pytest.raises(ValueError):
        RotaryEmbedding(7)
    with pytest.raises(ValueError):
        RotaryEmbedding(8)(torch.randn(1, 1, 4, 16), torch.randn(1, 1, 4, 16))


# --- RMSNorm / SwiGLU ------------------------------------------------------------------------


def test_rmsnorm_output_has_unit_rms() -> None:
    norm = RMSNorm(32)
    x = torch.randn(4, 10, 32) * 7.0 + 3.0
    rms = norm(x).pow(2).mean(dim=-1).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-4, rtol=0)
    assert norm(x.bfloat16()).dtype == torch.bfloat16


def test_rmsnorm_scale_is_learned() -> None:
    norm = RMSNorm(4)
    assert [p.shape for p in norm.parameters()] == [torch.Size([4])]
    with torch.no_grad():
        norm.weight.fill_(2.0)
    rms = norm(torch.randn(3, 4)).pow(2).mean(dim=-1).sqrt()
    torch.testing.assert_close(rms, torch.full_like(rms, 2.0), atol=1e-4, rtol=0)


def test_swiglu_shape_and_no_biases() -> None:
    ffn = SwiGLU(16, 40, dropout=0.0)
    assert ffn(torch.randn(2, 5, 16)).shape == (2, 5, 16)
    assert all(m.bias is None for m in ffn.modules() if isinstance(m, nn.Linear))
    assert sum(p.numel() for p in ffn.parameters()) == 3 * 16 * 40


# --- masks ----------------------------------------------------------------------------------


def test_lengths_to_mask() -> None:
    mask = lengths_to_mask(torch.tensor([3, 0, 5]), 5)
    expected = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert mask.dtype == torch.bool and torch.equal(mask, expected)


@pytest.mark.parametrize("length", [1, 2, 3, 7, 8, 9, 999, 1024])
def test_downsample_lengths_matches_stride2_conv(length: int) -> None:
    conv = nn.Conv1d(1, 1, kernel_size=3, stride=2, padding=1)
    assert conv(torch.zeros(1, 1, length)).shape[-1] == downsample_lengths(length, 2)
    assert downsample_lengths(torch.tensor([length]), 2).item() == downsample_lengths(length, 2)


def test_masked_mean_ignores_padding() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, float("nan"), float("inf"), 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    torch.testing.assert_close(masked_mean(x, mask), torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(masked_mean(x, mask.float()), torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(masked_mean(x[:1], None), torch.tensor([26.5]))
    assert masked_mean(x, torch.zeros_like(mask)).tolist() == [0.0, 0.0]


# --- squeeze-excitation ---------------------------------------------------------------------


def test_squeeze_excite_ignores_padded_values() -> None:
    se = SqueezeExcite1d(8, reduction=4)
    lengths = torch.tensor([20, 13, 1])
    mask = lengths_to_mask(lengths, 20).unsqueeze(1)
    x = torch.randn(3, 8, 20)
    noisy = torch.where(mask, x, torch.randn_like(x) * 100)
    out, out_noisy = se(x, mask), se(noisy, mask)
    assert out.shape == x.shape
    torch.testing.assert_close(out.masked_select(mask), out_noisy.masked_select(mask))
    # Each item's valid part is scaled as if it were alone and unpadded.
    for i, length in enumerate(lengths.tolist()):
        alone = se(x[i : i + 1, :, :length])
        torch.testing.assert_close(out[i : i + 1, :, :length], alone)
    torch.testing.assert_close(se(x, mask.float()), out)


# --- attention pooling ----------------------------------------------------------------------


def test_attention_pool_weights_and_padding() -> None:
    pool = AttentionPool(16, n_heads=4)
    lengths = torch.tensor([9, 4, 1])
    mask = lengths_to_mask(lengths, 9)
    x = torch.randn(3, 9, 16)
    pooled, weights = pool(x, mask)
    assert pooled.shape == (3, 16) and weights.shape == (3, 4, 9)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4))
    assert torch.all(weights.masked_select(~mask.unsqueeze(1)) == 0)
    assert torch.all(weights.masked_select(mask.unsqueeze(1)) > 0)

    garbage = x.clone()
    garbage[~mask] = float("nan")
    pooled_garbage, _ = pool(garbage, mask)
    torch.testing.assert_close(pooled_garbage, pooled)
    for i, length in enumerate(lengths.tolist()):
        alone, _ = pool(x[i : i + 1, :length])
        torch.testing.assert_close(alone[0], pooled[i])


def test_attention_pool_without_mask() -> None:
    pool = AttentionPool(12, n_heads=3)
    pooled, weights = pool(torch.randn(2, 5, 12))
    assert pooled.shape == (2, 12)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))
    with pytest.raises(ValueError):
        AttentionPool(10, n_heads=3)


def test_drop_path_drops_whole_examples_and_keeps_the_mean() -> None:
    layer = DropPath(0.25)
    x = torch.ones(4000, 3, 5)
    torch.manual_seed(0)
    y = layer(x)
    per_example = y.flatten(1)
    kept = per_example[:, 0] > 0
    # every example is either all zero or all scaled by 1 / (1 - rate)
    assert torch.all(per_example[~kept] == 0)
    assert torch.allclose(per_example[kept], torch.full_like(per_example[kept], 1 / 0.75))
    assert abs(kept.float().mean().item() - 0.75) < 0.03
    assert abs(y.mean().item() - 1.0) < 0.05
    assert y.shape == x.shape and y.dtype == x.dtype


def test_drop_path_is_the_identity_in_eval_and_at_rate_zero() -> None:
    x = torch.randn(8, 4, 16)
    assert torch.equal(DropPath(0.0).train()(x), x)
    assert torch.equal(DropPath(0.9).eval()(x), x)
    with pytest.raises(ValueError, match="drop-path"):
        DropPath(1.0)
