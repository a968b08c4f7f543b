"""Building blocks of the biosig classifier, each small and separately tested."""

from biosig.layers.attention_pool import AttentionPool
from biosig.layers.drop_path import DropPath
from biosig.layers.mask import downsample_lengths, lengths_to_mask, masked_mean
from biosig.layers.norm import RMSNorm
from biosig.layers.rotary import RotaryEmbedding
from biosig.layers.squeeze_excite import SqueezeExcite1d
from biosig.layers.swiglu import SwiGLU

__all__ = [
    "AttentionPool",
    "DropPath",
    "RMSNorm",
    "RotaryEmbedding",
    "SqueezeExcite1d",
    "SwiGLU",
    "downsample_lengths",
    "lengths_to_mask",
    "masked_mean",
]
