"""Named model sizes and the random-kernel branch's defaults.

Plain data, apart from :mod:`biosig.nn.model` (which imports torch), so that the command
line lists the presets in ``--help`` without importing torch.
"""

from __future__ import annotations

#: Random-kernel features a trained model gets beside its learned ones, unless told
#: otherwise (MiniRocket's default number).
KERNEL_FEATURES = 9996
#: The fewest random-kernel features a branch can have: one per kernel.
MIN_KERNEL_FEATURES = 84


#: Named sizes. ``small`` matches the ~2.4 M parameters of the published reference.
PRESETS: dict[str, dict] = {
    "tiny": {
        "stage_channels": (16, 32, 64, 64),
        "blocks_per_stage": 1,
        "kernel_size": 5,
        "model_dim": 64,
        "n_layers": 2,
        "n_heads": 4,
        "pool_heads": 4,
    },
    "small": {
        "stage_channels": (32, 64, 128, 256),
        "blocks_per_stage": 1,
        "kernel_size": 7,
        "model_dim": 128,
        "n_layers": 2,
        "n_heads": 4,
        "pool_heads": 4,
    },
    "base": {
        "stage_channels": (48, 96, 192, 384),
        "blocks_per_stage": 2,
        "kernel_size": 7,
        "model_dim": 256,
        "n_layers": 4,
        "n_heads": 8,
        "pool_heads": 8,
    },
}
