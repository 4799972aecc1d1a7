"""Backups of the house and restoring one: ``hearth backup``, ``hearth restore``, and ``[backup]`` schedules.

A backup is one ``.tar.gz``: ``manifest.json`` first (Hearth's version, the database's schema version, when,
and every file's SHA-256, size and where it came from), then

- ``hearth.db``: the database, copied with SQLite's online backup API in one read transaction, so it is a
  consistent snapshot even while the gateway commits (WAL: the copy never blocks the gateway's writer);
- ``data/...``: everything else of the data directory that makes up the house: the API tokens, the accounts
  and sessions, the self-signed HTTPS certificate and its key (not the database's -wal/-shm, lock files or
  temporary files, and not the backups folder);
- ``tokens/...``: the token, accounts and sessions files when ``[api] token_file`` puts them elsewhere;
- ``config/<name>``: the config file, ``definitions/<n>/*.toml`` and ``profiles/<n>/*.toml``: the device
  definitions (``[adapters.definitions] folders``) and scene profiles (``[scenes] profile_dirs``) it names.

Everything the running gateway keeps of the house is in the database: devices, their names and areas as the
owner edited them, state, history, alerts, the scene engine's timers and holds, held notifications, the
adapters' own data, the audit log.

Restoring checks the whole archive before anything on disk is touched: a member not in the manifest, a
checksum or size that differs, a truncated or corrupt archive, a path that is absolute or climbs out (``..``),
a link or device member, a database newer than this Hearth: refused, nothing written. It refuses while a
gateway has the database open (its lock file), and into a data directory that is not empty unless told to
(``force``): then the old one is moved aside, never deleted. Files are written 0600, folders 0700.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import gzip
import hashlib
import io
import json
import logging
import os
import re
import shutil
import socket
import sqlite3
import stat
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.errors import HearthError

if TYPE_CHECKING:
    from gateway.clock import Clock
    from gateway.config import BackupSection, Config

__all__ = [
    "ARCHIVE_FORMAT",
    "BackupError",
    "BackupResult",
    "BackupSchedule",
    "BackupSources",
    "RefusalReason",
    "RestoreRefusedError",
    "RestoreResult",
    "RestoreTarget",
    "default_backup_name",
    "restore_backup",
    "schedule_for",
    "write_backup",
]

log = logging.getLogger("hearth.backup")

ARCHIVE_FORMAT = "hearth-backup"
ARCHIVE_VERSION = 1
MANIFEST = "manifest.json"
DATABASE_MEMBER = "hearth.db"
# A manifest is a few kilobytes; a member claiming more is not one of ours (and is not read into memory).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# A house's backup holds tens of files; a bound on members keeps a hostile archive from costing much.
MAX_MEMBERS = 100_000
# Names the scheduled backups take (and the only files retention ever deletes).
SCHEDULED_NAME = re.compile(r"^hearth-backup-\d{8}-\d{6}(-\d+)?\.tar\.gz$")
# A scheduled backup that failed (disk full, the folder's USB stick unplugged) is tried again this much later.
RETRY_S = 3600.0
# Files of the data directory that are never part of a backup: the database's live files (the copy made with
# the backup API stands for them), lock files, the temporary files of atomic writes, and process ids (of the
# Matter sidecar: restored on another machine, a pid would name an unrelated process).
_NEVER = re.compile(r"(-wal|-shm|-journal|\.lock|\.tmp|\.pid)$")
_COPY_CHUNK = 1024 * 1024


class RefusalReason(enum.Enum):
    """Why a restore was refused (``RestoreRefusedError.reason``)."""

    NOT_A_BACKUP = "not_a_backup"
    TRUNCATED = "truncated"
    CHECKSUM = "checksum"
    UNSAFE_PATH = "unsafe_path"
    NEWER_SCHEMA = "newer_schema"
    DAMAGED_DATABASE = "damaged_database"
    IN_USE = "in_use"
    NOT_EMPTY = "not_empty"


class BackupError(HearthError):
    """A backup could not be made, or a restore could not be done."""


class RestoreRefusedError(BackupError):
    """The archive or the target is not fit for a restore; nothing on disk was changed."""

    def __init__(self, reason: RefusalReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# ------------------------------------------------------------------ what a backup holds


@dataclass(frozen=True, slots=True)
class BackupSources:
    """Where the house's files are: the database, the data directory, the token files' folder, the config file
    and the folders of definitions and profiles it names. ``exclude``: folders left out (the backups folder)."""

    db_path: Path
    data_dir: Path
    token_file: Path
    config_file: Path | None = None
    definition_dirs: tuple[Path, ...] = ()
    profile_dirs: tuple[Path, ...] = ()
    exclude: tuple[Path, ...] = ()

    @classmethod
    def of(cls, config: Config) -> BackupSources:
        """The files of the house ``config`` describes (``config.source`` is its file, when it has one)."""
        source = Path(config.source)
        config_file = source if not config.source.startswith("<") and source.is_file() else None
        folders = config.adapters.get("definitions", {}).get("folders", [])
        definition_dirs = tuple(Path(str(f)).expanduser() for f in folders) if isinstance(folders, list) else ()
        return cls(db_path=config.store_path, data_dir=config.data_dir, token_file=config.token_file,
                   config_file=config_file, definition_dirs=definition_dirs,
                   profile_dirs=tuple(Path(p).expanduser() for p in config.scenes.profile_dirs),
                   exclude=(backup_directory(config),))


def backup_directory(config: Config) -> Path:
    """``[backup] directory``, or ``backups`` in the data directory."""
    return config.backup.directory or config.data_dir / "backups"


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    files: int
    bytes: int
    schema_version: int


def default_backup_name(now: float) -> str:
    return time.strftime("hearth-backup-%Y%m%d-%H%M%S.tar.gz", time.gmtime(now))


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _copy_database(db_path: Path, out: Path) -> int:
    """Copy the database at ``db_path`` to ``out`` with SQLite's backup API; returns its schema version.

    One step (pages=-1): one read transaction, so the copy is the database as of one commit. In WAL mode a
    reader neither waits for the gateway's writer nor holds it up; the commits that go on meanwhile are simply
    not in the copy. The copy is left in rollback-journal mode, one self-contained file."""
    try:
        source = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    except sqlite3.Error as err:
        raise BackupError(f"cannot open {db_path}: {err}") from err
    try:
        # The gateway may hold the write lock for a commit's moment; a read waits for nothing in WAL mode, but
        # the first read of a database the gateway is just opening may meet its recovery.
        source.execute("PRAGMA busy_timeout = 5000")
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        copy = sqlite3.connect(out)
        try:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode = DELETE")
            problems = [row[0] for row in copy.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise BackupError(f"{db_path}: the database is damaged ({'; '.join(problems[:3])}); no backup made")
            tables = {row[0] for row in copy.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = 0
            if "schema_version" in tables:
                version = int(copy.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])
        finally:
            copy.close()
    except sqlite3.Error as err:
        raise BackupError(f"cannot copy {db_path}: {err}") from err
    finally:
        source.close()
    return version


def _regular_files(folder: Path, *, flat: bool = False, pattern: str = "*") -> Iterator[Path]:
    """Regular files under ``folder`` (not following links; ``flat``: only its own, matching ``pattern``)."""
    if not folder.is_dir():
        return
    found = folder.glob(pattern) if flat else folder.rglob(pattern)
    for path in sorted(found):
        with contextlib.suppress(OSError):
            if stat.S_ISREG(path.lstat().st_mode):
                yield path


def _plan(sources: BackupSources) -> list[tuple[str, Path, str]]:
    """(archive name, file, role) of every file to copy besides the database."""
    planned: list[tuple[str, Path, str]] = []
    live_db = {sources.db_path.resolve()}
    for path in _regular_files(sources.data_dir):
        rel = path.relative_to(sources.data_dir)
        if (path.resolve() in live_db or _NEVER.search(path.name) or path.name.startswith(".")
                or any(_is_within(path, folder) for folder in sources.exclude)
                or path.name.startswith(sources.db_path.name + "-")):
            continue
        planned.append((f"data/{rel.as_posix()}", path, "data"))
    token_dir = sources.token_file.parent
    if not _is_within(token_dir, sources.data_dir):
        for name in (sources.token_file.name, "users.json", "sessions.json"):
            path = token_dir / name
            if path.is_file():
                planned.append((f"tokens/{name}", path, "tokens"))
    if sources.config_file is not None and sources.config_file.is_file():
        planned.append((f"config/{sources.config_file.name}", sources.config_file, "config"))
    for role, folders in (("definitions", sources.definition_dirs), ("profiles", sources.profile_dirs)):
        for index, folder in enumerate(folders):
            for path in _regular_files(folder, flat=True, pattern="*.toml"):
                planned.append((f"{role}/{index}/{path.name}", path, role))
    return planned


def _copy_file(source: Path, out: Path) -> None:
    """Copy ``source`` to a new ``out`` (0600). The token and accounts files are replaced atomically by the
    gateway and the CLI (never written in place), so a copy is always of one whole version of them."""
    with source.open("rb") as reader:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as writer:
            shutil.copyfileobj(reader, writer, _COPY_CHUNK)


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as reader:
        for chunk in iter(lambda: reader.read(_COPY_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tar_info(name: str, size: int, mtime: float, *, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o700 if directory else 0o600  # inside the archive too: tokens' hashes, keys, who is home
    info.mtime = int(mtime)
    info.uname = info.gname = ""
    return info


def write_backup(out: Path, sources: BackupSources, *, now: float | None = None) -> BackupResult:
    """Write a backup of ``sources`` to ``out`` (mode 0600; written to a temporary file, then renamed, so that
    ``out`` is only ever a whole archive). Blocking: the gateway runs it in a thread."""
    now = time.time() if now is None else now
    if not sources.db_path.is_file():
        raise BackupError(f"no database at {sources.db_path}: nothing to back up (has the gateway run once?)")
    out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".hearth-backup-", dir=out.parent))  # 0700, same disk as out
    partial = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        schema_version = _copy_database(sources.db_path, staging / DATABASE_MEMBER)
        staged: list[tuple[str, Path, str, str]] = [(DATABASE_MEMBER, staging / DATABASE_MEMBER, "database",
                                                     str(sources.db_path))]
        for index, (name, path, role) in enumerate(_plan(sources)):
            copy = staging / f"{index}"
            try:
                _copy_file(path, copy)
            except FileNotFoundError:
                continue  # gone meanwhile (a session file replaced as we looked): not part of the house now
            except OSError as err:
                raise BackupError(f"cannot read {path}: {err.strerror or err}") from err
            staged.append((name, copy, role, str(path)))
        files: list[dict[str, Any]] = [{"name": name, "role": role, "source": origin, "size": copy.stat().st_size,
                  "sha256": _digest(copy), "mode": "0600"} for name, copy, role, origin in staged]
        manifest = {
            "format": ARCHIVE_FORMAT,
            "format_version": ARCHIVE_VERSION,
            "hearth_version": __version__,
            "schema_version": schema_version,
            "created_at": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
            "host": socket.gethostname(),
            "sources": {"database": str(sources.db_path), "data_dir": str(sources.data_dir),
                        "token_file": str(sources.token_file),
                        "config": None if sources.config_file is None else str(sources.config_file),
                        "definitions": [str(p) for p in sources.definition_dirs],
                        "profiles": [str(p) for p in sources.profile_dirs]},
            "files": files,
        }
        manifest_bytes = json.dumps(manifest, indent=2, ensure_ascii=False).encode() + b"\n"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_tar_info(MANIFEST, len(manifest_bytes), now), io.BytesIO(manifest_bytes))
            for (name, copy, _role, _origin), entry in zip(staged, files, strict=True):
                with copy.open("rb") as reader:
                    tar.addfile(_tar_info(name, int(entry["size"]), now), reader)
            tar.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, out)
    except OSError as err:
        raise BackupError(f"cannot write {out}: {err.strerror or err}") from err
    finally:
        with contextlib.suppress(OSError):
            partial.unlink()
        shutil.rmtree(staging, ignore_errors=True)
    return BackupResult(out, len(files), out.stat().st_size, schema_version)


# ------------------------------------------------------------------ restore


@dataclass(frozen=True, slots=True)
class RestoreTarget:
    """Where a restore puts the house: the data directory, the database, the token files' folder; the config
    file (only when given: a restore never writes a config where nobody asked it to) and the folders of
    definitions and profiles (those the restored config names, in its order)."""

    data_dir: Path
    db_path: Path
    token_dir: Path
    config_file: Path | None = None
    definition_dirs: tuple[Path, ...] = ()
    profile_dirs: tuple[Path, ...] = ()


@dataclass(slots=True)
class RestoreResult:
    manifest: dict[str, Any]
    written: list[Path] = field(default_factory=list)
    moved_aside: list[tuple[Path, Path]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _safe_member_name(name: str) -> PurePosixPath:
    """The member's name as a relative path that stays inside where it is extracted to, or a refusal."""
    if not name or "\\" in name or "\x00" in name:
        raise RestoreRefusedError(RefusalReason.UNSAFE_PATH, f"archive member {name!r}: not a plain relative path")
    path = PurePosixPath(name)
    if path.is_absolute() or any(part in ("..", "") for part in path.parts) or path.parts[0] == ".":
        raise RestoreRefusedError(RefusalReason.UNSAFE_PATH,
                                  f"archive member {name!r} would be written outside the target; refused")
    return path


def _read_manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isreg():
        raise RestoreRefusedError(RefusalReason.NOT_A_BACKUP, f"no {MANIFEST} at the start: not a Hearth backup")
    if first.size > MAX_MANIFEST_BYTES:
        raise RestoreRefusedError(RefusalReason.NOT_A_BACKUP, f"{MANIFEST} is {first.size} bytes: not a Hearth backup")
    reader = tar.extractfile(first)
    assert reader is not None
    try:
        manifest = json.loads(reader.read())
    except ValueError as err:
        raise RestoreRefusedError(RefusalReason.NOT_A_BACKUP, f"{MANIFEST} is not JSON ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT:
        raise RestoreRefusedError(RefusalReason.NOT_A_BACKUP, f"{MANIFEST} is not a Hearth backup's")
    if not isinstance(manifest.get("format_version"), int) or manifest["format_version"] > ARCHIVE_VERSION:
        raise RestoreRefusedError(RefusalReason.NEWER_SCHEMA,
                                  f"the archive is of format version {manifest.get('format_version')!r}, newer than "
                                  f"this Hearth ({__version__}) reads ({ARCHIVE_VERSION}): upgrade Hearth first")
    files = manifest.get("files")
    if not isinstance(files, list) or not all(
            isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("sha256"), str)
            and isinstance(f.get("size"), int) for f in files):
        raise RestoreRefusedError(RefusalReason.NOT_A_BACKUP, f"{MANIFEST} has no valid list of files")
    return manifest


def _extract_verified(archive: Path, staging: Path) -> dict[str, Any]:
    """Extract ``archive`` into ``staging``, checking every member against the manifest as it comes."""
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            manifest = _read_manifest(tar)
            expected = {}
            for entry in manifest["files"]:
                expected[str(_safe_member_name(entry["name"]))] = entry
            seen: set[str] = set()
            for count, member in enumerate(tar, start=1):
                if count == 1:
                    continue  # the manifest, read already (iterating a TarFile starts over from its first member)
                if count > MAX_MEMBERS:
                    raise RestoreRefusedError(RefusalReason.NOT_A_BACKUP, f"more than {MAX_MEMBERS} members")
                name = str(_safe_member_name(member.name))
                if member.isdir():
                    continue
                if not member.isreg():
                    raise RestoreRefusedError(RefusalReason.UNSAFE_PATH,
                                              f"archive member {member.name!r} is a link or a device, not a file")
                entry = expected.get(name)
                if entry is None or name in seen:
                    raise RestoreRefusedError(RefusalReason.CHECKSUM,
                                              f"archive member {member.name!r} is not in the manifest (or twice)")
                if member.size != entry["size"]:
                    raise RestoreRefusedError(RefusalReason.CHECKSUM, f"{name}: {member.size} bytes, the manifest "
                                                                      f"says {entry['size']}")
                seen.add(name)
                target = staging.joinpath(*PurePosixPath(name).parts)
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                reader = tar.extractfile(member)
                assert reader is not None
                digest = hashlib.sha256()
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as writer:
                    for chunk in iter(lambda: reader.read(_COPY_CHUNK), b""):  # noqa: B023 - used at once
                        digest.update(chunk)
                        writer.write(chunk)
                if digest.hexdigest() != entry["sha256"]:
                    raise RestoreRefusedError(RefusalReason.CHECKSUM,
                                              f"{name}: its SHA-256 is not the manifest's: the archive is damaged")
            missing = sorted(set(expected) - seen)
            if missing:
                raise RestoreRefusedError(RefusalReason.TRUNCATED,
                                          f"the archive lacks {', '.join(missing[:5])} (truncated?)")
    except RestoreRefusedError:
        raise
    except (tarfile.ReadError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise RestoreRefusedError(RefusalReason.TRUNCATED,
                                  f"{archive}: truncated or not a .tar.gz ({err or type(err).__name__})") from err
    except OSError as err:
        raise BackupError(f"cannot read {archive}: {err.strerror or err}") from err
    if DATABASE_MEMBER not in expected:
        raise RestoreRefusedError(RefusalReason.NOT_A_BACKUP, f"the archive holds no {DATABASE_MEMBER}")
    return manifest


def _check_database(path: Path) -> None:
    from gateway.store import SCHEMA_VERSION

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise RestoreRefusedError(RefusalReason.DAMAGED_DATABASE,
                                      f"the archive's database is damaged ({'; '.join(problems[:3])})")
        version = int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])
    except sqlite3.Error as err:
        raise RestoreRefusedError(RefusalReason.DAMAGED_DATABASE, f"the archive's database is not usable ({err})") \
            from err
    finally:
        conn.close()
    if version > SCHEMA_VERSION:
        raise RestoreRefusedError(RefusalReason.NEWER_SCHEMA,
                                  f"the archive's database has schema version {version}, newer than this Hearth "
                                  f"({__version__}) knows ({SCHEMA_VERSION}): install the Hearth that made it "
                                  "(its manifest says which), or a newer one")


def _has_content(folder: Path, ignore: str) -> bool:
    """Whether ``folder`` holds anything but a lock file named ``ignore`` (a stale one says nothing)."""
    try:
        return any(path.name != ignore for path in folder.iterdir())
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return True


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def _aside_name(path: Path, stamp: str) -> Path:
    candidate = path.with_name(f"{path.name}.before-restore-{stamp}")
    for n in range(1, 1000):
        if not candidate.exists():
            return candidate
        candidate = path.with_name(f"{path.name}.before-restore-{stamp}-{n}")
    raise BackupError(f"cannot find a free name to move {path} aside")


@contextlib.contextmanager
def _store_not_in_use(db_path: Path) -> Iterator[None]:
    """Hold the database's lock file exclusively (as ``hearth data delete`` does): no gateway has it open, and
    none can open it until the restore is done."""
    from gateway.store import StoreInUseError, lock_path, take_store_lock

    if not db_path.parent.is_dir():
        yield
        return
    created = not lock_path(db_path).exists()
    try:
        fd = take_store_lock(db_path, exclusive=True)
    except StoreInUseError as err:
        raise RestoreRefusedError(RefusalReason.IN_USE,
                                  f"a gateway is running with {db_path} (stop it first: systemctl stop hearth, or "
                                  "Ctrl-C); nothing was changed") from err
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                lock_path(db_path).unlink()


def _place(source: Path, target: Path, result: RestoreResult, stamp: str) -> None:
    """Move one verified file to ``target`` (outside the data directory): an existing different file is moved
    aside with ``force``, else refused (checked for every file before the first is placed)."""
    if target.exists():
        if target.is_file() and _digest(target) == _digest(source):
            result.skipped.append(f"{target} (already the same)")
            return
        aside = _aside_name(target, stamp)
        target.rename(aside)
        result.moved_aside.append((target, aside))
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.move(str(source), str(target))
    os.chmod(target, 0o600)
    result.written.append(target)


def _conflicts(pairs: list[tuple[Path, Path]]) -> list[Path]:
    return [target for source, target in pairs
            if target.exists() and not (target.is_file() and _digest(target) == _digest(source))]


def restore_backup(archive: Path, target: RestoreTarget, *, force: bool = False,
                   now: float | None = None) -> RestoreResult:
    """Restore ``archive`` into ``target``. Everything is checked first (see the module's docstring); with
    ``force``, a non-empty data directory and files in the way are moved aside (``*.before-restore-<time>``)."""
    from gateway.store import lock_path

    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    data_dir = target.data_dir
    lock_name = lock_path(target.db_path).name
    if not archive.is_file():
        raise BackupError(f"no such file: {archive}")
    with _store_not_in_use(target.db_path):
        if _has_content(data_dir, lock_name) and not force:
            raise RestoreRefusedError(RefusalReason.NOT_EMPTY,
                                      f"{data_dir} is not empty: restore into an empty data directory, or add --force "
                                      "to move the present one aside (it is kept, never deleted)")
        data_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.restore-", dir=data_dir.parent))
        try:
            manifest = _extract_verified(archive, staging)
            _check_database(staging / DATABASE_MEMBER)
            result = RestoreResult(manifest)
            # Where each verified file outside the new data directory goes; all checked before the first move.
            db_inside = _inside(target.db_path, data_dir)
            outside: list[tuple[Path, Path]] = []
            if not db_inside:
                outside.append((staging / DATABASE_MEMBER, target.db_path))
            outside += [(path, target.token_dir / path.name) for path in _regular_files(staging / "tokens")]
            sections = (("definitions", target.definition_dirs), ("profiles", target.profile_dirs))
            if target.config_file is not None:
                configs = list(_regular_files(staging / "config"))
                if configs:
                    outside.append((configs[0], target.config_file))
                for role, folders in sections:
                    for index_dir in sorted((staging / role).glob("*")):
                        index = int(index_dir.name) if index_dir.name.isdigit() else -1
                        if not 0 <= index < len(folders):
                            result.skipped.append(f"{role}/{index_dir.name}: the restored config names no such folder")
                            continue
                        outside += [(path, folders[index] / path.name)
                                    for path in _regular_files(index_dir, flat=True)]
            else:
                for role in ("config", *(name for name, _ in sections)):
                    if (staging / role).is_dir():
                        result.skipped.append(f"{role}: give --config PATH to restore the config file and the "
                                              "definitions and profiles it names")
            conflicts = _conflicts(outside)
            if conflicts and not force:
                raise RestoreRefusedError(RefusalReason.NOT_EMPTY,
                                          f"{', '.join(map(str, conflicts[:3]))}: present and not the archive's; "
                                          "add --force to move them aside (kept, never deleted)")
            # Checked: now the moves. The old data directory goes aside whole, the new one takes its place.
            if _has_content(data_dir, lock_name):
                aside = _aside_name(data_dir, stamp)
                data_dir.rename(aside)
                result.moved_aside.append((data_dir, aside))
            elif data_dir.is_dir():
                with contextlib.suppress(FileNotFoundError):
                    (data_dir / lock_name).unlink()
                data_dir.rmdir()
            staged_data = staging / "data"
            if staged_data.is_dir():
                staged_data.rename(data_dir)
            else:
                data_dir.mkdir(mode=0o700)
            os.chmod(data_dir, 0o700)
            if db_inside:
                target.db_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                (staging / DATABASE_MEMBER).rename(target.db_path)
                os.chmod(target.db_path, 0o600)
            result.written.extend(sorted(p for p in data_dir.rglob("*") if p.is_file()))
            for source, destination in outside:
                _place(source, destination, result, stamp)
            return result
        finally:
            shutil.rmtree(staging, ignore_errors=True)


# ------------------------------------------------------------------ scheduled backups


def prune_backups(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` scheduled archives (by name: their UTC time) in ``directory``."""
    found = sorted(p for p in directory.glob("hearth-backup-*.tar.gz") if SCHEDULED_NAME.match(p.name))
    doomed = found[:-keep] if keep > 0 else found
    for path in doomed:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return doomed


class BackupSchedule:
    """``[backup]``: a backup daily at ``at`` (local time), or every ``interval_h``, keeping the newest ``keep``.

    Times come from the injected clock; the copy itself (SQLite's backup API, the archive, its fsync) runs in a
    worker thread so the event loop never waits for the SD card. Run ``run()`` as a task until cancelled."""

    def __init__(self, sources: BackupSources, settings: BackupSection, directory: Path, clock: Clock,
                 timezone: tzinfo | None = None) -> None:
        self.sources = sources
        self.settings = settings
        self.directory = directory
        self.clock = clock
        self.timezone = timezone
        self.made = 0
        self.failed = 0
        self.last: BackupResult | None = None
        self.last_error: str | None = None

    def next_due(self, now: float, started: float) -> float:
        if self.settings.interval_h is not None:
            step = self.settings.interval_h * 3600.0
            return started + step * (int((now - started) // step) + 1)
        hour, minute = (int(part) for part in self.settings.at.split(":"))
        local = datetime.fromtimestamp(now, self.timezone or UTC)
        due = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if due.timestamp() <= now:
            # A calendar day later at the same wall time (23 or 25 hours across a DST change).
            due = (due.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=local.tzinfo)
        return due.timestamp()

    async def backup_now(self) -> BackupResult:
        now = self.clock.time()
        name = default_backup_name(now)
        out = self.directory / name
        for n in range(1, 100):  # two backups in one second (a test's simulated clock): a suffix
            if not out.exists():
                break
            out = self.directory / name.replace(".tar.gz", f"-{n}.tar.gz")
        result = await asyncio.to_thread(write_backup, out, self.sources, now=now)
        await asyncio.to_thread(prune_backups, self.directory, self.settings.keep)
        return result

    async def run(self) -> None:
        started = self.clock.time()
        due = self.next_due(started, started)
        while True:
            await self.clock.sleep(max(0.0, due - self.clock.time()))
            try:
                self.last = await self.backup_now()
                self.made += 1
                self.last_error = None
                log.info("backup written: %s (%d files, %d bytes)", self.last.path, self.last.files, self.last.bytes)
                due = self.next_due(self.clock.time(), started)
            except (BackupError, OSError) as err:
                self.failed += 1
                self.last_error = str(err)
                log.error("scheduled backup failed (%s); trying again in %g s", err, RETRY_S)
                due = self.clock.time() + RETRY_S

    def stats(self) -> dict[str, Any]:
        return {"made": self.made, "failed": self.failed, "directory": str(self.directory),
                "last": None if self.last is None else str(self.last.path), "last_error": self.last_error}


def schedule_for(config: Config, clock: Clock) -> BackupSchedule:
    """The ``[backup]`` schedule of ``config``'s house (its time of day in ``[location] timezone``)."""
    from gateway.scenes.setup import engine_settings

    zone = engine_settings(config).timezone  # the scenes' own: the house's local time
    return BackupSchedule(BackupSources.of(config), config.backup, backup_directory(config), clock, zone)


# ------------------------------------------------------------------ the commands (hearth backup / restore)


def read_archived_config(archive: Path) -> tuple[dict[str, Any], str | None]:
    """The manifest and the config file's text of ``archive`` (checked against its checksum), to know where a
    restore puts the house before it starts. The whole archive is checked again by the restore itself."""
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            manifest = _read_manifest(tar)
            entries = {entry["name"]: entry for entry in manifest["files"]}
            for member in tar:
                entry = entries.get(member.name)
                if entry is None or entry.get("role") != "config" or not member.isreg():
                    continue
                if member.size != entry["size"] or member.size > MAX_MANIFEST_BYTES:
                    raise RestoreRefusedError(RefusalReason.CHECKSUM, f"{member.name}: not the manifest's size")
                reader = tar.extractfile(member)
                assert reader is not None
                data = reader.read()
                if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                    raise RestoreRefusedError(RefusalReason.CHECKSUM, f"{member.name}: its SHA-256 is not the "
                                                                      "manifest's: the archive is damaged")
                try:
                    return manifest, data.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise RestoreRefusedError(RefusalReason.NOT_A_BACKUP, f"{member.name} is not UTF-8") from err
    except (tarfile.ReadError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise RestoreRefusedError(RefusalReason.TRUNCATED,
                                  f"{archive}: truncated or not a .tar.gz ({err or type(err).__name__})") from err
    except OSError as err:
        raise BackupError(f"cannot read {archive}: {err.strerror or err}") from err
    return manifest, None


def backup_command(config: Config, out: Path | None, say: Any) -> int:
    """``hearth backup [FILE]``: the house of ``config`` into FILE (default ``hearth-backup-<UTC time>.tar.gz``
    here; a folder: that name in it)."""
    now = time.time()
    if out is None:
        out = Path(default_backup_name(now))
    elif out.is_dir():
        out = out / default_backup_name(now)
    result = write_backup(out, BackupSources.of(config), now=now)
    say(f"Wrote {result.path} (mode 0600): {result.files} file{'s' if result.files != 1 else ''}, {result.bytes} "
        f"bytes, database schema version "
        f"{result.schema_version}. Restore it with: hearth restore {result.path}")
    return 0


def restore_command(archive: Path, config_path: Path | None, data_dir: Path | None, force: bool, say: Any) -> int:
    """``hearth restore FILE [--config PATH] [--data-dir DIR] [--force]``."""
    from gateway.config import load_config, parse_config

    if not archive.is_file():
        raise BackupError(f"no such file: {archive}")
    manifest, config_text = read_archived_config(archive)
    # Where the house goes: as the config the gateway will run with says (the archive's, when it is restored to
    # --config PATH; else PATH as it is; else the defaults), --data-dir standing for [gateway] data_dir.
    if config_path is not None and config_text is not None:
        config = parse_config(config_text, f"{archive}:config")
    elif config_path is not None:
        config = load_config(config_path)
    else:
        config = load_config(None)
    notes: list[str] = []
    if data_dir is not None:
        if config_text is not None and config_path is not None and config.gateway.data_dir not in (None, data_dir):
            notes.append(f"the restored config says [gateway] data_dir = \"{config.gateway.data_dir}\": change it to "
                         f"\"{data_dir}\" (or run with HEARTH_DATA_DIR and remove it), or the gateway will not find "
                         "the house")
        old_dir = config.data_dir
        config = config.model_copy(update={"gateway": config.gateway.model_copy(update={"data_dir": data_dir})})
        # A database or token file the config puts inside its data directory moves with it.
        if config.store.path is not None and _inside(config.store.path, old_dir):
            moved = data_dir / Path(os.path.abspath(config.store.path)).relative_to(os.path.abspath(old_dir))
            config = config.model_copy(update={"store": config.store.model_copy(update={"path": moved})})
            if config_text is not None and config_path is not None:
                notes.append(f"the restored config's [store] path is in the old data directory; the database is "
                             f"now {moved}: change the config's path to it")
        if config.api.token_file is not None and _inside(config.api.token_file, old_dir):
            moved = data_dir / Path(os.path.abspath(config.api.token_file)).relative_to(os.path.abspath(old_dir))
            config = config.model_copy(update={"api": config.api.model_copy(update={"token_file": moved})})
            if config_text is not None and config_path is not None:
                notes.append(f"the restored config's [api] token_file is in the old data directory; the tokens are "
                             f"now {moved}: change the config's token_file to it")
    sources = BackupSources.of(config)
    target = RestoreTarget(data_dir=config.data_dir, db_path=config.store_path, token_dir=config.token_file.parent,
                           config_file=config_path if config_text is not None else None,
                           definition_dirs=sources.definition_dirs, profile_dirs=sources.profile_dirs)
    result = restore_backup(archive, target, force=force)
    say(f"Restored the backup of {manifest.get('created_at')} (Hearth {manifest.get('hearth_version')}, database "
        f"schema version {manifest.get('schema_version')}) into {target.data_dir}:")
    for path in result.written:
        say(f"  {path}")
    for old, aside in result.moved_aside:
        say(f"Moved aside (kept): {old} -> {aside}")
    for note in result.skipped:
        say(f"Not restored: {note}")
    for note in notes:
        say(f"Note: {note}")
    run = f"hearth run --config {config_path}" if config_path is not None else "hearth run"
    say(f"Start the gateway with: {run}")
    return 0
