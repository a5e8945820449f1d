"""`serve --bodies DIR`: every request and response body stored in full, by SHA-256 name.

A body is streamed to a temporary file in DIR as it passes (never held in
memory), hashed on the way, and renamed to its SHA-256 hex digest when it
ends. The name is the content, so the same body sent twice is stored once,
and a log record's `body.sha256` finds its file in any copy of DIR (which is
how `log show --bodies DIR` reads bodies from a container's volume).

The rename is atomic (same directory), so a file named by a digest is always
complete; the temporary files start with `.partial-` and are removed when a
body is abandoned. Writes are ordinary blocking file writes: to a local disk
they land in the page cache in microseconds, cheaper than a thread hop per
chunk.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .traffic_log import BodyTap

__all__ = ["BodyStore", "BodyWriter", "StoredBody", "StoringTap"]

PARTIAL_PREFIX = ".partial-"


@dataclass(frozen=True)
class StoredBody:
    path: Path
    sha256: str
    size: int


def _discard(file: IO[bytes], path: str) -> None:
    """Finalizer: a writer dropped without finish() or abort() leaves no temp file."""
    file.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class BodyWriter:
    """One body on its way to disk. Use write() for each chunk, then finish() or abort()."""

    def __init__(self, directory: Path, hashing: bool = True) -> None:
        self.directory = directory
        self.size = 0
        # hashing=False: the caller hashes the same bytes already and passes the digest
        # to finish(), so each byte is hashed once (StoringTap does this).
        self._sha = hashlib.sha256() if hashing else None
        fd, tmp = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=directory)
        self._tmp = tmp
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self._cleanup = weakref.finalize(self, _discard, self._file, tmp)
        self.result: StoredBody | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.result is not None:
            raise ValueError("write() after finish()")
        self._file.write(data)
        if self._sha is not None:
            self._sha.update(data)
        self.size += len(data)

    def finish(self, digest: str | None = None) -> StoredBody:
        """Close, rename to the digest, and say where it went (idempotent)."""
        if self.result is None:
            if self._sha is not None:
                digest = self._sha.hexdigest()
            elif digest is None:
                raise ValueError("finish() needs the digest when the writer does not hash")
            self._cleanup.detach()
            self._file.close()
            final = self.directory / digest
            # os.replace over an existing file of the same name is harmless:
            # same name, same bytes.
            os.replace(self._tmp, final)
            self.result = StoredBody(final, digest, self.size)
        return self.result

    def abort(self) -> None:
        if self.result is None and self._cleanup.alive:
            self._cleanup()

    def __enter__(self) -> BodyWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()


class BodyStore:
    """The `--bodies` directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    @functools.lru_cache(maxsize=8)
    def for_directory(directory: str) -> BodyStore:
        """One store per directory for the whole run (made once, not per exchange)."""
        return BodyStore(directory)

    def open(self, hashing: bool = True) -> BodyWriter:
        return BodyWriter(self.directory, hashing)

    def tap(self, preview_limit: int) -> StoringTap:
        return StoringTap(preview_limit, self)


class StoringTap(BodyTap):
    """The traffic log's BodyTap, plus the whole body to the store.

    The temporary file is made on the first byte, so bodiless requests (most
    GETs) cost no file at all, and an empty body records no file.
    """

    def __init__(self, preview_limit: int, store: BodyStore) -> None:
        super().__init__(preview_limit)
        self._store = store
        self._writer: BodyWriter | None = None

    def update(self, data: bytes) -> None:
        super().update(data)
        if data:
            if self._writer is None:
                self._writer = self._store.open(hashing=False)  # BodyTap hashes already
            self._writer.write(data)

    def to_record(self) -> dict[str, Any]:
        record = super().to_record()
        if self._writer is not None:
            # What passed is what is stored, even for a body cut short: the file's
            # name is then the digest of those bytes, as is the record's sha256.
            record["file"] = str(self._writer.finish(record["sha256"]).path)
        return record
