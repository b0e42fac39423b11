"""What a gallery may write: model names and file names that stay inside the models folder."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

GALLERY_RECORD_PREFIX = "._gallery_"
PARTIAL_SUFFIX = ".partial"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+@-]*$")


class UnsafePath(ValueError):
    """A name or file name from a gallery entry or request that would leave (or clobber) the models folder."""


def check_model_name(name: str) -> str:
    """A model name becomes ``<name>.yaml``: no separators, no leading dot, nothing but a plain file name."""
    if not isinstance(name, str) or not name.strip():
        raise UnsafePath("model name must not be empty")
    if "/" in name or "\\" in name or "\0" in name:
        raise UnsafePath(f"model name {name!r} contains a path separator; a model name is a plain file name")
    if name in (".", "..") or ".." in name or not _NAME.match(name) or len(name) > 200:
        raise UnsafePath(f"model name {name!r} is not allowed: use letters, digits and . _ - : + @ "
                         "(not starting with a dot, no '..', at most 200 characters)")
    return name


def target_path(models_path: Path, filename: str) -> Path:
    """Where ``filename`` goes inside ``models_path``; absolute paths, ``..``, and config-like names are refused."""
    if not isinstance(filename, str) or not filename.strip() or "\0" in filename:
        raise UnsafePath("file name must not be empty")
    if "\\" in filename:
        raise UnsafePath(f"file name {filename!r} contains a backslash")
    pure = PurePosixPath(filename)
    if pure.is_absolute() or filename.startswith("~"):
        raise UnsafePath(f"file name {filename!r} is an absolute path; gallery files go inside the models folder")
    if ".." in pure.parts or any(part in ("", ".") for part in filename.split("/")):
        raise UnsafePath(f"file name {filename!r} leaves the models folder or is not a plain relative path")
    if len(pure.parts) == 1 and pure.suffix.lower() in (".yaml", ".yml"):
        raise UnsafePath(f"file name {filename!r} would be read as a model config; gallery files may not be YAML "
                         "files in the models folder's top level")
    if pure.name.startswith(GALLERY_RECORD_PREFIX) or pure.name.endswith(PARTIAL_SUFFIX):
        raise UnsafePath(f"file name {filename!r} is reserved for the gallery's own bookkeeping")
    root = models_path.resolve()
    # The folders on the way must stay inside (a symlinked sub-folder pointing elsewhere is refused);
    # the file itself may be a symlink the user placed there.
    parent = (root / pure).parent.resolve()
    if parent != root and not parent.is_relative_to(root):
        raise UnsafePath(f"file name {filename!r} resolves outside the models folder ({parent})")
    return root / pure
