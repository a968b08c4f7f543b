"""The biosig classifier: a multi-scale CNN front end followed by a Transformer.

Signal ``[B, C, T]`` -> stem conv -> 4 CNN stages (a kernel-3 conv at the entry of every
stage but the first, stride 2 by default, ``ModelConfig.stage_strides``; residual blocks of
dilated convs with squeeze-excitation) -> 1x1 projection to ``model_dim`` -> pre-norm
Transformer blocks (RMSNorm, rotary attention, SwiGLU) -> final RMSNorm -> attention
pooling -> linear head.

:func:`fit_to_window` and :func:`fit_to_data` adapt a preset to the task: less downsampling
for short windows, narrower late stages for small data sets.

Variable-length batches are exact: each item's valid length is carried through every
downsampling, padded positions are forced back to zero after every CNN layer (so each
conv sees the same zeros its own padding would give an unpadded item), and the
squeeze-excitation, attention and pooling only ever look at valid positions. In eval mode an
item padded inside a batch gives the logits it gives alone.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biosig.nn.layers import (
    AttentionPool,
    DropPath,
    RMSNorm,
    RotaryEmbedding,
    SqueezeExcite1d,
    SwiGLU,
    downsample_lengths,
    lengths_to_mask,
)
from biosig.nn.layers.random_kernels import RandomKernelFeatures
from biosig.nn.presets import MIN_KERNEL_FEATURES, PRESETS

# Every stage after the first enters through a kernel-3, padding-1 conv; with the default
# stride 2 it halves the time axis. The strides a config may use: stride 1 keeps the rate.
_DEFAULT_STRIDE = 2
_ALLOWED_STRIDES = (1, 2)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a :class:`SignalNet`; stored as JSON in checkpoints.

    ``ffn_hidden=None`` picks the SwiGLU width from ``model_dim`` (8/3 of it, rounded up to a
    multiple of 32). ``stage_strides`` holds the stride (1 or 2) of the conv entering each
    stage after the first; ``None`` means 2 everywhere, which is also what a config saved
    before the field existed gets, so old checkpoints rebuild the same model. Lists (as JSON
    gives them back) become tuples, so
    ``ModelConfig(**json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg``.
    """

    in_channels: int = 1
    n_classes: int = 2
    stem_kernel: int = 15
    stage_channels: tuple[int, ...] = (32, 64, 128, 256)
    stage_strides: tuple[int, ...] | None = None
    blocks_per_stage: int = 1
    kernel_size: int = 7
    dilations: tuple[int, ...] = (1, 2, 4)
    se_reduction: int = 4
    model_dim: int = 128
    n_layers: int = 2
    n_heads: int = 4
    ffn_hidden: int | None = None
    pool_heads: int = 4
    dropout: float = 0.1
    rope_base: float = 10000.0
    #: stochastic depth: the largest rate at which a residual branch is dropped, reached by
    #: the last block; earlier blocks' rates rise linearly from 0 (see :func:`drop_path_rates`)
    drop_path: float = 0.0
    #: frozen random-kernel features (0: none), whose ridge classifier's logits are added to
    #: the head's; see :class:`~biosig.nn.layers.random_kernels.RandomKernelFeatures`
    kernel_features: int = 0
    #: the window those kernels' dilations span (samples)
    kernel_window: int = 0

    def __post_init__(self) -> None:
        self.stage_channels = tuple(self.stage_channels)
        if self.stage_strides is None:
            self.stage_strides = (_DEFAULT_STRIDE,) * max(len(self.stage_channels) - 1, 0)
        self.stage_strides = tuple(self.stage_strides)
        self.dilations = tuple(self.dilations)
        if self.ffn_hidden is None:
            self.ffn_hidden = _default_ffn_hidden(self.model_dim)
        self._validate()

    def _validate(self) -> None:
        def fail(message: str) -> None:
            raise ValueError(f"invalid model config: {message}")

        positive = {
            "in_channels": self.in_channels,
            "n_classes": self.n_classes,
            "blocks_per_stage": self.blocks_per_stage,
            "se_reduction": self.se_reduction,
            "model_dim": self.model_dim,
            "n_heads": self.n_heads,
            "ffn_hidden": self.ffn_hidden,
            "pool_heads": self.pool_heads,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.n_layers, int) or self.n_layers < 0:
            fail(f"n_layers must be a non-negative integer, got {self.n_layers!r}")
        for name in ("stem_kernel", "kernel_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1 or value % 2 == 0:
                fail(f"{name} must be a positive odd integer ('same' padding), got {value!r}")
        if not self.stage_channels or any(
            not isinstance(c, int) or c < 1 for c in self.stage_channels
        ):
            fail(f"stage_channels must be non-empty positive integers, got {self.stage_channels}")
        n_transitions = len(self.stage_channels) - 1
        if len(self.stage_strides) != n_transitions or any(
            type(s) is not int or s not in _ALLOWED_STRIDES for s in self.stage_strides
        ):
            fail(
                f"stage_strides must be {n_transitions} value(s) in {_ALLOWED_STRIDES}, one per "
                f"stage after the first, got {self.stage_strides}"
            )
        if not self.dilations or any(not isinstance(d, int) or d < 1 for d in self.dilations):
            fail(f"dilations must be non-empty positive integers, got {self.dilations}")
        if self.model_dim % self.n_heads:
            fail(f"model_dim {self.model_dim} is not divisible by n_heads {self.n_heads}")
        if (self.model_dim // self.n_heads) % 2:
            fail(f"model_dim / n_heads = {self.model_dim // self.n_heads} must be even (rotary)")
        if self.model_dim % self.pool_heads:
            fail(f"model_dim {self.model_dim} is not divisible by pool_heads {self.pool_heads}")
        if not 0.0 <= self.dropout < 1.0:
            fail(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.drop_path < 1.0:
            fail(f"drop_path must be in [0, 1), got {self.drop_path!r}")
        if self.kernel_features and (
            not isinstance(self.kernel_features, int)
            or self.kernel_features < MIN_KERNEL_FEATURES
            or not isinstance(self.kernel_window, int)
            or self.kernel_window < 1
        ):
            fail(
                f"kernel_features must be 0 or at least {MIN_KERNEL_FEATURES}, with a positive "
                "kernel_window; got "
                f"{self.kernel_features!r} and {self.kernel_window!r}"
            )
        if not self.rope_base > 1.0:
            fail(f"rope_base must be > 1, got {self.rope_base!r}")


def model_config(preset: str, in_channels: int, n_classes: int, **overrides) -> ModelConfig:
    """The config of a named preset for this many input channels and classes.

    ``overrides`` replace single fields (e.g. ``dropout=0.2``); unknown presets or fields
    raise ``ValueError``.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        known = ", ".join(sorted(fields))
        raise ValueError(f"unknown model config field(s) {', '.join(unknown)}; known: {known}")
    values = {**PRESETS[preset], **overrides, "in_channels": in_channels, "n_classes": n_classes}
    return ModelConfig(**values)


def downsample_factor(config: ModelConfig) -> int:
    """Input samples per token of a model built from ``config``: the product of its strides."""
    return math.prod(config.stage_strides)


def token_count(config: ModelConfig, lengths: Tensor | int) -> Tensor | int:
    """Tokens a model built from ``config`` makes of ``lengths`` samples (tensor or int):
    ``ceil(lengths / downsample_factor)``, computed stride by stride as the convs do."""
    for stride in config.stage_strides:
        lengths = downsample_lengths(lengths, stride)
    return lengths


#: Fewest tokens :func:`fit_to_window` leaves a window with. Below ~16 the token-level layers
#: lose their purpose: the last stage's dilated convs (kernel 7, dilation 4 reach +-12 tokens)
#: would read mostly padding, rotary attention would see a handful of relative offsets, and
#: attention pooling -- the model's explanation -- would weigh 1-3 coarse segments. 16 is
#: also what a 128-sample window gets at the full factor 8, so common windows keep the preset.
DEFAULT_MIN_TOKENS = 16


def fit_to_window(
    config: ModelConfig, window: int, min_tokens: int = DEFAULT_MIN_TOKENS
) -> ModelConfig:
    """``config`` with the most downsampling it already has that still leaves ``window``
    samples at least ``min_tokens`` tokens.

    Rule: while ``ceil(window / downsample_factor) < min_tokens``, the last stride-2 stage
    entry becomes stride 1 (so with the default strides the candidates are (2, 2, 2),
    (2, 2, 1), (2, 1, 1), (1, 1, 1): factors 8, 4, 2, 1). The early entries keep their
    stride because at high time resolution they are cheap (few channels) and they widen the
    receptive field of every later layer; stride 1 at the widest stage costs more only when
    windows are short, which is the only time it happens. Downsampling is never added, and a
    window shorter than ``min_tokens`` gets none (one token per sample). Widths, and hence
    parameter shapes, are unchanged: a checkpoint of the preset still loads.

    Examples with the default strides and ``min_tokens=16``: window 24 -> factor 1 (24
    tokens), 100 -> 4 (25), 150 -> 8 (19), 1024 -> 8 (128).
    """
    window = _positive_int("window", window)
    min_tokens = _positive_int("min_tokens", min_tokens)
    strides = list(config.stage_strides)
    # Nested ceilings collapse: ceil(ceil(w / a) / b) == ceil(w / (a * b)).
    while (
        downsample_lengths(window, math.prod(strides)) < min_tokens and max(strides, default=1) > 1
    ):
        last = max(i for i, s in enumerate(strides) if s > 1)
        strides[last] = 1
    return dataclasses.replace(config, stage_strides=tuple(strides))


#: Narrowest width :func:`fit_to_data` caps to: below it squeeze-excitation (width / 4) and
#: the attention heads (4-8 heads of even width) get too thin to be worth their layers.
MIN_FIT_WIDTH = 32


def width_for_data(n_examples: int) -> int:
    """Widest stage / ``model_dim`` :func:`fit_to_data` allows for ``n_examples`` windows:
    ``8 * sqrt(n_examples)`` rounded down to a power of two, at least ``MIN_FIT_WIDTH``.

    That is 32 below 64 examples, 64 below 256, 128 below 1024, 256 below 4096, 512 below
    16384. Parameters grow with the square of the width, so the cap makes them grow about
    linearly with the data; ``small`` (widths up to 256) is whole from 1024 windows on.
    """
    n_examples = _positive_int("n_examples", n_examples)
    width = MIN_FIT_WIDTH
    while (2 * width) ** 2 <= 64 * n_examples:  # 2 * width <= 8 * sqrt(n), in integers
        width *= 2
    return width


def fit_to_data(config: ModelConfig, n_examples: int) -> ModelConfig:
    """``config`` narrowed for a training set of ``n_examples`` windows.

    Every stage width and ``model_dim`` is capped at :func:`width_for_data` (so only the
    wide late stages shrink, and never past the preset). ``model_dim`` is then rounded down
    to a multiple of what attention needs (``2 * n_heads`` for even rotary head widths and
    ``pool_heads``), but not below one such multiple. ``ffn_hidden`` follows ``model_dim``:
    re-derived when it had the default 8/3 width, scaled in proportion otherwise. Depth,
    heads, kernels and strides are kept. Not for a pretrained backbone, whose widths are
    fixed by its weights.

    With ``small`` (32, 64, 128, 256; ``model_dim`` 128): 50 windows -> (32, 32, 32, 32) and
    32; 200 -> (32, 64, 64, 64) and 64; 1000 -> (32, 64, 128, 128) and 128; from 1024 on the
    preset itself.
    """
    cap = width_for_data(n_examples)
    stage_channels = tuple(min(c, cap) for c in config.stage_channels)
    unit = math.lcm(2 * config.n_heads, config.pool_heads)
    model_dim = config.model_dim
    if model_dim > cap:
        model_dim = max(unit, cap // unit * unit)
    ffn_hidden = config.ffn_hidden
    assert ffn_hidden is not None  # resolved by ModelConfig.__post_init__
    if model_dim != config.model_dim:
        if ffn_hidden == _default_ffn_hidden(config.model_dim):
            ffn_hidden = _default_ffn_hidden(model_dim)
        else:
            ffn_hidden = max(1, math.ceil(ffn_hidden * model_dim / config.model_dim))
    return dataclasses.replace(
        config, stage_channels=stage_channels, model_dim=model_dim, ffn_hidden=ffn_hidden
    )


def _positive_int(name: str, value: object) -> int:
    # Integral, not int: callers pass numpy sizes (np.int64) as often as Python ints.
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _default_ffn_hidden(model_dim: int) -> int:
    # SwiGLU's 8/3 keeps its parameter count at a 4x GELU MLP's; multiples of 32 suit kernels.
    return 32 * math.ceil(model_dim * 8 / 3 / 32)


def drop_path_rates(config: ModelConfig) -> tuple[float, ...]:
    """Stochastic-depth rate of every residual block in order (the conv stages' blocks,
    then the Transformer's), rising linearly from 0 at the first to ``config.drop_path``
    at the last: early blocks compute features every later one needs, so they are dropped
    least (the schedule of Huang et al., 2016)."""
    n_blocks = len(config.stage_channels) * config.blocks_per_stage + config.n_layers
    if n_blocks == 1:
        return (config.drop_path,)
    return tuple(config.drop_path * i / (n_blocks - 1) for i in range(n_blocks))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _zero_padding(x: Tensor, mask: Tensor | None) -> Tensor:
    # where(), not a product, so that NaN/inf in the caller's padding cannot survive.
    return x if mask is None else torch.where(mask, x, 0.0)


class ConvNormAct(nn.Module):
    """Conv1d ("same" padding for stride 1) -> BatchNorm -> optional GELU -> re-zero padding."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        # No conv bias: BatchNorm's shift makes it redundant.
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, stride, padding, dilation, bias=False
        )
        self.norm = nn.BatchNorm1d(out_channels)
        self.act = nn.GELU() if act else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """``mask`` is the ``[B, 1, T_out]`` validity mask at this layer's output rate."""
        return _zero_padding(self.act(self.norm(self.conv(x))), mask)


class ResidualBlock(nn.Module):
    """One conv per dilation (1, 2, 4 by default), squeeze-excitation, residual, GELU.

    Chaining the dilations inside a block grows the receptive field by
    ``(kernel_size - 1) * sum(dilations)`` steps per block at no extra cost.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        dilations: tuple[int, ...],
        se_reduction: int,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        last = len(dilations) - 1
        self.convs = nn.ModuleList(
            ConvNormAct(channels, channels, kernel_size, dilation=d, act=i < last)
            for i, d in enumerate(dilations)
        )
        self.se = SqueezeExcite1d(channels, se_reduction)
        self.drop_path = DropPath(drop_path)
        self.act = nn.GELU()

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        h = x
        for conv in self.convs:
            h = conv(h, mask)
        h = self.se(h, mask)
        return _zero_padding(self.act(x + self.drop_path(h)), mask)


class Stage(nn.Module):
    """Optional entry conv (kernel 3, stride ``stride``), then residual blocks at one width.

    ``stride=None`` (the first stage) has no entry conv. A stride-1 entry still maps the
    previous stage's width to this one; it keeps the kernel-3 shape of the stride-2 conv so
    that the parameters, and the state-dict, do not depend on the strides.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int | None,
        config: ModelConfig,
        drop_paths: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        self.stride = 1 if stride is None else stride
        self.downsample = (
            None if stride is None else ConvNormAct(in_channels, out_channels, 3, stride=stride)
        )
        rates = drop_paths or (0.0,) * config.blocks_per_stage
        self.blocks = nn.ModuleList(
            ResidualBlock(
                out_channels, config.kernel_size, config.dilations, config.se_reduction, rate
            )
            for rate in rates
        )


class SelfAttention(nn.Module):
    """Multi-head self-attention with rotary embedding applied per head to q and k."""

    def __init__(self, dim: int, n_heads: int, dropout: float, rope_base: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
        self.out_dropout = nn.Dropout(dropout)
        self.rotary = RotaryEmbedding(self.head_dim, rope_base)

    def forward(self, x: Tensor, key_mask: Tensor | None) -> Tensor:
        """``x: [B, T, dim]``; ``key_mask: [B, 1, 1, T]`` bool (``True`` = attend) or ``None``."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = self.rotary(q, k)
        # No dropout on the attention weights: it forces the unfused kernel and a
        # [B, heads, T, T] random mask (a third of a CPU training step at T = 512); the
        # residual dropout after the projection regularises instead.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        return self.out_dropout(self.out(y.transpose(1, 2).reshape(b, t, d)))


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))``, then ``x + swiglu(norm(x))``."""

    def __init__(self, config: ModelConfig, drop_path: float = 0.0) -> None:
        super().__init__()
        dim = config.model_dim
        assert config.ffn_hidden is not None  # resolved by ModelConfig.__post_init__
        self.attn_norm = RMSNorm(dim)
        self.attn = SelfAttention(dim, config.n_heads, config.dropout, config.rope_base)
        self.ffn_norm = RMSNorm(dim)
        self.ffn = SwiGLU(dim, config.ffn_hidden, config.dropout)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, key_mask: Tensor | None) -> Tensor:
        x = x + self.drop_path(self.attn(self.attn_norm(x), key_mask))
        return x + self.drop_path(self.ffn(self.ffn_norm(x)))


class SignalNet(nn.Module):
    """CNN + Transformer classifier for ``[B, C, T]`` signals of any length and channel count.

    ``forward(x, lengths)`` gives logits ``[B, n_classes]``; ``encode`` gives the token
    sequence before pooling, for reuse by self-supervised pretraining.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        channels = config.stage_channels
        self.stem = ConvNormAct(config.in_channels, channels[0], config.stem_kernel)
        strides = (None, *config.stage_strides)
        rates = drop_path_rates(config)
        per_stage = config.blocks_per_stage
        self.stages = nn.ModuleList(
            Stage(
                channels[max(i - 1, 0)],
                c,
                stride=strides[i],
                config=config,
                drop_paths=rates[i * per_stage : (i + 1) * per_stage],
            )
            for i, c in enumerate(channels)
        )
        self.proj = nn.Conv1d(channels[-1], config.model_dim, kernel_size=1)
        conv_blocks = len(channels) * per_stage
        self.blocks = nn.ModuleList(
            TransformerBlock(config, rates[conv_blocks + i]) for i in range(config.n_layers)
        )
        self.norm = RMSNorm(config.model_dim)
        self.pool = AttentionPool(config.model_dim, config.pool_heads)
        self.head_dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.model_dim, config.n_classes)
        self.random_kernels = None
        if config.kernel_features:
            self.random_kernels = RandomKernelFeatures(
                config.in_channels, config.kernel_window, config.kernel_features
            )
            # A ridge classifier of those features, fitted in closed form before training
            # (biosig.training.ridge): its logits are added to the head's. Buffers, not parameters:
            # nothing trains them.
            features = self.random_kernels.n_features
            self.register_buffer("ridge_weight", torch.zeros(config.n_classes, features))
            self.register_buffer("ridge_bias", torch.zeros(config.n_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        # Convs keep PyTorch's Kaiming-uniform default (they feed BatchNorm); Transformer
        # linears follow GPT-2: N(0, 0.02), with residual outputs scaled down by depth so
        # the residual stream's variance does not grow with n_layers.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        residual_std = 0.02 / math.sqrt(2 * max(self.config.n_layers, 1))
        for block in self.blocks:
            nn.init.trunc_normal_(block.attn.out.weight, std=residual_std)
            nn.init.trunc_normal_(block.ffn.w2.weight, std=residual_std)

    @property
    def downsample_factor(self) -> int:
        """Input samples per output token: the product of ``stage_strides`` (8 by default)."""
        return downsample_factor(self.config)

    def token_lengths(self, lengths: Tensor | int) -> Tensor | int:
        """Valid token count for inputs of ``lengths`` samples (tensor or int)."""
        return token_count(self.config, lengths)

    @staticmethod
    def _check_lengths(lengths: Tensor | None, x: Tensor) -> tuple[Tensor | None, int]:
        """Validate ``lengths``; return them and the longest item's length. Lengths come back
        as ``None`` when all items are equally long: trimmed to that length nothing is
        padded, and no mask lets attention use fused kernels."""
        t = x.shape[-1]
        if lengths is None:
            return None, t
        lengths = torch.as_tensor(lengths, device=x.device).long()
        if lengths.shape != (x.shape[0],):
            raise ValueError(f"lengths must have shape ({x.shape[0]},), got {tuple(lengths.shape)}")
        lo, hi = torch.stack((lengths.min(), lengths.max())).tolist()  # one host sync
        if lo < 1 or hi > t:
            raise ValueError(f"lengths must be in [1, {t}], got min {lo} and max {hi}")
        return (None if lo == hi else lengths), hi

    def encode(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Backbone without pooling: ``x: [B, C, T]`` -> tokens ``[B, T', model_dim]``.

        Returns the tokens after the final norm (padded tokens zeroed) and the valid token
        count of each item, ``T' = ceil(max(lengths) / downsample_factor)``.
        """
        if x.dim() != 3 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected input [batch, {self.config.in_channels}, time], got {tuple(x.shape)}"
            )
        lengths, longest = self._check_lengths(lengths, x)
        # Time steps that every item pads are dropped: a batch of short recordings in long
        # windows then costs what its longest item needs. Exact, since padding is masked.
        x = x[..., :longest]
        mask = None if lengths is None else lengths_to_mask(lengths, x.shape[-1]).unsqueeze(1)

        x = self.stem(_zero_padding(x, mask), mask)
        for stage in self.stages:
            if stage.downsample is not None:
                # A stride-1 entry keeps lengths and mask; the conv still re-zeroes padding.
                if lengths is not None and stage.stride > 1:
                    t_out = downsample_lengths(x.shape[-1], stage.stride)
                    lengths = downsample_lengths(lengths, stage.stride)
                    mask = lengths_to_mask(lengths, t_out).unsqueeze(1)
                x = stage.downsample(x, mask)
            for block in stage.blocks:
                x = block(x, mask)

        tokens = self.proj(x).transpose(1, 2)  # [B, T', model_dim]
        key_mask = None if mask is None else mask.unsqueeze(1)  # [B, 1, 1, T']
        for block in self.blocks:
            tokens = block(tokens, key_mask)
        tokens = self.norm(tokens)

        if lengths is None:
            token_lengths = torch.full(
                (tokens.shape[0],), tokens.shape[1], dtype=torch.long, device=tokens.device
            )
        else:
            token_lengths = lengths
            tokens = _zero_padding(tokens, mask.transpose(1, 2))
        return tokens, token_lengths

    def ridge_logits(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The random-kernel ridge model's logits ``[B, n_classes]`` (float32)."""
        assert self.random_kernels is not None
        return self.ridge_logits_of(self.random_kernels(x, lengths))

    def ridge_logits_of(self, features: Tensor) -> Tensor:
        """The ridge model's logits for random-kernel ``features`` ``[B, F]``, in float32
        (also under autocast: they were fitted in float64)."""
        with torch.autocast(features.device.type, enabled=False):
            return features.float() @ self.ridge_weight.float().T + self.ridge_bias.float()

    def forward(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        return_attention: bool = False,
        kernel_logits: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Logits ``[B, n_classes]`` for ``x: [B, C, T]``.

        ``lengths[b]`` is the number of valid leading samples of item ``b`` (``None``: all
        ``T``). With ``return_attention`` also returns the pooling weights
        ``[B, pool_heads, T']``, one weight per token of ``downsample_factor`` samples, where
        ``T' = ceil(max(lengths) / downsample_factor)`` (steps all items pad are dropped).
        With the random-kernel branch the logits are the head's plus the ridge model's;
        ``kernel_logits`` are the ridge logits to add instead of computing them from ``x``
        (training adds each window's leave-one-out ones, see :mod:`biosig.training.ridge`).
        """
        tokens, token_lengths = self.encode(x, lengths)
        token_mask = None
        if lengths is not None:
            token_mask = lengths_to_mask(token_lengths, tokens.shape[1])
        pooled, weights = self.pool(tokens, token_mask)
        logits = self.head(self.head_dropout(pooled))
        if self.random_kernels is not None:
            if kernel_logits is None:
                kernel_logits = self.ridge_logits(x, lengths)
            # in float32: under bf16 autocast, ridge logits of tens would lose a tenth
            logits = logits.float() + kernel_logits.float()
        return (logits, weights) if return_attention else logits


class EnsembleClassifier(nn.Module):
    """``n_members`` classifiers of one config, trained side by side and averaged.

    Each member starts from its own random initialisation and is trained on the same
    batches with its own loss (see :meth:`member_logits`), so the members stay independent
    models; their predictions are averaged in probability. With a few dozen training
    examples the test accuracy of a single network varies by several points from seed to
    seed, and the average of a few is steadier and usually better than the typical member
    (deep ensembles, Lakshminarayanan et al., 2017; InceptionTime averages five networks
    for the same reason).

    ``forward`` gives the log of the members' mean probabilities, so that ``softmax`` of it
    (what :mod:`biosig.inference.stream` and evaluation take) is that mean; with
    ``return_attention`` the members' pooling weights are averaged too.
    """

    def __init__(self, config: ModelConfig, n_members: int) -> None:
        super().__init__()
        _positive_int("n_members", n_members)
        self.config = config
        self.members = nn.ModuleList(SignalNet(config) for _ in range(n_members))

    @property
    def downsample_factor(self) -> int:
        return downsample_factor(self.config)

    def member_logits(
        self, x: Tensor, lengths: Tensor | None = None, kernel_logits: Tensor | None = None
    ) -> Tensor:
        """Every member's logits, ``[n_members, B, n_classes]``: what training fits."""
        return torch.stack([member(x, lengths, False, kernel_logits) for member in self.members])

    def forward(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        return_attention: bool = False,
        per_member: bool = False,
        kernel_logits: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Log mean probability ``[B, n_classes]`` (see the class doc); with ``per_member``
        each member's logits instead (:meth:`member_logits`), for training. The members
        share one random-kernel ridge model (see :mod:`biosig.training.kernel_features`):
        ``kernel_logits`` serve them all."""
        if per_member:
            return self.member_logits(x, lengths, kernel_logits)
        outputs = [m(x, lengths, return_attention, kernel_logits) for m in self.members]
        logits = [out[0] for out in outputs] if return_attention else outputs
        log_probs = torch.stack([F.log_softmax(member, -1) for member in logits])
        log_mean = torch.logsumexp(log_probs, 0) - math.log(len(self.members))
        if not return_attention:
            return log_mean
        return log_mean, torch.stack([weights for _, weights in outputs]).mean(0)


def build_classifier(config: ModelConfig, n_members: int = 1) -> nn.Module:
    """One :class:`SignalNet`, or an :class:`EnsembleClassifier` of ``n_members``."""
    if n_members == 1:
        return SignalNet(config)
    return EnsembleClassifier(config, n_members)
