"""Private files of the API: the token file and the accounts file (owner-only, written atomically, locked).

Shared by :mod:`gateway.api.auth` and :mod:`gateway.api.accounts` (which import nothing of each other for it):
both files are read and rewritten by the running gateway and the ``hearth`` CLI at once.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from gateway.errors import HearthError

try:  # Not on Windows; the gateway targets Linux, where the CLI and the gateway may write at once.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["ensure_private_dir", "file_lock", "write_private_file"]


def write_private_file(path: Path, text: str, error: type[HearthError]) -> None:
    """Replace ``path`` atomically with ``text``, readable by its owner only (0600), durably (fsync)."""
    ensure_private_dir(path, error)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        # Created 0600 from the start (not chmod-ed afterwards), so no other user can ever read it.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise error(f"cannot write {path}: {err.strerror}") from err
    with contextlib.suppress(OSError):  # make the rename itself durable (power cuts)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def ensure_private_dir(path: Path, error: type[HearthError]) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise error(f"cannot create {path.parent}: {err.strerror}") from err


@contextlib.contextmanager
def file_lock(path: Path, error: type[HearthError]) -> Iterator[None]:
    """Serialize read-modify-write of ``path`` between processes (gateway and CLI): ``<path>.lock``."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    ensure_private_dir(path, error)
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as err:
        raise error(f"cannot open {lock_path}: {err.strerror}") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
