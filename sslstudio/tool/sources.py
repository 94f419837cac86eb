"""Reading a bundle's files from a folder or a zip, by manifest name only, size and hash checked.

A folder member must resolve (links followed) to a regular file inside the folder. A zip is read
in place, never extracted: only names the manifest lists are opened, so a member called
``../../x`` is never written anywhere, and a member's reads stop at its declared size. Zip
bombs: a big member that would expand more than real bundle files do is refused unread, and a
file is hashed while streaming, its bytes spooled to disk past a fixed size, so memory does not
follow what the manifest declares. Each read of a file the tool uses returns the very bytes that
were hashed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from sslstudio.tool.tensors import TensorFileError, parse_safetensors, safetensors_header_length

_CHUNK = 1 << 20
_SPOOL = 16 << 20  # a kept file's bytes beyond this wait in a temp file until verified
# Weights, embeddings and ONNX graphs are float data that deflate shrinks by ~10%; a list of
# paths by ~10x. A big member expanding past MAX_RATIO is a bomb, however its hash was made.
BOMB_FLOOR = 32 << 20
MAX_RATIO = 200
MAX_ZIP_MEMBERS = 10_000  # a bundle has about eight; a million-entry zip is an attack
# What a damaged folder or zip raises while being read (encrypted zip members: RuntimeError).
_READ_ERRORS = (OSError, EOFError, RuntimeError, zipfile.BadZipFile, zlib.error)


class BundleError(Exception):
    """A bundle the tool refuses to use; the message names the file and says why."""


def check_relative(name: Any, where: str) -> str:
    """A manifest path must be relative, POSIX, canonical and stay inside the bundle."""
    ok = isinstance(name, str) and name and "\\" not in name and "\x00" not in name
    parts = PurePosixPath(name).parts if ok else ()
    if (
        not ok
        or name.startswith("/")
        or re.match(r"^[A-Za-z]:", name)
        or any(p in ("", ".", "..") for p in parts)
        or "/".join(parts) != name
    ):
        raise BundleError(
            f"{where}/manifest.json: path {name!r} is absolute, contains '..' or "
            "is not a plain relative POSIX path"
        )
    return name


class Source:
    name: str

    def size(self, name: str) -> int:
        raise NotImplementedError

    def open(self, name: str):  # a binary file object
        raise NotImplementedError

    def close(self) -> None:
        pass

    def read_small(self, name: str, limit: int) -> bytes:
        size = self.size(name)
        if size > limit:
            raise BundleError(f"{self.name}/{name}: {size} bytes, more than the {limit} allowed")
        try:
            with self.open(name) as f:
                return f.read(limit + 1)[:limit]
        except _READ_ERRORS as e:
            raise BundleError(f"{self.name}/{name}: unreadable ({type(e).__name__}: {e})") from e

    def verified(self, name: str, size: int, digest: str, *, keep: bool) -> bytes | None:
        """Hash the file (size first, it is free); return its bytes when ``keep``."""
        actual = self.size(name)
        if actual != size:
            raise BundleError(
                f"{self.name}/{name}: {actual} bytes, manifest says {size} (truncated or altered)"
            )
        h, total = hashlib.sha256(), 0
        # kept bytes wait on disk past _SPOOL: memory stays one chunk plus the spool, whatever
        # size the manifest declares, until the hash has said the bytes are the real ones
        with tempfile.SpooledTemporaryFile(_SPOOL) if keep else contextlib.nullcontext() as kept:
            try:
                with self.open(name) as f:
                    while total <= size and (chunk := f.read(_CHUNK)):
                        h.update(chunk)
                        total += len(chunk)
                        if kept is not None:
                            kept.write(chunk)
            except _READ_ERRORS as e:
                raise BundleError(
                    f"{self.name}/{name}: unreadable ({type(e).__name__}: {e})"
                ) from e
            if total != size or h.hexdigest() != digest:
                raise BundleError(
                    f"{self.name}/{name}: sha256 differs from the manifest "
                    "(the file was altered or damaged)"
                )
            if kept is None:
                return None
            kept.seek(0)
            return kept.read()

    def check_safetensors_header(self, name: str, size: int) -> None:
        try:
            with self.open(name) as f:
                first = f.read(8)
                n = safetensors_header_length(first, size)
                parse_safetensors(first + f.read(n), size)
        except (TensorFileError, *_READ_ERRORS) as e:
            raise BundleError(f"{self.name}/{name}: {e}") from e


class Folder(Source):
    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))
        self.name = str(root)

    def _path(self, name: str) -> str:
        full = os.path.realpath(self.root / check_relative(name, self.name))
        if os.path.commonpath([full, self.root]) != str(self.root):
            raise BundleError(f"{self.name}/{name}: resolves outside the bundle folder (a link?)")
        try:
            st = os.stat(full)
        except OSError as e:
            raise BundleError(f"{self.name}/{name}: missing ({type(e).__name__})") from e
        if not stat.S_ISREG(st.st_mode):
            raise BundleError(f"{self.name}/{name}: not a regular file")
        return full

    def size(self, name: str) -> int:
        return os.stat(self._path(name)).st_size

    def open(self, name: str):
        return open(self._path(name), "rb")


class Zip(Source):
    """Members are looked up by manifest name only: at the top or under one top folder."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise BundleError(f"{path}: unreadable zip ({e})") from e
        try:
            self.prefix = self._prefix(path)
        except BundleError:
            self.zf.close()
            raise

    def _prefix(self, path: Path) -> str:
        if len(self.zf.infolist()) > MAX_ZIP_MEMBERS:
            raise BundleError(f"{path}: more than {MAX_ZIP_MEMBERS} members; not a bundle")
        names = {i.filename for i in self.zf.infolist()}
        if "manifest.json" in names:
            return ""
        tops = {n.split("/", 1)[0] for n in names if n.endswith("/manifest.json")}
        if len(tops) != 1:
            raise BundleError(f"{path}: no manifest.json at the top or in one top folder")
        return tops.pop() + "/"

    def _info(self, name: str) -> zipfile.ZipInfo:
        try:
            info = self.zf.getinfo(self.prefix + check_relative(name, self.name))
        except KeyError as e:
            raise BundleError(f"{self.name}: member {name} is missing") from e
        if stat.S_ISLNK(info.external_attr >> 16) or info.is_dir():
            raise BundleError(f"{self.name}: member {name} is a link or a folder, not a file")
        return info

    def size(self, name: str) -> int:
        return self._info(name).file_size

    def open(self, name: str):
        info = self._info(name)
        ratio = info.file_size / max(1, info.compress_size)
        if info.file_size > BOMB_FLOOR and ratio > MAX_RATIO:
            raise BundleError(
                f"{self.name}: member {name} would expand {ratio:.0f} times, to {info.file_size} "
                "bytes: a zip bomb, refused (a real bundle's files barely compress)"
            )
        return self.zf.open(info)  # reads stop at the declared size (zip bombs)

    def close(self) -> None:
        self.zf.close()
