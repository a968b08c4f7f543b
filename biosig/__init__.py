"""biosig: one strong classifier family for 1-D signals, with domain knowledge as plugins.

The names below are the public API: for notebooks, :func:`train`, :func:`load_model` and
the scikit-learn estimator :class:`SignalClassifier` (docs/python.md); for plugins, the
contract and its building blocks. Everything else is internal.
"""

from .errors import BiosigError
from .plugin.contract import (
    API_VERSION,
    ArrayRecording,
    Chain,
    DemoData,
    IdentityPreprocessor,
    LabelledInterval,
    Plugin,
    PluginDefaults,
    PluginOption,
    Preprocessor,
    Recording,
    RecordingError,
    describe,
)
from .plugin.inputs import expand_inputs
from .plugin.labels import (
    read_label_table,
    segment_intervals,
    table_intervals,
    whole_recording_intervals,
)
from .plugin.limits import check_claim, memory_budget
from .threads import use_threads

__version__ = "0.1.0"


#: Names whose modules pull in scipy.signal or torch: imported on first use, not with
#: `biosig`, so that a plugin importing the contract stays quick to load.
_LAZY = {
    "train": "api",
    "pretrain": "api",
    "PretrainRun": "api",
    "load_model": "api",
    "Model": "api",
    "Predictions": "api",
    "Run": "api",
    "SignalClassifier": "estimator",
    "StreamingResampler": "dsp.resample",
    "StreamingFilter": "dsp.filters",
    "band_pass_sos": "dsp.filters",
    "notch_sos": "dsp.filters",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'biosig' has no attribute {name!r}")


__all__ = [
    "API_VERSION",
    "ArrayRecording",
    "BiosigError",
    "Chain",
    "DemoData",
    "IdentityPreprocessor",
    "LabelledInterval",
    "Model",
    "Plugin",
    "PluginDefaults",
    "PluginOption",
    "Predictions",
    "PretrainRun",
    "Preprocessor",
    "Recording",
    "RecordingError",
    "Run",
    "SignalClassifier",
    "StreamingFilter",
    "StreamingResampler",
    "__version__",
    "band_pass_sos",
    "check_claim",
    "describe",
    "expand_inputs",
    "load_model",
    "memory_budget",
    "notch_sos",
    "pretrain",
    "read_label_table",
    "segment_intervals",
    "table_intervals",
    "train",
    "use_threads",
    "whole_recording_intervals",
]
