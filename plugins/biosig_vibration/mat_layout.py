"""A check of a MATLAB v5 file's data element tags before scipy reads its values.

scipy's reader (compiled) trusts the type code and byte count in a variable's tags: a
damaged type code (one byte of a copied file gone wrong) makes ``loadmat`` crash the
process with a segmentation fault instead of raising. Walking the tags in Python first
costs a few reads per variable and turns that into damage naming the variable.

Layout (MATLAB "MAT-File Format", level 5): a 128-byte header whose last two bytes give the
byte order (``IM`` little-endian), then data elements, each an 8-byte tag (``uint32`` type,
``uint32`` byte count; a *small* element packs the count in the type's upper 16 bits and
its data in the tag's last 4 bytes) followed by its data, padded to 8 bytes. A variable is
an ``miMATRIX`` element holding sub-elements: array flags, dimensions, name, real part.
A compressed variable (``miCOMPRESSED``) is checked by zlib's own checksum when inflated.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Collection
from pathlib import Path
from typing import BinaryIO

from biosig import RecordingError

MI_INT32, MI_MATRIX, MI_COMPRESSED = 5, 14, 15
#: Bytes per value of each numeric data type a real part may be stored as.
VALUE_SIZES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8}


def check_variable_tags(path: Path, names: Collection[str]) -> None:
    """Check the tags of the uncompressed variables ``names`` of ``path``: each element
    within the file, the real part's type a numeric one and its byte count what the
    dimensions need. A :class:`RecordingError` names the variable and the problem."""
    with open(path, "rb") as handle:
        header = handle.read(128)
        size = handle.seek(0, 2)
        order = "<" if header[126:128] == b"IM" else ">"
        position = 128
        while position + 8 <= size:
            kind, n_bytes, _ = _tag(handle, position, order)
            end = position + 8 + n_bytes
            if end > size:
                raise RecordingError(
                    f"{path}: data element at byte {position} claims {n_bytes:,} bytes, "
                    f"past the end of the file ({size:,} bytes)"
                )
            if kind == MI_MATRIX:
                _check_matrix(path, handle, position + 8, end, order, names)
            position = end + (-end % 8)


def _tag(handle: BinaryIO, position: int, order: str) -> tuple[int, int, int]:
    """``(type, byte count, where the data starts)`` of the tag at ``position``."""
    handle.seek(position)
    raw = handle.read(8)
    if len(raw) < 8:
        return 0, 0, position + 8
    kind, n_bytes = struct.unpack(f"{order}II", raw)
    if kind >> 16:  # a small data element: count and data inside the tag
        return kind & 0xFFFF, kind >> 16, position + 4
    return kind, n_bytes, position + 8


def _check_matrix(
    path: Path, handle: BinaryIO, start: int, end: int, order: str, names: Collection[str]
) -> None:
    parts = []  # (type, byte count, data start) of the flags, dimensions, name, real part
    position = start
    while position < end and len(parts) < 4:
        kind, n_bytes, data = _tag(handle, position, order)
        parts.append((kind, n_bytes, data))
        position = data + n_bytes
        position += -position % 8
    if len(parts) < 3:
        return  # too short to be a named variable: scipy will say what it makes of it
    (dims_kind, dims_bytes, dims_at), (_, name_bytes, name_at) = parts[1], parts[2]
    handle.seek(name_at)
    name = handle.read(name_bytes).decode("latin-1")
    if name not in names:
        return
    if dims_kind != MI_INT32 or dims_bytes % 4 or len(parts) < 4:
        raise RecordingError(f"{path}: variable {name}: damaged array header")
    handle.seek(dims_at)
    dims = struct.unpack(f"{order}{dims_bytes // 4}i", handle.read(dims_bytes))
    kind, n_bytes, data = parts[3]
    if kind not in VALUE_SIZES:
        raise RecordingError(f"{path}: variable {name}: unknown data type {kind} in its tag")
    expected = math.prod(dims) * VALUE_SIZES[kind]
    if min(dims, default=0) < 0 or n_bytes != expected or data + n_bytes > end:
        raise RecordingError(
            f"{path}: variable {name}: its data tag says {n_bytes:,} bytes where its "
            f"dimensions {'x'.join(map(str, dims))} need {expected:,}"
        )
