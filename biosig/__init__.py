"""biosig: one strong classifier family for 1-D signals, with domain knowledge as plugins.

The names below are the public API that plugins may import; everything else is internal.
"""

from .errors import BiosigError
from .inputs import expand_inputs
from .labels import read_label_table, whole_recording_intervals
from .plugin import (
    API_VERSION,
    ArrayRecording,
    DemoData,
    IdentityPreprocessor,
    LabelledInterval,
    Plugin,
    PluginDefaults,
    Preprocessor,
    Recording,
    RecordingError,
)

__version__ = "0.1.0"


def __getattr__(name: str):
    # StreamingResampler pulls in scipy.signal: imported on first use, not with `biosig`.
    if name == "StreamingResampler":
        from .resample import StreamingResampler

        return StreamingResampler
    raise AttributeError(f"module 'biosig' has no attribute {name!r}")


__all__ = [
    "API_VERSION",
    "ArrayRecording",
    "BiosigError",
    "DemoData",
    "IdentityPreprocessor",
    "LabelledInterval",
    "Plugin",
    "PluginDefaults",
    "Preprocessor",
    "Recording",
    "RecordingError",
    "StreamingResampler",
    "__version__",
    "expand_inputs",
    "read_label_table",
    "whole_recording_intervals",
]
