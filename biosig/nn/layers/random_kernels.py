"""Frozen multi-scale random-kernel features beside the learned network.

Every 9-tap kernel that weights three taps 2 and the other six -1 (84 of them, each summing
to zero) is convolved with the signal at exponentially spaced dilations, each kernel and
dilation over a random subset of the channels; the feature is the proportion of positions
where the output exceeds a bias (PPV). Biases are quantiles of the outputs on training
windows, set once by :meth:`RandomKernelFeatures.fit` before training; the features are
standardised with the training windows' statistics. Nothing here is trained: these are
MiniRocket's features (Dempster, Schmidt & Webb, KDD 2021), which a ridge classifier
(:mod:`biosig.training.ridge`) turns into one of the strongest small-data time-series classifiers;
the classifier adds that ridge model's logits to its own head's.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from biosig.nn.layers.mask import lengths_to_mask

KERNEL_TAPS = 9
#: Dilations per window at most: 2**0 .. (window - 1) / 8, exponentially spaced.
MAX_DILATIONS = 32
#: Convolution outputs (windows x 84 kernels x samples) compared with the biases at once
#: inside :meth:`RandomKernelFeatures.forward`: 8 windows of 4096 samples, 32 of 1024. Each
#: bias reads the outputs again, so they must stay in the CPU's caches: at 32 windows of
#: 4096 samples (44 MB) the features took 135 ms per window on the 2-core dev machine, at 8
#: (11 MB) 38 ms, with identical values; fewer windows gained nothing more.
CHUNK_ELEMENTS = 8 * 84 * 4096
#: Positions whose above-bias flags are summed as bytes before widening to int32 (at most
#: 128 ones fit a byte): widening every flag first took half of the feature pass.
COUNT_GROUP = 128
_GOLDEN = (math.sqrt(5) + 1) / 2


def _kernel_weights() -> Tensor:
    """``[84, 9]``: every choice of three taps weighted 2, the rest -1."""
    combos = list(itertools.combinations(range(KERNEL_TAPS), 3))
    weights = torch.full((len(combos), KERNEL_TAPS), -1.0)
    for row, taps in enumerate(combos):
        weights[row, list(taps)] = 2.0
    return weights


def _dilations(window: int, at_most: int) -> list[int]:
    """Distinct dilations ``floor(2**e)``, ``at_most`` values of ``e`` evenly from 0 to
    ``log2((window-1)/8)``, so the widest kernel spans the window."""
    top = max(0.0, math.log2(max(window - 1, 1) / (KERNEL_TAPS - 1)))
    steps = torch.linspace(0, top, at_most)
    return sorted({int(v) for v in torch.floor(2.0**steps).tolist()})


def _features_per_dilation(per_kernel: int, n_dilations: int) -> list[int]:
    """Biases per kernel at each dilation: ``per_kernel`` shared as evenly as possible, the
    remainder to the smallest dilations."""
    base, extra = divmod(per_kernel, n_dilations)
    return [base + (1 if i < extra else 0) for i in range(n_dilations)]


class RandomKernelFeatures(nn.Module):
    """``[B, C, T]`` (and valid ``lengths``) -> ``[B, n_features]`` standardised PPV features.

    ``n_features`` is rounded down to a multiple of 84 (the kernels).

    ``window`` sets the dilations (the largest spans the window); ``seed`` the channel
    subsets. The module holds no parameters, only buffers, so a checkpoint carries the
    biases and statistics that :meth:`fit` drew from the training windows.
    """

    def __init__(self, in_channels: int, window: int, n_features: int, seed: int = 0) -> None:
        super().__init__()
        weights = _kernel_weights()
        n_kernels = weights.shape[0]
        # As many dilations as biases per kernel, at most MAX_DILATIONS (fewer for a short
        # window, whose dilations coincide once rounded).
        per_kernel = max(1, n_features // n_kernels)
        self.dilations = _dilations(window, min(MAX_DILATIONS, per_kernel))
        self.counts = _features_per_dilation(per_kernel, len(self.dilations))
        self.n_features = n_kernels * sum(self.counts)
        generator = torch.Generator().manual_seed(seed)
        # Each kernel and dilation reads 1, 2, 4 … up to min(C, 9) channels, summed.
        masks = torch.zeros(len(self.dilations), n_kernels, in_channels)
        top = math.log2(min(in_channels, KERNEL_TAPS) + 1)
        for d in range(len(self.dilations)):
            for k in range(n_kernels):
                size = int(2 ** (torch.rand(1, generator=generator).item() * top))
                picked = torch.randperm(in_channels, generator=generator)[: max(1, size)]
                masks[d, k, picked] = 1.0
        self.register_buffer("kernels", weights[None, :, None, :] * masks[..., None])
        self.register_buffer("biases", torch.zeros(n_kernels, sum(self.counts)))
        self.register_buffer("mean", torch.zeros(self.n_features))
        self.register_buffer("scale", torch.ones(self.n_features))

    def _convolve(self, x: Tensor, d: int) -> Tensor:
        dilation = self.dilations[d]
        pad = (KERNEL_TAPS - 1) // 2 * dilation
        return F.conv1d(x, self.kernels[d].to(x.dtype), padding=pad, dilation=dilation)

    def _bias_slices(self) -> list[slice]:
        ends = list(itertools.accumulate(self.counts))
        return [slice(end - n, end) for n, end in zip(self.counts, ends, strict=True)]

    def _ppv(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Raw proportions ``[B, n_features]``, ordered dilation, kernel, bias."""
        # Zeros past the end change no output inside the window (the convolution pads with
        # zeros there too) and make the positions a whole number of count groups.
        total = -(-x.shape[-1] // COUNT_GROUP) * COUNT_GROUP
        x = F.pad(x, (0, total - x.shape[-1]))
        padding = ~lengths_to_mask(lengths, total).unsqueeze(1)  # [B, 1, T]
        any_padding = bool(padding.any())
        denominator = lengths.to(x.dtype).clamp(min=1)[:, None, None]
        features = []
        for d, biases in enumerate(self._bias_slices()):
            out = self._convolve(x, d)  # [B, 84, T]
            if any_padding:
                out.masked_fill_(padding, -math.inf)  # above no bias
            thresholds = self.biases[None, :, biases, None]  # [1, 84, n, 1]
            # One bias at a time: one [B, 84, n, T] comparison, counted at once, measured
            # 2.7x slower on the dev CPU.
            above = [_count_above(out, thresholds[:, :, j]) for j in range(thresholds.shape[2])]
            features.append(torch.stack(above, dim=-1).to(x.dtype) / denominator)
        # kernel-major within each dilation, as the biases are laid out
        return torch.cat([f.flatten(1) for f in features], dim=1)

    @torch.no_grad()
    def fit(self, x: Tensor, lengths: Tensor, generator: torch.Generator) -> None:
        """Draw the biases from training windows ``x`` (``[N, C, T]``, valid ``lengths``)
        and the standardisation from their features: for each dilation and kernel, the
        quantiles (at a low-discrepancy sequence) of its output on one random window."""
        x, lengths = x.float(), lengths.long()
        n_kernels = self.kernels.shape[1]
        position = 0
        for d, biases in enumerate(self._bias_slices()):
            picks = torch.randint(len(x), (n_kernels,), generator=generator)
            out = self._convolve(x[picks], d)  # [84 windows, 84 kernels, T]
            quantiles = torch.tensor(
                [((position + i + 1) * _GOLDEN) % 1 for i in range(biases.stop - biases.start)]
            )
            position += biases.stop - biases.start
            for k in range(n_kernels):
                own = out[k, k, : int(lengths[picks[k]])]
                self.biases[k, biases] = torch.quantile(own, quantiles)
        features = self._chunked_ppv(x, lengths)
        self.mean.copy_(features.mean(0))
        # A feature constant over the training windows carries nothing: scaled to nothing.
        spread = features.std(0, unbiased=False)
        self.scale.copy_(torch.where(spread > 1e-6, 1.0 / spread.clamp(min=1e-6), 0.0))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[-1], device=x.device, dtype=torch.long)
        x = x.float()  # thresholds compare exactly in float32, also under bf16 autocast
        with torch.autocast(x.device.type, enabled=False):
            raw = self._chunked_ppv(x, lengths)
        return (raw - self.mean) * self.scale

    def _chunked_ppv(self, x: Tensor, lengths: Tensor) -> Tensor:
        """:meth:`_ppv` of ``x`` a few windows at a time (see :data:`CHUNK_ELEMENTS`)."""
        chunk = max(1, CHUNK_ELEMENTS // (self.kernels.shape[1] * x.shape[-1]))
        return torch.cat(
            [self._ppv(x[i : i + chunk], lengths[i : i + chunk]) for i in range(0, len(x), chunk)]
        )


def _count_above(out: Tensor, threshold: Tensor) -> Tensor:
    """``int32`` count of ``out > threshold`` over the last dimension (a multiple of
    :data:`COUNT_GROUP`), summed a group at a time in bytes."""
    flags = (out > threshold).view(torch.uint8).unflatten(-1, (-1, COUNT_GROUP))
    return flags.sum(-1, dtype=torch.uint8).sum(-1, dtype=torch.int32)
