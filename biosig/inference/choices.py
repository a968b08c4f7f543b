"""What a prediction can be asked for: table formats and explanation methods.

Plain names, apart from the modules that use them (which import torch), so that
``biosig predict --help`` lists them without importing torch.
"""

from __future__ import annotations

#: Table formats ``biosig predict --format`` writes. Text formats stream line by line (to
#: stdout too); ``parquet`` writes files only, in row groups, with pyarrow (biosig[parquet]).
TEXT_FORMATS: tuple[str, ...] = ("tsv", "csv", "jsonl")
FORMATS: tuple[str, ...] = (*TEXT_FORMATS, "parquet")

#: What ``predict_recordings(explain=…, method=…)`` can attribute a window's class to:
#: ``attention`` (the attention-pooling weights, free with the prediction) or ``gradient``
#: (integrated gradients per input sample, :mod:`biosig.inference.gradients`).
EXPLANATIONS: tuple[str, ...] = ("attention", "gradient")
