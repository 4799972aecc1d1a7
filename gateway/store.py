"""The SQLite store: what survives a restart.

It owns the database file: every device's description and last state, the history of state changes,
and the small key-value storage of adapters. It listens on the hub's bus, keeps what changed in memory
and writes it in one transaction every ``commit_interval_s`` (an SD card must not see one write per
message). A crash (kill -9, power cut) loses at most the last interval; the file always opens cleanly,
because every batch is one SQLite transaction in a WAL journal.

Threading: the bus callbacks and all bookkeeping run on the event loop; every SQLite call runs in one
dedicated worker thread that owns the connection.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import math
import os
import sqlite3
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from gateway.bus import (
    AvailabilityChanged,
    DeviceAdded,
    DeviceRemoved,
    DeviceUpdated,
    StateChanged,
    Unsubscribe,
)
from gateway.clock import Clock
from gateway.errors import StoreError
from gateway.model.types import CapabilitySupport, Device

if TYPE_CHECKING:
    from gateway.hub import Hub

__all__ = ["AuditEntry", "Retention", "Store", "history_kind"]

log = logging.getLogger("hearth.store")

# Radio diagnostics change with nearly every message (link quality, signal strength, last seen): their
# current value is kept, but a history of them would be a third of all rows written to an SD card
# (measured by bench/ingest.py) for a chart nobody reads. `online` keeps its history.
NO_HISTORY_CONNECTIVITY = frozenset({"lqi", "rssi_dbm", "last_seen"})

T = TypeVar("T")
# How much lower the store's thread runs than the rest of the process (nice steps; Linux, where a thread
# has a nice value of its own).
STORE_THREAD_NICE = 10


def _background_priority() -> None:
    """Lower the calling thread's CPU priority by STORE_THREAD_NICE, on Linux.

    A commit keeps a core busy for 40-70 ms every few seconds (2,000 msg/s). At the same priority the
    scheduler often ran the loop's thread on that core behind it: the loop's lateness during commits
    (a timer every 0.5 ms, in-process, four 30 s runs each) p99 3.5-3.7 ms, against 1.4-1.9 ms with the
    thread at nice 10 or 19 (0.6 ms outside commits either way). At a lower priority the loop, and the
    broker, go first; the commit takes the time nobody else wants and, still a share of a busy machine
    (nice, not SCHED_IDLE: it holds the GIL at times, and must not be starved while the loop waits).
    Elsewhere (macOS, the BSDs) the same call would name a process, not a thread: not made there."""
    if sys.platform != "linux":
        return
    try:
        thread = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + STORE_THREAD_NICE))
    except OSError as err:  # a sandbox that forbids it: the store works the same, only less politely
        log.debug("could not lower the store thread's priority: %s", err)

# Another process (a backup script, `sqlite3` in a shell) may hold the write lock for a moment: wait for
# it rather than fail the batch at once. Short enough that a stuck lock shows up as a failed commit
# (logged, retried next interval) instead of a silent stall.
BUSY_TIMEOUT_MS = 5000
# SQLite's page cache (KiB; its default is 2,000). A commit appends to the WAL whatever the cache holds,
# and a read the cache misses is served by the kernel's page cache: measured by bench.memory and
# bench.store (1,000 devices, 2,000 msg/s), 512 KiB instead of 2 MB: steady RSS -1.5 MB (70.6 -> 68.9),
# a commit of 6,300 changes/s 37-38 -> 40-50 ms in the worker (SQLite lets go of the GIL meanwhile).
CACHE_KIB = 512
# The page size of a new database: 1 KiB, not SQLite's 4 KiB. A commit writes every page it touches whole; a small
# house's commit touches five or six pages for a few dozen bytes of changes, so small pages are what the SD card
# sees written (docs/storage.md: 2.8x fewer bytes a day for the demo's house).
DEFAULT_PAGE_SIZE = 1024
# History older than retention_days is purged once a day; a failed purge is retried an hour later.
PURGE_INTERVAL_S = 86400.0
PURGE_RETRY_S = 3600.0
# A purge deletes in chunks, each its own transaction and its own job on the worker: a month of
# history is hundreds of thousands of blocks, and one huge delete would hold up the commits behind it and
# grow the WAL.
PURGE_CHUNK_BLOCKS = 2000
# While commits keep failing (disk full) the batch is kept in memory; beyond this many history changes the
# oldest are dropped (and counted): running out of memory would lose everything, not just old history.
MAX_PENDING_HISTORY_ROWS = 1_000_000
# History is stored as blocks: the changes of one device over one commit interval in one row, as a JSON
# array (see MIGRATIONS, version 2). A block never spans more than this (a batch kept through failing
# commits is cut into hours), which bounds a time-range query's index scan; retention works on whole
# blocks, so history is kept up to this much longer than retention_days.
HISTORY_BLOCK_SPAN_S = 3600.0
# A key-value text longer than this is kept in memory compressed until it is read again: the Zigbee2MQTT
# bridge's definitions of a large house are a megabyte of JSON (two, with the UTF-8 copy SQLite takes of
# a text that is not ASCII), read once at start.
KV_COMPRESS_CHARS = 16 * 1024

# Kinds of history with a retention of their own ([store] *_retention_days). Presence is health-adjacent: when
# somebody moved, which door opened, whether anybody is home says how a resident lives. Energy is kept longer:
# the energy page compares days, and a year of it says little about a person.
PRESENCE_CAPABILITIES = frozenset({"motion", "occupancy", "presence", "contact"})
ENERGY_CAPABILITIES = frozenset({"energy_meter", "power_meter"})
HISTORY_KINDS = ("presence", "energy", "other")


def history_kind(capability: str) -> str:
    """Which retention a state change of ``capability`` falls under: presence, energy or other."""
    if capability in PRESENCE_CAPABILITIES:
        return "presence"
    if capability in ENERGY_CAPABILITIES:
        return "energy"
    return "other"


@dataclass(frozen=True, slots=True)
class Retention:
    """How many days each kind of personal data is kept ([store] *_retention_days)."""

    history_days: float = 30.0
    presence_days: float = 14.0
    energy_days: float = 400.0
    alert_days: float = 180.0
    trace_days: float = 14.0
    notification_days: float = 90.0
    audit_days: float = 365.0

    def history_days_of(self, kind: str) -> float:
        return {"presence": self.presence_days, "energy": self.energy_days}.get(kind, self.history_days)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log: who (a user or token, by name and role), when, what, from where."""

    t: float
    action: str
    actor_kind: str | None = None
    actor: str | None = None
    role: str | None = None
    target: str | None = None
    detail: dict[str, Any] | None = None
    address: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"t": self.t, "action": self.action, "actor_kind": self.actor_kind, "actor": self.actor,
                "role": self.role, "target": self.target, "detail": self.detail, "address": self.address}


# A retention hook: given the time now, deletes what it owns past its retention; says how much, by kind.
RetentionHook = Callable[[float], dict[str, int]]
# Rows of a kind's retention pass per transaction (as PURGE_CHUNK_BLOCKS, for blocks it rewrites).
RETENTION_CHUNK_BLOCKS = 500

# Stdlib json, not orjson: it round-trips NaN and infinities (orjson turns them into null), and a
# restored value must be the value the hub had.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# For state values, which the hub has already checked to be JSON scalars: should anything else ever get
# through, it is stored as its text rather than failing its batch, and every batch after it, for good.
_dumps_value = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=repr).encode
_loads = json.loads


def _dumps_deferred(value: Any) -> str:
    """JSON text of a value set with ``set_deferred`` (see there): orjson, and stdlib json for what orjson
    cannot write (a subclass of str as a key, an integer beyond 64 bits)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return _dumps(value)
_float_repr = float.__repr__
_isfinite = math.isfinite


def _value_text(value: Any) -> str:
    """``_dumps_value(value)`` with the common scalars done directly: the worker writes every state change
    in the house, and the JSON encoder costs three times as much per scalar. Same text either way."""
    kind = type(value)
    if kind is float and _isfinite(value):
        return _float_repr(value)  # what json writes for a finite float
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    return _dumps_value(value)

# Forward migrations: MIGRATIONS[n - 1] takes the schema from version n - 1 to n. Never edit a shipped
# one; append. Each runs in one transaction together with its row in schema_version; a step is an SQL
# statement or a function given the connection (for data SQL alone cannot move exactly).
MigrationStep = str | Callable[[sqlite3.Connection], None]


def _history_to_blocks(conn: sqlite3.Connection) -> None:
    """Version 2: the rows of `history` (one per change) become blocks of `history_block`: per device,
    the changes of one hour (at most _MIGRATED_BLOCK_ROWS), oldest first. Values are moved as the JSON
    text they were stored as, so nothing is re-encoded and a NaN stays a NaN."""
    insert = ("INSERT INTO history_block (device_id, t_first, t_last, changes, rows) VALUES (?, ?, ?, ?, ?)")
    total = conn.execute("SELECT count(*) FROM history").fetchone()[0]
    if total:
        # once per database; measured here ~6 s per million rows (a Raspberry Pi takes several times that)
        log.warning("moving %d history rows into blocks (a one-time step of this upgrade); the gateway starts "
                    "when it is done", total)
    device_ids = [row[0] for row in conn.execute("SELECT DISTINCT device_id FROM history")]
    moved = 0
    for device_id in device_ids:
        parts: list[str] = []
        t_first = t_last = 0.0
        bucket = None
        rows = conn.execute("SELECT t, component, capability, attribute, value FROM history "
                            "WHERE device_id = ? ORDER BY t, rowid", (device_id,))
        for t, component, capability, attribute, value in rows:
            this_bucket = t // HISTORY_BLOCK_SPAN_S
            if parts and (this_bucket != bucket or len(parts) >= _MIGRATED_BLOCK_ROWS):
                conn.execute(insert, (device_id, t_first, t_last, len(parts), f"[{','.join(parts)}]"))
                parts = []
            if not parts:
                t_first, bucket = t, this_bucket
            t_last = t
            parts.append(f"{_float_repr(float(t))},{_dumps(component)},{_dumps(capability)},{_dumps(attribute)},"
                         f"{value}")
            moved += 1
        if parts:
            conn.execute(insert, (device_id, t_first, t_last, len(parts), f"[{','.join(parts)}]"))
    if moved:
        log.info("moved %d history rows of %d devices into blocks", moved, len(device_ids))


_MIGRATED_BLOCK_ROWS = 1000


def _history_in_chains(conn: sqlite3.Connection) -> None:
    """Version 4: history_block again, with an INTEGER PRIMARY KEY (a block's id must never change: VACUUM may
    renumber plain rowids) and ``prev``, the device's block before it; ``history_head`` names each device's newest.
    Blocks of one device were written in the order of their rowids (by commits, and by _history_to_blocks oldest
    first), so that is the order they are linked in. Ids stay the rowids they had."""
    total = conn.execute("SELECT count(*) FROM history_block").fetchone()[0]
    if total > 100_000:
        log.warning("linking %d history blocks by device (a one-time step of this upgrade); the gateway starts "
                    "when it is done", total)
    conn.execute("""CREATE TABLE history_chained (
        id INTEGER PRIMARY KEY,
        device_id TEXT NOT NULL,
        t_first REAL NOT NULL,
        t_last REAL NOT NULL,
        changes INTEGER NOT NULL,
        rows TEXT NOT NULL,
        prev INTEGER
    )""")
    insert = ("INSERT INTO history_chained (id, device_id, t_first, t_last, changes, rows, prev) "
              "VALUES (?, ?, ?, ?, ?, ?, ?)")
    # Moved a chunk at a time, each deleted from the old table once copied: the pages it frees (and its indexes'
    # pages, dropped first) take the copies, so the file does not grow by the history's size.
    conn.execute("DROP INDEX history_block_device_t")
    conn.execute("DROP INDEX history_block_t")
    newest: dict[str, int] = {}
    after = -1
    while True:
        chunk = conn.execute("SELECT rowid, device_id, t_first, t_last, changes, rows FROM history_block "
                             "WHERE rowid > ? ORDER BY rowid LIMIT 2000", (after,)).fetchall()
        if not chunk:
            break
        rows: list[tuple[Any, ...]] = []
        for rowid, device_id, t_first, t_last, changes, text in chunk:
            rows.append((rowid, device_id, t_first, t_last, changes, text, newest.get(device_id)))
            newest[device_id] = rowid
        conn.executemany(insert, rows)
        after = chunk[-1][0]
        conn.execute("DELETE FROM history_block WHERE rowid <= ?", (after,))
    conn.execute("DROP TABLE history_block")
    conn.execute("ALTER TABLE history_chained RENAME TO history_block")
    conn.execute("CREATE INDEX history_block_t ON history_block (t_last)")
    conn.executemany("INSERT INTO history_head (device_id, block) VALUES (?, ?)", newest.items())


MIGRATIONS: tuple[tuple[MigrationStep, ...], ...] = (
    (
        """CREATE TABLE devices (
            id TEXT PRIMARY KEY,
            adapter TEXT NOT NULL,
            description TEXT NOT NULL,
            available INTEGER,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE state (
            device_id TEXT NOT NULL,
            component TEXT NOT NULL,
            capability TEXT NOT NULL,
            attribute TEXT NOT NULL,
            value TEXT NOT NULL,
            t REAL NOT NULL,
            PRIMARY KEY (device_id, component, capability, attribute)
        ) WITHOUT ROWID""",
        """CREATE TABLE history (
            t REAL NOT NULL,
            device_id TEXT NOT NULL,
            component TEXT NOT NULL,
            capability TEXT NOT NULL,
            attribute TEXT NOT NULL,
            value TEXT NOT NULL
        )""",
        "CREATE INDEX history_device_t ON history (device_id, t)",
        "CREATE INDEX history_t ON history (t)",
        """CREATE TABLE kv (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (scope, key)
        ) WITHOUT ROWID""",
    ),
    # History in blocks: a row per device per commit, not per change. A busy house (6,300 changes/s in
    # bench/store.py) wrote 24,000 rows per commit, each into the table and two indexes: 180 ms of the
    # worker per commit, most of scene latency's tail. As ~1,000 blocks: 43 ms, and half the bytes.
    # `rows` is a flat JSON array, five items a change: t, component, capability, attribute, value
    # (a non-finite number is written as Python's json writes it: NaN, Infinity).
    (
        """CREATE TABLE history_block (
            device_id TEXT NOT NULL,
            t_first REAL NOT NULL,
            t_last REAL NOT NULL,
            changes INTEGER NOT NULL,
            rows TEXT NOT NULL
        )""",
        "CREATE INDEX history_block_device_t ON history_block (device_id, t_last)",
        "CREATE INDEX history_block_t ON history_block (t_last)",
        _history_to_blocks,
        "DROP TABLE history",
    ),
    # Version 3 (personal data, ETSI EN 303 645 5.11/6): the audit log (who did what, when, from where), and
    # how far each kind's retention pass has got through the history (each block is visited once per kind).
    (
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            t REAL NOT NULL,
            actor_kind TEXT,
            actor TEXT,
            role TEXT,
            action TEXT NOT NULL,
            target TEXT,
            detail TEXT,
            address TEXT
        )""",
        "CREATE INDEX audit_t ON audit (t)",
        "CREATE TABLE retention_horizon (kind TEXT PRIMARY KEY, t REAL NOT NULL) WITHOUT ROWID",
    ),
    # Version 4: a device's history as a chain of blocks, not an index. The index by (device_id, t_last) took an
    # entry a device a commit, each on a page of its own once the index had more pages than the house has
    # devices: a commit's cost grew with the history kept (bench/storeage.py: 3,600 WAL pages and 53 ms of CPU a
    # commit after 20 minutes of the stress stream, twice what the same commit costs without it; in a quiet
    # house, 25 of a commit's 58 pages). Now a block carries the id of the device's block before it, and
    # `history_head` (a row a device, rewritten in place) the newest: a device's history is read by following
    # the chain back, one lookup by id a block, as the index's reads also looked each block up.
    (
        "CREATE TABLE history_head (device_id TEXT PRIMARY KEY, block INTEGER NOT NULL) WITHOUT ROWID",
        _history_in_chains,
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

# A device's last value of each attribute, and its history in blocks, several rows a statement (see
# _write_rows; {values} is the VALUES list). Only a row whose value changed is rewritten: a restored device's
# state is re-sent at attach and must not cost a page write per attribute.
_UPSERT_STATE_ROWS = """
INSERT INTO state (device_id, component, capability, attribute, value, t) VALUES {values}
ON CONFLICT (device_id, component, capability, attribute)
DO UPDATE SET value = excluded.value, t = excluded.t WHERE value IS NOT excluded.value
"""
_INSERT_HISTORY_ROWS = ("INSERT INTO history_block (rowid, device_id, t_first, t_last, changes, rows, prev) "
                        "VALUES {values}")
_UPSERT_HEADS = ("INSERT INTO history_head (device_id, block) VALUES {values} "
                 "ON CONFLICT (device_id) DO UPDATE SET block = excluded.block")
# A device's blocks, newest first, from the block ``:start`` back along ``prev`` while they end at or after
# ``:since``; at most ``:batch`` of them (the next batch starts at the last one's prev). Each step is a rowid
# lookup; ``b.rowid < chain.id`` ends the walk even on a damaged link.
_CHAIN_SQL = """
WITH RECURSIVE chain (id, prev, t_first, t_last, rows) AS (
    SELECT rowid, prev, t_first, t_last, rows FROM history_block
    WHERE rowid = :start AND device_id = :device AND t_last >= :since
    UNION ALL
    SELECT b.rowid, b.prev, b.t_first, b.t_last, b.rows FROM chain JOIN history_block AS b ON b.rowid = chain.prev
    WHERE b.rowid < chain.id AND b.device_id = :device AND b.t_last >= :since
    LIMIT :batch
)
SELECT id, prev, t_first, t_last, rows FROM chain
"""
_CHAIN_BATCH = 256
# A read of a device's history before ``until`` starts its walk at a block of that device ending at least
# HISTORY_BLOCK_SPAN_S after ``until`` (nothing after such a block can be older than ``until``), the first one
# found by the time index within this window; without one in it, at the device's newest block.
_CHAIN_START_WINDOW_S = 600.0
# Rows a statement: 64 x 7 parameters, well under SQLite's oldest limit of 999 a statement.
_ROWS_PER_STATEMENT = 64
_UPSERT_DEVICE = """
INSERT INTO devices (id, adapter, description, available, updated_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET adapter = excluded.adapter, description = excluded.description,
    available = excluded.available, updated_at = excluded.updated_at
WHERE adapter IS NOT excluded.adapter OR description IS NOT excluded.description
    OR available IS NOT excluded.available
"""

# Device fields kept in the description JSON. `available` has its own column; `state` lives in the
# state table. `last_update` is as of the last description written, or the newest state row if later
# (the hub also moves it on unchanged values, which we never hear of).
_PLAIN_FIELDS = ("id", "name", "source", "adapter", "manufacturer", "model", "sw_version", "hw_version",
                 "serial", "mac", "via", "area", "last_update")
_TUPLE_FIELDS = ("tags", "aliases")
DESCRIBED_FIELDS = frozenset((*_PLAIN_FIELDS, *_TUPLE_FIELDS, "support", "available", "state"))

StateKey = tuple[str, str, str, str]  # device_id, component, capability, attribute
HISTORY_WIDTH = 5  # items of a change in a device's flat history list: t, component, capability, attribute, value
KvKey = tuple[str, str]  # scope, key


def describe_device(device: Device) -> dict[str, Any]:
    """The device's description as plain JSON data (a snapshot: later changes to ``device`` don't show)."""
    out: dict[str, Any] = {name: getattr(device, name) for name in _PLAIN_FIELDS}
    for name in _TUPLE_FIELDS:
        out[name] = list(getattr(device, name))
    out["support"] = {
        comp: {
            cap: {
                "attributes": sorted(sup.attributes),
                "commands": sorted(sup.commands),
                "limits": {key: [low, high] for key, (low, high) in sup.limits.items()},
            }
            for cap, sup in caps.items()
        }
        for comp, caps in device.support.items()
    }
    return out


def device_from_description(data: dict[str, Any], available: bool | None) -> Device:
    """The inverse of :func:`describe_device`; keys a newer or older version wrote are tolerated."""
    support = {
        comp: {
            cap: CapabilitySupport(
                frozenset(sup.get("attributes", ())),
                frozenset(sup.get("commands", ())),
                {key: (pair[0], pair[1]) for key, pair in sup.get("limits", {}).items()},
            )
            for cap, sup in caps.items()
        }
        for comp, caps in data.get("support", {}).items()
    }
    return Device(
        **{name: data.get(name) for name in _PLAIN_FIELDS},
        **{name: tuple(data.get(name, ())) for name in _TUPLE_FIELDS},
        support=support,
        available=available,
    )


class _Batch:
    """Work not yet written. Filled on the loop by the bus callbacks, written whole by the worker.

    Applied in this order in one transaction: removals, state upserts, history blocks, device
    descriptions (which also drop state of capabilities a device no longer has), kv writes.
    """

    __slots__ = ("devices", "dirty", "history", "kv", "removed", "state", "taken_at")

    def __init__(self) -> None:
        # latest (value, t) per key: a tuple of atoms, which the cyclic GC stops tracking after one look
        # (the events themselves, kept until the commit, were thousands of tracked objects)
        self.state: dict[StateKey, tuple[Any, float]] = {}
        # device id -> [t, component, capability, attribute, value, t, component, ...]: one flat list per
        # device, five items a change (HISTORY_WIDTH), which is also the stored block's layout, so a commit
        # writes a device's changes with one orjson call. Tens of thousands of changes pile up between
        # commits: as tuples they were twice the memory and one more object each for the allocator and
        # the cyclic GC to count (kept as the events, they made full collections frequent and long).
        self.history: dict[str, list[Any]] = {}
        # devices whose description or availability changed; described when the batch is taken
        self.dirty: dict[str, None] = {}
        # device id -> (describe_device(), available), filled when the batch is taken
        self.devices: dict[str, tuple[dict[str, Any], bool | None]] = {}
        self.taken_at = 0.0
        self.removed: dict[str, None] = {}
        self.kv: dict[KvKey, str | None] = {}  # JSON text, or None to delete

    def __len__(self) -> int:
        return (len(self.state) + self.history_changes() + len(self.dirty) + len(self.devices)
                + len(self.removed) + len(self.kv))

    def history_changes(self) -> int:
        return sum(map(len, self.history.values())) // HISTORY_WIDTH


class _Produced:
    """In place of a ``set_deferred`` value's text: its producer, asked again if the value is read."""

    __slots__ = ("produce",)

    def __init__(self, produce: Callable[[], Any]) -> None:
        self.produce = produce


def _compact(text: str) -> str | bytes:
    return zlib.compress(text.encode(), 1) if len(text) > KV_COMPRESS_CHARS else text


def _expand(held: str | bytes | _Produced) -> str:
    if type(held) is str:
        return held
    if type(held) is bytes:
        return zlib.decompress(held).decode()
    assert isinstance(held, _Produced)
    return _dumps_deferred(held.produce())


class _CommitResult:
    __slots__ = ("duration_s", "rows")

    def __init__(self, rows: int, duration_s: float) -> None:
        self.rows = rows
        self.duration_s = duration_s


class _ScopedKeyValueStore:
    """One adapter's storage (gateway.sdk.KeyValueStore). Reads are from memory; writes join the next batch.

    Values are kept as their JSON text, so what ``get`` returns now is what it returns after a restart
    (a tuple comes back as a list either way) and a caller cannot change a stored value by mutating it.
    A long text is held compressed (KV_COMPRESS_CHARS); a ``set_deferred`` value, once its text has gone
    to the batch, as its producer, which a read asks again.
    """

    __slots__ = ("_scope", "_store", "_values")

    def __init__(self, store: Store, scope: str, values: dict[str, str | bytes | _Produced]) -> None:
        self._store = store
        self._scope = scope
        self._values = values

    def set(self, key: str, value: Any) -> None:
        # Serialised here, not in the worker: a value that is not JSON must fail in the caller's hands,
        # not make every later batch fail.
        self._store._deferred.pop((self._scope, key), None)
        text = _dumps(value)
        self._values[key] = _compact(text)
        self._store._pending.kv[(self._scope, key)] = text

    def set_deferred(self, key: str, produce: Callable[[], Any]) -> None:
        """Set ``key`` to what ``produce()`` returns when the next batch is taken (or ``key`` is read).

        For state that changes with every event (the scene engine's timers): serialising it on each
        change cost a millisecond per message; the disk sees only one value per commit anyway. It is
        serialised with orjson, on the loop: the scene engine's state of a busy house is ~135 KB of
        JSON, 3-4 ms with the json module at every commit, which was a step of scene latency's tail.
        orjson writes a non-finite number as null (none is expected in such state).
        """
        self._store._deferred[(self._scope, key)] = (self, produce)

    def _produced(self, key: str, produce: Callable[[], Any]) -> None:
        """The batch takes a deferred value's text; memory keeps the producer (no second copy)."""
        self._store._pending.kv[(self._scope, key)] = _dumps_deferred(produce())
        self._values[key] = _Produced(produce)

    def get(self, key: str, default: Any = None) -> Any:
        entry = self._store._deferred.get((self._scope, key)) if self._store._deferred else None
        if entry is not None:
            return _loads(_dumps_deferred(entry[1]()))
        held = self._values.get(key)
        return default if held is None else _loads(_expand(held))

    def delete(self, key: str) -> None:
        self._store._deferred.pop((self._scope, key), None)
        if self._values.pop(key, None) is not None:
            self._store._pending.kv[(self._scope, key)] = None

    def items(self) -> Iterable[tuple[str, Any]]:
        pending = [(k, entry[1]) for (scope, k), entry in self._store._deferred.items() if scope == self._scope]
        out = {key: _loads(_expand(held)) for key, held in self._values.items()}
        for key, produce in pending:
            out[key] = _loads(_dumps_deferred(produce()))
        return list(out.items())


class Store:
    """The state database. Use as ``async with Store(path, clock) as store:``.

    Then ``load_devices()`` (before adapters start), ``attach(hub)``, and run ``run()`` as a task until
    shutdown; leaving the ``async with`` writes what is pending and closes the file.
    """

    def __init__(self, path: Path, clock: Clock, *, commit_interval_s: float = 5.0,
                 retention_days: float = 30.0, retention: Retention | None = None, exclusive: bool = False,
                 history_interval_s: float | None = None, page_size: int = DEFAULT_PAGE_SIZE) -> None:
        self.path = Path(path)
        self._clock = clock
        self.commit_interval_s = commit_interval_s
        # The history goes to disk every this many seconds (None: with every commit); the state, alerts and
        # timers every commit. Three quarters of what a small house's commit writes is its history's pages:
        # written less often, an SD card sees a fraction of the writes, and a power cut loses the history of
        # this long (the state it leaves is still at most a commit interval old).
        self.history_interval_s = history_interval_s
        self._history_due_at = 0.0  # monotonic; set when the commit loop starts
        # The page size of a database made now (SQLite fixes it then; an existing one keeps its own). Small pages
        # are fewer bytes per commit: a commit writes whole pages, each for a few dozen bytes of changes.
        self.page_size = page_size
        # Without ``retention`` every kind of history is kept ``retention_days`` (what the store always did).
        self.retention = retention or Retention(history_days=retention_days, presence_days=retention_days,
                                                energy_days=retention_days)
        self.retention_days = self.retention.history_days
        # The lock file beside the database: shared while a gateway has the store open, exclusive for
        # `hearth data delete`, so that a delete never runs under a running gateway (see lock_path).
        self.exclusive = exclusive
        self._lock_fd: int | None = None
        self._lock_created = False
        self._retention_hooks: list[RetentionHook] = []
        self._pending = _Batch()
        self._hub: Hub | None = None
        self._unsubscribes: list[Unsubscribe] = []
        self._kv: dict[str, dict[str, str | bytes | _Produced]] = {}
        self._kv_views: dict[str, _ScopedKeyValueStore] = {}
        # kv writes whose value is produced when the batch is taken (set_deferred)
        self._deferred: dict[KvKey, tuple[_ScopedKeyValueStore, Callable[[], Any]]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # touched only in the worker thread
        self._chains = _Chains({}, 1)  # worker thread only: each device's newest history block (see _Chains)
        self._commit_lock = asyncio.Lock()
        # A commit handed to the worker whose outcome the loop has not taken in yet (its awaiting task
        # was cancelled): the next commit settles it first, so a failed batch is merged back in order.
        self._inflight: tuple[_Batch, asyncio.Future[_CommitResult]] | None = None
        self._commits = 0
        self._commit_failures = 0
        self._rows_written = 0
        self._last_commit_duration_s = 0.0
        self._commit_seconds = 0.0
        self._history_dropped = 0
        self._unreadable_blocks = 0
        self._purged_rows = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Store:
        if self._executor is not None:
            raise StoreError(f"{self.path}: store is already open")
        # One dedicated thread owns the sqlite3 connection and does all database work: a commit of
        # thousands of rows takes milliseconds to seconds on an SD card, and the loop must keep serving
        # messages meanwhile. One thread (not a pool) also orders the work: batches are written in the
        # order they were taken, and sqlite3 connections must not be shared between threads.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hearth-store",
                                            initializer=_background_priority)
        self._kv_views = {}
        try:
            self._kv = await self._in_worker(self._open)
        except BaseException:
            await self._close_worker()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.detach()
        flush_error: StoreError | None = None
        try:
            await self.flush()
        except StoreError as err:
            flush_error = err
            log.error("%s; %d pending changes are lost", err, len(self._pending))
        finally:
            await self._close_worker()
        if flush_error is not None and exc_type is None:
            raise flush_error

    async def _close_worker(self) -> None:
        executor = self._executor
        if executor is None:
            return
        try:
            await self._in_worker(self._close_connection)
        finally:
            self._executor = None
            # The worker is idle now (we just awaited its last job), so this returns at once.
            executor.shutdown(wait=True)

    async def _in_worker(self, function: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StoreError(f"{self.path}: store is not open (use `async with Store(...)`)")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    # ------------------------------------------------------------------ bus side (event loop, hot path)

    def attach(self, hub: Hub) -> None:
        """Follow ``hub``: persist its devices, their state and what changes from now on."""
        if self._unsubscribes:
            raise StoreError("store is already attached to a hub")
        self._hub = hub
        bus = hub.bus
        self._unsubscribes = [
            bus.subscribe(StateChanged, self._on_state_changed),
            bus.subscribe(DeviceAdded, self._on_device_changed),
            bus.subscribe(DeviceUpdated, self._on_device_changed),
            bus.subscribe(AvailabilityChanged, self._on_device_changed),
            bus.subscribe(DeviceRemoved, self._on_device_removed),
        ]
        # What the hub holds already (restored from us, or added before we attached) is written once:
        # unchanged rows cost no page writes (see _UPSERT_STATE_ROWS). No history: these are not changes.
        now = self._clock.time()
        pending = self._pending
        for device in hub.devices.values():
            pending.dirty[device.id] = None
            t = device.last_update if device.last_update is not None else now
            for comp, caps in device.state.items():
                for cap, attrs in caps.items():
                    for attr, value in attrs.items():
                        pending.state[(device.id, comp, cap, attr)] = (value, t)

    def detach(self) -> None:
        """Stop following the hub. What is pending is still written by the next commit."""
        for unsubscribe in self._unsubscribes:
            unsubscribe()
        self._unsubscribes = []

    def _on_state_changed(self, event: StateChanged) -> None:
        # Called for every state change in the house: a few dict/list operations and nothing else.
        pending = self._pending
        pending.state[(event.device_id, event.component, event.capability, event.attribute)] = (event.new, event.t)
        if event.capability == "connectivity" and event.attribute in NO_HISTORY_CONNECTIVITY:
            return
        changes = pending.history.get(event.device_id)
        if changes is None:
            changes = pending.history[event.device_id] = []
        changes.extend((event.t, event.component, event.capability, event.attribute, event.new))

    def _on_device_changed(self, event: DeviceAdded | DeviceUpdated | AvailabilityChanged) -> None:
        # Described when the batch is taken, not now: by then the hub may have grown the device's
        # support (it does so silently on a new attribute), and the newest description is what we want.
        self._pending.dirty[event.device_id] = None

    def _on_device_removed(self, event: DeviceRemoved) -> None:
        # Rare, so a scan of the pending state is fine. History of the device is kept.
        pending = self._pending
        device_id = event.device_id
        pending.dirty.pop(device_id, None)
        pending.removed[device_id] = None
        stale = [key for key in pending.state if key[0] == device_id]
        for key in stale:
            del pending.state[key]

    def kv(self, scope: str) -> _ScopedKeyValueStore:
        """Persistent key-value storage for one scope (an adapter's name). Values must be JSON data."""
        if self._executor is None:
            raise StoreError(f"{self.path}: store is not open (its key-value data is loaded on open)")
        view = self._kv_views.get(scope)
        if view is None:
            view = self._kv_views[scope] = _ScopedKeyValueStore(self, scope, self._kv.setdefault(scope, {}))
        return view

    # ------------------------------------------------------------------ commits

    async def run(self) -> None:
        """Commit every ``commit_interval_s`` and purge what is past its retention daily, until cancelled."""
        next_purge_at = self._clock.time()
        next_commit_at = self._clock.monotonic() + self.commit_interval_s
        if self.history_interval_s is not None:
            self._history_due_at = self._clock.monotonic() + self.history_interval_s
        while True:
            # On a cadence from each commit's start, not its end: a slow write (an SD card) does not stretch
            # what a power cut can lose to the interval plus the write time of the commit before. And started
            # that much earlier than the interval: a change made just after a commit took its batch is on disk
            # when the next commit's write ends, one interval later while writes take as long as the last.
            await self._clock.sleep(max(0.0, next_commit_at - self._clock.monotonic()))
            lead_s = min(self._last_commit_duration_s, self.commit_interval_s / 2)
            next_commit_at = max(next_commit_at + self.commit_interval_s - lead_s, self._clock.monotonic())
            with_history = self.history_interval_s is None or self._clock.monotonic() >= self._history_due_at
            await self._commit(with_history=with_history)
            # A write that took longer than the interval gets half an interval's rest, not a commit at once.
            next_commit_at = max(next_commit_at, self._clock.monotonic() + self.commit_interval_s / 2)
            if self._clock.time() >= next_purge_at:
                try:
                    await self.purge()
                    next_purge_at = self._clock.time() + PURGE_INTERVAL_S
                except StoreError as err:
                    log.error("%s; retrying in %g s", err, PURGE_RETRY_S)
                    next_purge_at = self._clock.time() + PURGE_RETRY_S

    async def flush(self, *, with_history: bool = True) -> None:
        """Write everything pending now (without the history: all but it, as a commit between two writes of
        the history does). Raises StoreError if that failed (the work stays pending)."""
        if not await self._commit(with_history=with_history):
            raise StoreError(f"{self.path}: commit failed; {len(self._pending)} changes kept for the next try")

    async def flush_urgent(self) -> None:
        """Write what is pending now, its history only when due (``history_interval_s``): what an urgent change
        asks for (an alert raised, the house's occupancy, a notification's acknowledge link), not the history."""
        due = self.history_interval_s is None or self._clock.monotonic() >= self._history_due_at
        await self.flush(with_history=due)

    async def _commit(self, *, with_history: bool = True) -> bool:
        """Write what is pending in one transaction (without the history: it stays pending). False if that
        failed: the work is kept for the next."""
        if self._executor is None:
            raise StoreError(f"{self.path}: store is not open")
        async with self._commit_lock:
            ok = await self._settle_inflight()
            batch = self._take_batch(with_history=with_history)
            if with_history and self.history_interval_s is not None:
                self._history_due_at = self._clock.monotonic() + self.history_interval_s
            if not len(batch):
                return ok
            future = asyncio.get_running_loop().run_in_executor(self._executor, self._write_batch, batch)
            self._inflight = (batch, future)
            # asyncio.wait does not cancel the write if we are cancelled (shutdown): the next commit,
            # in __aexit__, settles it before taking the next batch.
            await asyncio.wait([future])
            return await self._settle_inflight()

    def _take_batch(self, *, with_history: bool = True) -> _Batch:
        # Swapped out, not copied: the callbacks run on this same loop thread, so from here on they fill
        # a fresh batch and the worker owns this one alone. No lock on the hot path.
        self._resolve_deferred()
        batch, self._pending = self._pending, _Batch()
        if not with_history:  # the history waits in the new batch (readers see it there, as pending rows)
            self._pending.history, batch.history = batch.history, {}
        batch.taken_at = self._clock.time()
        hub = self._hub
        if hub is not None:
            for device_id in batch.dirty:
                device = hub.devices.get(device_id)
                if device is not None:
                    batch.devices[device_id] = (describe_device(device), device.available)
        batch.dirty = {}
        return batch

    def _resolve_deferred(self) -> None:
        deferred, self._deferred = self._deferred, {}
        for (_scope, key), (view, produce) in deferred.items():
            try:
                view._produced(key, produce)
            except Exception:  # a producer's bug must not cost the batch (or every later one)
                log.exception("could not produce the stored value of %s/%s; it is not written", _scope, key)

    async def _settle_inflight(self) -> bool:
        if self._inflight is None:
            return True
        batch, future = self._inflight
        if not future.done():
            await asyncio.wait([future])
        self._inflight = None
        error = future.exception()
        if error is None:
            result = future.result()
            self._commits += 1
            self._rows_written += result.rows
            self._last_commit_duration_s = result.duration_s
            self._commit_seconds += result.duration_s
            if result.duration_s > self.commit_interval_s:
                log.warning("commit of %d rows took %.1f s (longer than the commit interval)",
                            result.rows, result.duration_s)
            return True
        self._commit_failures += 1
        if isinstance(error, sqlite3.Error | OSError):
            log.error("commit to %s failed (%s); keeping %d changes for the next try", self.path, error, len(batch))
        else:
            log.error("commit to %s failed; keeping the changes for the next try", self.path, exc_info=error)
        self._merge_back(batch)
        return False

    def _merge_back(self, failed: _Batch) -> None:
        """Put a failed batch back under what came in since; the newer value of a key wins."""
        newer = self._pending
        merged = _Batch()
        merged.removed = failed.removed | newer.removed
        merged.state = {key: entry for key, entry in failed.state.items() if key[0] not in newer.removed}
        merged.state.update(newer.state)
        merged.history = {device_id: [*changes, *newer.history.get(device_id, ())]
                          for device_id, changes in failed.history.items()}
        for device_id, changes in newer.history.items():
            merged.history.setdefault(device_id, changes)
        overflow = merged.history_changes() - MAX_PENDING_HISTORY_ROWS
        if overflow > 0:
            _drop_oldest(merged.history, overflow)
            self._history_dropped += overflow
            log.error("dropped the %d oldest unwritten history changes (commits keep failing)", overflow)
        # Described again when the next batch is taken: the hub's newest description is the one to write.
        merged.dirty = {device_id: None for device_id in failed.devices if device_id not in newer.removed}
        merged.dirty.update(newer.dirty)
        merged.kv = failed.kv | newer.kv
        self._pending = merged

    # ------------------------------------------------------------------ reads

    async def load_devices(self) -> list[Device]:
        """Every stored device with its last state, support and availability, sorted by id."""
        return await self._in_worker(self._read_devices)

    async def history(self, device_id: str | None = None, since: float | None = None, until: float | None = None,
                      limit: int = 1000, *, capability: str | None = None,
                      attribute: str | None = None) -> list[dict[str, Any]]:
        """State changes with ``since <= t < until`` (epoch s), oldest first; of more than ``limit``, the newest.

        Optionally only those of one ``capability`` and/or ``attribute``. Includes changes not yet
        committed. To page back, pass the first row's ``t`` as ``until``.
        """
        if limit <= 0:
            return []
        query = _HistoryQuery(since, until, capability, attribute)
        # Taken in the same loop step as the query is queued: a commit of these rows can only run after
        # the query on the one worker thread, so no row is seen twice.
        pending = self._pending.history
        devices = pending if device_id is None else {device_id: pending.get(device_id, [])}
        found: list[dict[str, Any]] = []
        for dev, changes in devices.items():
            query.collect(dev, changes, found)
        if len(found) > limit:
            found.sort(key=_by_time)
            del found[:-limit]
        stored = await self._in_worker(self._read_history, device_id, query, limit)
        rows = stored + found
        rows.sort(key=_by_time)  # stable: a stored row before a pending one of the same instant
        return rows[-limit:]

    async def purge_history(self) -> int:
        """Delete history past its kind's retention (presence, energy, other: see ``Retention``), by the
        clock. Blocks wholly older than the longest retention go whole; then each kind with a shorter one
        takes its changes out of the blocks that have since become older than its own (each block once per
        kind: ``retention_horizon``). A block is only ever judged by its newest change, so a change is kept
        up to HISTORY_BLOCK_SPAN_S longer than its retention. Returns how many changes went."""
        now = self._clock.time()
        cutoffs = {kind: now - self.retention.history_days_of(kind) * 86400.0 for kind in HISTORY_KINDS}
        oldest = min(cutoffs.values())
        total = 0
        try:
            while True:
                blocks, changes = await self._in_worker(self._purge_chunk, oldest)
                total += changes
                if blocks < PURGE_CHUNK_BLOCKS:
                    break
            for kind, cutoff in cutoffs.items():
                if cutoff <= oldest:
                    continue
                start = max(oldest, await self._in_worker(self._read_horizon, kind))
                after_rowid = 0
                while True:  # bounded: rowids only grow, and a chunk shorter than asked for is the last
                    visited, removed, after_rowid = await self._in_worker(
                        self._purge_kind_chunk, kind, start, cutoff, after_rowid)
                    total += removed
                    if visited < RETENTION_CHUNK_BLOCKS:
                        break
                await self._in_worker(self._write_horizon, kind, cutoff)
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: history purge failed: {err}") from err
        self._purged_rows += total
        if total:
            log.info("purged %d history changes past their retention (%s days)", total, ", ".join(
                f"{kind} {self.retention.history_days_of(kind):g}" for kind in HISTORY_KINDS))
        return total

    def add_retention_hook(self, hook: RetentionHook) -> Callable[[], None]:
        """Run ``hook(now)`` in every retention pass (what others keep in the store's key-value scopes, such as
        the scene engine's alerts and traces, which only their owner can prune). Returns its removal."""
        self._retention_hooks.append(hook)
        return lambda: self._retention_hooks.remove(hook) if hook in self._retention_hooks else None

    async def purge(self) -> dict[str, int]:
        """The daily retention pass: history by kind, the audit log, and the retention hooks. What went, by kind."""
        counts = {"history": await self.purge_history()}
        cutoff = self._clock.time() - self.retention.audit_days * 86400.0
        try:
            counts["audit"] = await self._in_worker(self._purge_audit, cutoff)
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: audit log purge failed: {err}") from err
        for hook in list(self._retention_hooks):
            try:
                for kind, count in hook(self._clock.time()).items():
                    counts[kind] = counts.get(kind, 0) + count
            except Exception:  # one owner's bug must not stop the others' retention
                log.exception("a retention hook failed")
        return counts

    # ------------------------------------------------------------------ the audit log

    async def audit(self, entry: AuditEntry) -> int:
        """Append ``entry`` to the audit log now (its own small transaction: audited actions are a person's,
        a few a day, and an audit line must not wait for the next batch). Returns its id."""
        try:
            return await self._in_worker(self._insert_audit, entry)
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: could not write the audit log: {err}") from err

    async def update_audit_detail(self, entry_id: int, detail: dict[str, Any]) -> None:
        """Replace the detail of audit entry ``entry_id`` (a failed-login count that grew)."""
        try:
            await self._in_worker(self._update_audit_detail, entry_id, detail)
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: could not write the audit log: {err}") from err

    async def read_audit(self, limit: int = 100, *, since: float | None = None,
                         action: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` audit entries (newest first), optionally from ``since`` on, of one ``action``."""
        return await self._in_worker(self._read_audit, limit, since, action)

    # ------------------------------------------------------------------ erasing personal data

    async def erase(self, *, everything: bool = False, before: float | None = None,
                    prepare: Callable[[], None] | None = None) -> dict[str, int]:
        """Delete personal data in ONE transaction, then VACUUM (and truncate the WAL) so that its bytes leave
        the file: the history (written and pending), audit entries older than ``before`` (default: now);
        with ``everything``, also every device, its state and all key-value data (a factory reset of the
        database). ``prepare`` runs first, under the commit lock: what it sets through ``kv()`` views (an
        engine's pruned alerts, emptied traces) is written in the same transaction. Returns counts."""
        if self._executor is None:
            raise StoreError(f"{self.path}: store is not open")
        before = self._clock.time() if before is None else before
        async with self._commit_lock:
            await self._settle_inflight()
            if prepare is not None:
                prepare()
            batch = self._take_batch()
            dropped = batch.history_changes()
            batch.history = {}
            if everything:
                batch = _Batch()
                for values in self._kv.values():
                    values.clear()
                self._deferred.clear()
            try:
                counts = await self._in_worker(self._erase, batch, everything, before)
            except sqlite3.Error as err:
                self._merge_back(batch)
                raise StoreError(f"{self.path}: nothing was deleted ({err})") from err
        counts["history_changes"] += dropped
        try:
            await self._in_worker(self._vacuum)
        except sqlite3.Error as err:  # deleted all the same; the bytes go at the next VACUUM
            log.error("%s: VACUUM after the delete failed (%s); the data is deleted, its bytes may linger in "
                      "free pages until the next one", self.path, err)
            counts["vacuum_failed"] = 1
        return counts

    def stats(self) -> dict[str, Any]:
        db_bytes = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                db_bytes += os.stat(f"{self.path}{suffix}").st_size
        return {
            "commits": self._commits,
            "commit_failures": self._commit_failures,
            "rows_written": self._rows_written,
            "last_commit_duration_s": self._last_commit_duration_s,
            "commit_seconds_total": self._commit_seconds,
            "pending": len(self._pending),
            "history_dropped": self._history_dropped,
            "history_purged": self._purged_rows,
            "history_unreadable_blocks": self._unreadable_blocks,
            "db_bytes": db_bytes,
        }

    # ------------------------------------------------------------------ worker thread only

    def _open(self) -> dict[str, dict[str, str | bytes | _Produced]]:
        path = self.path
        try:
            # 0700/0600: the data directory also holds the API tokens, and the history says who is home.
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as err:
            raise StoreError(f"{path}: cannot create the database file: {err.strerror or err}") from err
        self._lock_created = not lock_path(path).exists()
        self._lock_fd = take_store_lock(path, exclusive=self.exclusive)
        try:
            conn = sqlite3.connect(path, isolation_level=None)
        except sqlite3.Error as err:
            self._release_lock(failed_open=True)
            raise StoreError(f"{path}: cannot open the database: {err}") from err
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # Read-only checks first: a file that is not ours or not sound is refused before we write a byte.
            problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise StoreError(f"{path}: the database is damaged ({'; '.join(problems[:5])}). It was left as it "
                                 "is: move it away to start with an empty store, or restore a backup")
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "schema_version" not in tables:
                raise StoreError(f"{path}: this SQLite database is not a Hearth store (it has tables "
                                 f"{', '.join(sorted(tables)[:5])}); refusing to touch it: set [store] path")
            # WAL: a commit appends to the log instead of rewriting pages in place, readers never block
            # the writer, and a crash mid-commit leaves the last committed state. With WAL, NORMAL keeps
            # the database consistent across a power cut; only the last transaction(s) can be lost (FULL
            # would add an fsync per commit for nothing we need: we lose up to an interval anyway).
            if not tables:  # a new database: its page size, before WAL mode fixes it
                conn.execute(f"PRAGMA page_size = {int(self.page_size)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("%s: SQLite refused WAL mode (journal_mode=%s); commits will be slower", path, mode)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            # What retention deletes is overwritten in the pages that are written anyway (no extra I/O: FAST);
            # a delete of personal data goes further (see _erase).
            conn.execute("PRAGMA secure_delete = FAST")
            self._migrate(conn, tables)
            self._chains = _Chains.load(conn)
            kv: dict[str, dict[str, str | bytes | _Produced]] = {}
            for scope, key, value in conn.execute("SELECT scope, key, value FROM kv"):
                kv.setdefault(scope, {})[key] = _compact(value)
        except sqlite3.Error as err:
            conn.close()
            self._release_lock(failed_open=True)
            raise StoreError(f"{path}: not a usable database ({err}). It was left as it is: move it away to "
                             "start with an empty store, or restore a backup") from err
        except BaseException:
            conn.close()
            self._release_lock(failed_open=True)
            raise
        self._conn = conn
        return kv

    def _migrate(self, conn: sqlite3.Connection, tables: set[str]) -> None:
        version = 0
        if "schema_version" in tables:
            version = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: the database has schema version {version}, newer than this "
                             f"gateway knows ({SCHEMA_VERSION}); a newer Hearth wrote it. Upgrade Hearth")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                             "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
                for step in MIGRATIONS[target - 1]:
                    if isinstance(step, str):
                        conn.execute(step)
                    else:
                        step(conn)
                conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                             (target, self._clock.time()))
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
            log.info("%s: schema migrated to version %d", self.path, target)
        if version < SCHEMA_VERSION and version:
            # An upgrade may have rewritten a table: its pages went through the WAL, which keeps that size until
            # truncated (a checkpoint only makes SQLite write it again from its start).
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self._release_lock()

    def _release_lock(self, *, failed_open: bool = False) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing releases the flock
        if failed_open and self._lock_created:
            # A file we were refused must be left as it was found: no lock file beside it either.
            with contextlib.suppress(OSError):
                lock_path(self.path).unlink()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: store is not open")
        return self._conn

    def _write_batch(self, batch: _Batch) -> _CommitResult:
        # Wall time, not the injected clock: this measures the disk, and a simulated clock stands still.
        started = time.perf_counter()
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = self._apply_batch(conn, batch)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            self._chains.rolled_back()
            raise
        self._chains.committed()
        return _CommitResult(rows, time.perf_counter() - started)

    def _apply_batch(self, conn: sqlite3.Connection, batch: _Batch) -> int:
        """Write ``batch`` inside the caller's transaction; returns the rows written."""
        rows = 0
        for device_id in batch.removed:
            conn.execute("DELETE FROM state WHERE device_id = ?", (device_id,))
            conn.execute("DELETE FROM devices WHERE id = ?", (device_id,))
            rows += 1
        # Rows are produced a few at a time, as SQLite takes them (generators, not lists; a list built first
        # held the GIL for tens of ms per commit, which was the tail of scene latency), and written
        # _ROWS_PER_STATEMENT to a statement: sqlite3 lets go of the GIL for each statement it steps, and
        # takes it back after, and each time it wants it back while the event loop runs, the loop is made to
        # stop and wait for this thread (a row a statement: thousands of times a commit).
        if batch.state:
            _write_rows(conn, _UPSERT_STATE_ROWS, 6, (
                (*key, _value_text(value), t) for key, (value, t) in batch.state.items()
            ))
            rows += len(batch.state)
        if batch.history:
            chains = self._chains
            _write_rows(conn, _INSERT_HISTORY_ROWS, 7, chains.link(_history_blocks(batch.history)))
            _write_rows(conn, _UPSERT_HEADS, 2, chains.staged())
            rows += batch.history_changes()
        for device_id, (description, available) in batch.devices.items():
            conn.execute(_UPSERT_DEVICE, (
                device_id, description["adapter"], _dumps_value(description),
                None if available is None else int(available), batch.taken_at,
            ))
            self._drop_unsupported_state(conn, device_id, description["support"])
            rows += 1
        for (scope, key), text in batch.kv.items():
            if text is None:
                conn.execute("DELETE FROM kv WHERE scope = ? AND key = ?", (scope, key))
            else:
                conn.execute("INSERT INTO kv (scope, key, value) VALUES (?, ?, ?) "
                             "ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value", (scope, key, text))
            rows += 1
        return rows

    @staticmethod
    def _drop_unsupported_state(conn: sqlite3.Connection, device_id: str, support: dict[str, Any]) -> None:
        # The hub drops the state of capabilities a device no longer has, without a StateChanged.
        stored = conn.execute("SELECT DISTINCT component, capability FROM state WHERE device_id = ?", (device_id,))
        for component, capability in stored.fetchall():
            if capability not in support.get(component, {}):
                conn.execute("DELETE FROM state WHERE device_id = ? AND component = ? AND capability = ?",
                             (device_id, component, capability))

    def _read_devices(self) -> list[Device]:
        conn = self._connection()
        devices: dict[str, Device] = {}
        for device_id, description, available in conn.execute(
            "SELECT id, description, available FROM devices ORDER BY id"
        ):
            device = device_from_description(_loads(description), None if available is None else bool(available))
            device.id = device_id
            devices[device_id] = device
        for device_id, comp, cap, attr, value, t in conn.execute(
            "SELECT device_id, component, capability, attribute, value, t FROM state"
        ):
            device = devices.get(device_id)
            if device is None:
                continue
            device.state.setdefault(comp, {}).setdefault(cap, {})[attr] = _loads(value)
            if device.last_update is None or t > device.last_update:
                device.last_update = t
            # The hub grows a device's support when it reports a new attribute, without a DeviceUpdated;
            # grow it the same way here so the restored device is the one the hub had.
            caps = device.support.setdefault(comp, {})
            support = caps.get(cap)
            if support is None:
                caps[cap] = CapabilitySupport(frozenset({attr}))
            elif attr not in support.attributes:
                support.attributes = support.attributes | {attr}
        return list(devices.values())

    def _read_history(self, device_id: str | None, query: _HistoryQuery, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` stored changes ``query`` matches, oldest first.

        Blocks are read newest first (by their newest change) until the next block's newest change is
        older than the ``limit``-th newest change found: nothing in it or after it can be among them."""
        conn = self._connection()
        found: list[dict[str, Any]] = []
        blocks: list[list[dict[str, Any]]] = []
        oldest_needed = -math.inf
        newest_first = self._blocks_by_time(conn, query) if device_id is None else \
            self._blocks_of_device(conn, device_id, query)
        for rowid, dev, t_last, text in newest_first:
            if t_last < oldest_needed:
                break
            try:
                changes = _load_block(text)
                rows: list[dict[str, Any]] = []
                query.collect(dev, changes, rows)
            except (ValueError, TypeError) as err:  # a block edited or damaged outside the gateway
                self._unreadable_blocks += 1
                log.error("history block %d of %s is not readable (%s); skipped", rowid, dev, err)
                continue
            blocks.append(rows)
            found.extend(rows)
            # Trimmed when it first reaches the limit, then when it has doubled (not at every block: a
            # sort each time would make a long read quadratic). Between trims, oldest_needed is the
            # oldest of a newest-`limit` that can only get newer, so stopping at it is never too early.
            if len(found) >= (limit if oldest_needed == -math.inf else 2 * limit):
                found.sort(key=_by_time)
                del found[:-limit]
                oldest_needed = found[0]["t"]
        # Of one instant, rows in the order they were written: older blocks first, then their own order.
        ordered = [row for rows in reversed(blocks) for row in rows]
        ordered.sort(key=_by_time)
        return ordered[-limit:]

    @staticmethod
    def _blocks_by_time(conn: sqlite3.Connection, query: _HistoryQuery) -> Iterator[tuple[int, str, float, str]]:
        """Every device's blocks ``query`` may want, newest first: (rowid, device_id, t_last, rows)."""
        where: list[str] = []
        params: list[Any] = []
        if query.since is not None:
            where.append("t_last >= ?")
            params.append(query.since)
        if query.until is not None:
            # a block's span is bounded, so its newest change is too: the index range stays narrow
            where.append("t_last < ? AND t_first < ?")
            params.extend((query.until + HISTORY_BLOCK_SPAN_S, query.until))
        sql = "SELECT rowid, device_id, t_last, rows FROM history_block"
        if where:
            sql += " WHERE " + " AND ".join(where)
        yield from conn.execute(sql + " ORDER BY t_last DESC, rowid DESC", params)

    def _blocks_of_device(self, conn: sqlite3.Connection, device_id: str,
                          query: _HistoryQuery) -> Iterator[tuple[int, str, float, str]]:
        """One device's blocks ``query`` may want, newest first, along its chain (see _Chains)."""
        start = self._chains.heads.get(device_id)
        until = query.until
        if start is not None and until is not None:
            after = until + HISTORY_BLOCK_SPAN_S
            row = conn.execute("SELECT rowid FROM history_block WHERE t_last >= ? AND t_last < ? AND device_id = ? "
                               "ORDER BY t_last, rowid LIMIT 1", (after, after + _CHAIN_START_WINDOW_S, device_id)
                               ).fetchone()
            if row is not None:
                start = row[0]
        since = -math.inf if query.since is None else query.since
        while start is not None:
            found = conn.execute(_CHAIN_SQL, {"start": start, "device": device_id, "since": since,
                                              "batch": _CHAIN_BATCH}).fetchall()
            for rowid, _prev, t_first, t_last, text in found:
                if until is None or t_first < until:
                    yield rowid, device_id, t_last, text
            if len(found) < _CHAIN_BATCH:
                return
            start = found[-1][1]

    def _purge_chunk(self, cutoff: float) -> tuple[int, int]:
        """Delete up to PURGE_CHUNK_BLOCKS blocks wholly older than ``cutoff``: (blocks, changes) deleted."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            doomed = conn.execute("SELECT rowid, changes FROM history_block WHERE t_last < ? LIMIT ?",
                                  (cutoff, PURGE_CHUNK_BLOCKS)).fetchall()
            conn.executemany("DELETE FROM history_block WHERE rowid = ?", ((rowid,) for rowid, _ in doomed))
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        return len(doomed), sum(changes for _, changes in doomed)

    def _read_horizon(self, kind: str) -> float:
        row = self._connection().execute("SELECT t FROM retention_horizon WHERE kind = ?", (kind,)).fetchone()
        return -math.inf if row is None else float(row[0])

    def _write_horizon(self, kind: str, t: float) -> None:
        self._connection().execute("INSERT INTO retention_horizon (kind, t) VALUES (?, ?) "
                                   "ON CONFLICT (kind) DO UPDATE SET t = excluded.t", (kind, t))

    def _purge_kind_chunk(self, kind: str, start: float, cutoff: float, after_rowid: int) -> tuple[int, int, int]:
        """Take the changes of ``kind`` out of up to RETENTION_CHUNK_BLOCKS blocks whose newest change is in
        [start, cutoff), rowid after ``after_rowid``: (blocks visited, changes removed, last rowid)."""
        conn = self._connection()
        sql = "SELECT rowid, device_id, prev, rows FROM history_block WHERE t_last >= ? AND t_last < ? AND rowid > ?"
        names = {"presence": PRESENCE_CAPABILITIES, "energy": ENERGY_CAPABILITIES}.get(kind)
        if names:  # only blocks that name such a capability are read at all
            sql += " AND (" + " OR ".join("instr(rows, ?) > 0" for _ in names) + ")"
        sql += " ORDER BY rowid LIMIT ?"
        params: list[Any] = [start, cutoff, after_rowid, *(f'"{name}"' for name in sorted(names or ())),
                             RETENTION_CHUNK_BLOCKS]
        removed = 0
        moved: dict[str, int | None] = {}  # heads this chunk changed (None: the device has no block left)
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = conn.execute(sql, params).fetchall()
            for rowid, device_id, prev, text in found:
                try:
                    changes = _load_block(text)
                except (ValueError, TypeError):
                    continue  # damaged: left for the whole-block purge
                kept: list[Any] = []
                for i in range(0, len(changes), HISTORY_WIDTH):
                    if history_kind(changes[i + 2]) != kind:
                        kept.extend(changes[i:i + HISTORY_WIDTH])
                gone = (len(changes) - len(kept)) // HISTORY_WIDTH
                if not gone:
                    continue
                removed += gone
                if kept:
                    # t_first/t_last stay: as bounds they are still right, and every kind's pass finds the block
                    # where it expects it.
                    conn.execute("UPDATE history_block SET rows = ?, changes = ? WHERE rowid = ?",
                                 (_block_text(kept), len(kept) // HISTORY_WIDTH, rowid))
                else:
                    self._drop_block(conn, rowid, device_id, prev, moved)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        heads = self._chains.heads
        for device_id, block in moved.items():
            if block is None:
                heads.pop(device_id, None)
            else:
                heads[device_id] = block
        return len(found), removed, (found[-1][0] if found else after_rowid)

    def _drop_block(self, conn: sqlite3.Connection, rowid: int, device_id: str, prev: int | None,
                    moved: dict[str, int | None]) -> None:
        """Delete block ``rowid``, emptied by a kind's retention, keeping its device's chain whole."""
        row = None if prev is None else conn.execute("SELECT t_last FROM history_block WHERE rowid = ?",
                                                     (prev,)).fetchone()
        if moved.get(device_id, self._chains.heads.get(device_id)) == rowid:  # the newest: prev becomes it
            conn.execute("DELETE FROM history_block WHERE rowid = ?", (rowid,))
            if row is None:
                conn.execute("DELETE FROM history_head WHERE device_id = ?", (device_id,))
                moved[device_id] = None
            else:
                conn.execute("UPDATE history_head SET block = ? WHERE device_id = ?", (prev, device_id))
                moved[device_id] = prev
        elif row is None:  # the oldest left: the chain just ends one block later
            conn.execute("DELETE FROM history_block WHERE rowid = ?", (rowid,))
        else:
            # In the middle: a newer block names it as its prev. Kept, empty, with the time of the block before
            # it (which is still stored): nothing of when its own changes were is left.
            conn.execute("UPDATE history_block SET rows = '[]', changes = 0, t_first = ?, t_last = ? WHERE rowid = ?",
                         (row[0], row[0], rowid))

    def _purge_audit(self, cutoff: float) -> int:
        return self._connection().execute("DELETE FROM audit WHERE t < ?", (cutoff,)).rowcount

    def _insert_audit(self, entry: AuditEntry) -> int:
        cursor = self._connection().execute(
            "INSERT INTO audit (t, actor_kind, actor, role, action, target, detail, address) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (entry.t, entry.actor_kind, entry.actor, entry.role, entry.action, entry.target,
             None if entry.detail is None else _dumps_value(entry.detail), entry.address))
        return int(cursor.lastrowid or 0)

    def _update_audit_detail(self, entry_id: int, detail: dict[str, Any]) -> None:
        self._connection().execute("UPDATE audit SET detail = ? WHERE id = ?", (_dumps_value(detail), entry_id))

    def _read_audit(self, limit: int, since: float | None, action: str | None) -> list[dict[str, Any]]:
        return read_audit_rows(self._connection(), limit, since, action)

    def _erase(self, batch: _Batch, everything: bool, before: float) -> dict[str, int]:
        conn = self._connection()
        # Freed pages are overwritten with zeros as they are freed, not only at the VACUUM after this.
        conn.execute("PRAGMA secure_delete = ON")
        counts: dict[str, int] = {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            counts["history_changes"] = int(conn.execute(
                "SELECT coalesce(sum(changes), 0) FROM history_block").fetchone()[0])
            conn.execute("DELETE FROM history_block")
            conn.execute("DELETE FROM history_head")
            conn.execute("DELETE FROM retention_horizon")
            if everything:
                counts["audit"] = conn.execute("DELETE FROM audit").rowcount
                counts["devices"] = conn.execute("DELETE FROM devices").rowcount
                counts["state"] = conn.execute("DELETE FROM state").rowcount
                counts["kv"] = conn.execute("DELETE FROM kv").rowcount
            else:
                counts["audit"] = conn.execute("DELETE FROM audit WHERE t < ?", (before,)).rowcount
                self._apply_batch(conn, batch)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        self._chains.heads.clear()
        return counts

    def _vacuum(self) -> None:
        conn = self._connection()
        conn.execute("VACUUM")
        # The WAL still holds the pages as they were before: checkpoint them into the file and cut it to
        # nothing, so that the deleted bytes are in neither file.
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        conn.execute("PRAGMA secure_delete = FAST")
        if busy:
            log.warning("%s: a reader kept the WAL from being emptied after the delete; it is at the next "
                        "checkpoint", self.path)


class _Chains:
    """Each device's newest history block (the head of its chain) and the rowid the next block gets: worker
    thread only, loaded at open. Rowids are handed out here and never reused, even once the newest blocks are
    deleted (a head or a ``prev`` may still name them), so a walk along ``prev`` only goes to smaller rowids. What
    a transaction links is staged, and becomes the heads once it has committed."""

    __slots__ = ("_staged", "_staged_next", "heads", "next_block")

    def __init__(self, heads: dict[str, int], next_block: int) -> None:
        self.heads = heads
        self.next_block = next_block
        self._staged: dict[str, int] = {}
        self._staged_next = next_block

    @classmethod
    def load(cls, conn: sqlite3.Connection) -> _Chains:
        heads = {device: int(block) for device, block in conn.execute("SELECT device_id, block FROM history_head")}
        top = conn.execute("SELECT coalesce(max(rowid), 0) FROM history_block").fetchone()[0]
        return cls(heads, max(int(top), *heads.values(), 0) + 1)

    def link(self, blocks: Iterable[tuple[str, float, float, int, str]]
             ) -> Iterator[tuple[int, str, float, float, int, str, int | None]]:
        """``blocks`` as rows of history_block: (rowid, device_id, t_first, t_last, changes, rows, prev)."""
        staged, heads = self._staged, self.heads
        for device_id, t_first, t_last, changes, text in blocks:
            block = self._staged_next
            self._staged_next = block + 1
            prev = staged.get(device_id)
            staged[device_id] = block
            yield block, device_id, t_first, t_last, changes, text, heads.get(device_id) if prev is None else prev

    def staged(self) -> list[tuple[str, int]]:
        return list(self._staged.items())

    def committed(self) -> None:
        self.heads.update(self._staged)
        self._staged.clear()
        self.next_block = self._staged_next

    def rolled_back(self) -> None:
        self._staged.clear()
        self._staged_next = self.next_block


class _HistoryQuery:
    """Which changes a history read wants; turns a device's flat list of changes into rows."""

    __slots__ = ("attribute", "capability", "since", "until")

    def __init__(self, since: float | None, until: float | None, capability: str | None,
                 attribute: str | None) -> None:
        self.since = since
        self.until = until
        self.capability = capability
        self.attribute = attribute

    def collect(self, device_id: str, changes: list[Any], out: list[dict[str, Any]]) -> None:
        since, until, capability, attribute = self.since, self.until, self.capability, self.attribute
        items = iter(changes)
        for t, comp, cap, attr, value in zip(items, items, items, items, items, strict=True):
            if ((since is None or t >= since) and (until is None or t < until)
                    and (capability is None or cap == capability) and (attribute is None or attr == attribute)):
                out.append({"t": t, "device_id": device_id, "component": comp, "capability": cap,
                            "attribute": attr, "value": value})


def _by_time(row: dict[str, Any]) -> float:
    return row["t"]  # type: ignore[no-any-return]


def _load_block(text: str) -> list[Any]:
    try:
        return orjson.loads(text)  # type: ignore[no-any-return]
    except orjson.JSONDecodeError:  # NaN or Infinity in it, which only the json module reads
        return _loads(text)  # type: ignore[no-any-return]


# Blocks are handed to SQLite one at a time; after this many, the loop gets a chance at the GIL.
_BLOCKS_BETWEEN_YIELDS = 200


def _write_rows(conn: sqlite3.Connection, template: str, width: int, rows: Iterable[tuple[Any, ...]]) -> None:
    """Write ``rows`` (each ``width`` values) with ``template``, up to _ROWS_PER_STATEMENT rows a statement."""
    statements: dict[int, str] = {}
    chunk: list[Any] = []
    count = 0
    for row in rows:
        chunk.extend(row)
        count += 1
        if count == _ROWS_PER_STATEMENT:
            _write_chunk(conn, template, width, statements, chunk, count)
            chunk, count = [], 0
    if count:
        _write_chunk(conn, template, width, statements, chunk, count)


def _write_chunk(conn: sqlite3.Connection, template: str, width: int, statements: dict[int, str],
                 values: list[Any], count: int) -> None:
    sql = statements.get(count)
    if sql is None:
        row = "(" + ", ".join("?" * width) + ")"
        sql = statements[count] = template.format(values=", ".join([row] * count))
    conn.execute(sql, values)


def _history_blocks(history: dict[str, list[Any]]) -> Iterator[tuple[str, float, float, int, str]]:
    """The pending history as blocks: (device_id, t_first, t_last, changes, rows JSON), a device's
    changes of this batch in one block, or one per hour should they span more (HISTORY_BLOCK_SPAN_S)."""
    for index, (device_id, changes) in enumerate(history.items()):
        if index % _BLOCKS_BETWEEN_YIELDS == _BLOCKS_BETWEEN_YIELDS - 1:
            time.sleep(0)  # lets go of the GIL: a message waiting on the loop goes first
        times = changes[0::HISTORY_WIDTH]
        t_first, t_last = min(times), max(times)
        if t_last - t_first < HISTORY_BLOCK_SPAN_S:
            yield device_id, t_first, t_last, len(times), _block_text(changes)
            continue
        hours: dict[float, list[Any]] = {}
        for i in range(0, len(changes), HISTORY_WIDTH):
            hours.setdefault(changes[i] // HISTORY_BLOCK_SPAN_S, []).extend(changes[i:i + HISTORY_WIDTH])
        for part in hours.values():
            times = part[0::HISTORY_WIDTH]
            yield device_id, min(times), max(times), len(times), _block_text(part)


def _block_text(changes: list[Any]) -> str:
    text = orjson.dumps(changes)
    # orjson writes a non-finite number (and None) as null: only then is the slower, exact writer needed
    if b"null" in text:
        return _dumps_value(changes)
    return text.decode()  # stored as TEXT, not a BLOB: readable by SQLite's json functions and its shell


def _drop_oldest(history: dict[str, list[Any]], count: int) -> None:
    """Remove the ``count`` oldest changes (by time) from ``history``, in place."""
    times = sorted(t for changes in history.values() for t in changes[0::HISTORY_WIDTH])
    cutoff = times[count - 1]
    ties = count - bisect.bisect_left(times, cutoff)  # changes at the cutoff instant to drop too
    for device_id, changes in list(history.items()):
        kept: list[Any] = []
        for i in range(0, len(changes), HISTORY_WIDTH):
            t = changes[i]
            if t < cutoff:
                continue
            if t == cutoff and ties > 0:
                ties -= 1
                continue
            kept.extend(changes[i:i + HISTORY_WIDTH])
        if kept:
            history[device_id] = kept
        else:
            del history[device_id]


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may have rolled back already (some I/O and disk-full errors do); never mask the first error.
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("rollback failed")


def read_audit_rows(conn: sqlite3.Connection, limit: int, since: float | None = None,
                    action: str | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` rows of the audit table (newest first) as dicts; for the store and the CLI."""
    sql = "SELECT id, t, actor_kind, actor, role, action, target, detail, address FROM audit"
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append("t >= ?")
        params.append(since)
    if action is not None:
        where.append("action = ?")
        params.append(action)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY t DESC, id DESC LIMIT ?"
    params.append(max(0, limit))
    out = []
    for row_id, t, kind, actor, role, act, target, detail, address in conn.execute(sql, params):
        try:
            parsed = None if detail is None else _loads(detail)
        except ValueError:
            parsed = {"unreadable": detail}
        out.append({"id": row_id, "t": t, "action": act, "actor_kind": kind, "actor": actor, "role": role,
                    "target": target, "detail": parsed, "address": address})
    return out


def lock_path(db_path: Path) -> Path:
    """The lock file of a database: ``hearth.db.lock`` beside ``hearth.db``."""
    return db_path.with_name(db_path.name + ".lock")


def take_store_lock(db_path: Path, *, exclusive: bool) -> int | None:
    """Lock the database's lock file (shared for a gateway, exclusive for a delete), without waiting.

    A lock file, not the database: SQLite's own (POSIX) locks on the database would be dropped by closing
    any other descriptor of it in this process. flock is released by the kernel when the process ends,
    however it ends (kill -9 included). Raises StoreInUseError when the other side holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not Linux
        return None
    path = lock_path(db_path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as err:
        raise StoreError(f"{path}: cannot open the lock file: {err.strerror or err}") from err
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        if exclusive:
            raise StoreInUseError(f"{db_path} is open in a running gateway") from None
        raise StoreInUseError(f"{db_path} is being deleted (hearth data delete); start the gateway when it is "
                              "done") from None
    return fd


class StoreInUseError(StoreError):
    """The database is held by another process: a running gateway, or a delete in progress."""
