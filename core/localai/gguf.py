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


class _Header:
    """A GGUF file read from the front, knowing its size so no length is trusted past the end."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.left = os.fstat(f.fileno()).st_size - f.tell()  # bytes after the read position (kept by hand: cheaper)

    def read(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        data = self.f.read(size)
        if len(data) != size:
            raise ValueError("truncated GGUF header")
        self.left -= size
        return struct.unpack(fmt, data)[0]

    def skip(self, size: int) -> None:
        if size > self.left:
            raise ValueError("truncated GGUF header (a length runs past the end of the file)")
        if size <= 4096:
            self.f.read(size)  # inside the read buffer: cheaper than a seek, which drops the buffer
        else:
            self.f.seek(size, os.SEEK_CUR)
        self.left -= size

    def string(self) -> str:
        size = self.read("<Q")
        if size > self.left:
            raise ValueError("truncated GGUF header (a string runs past the end of the file)")
        self.left -= size
        return self.f.read(size).decode("utf-8", "replace")

    def value(self, kind: int) -> Any:
        if kind in SCALARS:
            return self.read(SCALARS[kind])
        if kind == 8:
            return self.string()
        if kind == 9:
            item, count = self.read("<I"), self.read("<Q")
            if item in SCALARS:  # skip scalar arrays without decoding them
                self.skip(struct.calcsize(SCALARS[item]) * count)
            elif item == 8:
                for _ in range(count):
                    self.skip(self.read("<Q"))
            elif item == 9:
                raise ValueError("GGUF arrays of arrays are not part of the format")
            else:
                raise ValueError(f"unknown GGUF value type {item}")
            return None
        raise ValueError(f"unknown GGUF value type {kind}")


def gguf_metadata(path: str) -> dict[str, Any]:
    """The GGUF header's key/value pairs (arrays are skipped and read as ``None``)."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        header = _Header(f)
        version = header.read("<I")
        if version not in (2, 3):
            raise ValueError(f"{path}: GGUF version {version} is not one this reader knows (2 or 3)")
        header.read("<Q")  # tensor count
        meta = {}
        for _ in range(header.read("<Q")):
            key = header.string()
            meta[key] = header.value(header.read("<I"))
        return meta
