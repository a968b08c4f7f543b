"""Building blocks of the biosig classifier, each small and separately tested."""

from biosig.nn.layers.attention_pool import AttentionPool
from biosig.nn.layers.drop_path import DropPath
from biosig.nn.layers.mask import downsample_lengths, lengths_to_mask, masked_mean
from biosig.nn.layers.norm import RMSNorm
from biosig.nn.layers.rotary import RotaryEmbedding
from biosig.nn.layers.squeeze_excite import SqueezeExcite1d
from biosig.nn.layers.swiglu import SwiGLU

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
