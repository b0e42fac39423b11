"""Reading a GGUF file's header (its key/value metadata) without loading the model.

Shared by the llama.cpp backends (fitting the context to memory) and the core (telling a base model from a chat
model before it loads). Arrays are skipped, so a 262k-entry vocabulary costs seeks, not decoding. The file may be
anything a user dropped in the models folder, so every length and count is checked against the bytes the file
holds before it is trusted: a damaged or foreign file is a ``ValueError``, never a multi-gigabyte allocation.
"""

from __future__ import annotations

import os
import struct
from typing import Any, BinaryIO

# GGUF value types: id -> struct format (scalars); 8 = string, 9 = array.
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def _read(f: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _left(f: BinaryIO) -> int:
    here = f.tell()
    end = f.seek(0, os.SEEK_END)
    f.seek(here)
    return end - here


def _skip(f: BinaryIO, size: int) -> None:
    if size > _left(f):
        raise ValueError("truncated GGUF header (a length runs past the end of the file)")
    f.seek(size, os.SEEK_CUR)


def _string(f: BinaryIO) -> str:
    size = _read(f, "<Q")
    if size > _left(f):
        raise ValueError("truncated GGUF header (a string runs past the end of the file)")
    return f.read(size).decode("utf-8", "replace")


def _value(f: BinaryIO, kind: int) -> Any:
    if kind in SCALARS:
        return _read(f, SCALARS[kind])
    if kind == 8:
        return _string(f)
    if kind == 9:
        item, count = _read(f, "<I"), _read(f, "<Q")
        if item in SCALARS:  # skip scalar arrays without decoding them
            _skip(f, struct.calcsize(SCALARS[item]) * count)
        elif item == 8:
            for _ in range(count):
                _skip(f, _read(f, "<Q"))
        elif item == 9:
            raise ValueError("GGUF arrays of arrays are not part of the format")
        else:
            for _ in range(count):
                _value(f, item)
        return None
    raise ValueError(f"unknown GGUF value type {kind}")


def gguf_metadata(path: str) -> dict[str, Any]:
    """The GGUF header's key/value pairs (arrays are skipped and read as ``None``)."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        version = _read(f, "<I")
        if version not in (2, 3):
            raise ValueError(f"{path}: GGUF version {version} is not one this reader knows (2 or 3)")
        _read(f, "<Q")  # tensor count
        meta = {}
        for _ in range(_read(f, "<Q")):
            key = _string(f)
            meta[key] = _value(f, _read(f, "<I"))
        return meta
