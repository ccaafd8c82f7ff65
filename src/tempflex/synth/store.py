"""The durable store of a synthesis job: SQLite in WAL mode, one row per (video id, prompt version).

Tables:
- ``files``: every input path seen, with size, mtime and its video id (the content hash), so a rerun hashes only
  new or changed files, and a renamed or copied file maps to the video already known.
- ``hashes``: the perceptual hash of each video id (for near-duplicate detection, shared by prompt versions).
- ``videos``: per (video_id, prompt_version): the first source path, its metadata, ``status`` (``pending``,
  ``done``, ``failed``, or ``duplicate`` for a near-duplicate of a kept video), attempts, whether a failure may be
  retried, the last error, the validated result (JSON), token usage and cost, and ``unknown_usage``: how many of
  its replies came without a usable ``usage`` (their tokens and cost are not in the sums, which are then a floor).

Every change is one short transaction, committed before the call returns; WAL with ``synchronous=NORMAL`` keeps a
committed row through a killed process. A result is written only over a row that is not ``done``, so finishing a
video twice cannot duplicate it. Open one ``Store`` per process (the pipeline writes from its event-loop thread).

One run at a time: ``Store.run_lock()`` is an exclusive OS lock (``fcntl.flock``) on ``<store>.lock`` next to the
database file, held for a whole run (``run_synthesis`` takes it). A second run on the same store is refused with
``StoreLockedError`` naming the store and the holder (pid, host, start time, which the holder writes into the lock
file), or waits for the lock with ``run_lock(wait=True)``. Why this and not per-video claims with leases: the only
way to pay for a video twice is two runs sending it, and one lock over the whole run rules that out for every step
(registration, near-duplicate marking, generation) with no lease to renew while a request retries for minutes and
no clock to trust. Why an OS lock and not a lock row with a heartbeat: the kernel drops a ``flock`` when its holder
dies, ``kill -9`` included, so a stale lock is taken over at once and cannot be mistaken for a live one (a pid may
be reused; a heartbeat needs a timeout). Two runs cannot share a store to go faster anyway (split the videos with
``--shard`` into a store per shard). Limits: ``flock`` is advisory (only runs asking for it are kept out; readers
such as export and stats do not need it) and needs a file system that honours it across hosts if two machines
share the store (local disks do; NFS v4 does; some network file systems do not). The lock file stays in place;
deleting it while a run holds it would let a second run in.

Example::

    store = Store("synth.db")
    store.register("ab12...", "tempflex2m-1a2b3c4d5e", "/data/v1.mp4", {"title": "..."})
    store.counts("tempflex2m-1a2b3c4d5e")          # -> {'pending': 1}
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["STATUSES", "Store", "StoreLockedError", "VideoRow"]

logger = logging.getLogger(__name__)

STATUSES = ("pending", "done", "failed", "duplicate")
"""Every value of ``videos.status``."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, video_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hashes (video_id TEXT PRIMARY KEY, phash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    video_id TEXT NOT NULL, prompt_version TEXT NOT NULL, seq INTEGER NOT NULL, source TEXT NOT NULL,
    metadata TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    retryable INTEGER NOT NULL DEFAULT 1, last_error TEXT, duplicate_of TEXT, result TEXT, model TEXT,
    requests INTEGER NOT NULL DEFAULT 0, prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0, cost REAL NOT NULL DEFAULT 0, updated REAL NOT NULL,
    unknown_usage INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (video_id, prompt_version));
CREATE INDEX IF NOT EXISTS videos_status ON videos (prompt_version, status);
CREATE INDEX IF NOT EXISTS videos_seq ON videos (seq);
"""


@dataclass
class VideoRow:
    """One video under one prompt version, as stored."""

    video_id: str
    prompt_version: str
    seq: int
    source: str
    metadata: dict
    status: str
    attempts: int
    retryable: bool
    last_error: str | None
    duplicate_of: str | None
    result: dict | None
    model: str | None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    unknown_usage: int

    @property
    def usage_known(self) -> bool:
        """Whether every reply for this video reported its usage (else the tokens and cost are a floor)."""
        return self.unknown_usage == 0


class StoreLockedError(RuntimeError):
    """Another run holds the store's run lock; the message names the store and the holder."""


_COLUMNS = ", ".join(VideoRow.__dataclass_fields__)


def _row(values: tuple) -> VideoRow:
    row = VideoRow(*values)
    row.metadata = json.loads(row.metadata)
    row.result = json.loads(row.result) if row.result else None
    row.retryable = bool(row.retryable)
    return row


class Store:
    """A SQLite file holding a job's videos, their states and results (created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add the columns a store made by an older version lacks."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(videos)")}
        if "unknown_usage" not in columns:
            try:
                self._db.execute("ALTER TABLE videos ADD COLUMN unknown_usage INTEGER NOT NULL DEFAULT 0")
            except sqlite3.OperationalError as error:  # another process added it meanwhile
                if "duplicate column" not in str(error):
                    raise

    @property
    def lock_path(self) -> Path:
        """The file ``run_lock`` locks: ``<store>.lock``."""
        return self.path.with_name(self.path.name + ".lock")

    @contextlib.contextmanager
    def run_lock(self, *, wait: bool = False, poll: float = 0.25) -> Iterator[None]:
        """Hold the store's exclusive run lock for the ``with`` block (see the module docstring).

        Raises ``StoreLockedError`` when another run holds it, or with ``wait`` polls every ``poll`` seconds until
        it is free (saying once, as a warning, whom it waits for). A lock whose holder died is free: the OS dropped
        it with the process."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            said = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = self._describe_holder(fd)
                    if not wait:
                        raise StoreLockedError(
                            f"store {self.path} is in use by another run ({holder}); run again when it has finished, "
                            "or pass --wait-for-lock (run_synthesis(..., wait_for_lock=True)) to wait for it"
                        ) from None
                    if not said:
                        logger.warning("waiting for the run lock of store %s, held by %s", self.path, holder)
                        said = True
                    time.sleep(poll)
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)  # released: no holder to name
        finally:
            os.close(fd)  # closing drops the lock

    def _describe_holder(self, fd: int) -> str:
        try:
            holder = json.loads(os.pread(fd, 4096, 0) or b"null")
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder["since"])))
            return f"pid {int(holder['pid'])} on {holder['host']}, since {when}"
        except (OSError, ValueError, TypeError, KeyError):  # the holder has not written itself in yet
            return f"holder not recorded yet in {self.lock_path}"

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed by SQLite)."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, params: tuple = ()) -> int:
        with self._db:  # one transaction
            return self._db.execute(sql, params).rowcount

    # --- files and hashes -------------------------------------------------------------------------------------
    def cached_video_id(self, path: str, size: int, mtime_ns: int) -> str | None:
        """The content hash recorded for this path, if the file is unchanged since."""
        row = self._db.execute("SELECT size, mtime_ns, video_id FROM files WHERE path = ?", (path,)).fetchone()
        return row[2] if row and row[0] == size and row[1] == mtime_ns else None

    def record_file(self, path: str, size: int, mtime_ns: int, video_id: str) -> None:
        """Remember a path's content hash."""
        self._write("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", (path, size, mtime_ns, video_id))

    def paths_of(self, video_id: str) -> list[str]:
        """Every input path whose content is this video."""
        return [r[0] for r in self._db.execute("SELECT path FROM files WHERE video_id = ? ORDER BY path", (video_id,))]

    def phash(self, video_id: str) -> str | None:
        """The stored perceptual hash (hex), if computed."""
        row = self._db.execute("SELECT phash FROM hashes WHERE video_id = ?", (video_id,)).fetchone()
        return row[0] if row else None

    def set_phash(self, video_id: str, phash: str) -> None:
        """Store a perceptual hash."""
        self._write("INSERT OR REPLACE INTO hashes VALUES (?, ?)", (video_id, phash))

    # --- videos -----------------------------------------------------------------------------------------------
    def register(self, video_id: str, prompt_version: str, source: str, metadata: dict) -> bool:
        """Add a pending video unless known; True when added. ``seq`` keeps the order of first registration."""
        with self._db:
            known = self._db.execute(
                "SELECT 1 FROM videos WHERE video_id = ? AND prompt_version = ?", (video_id, prompt_version)
            ).fetchone()
            if known:
                return False
            seq = self._db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM videos").fetchone()[0]
            self._db.execute(
                "INSERT INTO videos (video_id, prompt_version, seq, source, metadata, updated) VALUES (?,?,?,?,?,?)",
                (video_id, prompt_version, seq, source, json.dumps(metadata, sort_keys=True), time.time()),
            )
            return True

    def get(self, video_id: str, prompt_version: str) -> VideoRow | None:
        """One row, or None."""
        values = self._db.execute(
            f"SELECT {_COLUMNS} FROM videos WHERE video_id = ? AND prompt_version = ?", (video_id, prompt_version)
        ).fetchone()
        return _row(values) if values else None

    def rows(self, prompt_version: str, statuses: tuple[str, ...] = STATUSES) -> list[VideoRow]:
        """Rows of one prompt version with these statuses, in registration order."""
        marks = ",".join("?" * len(statuses))
        cursor = self._db.execute(
            f"SELECT {_COLUMNS} FROM videos WHERE prompt_version = ? AND status IN ({marks}) ORDER BY seq",
            (prompt_version, *statuses),
        )
        return [_row(values) for values in cursor]

    def todo(self, prompt_version: str, max_attempts: int) -> list[VideoRow]:
        """Pending rows, and failed rows that may be retried and have attempts left, in registration order."""
        cursor = self._db.execute(
            f"SELECT {_COLUMNS} FROM videos WHERE prompt_version = ? AND (status = 'pending' OR "
            "(status = 'failed' AND retryable = 1 AND attempts < ?)) ORDER BY seq",
            (prompt_version, max_attempts),
        )
        return [_row(values) for values in cursor]

    def versions(self) -> list[str]:
        """Prompt versions present in the store."""
        return [r[0] for r in self._db.execute("SELECT DISTINCT prompt_version FROM videos ORDER BY 1")]

    def counts(self, prompt_version: str) -> dict[str, int]:
        """Rows per status."""
        cursor = self._db.execute(
            "SELECT status, COUNT(*) FROM videos WHERE prompt_version = ? GROUP BY status", (prompt_version,)
        )
        return dict(cursor.fetchall())

    def start_attempt(self, video_id: str, prompt_version: str) -> None:
        """Count an attempt before its first request (so a crash mid-request still counts)."""
        self._write(
            "UPDATE videos SET attempts = attempts + 1, updated = ? WHERE video_id = ? AND prompt_version = ? "
            "AND status != 'done'",
            (time.time(), video_id, prompt_version),
        )

    def finish(
        self,
        video_id: str,
        prompt_version: str,
        result: dict,
        *,
        model: str,
        requests: int,
        prompt_tokens: int,
        completion_tokens: int,
        cost: float,
        unknown_usage: int = 0,
    ) -> bool:
        """Store a validated result and mark the video done; False (and no change) if it was already done.
        ``unknown_usage``: replies without a usable usage (not in the token counts and cost)."""
        changed = self._write(
            "UPDATE videos SET status = 'done', result = ?, model = ?, last_error = NULL, requests = requests + ?, "
            "prompt_tokens = prompt_tokens + ?, completion_tokens = completion_tokens + ?, cost = cost + ?, "
            "unknown_usage = unknown_usage + ?, updated = ? WHERE video_id = ? AND prompt_version = ? "
            "AND status != 'done'",
            (json.dumps(result, sort_keys=True), model, requests, prompt_tokens, completion_tokens, cost,
             unknown_usage, time.time(), video_id, prompt_version),
        )  # fmt: skip
        return changed == 1

    def fail(
        self,
        video_id: str,
        prompt_version: str,
        error: str,
        *,
        retryable: bool,
        requests: int = 0,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost: float = 0.0,
        unknown_usage: int = 0,
    ) -> None:
        """Mark a video failed with its reason (tokens spent on it still count)."""
        self._write(
            "UPDATE videos SET status = 'failed', last_error = ?, retryable = ?, requests = requests + ?, "
            "prompt_tokens = prompt_tokens + ?, completion_tokens = completion_tokens + ?, cost = cost + ?, "
            "unknown_usage = unknown_usage + ?, updated = ? WHERE video_id = ? AND prompt_version = ? "
            "AND status != 'done'",
            (error, int(retryable), requests, prompt_tokens, completion_tokens, cost, unknown_usage, time.time(),
             video_id, prompt_version),
        )  # fmt: skip

    def mark_duplicate(self, video_id: str, prompt_version: str, of: str, distance: float) -> None:
        """Mark a pending video as a near-duplicate of a kept one (it is not sent)."""
        self._write(
            "UPDATE videos SET status = 'duplicate', duplicate_of = ?, last_error = ?, updated = ? "
            "WHERE video_id = ? AND prompt_version = ? AND status IN ('pending', 'failed')",
            (of, f"near-duplicate of {of} (mean Hamming distance {distance:.1f} bits)", time.time(), video_id,
             prompt_version),
        )  # fmt: skip
