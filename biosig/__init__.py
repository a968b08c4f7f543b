"""biosig: one strong classifier family for 1-D signals, with domain knowledge as plugins.

The names below are the public API that plugins may import; everything else is internal.
"""

from .errors import BiosigError
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
)

__version__ = "0.1.0"

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
    "__version__",
    "read_label_table",
    "whole_recording_intervals",
]
