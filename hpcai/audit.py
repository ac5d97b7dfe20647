"""The tamper-evident audit log: one JSON line per residency decision, hash-chained.

Every record carries

* ``seq``: its position in the log (0, 1, 2, ...);
* ``prev``: the SHA-256 of the previous record's line (64 zeros for the first record);
* ``hash``: the SHA-256 of its own content (the line without the ``hash`` field);

plus what happened: ``time`` (UTC, ISO 8601), ``user``, ``host``, ``pid``, ``operation``,
``tags``, ``bytes``, ``source``, ``destination``, ``decision``, ``rule`` and whatever the
caller adds. Records are appended under an exclusive ``flock`` on the log file and
``fsync``-ed, so many threads and processes can write one log.

Next to the log, ``<log>.head`` holds the number of records and the hash of the last line,
overwritten in place after every append (after the log's fsync, so it never runs ahead
of the log). The chain detects edits (the record's own hash, or the next record's
``prev``), deletions, insertions and reordering (``seq`` and ``prev``); the head detects
truncation of the last records (the log is then shorter than the head says). A head
that lags behind the log (a crash between the two writes) is accepted and repaired by
the next append. Anyone able to rewrite both files can rebuild a consistent chain, so
publish the head hash that ``hpcai audit verify`` prints somewhere else and check
against it later with ``verify(anchor=...)`` / ``hpcai audit verify --anchor``.

Where the log lives: ``[audit] path`` in the configuration (relative to the
configuration file's directory), else ``$HPCAI_AUDIT_LOG``, else
``$XDG_STATE_HOME/hpcai/audit.jsonl`` (``~/.local/state/hpcai/audit.jsonl``). The
configuration wins over the environment so that a site's policy decides where its audit
trail goes.

>>> from hpcai import audit
>>> rec = audit.append({"operation": "note", "decision": "allow"}, path="/tmp/doc-audit.jsonl")
>>> audit.verify("/tmp/doc-audit.jsonl").ok
True
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import getpass
import hashlib
import json
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _config
from .errors import AuditError, InvalidArgumentError

__all__ = [
    "GENESIS",
    "VerifyResult",
    "append",
    "head_path",
    "line_hash",
    "log_path",
    "read",
    "verify",
]

#: ``prev`` of the first record.
GENESIS = "0" * 64

#: Keys the log sets itself; a caller's record may not contain them.
_RESERVED = ("seq", "time", "user", "host", "pid", "prev", "hash")

_thread_lock = threading.Lock()
_identity: tuple[str, str] | None = None

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------------------------
# where the log lives
# --------------------------------------------------------------------------------------------
def log_path() -> Path:
    """The audit log of the active configuration (see the module docs for the order)."""
    configured = _config.get_config().section("audit").get("path")
    if isinstance(configured, str) and configured:
        return Path(configured)
    env = os.environ.get("HPCAI_AUDIT_LOG")
    if env:
        return Path(env).expanduser().absolute()
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "hpcai" / "audit.jsonl"


def head_path(path: PathLike) -> Path:
    """The head file next to a log: ``<log>.head`` (record count and last line hash)."""
    p = Path(path)
    return p.with_name(p.name + ".head")


def line_hash(line: bytes | str) -> str:
    """SHA-256 (hex) of one record line, without its newline: what the next ``prev`` holds."""
    data = line.encode() if isinstance(line, str) else line
    return hashlib.sha256(data).hexdigest()


def _resolve(path: PathLike | None) -> Path:
    return log_path() if path is None else Path(path)


def _who() -> tuple[str, str]:
    global _identity
    if _identity is None:
        try:
            user = getpass.getuser()
        except Exception:  # no login name (containers): fall back to the uid
            user = f"uid:{os.getuid()}"
        _identity = (user, socket.gethostname())
    return _identity


def _dumps(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=True, separators=(",", ":"), default=str)


def _content_hash(record_without_hash: Mapping[str, Any]) -> str:
    return hashlib.sha256(_dumps(record_without_hash).encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# appending
# --------------------------------------------------------------------------------------------
def _last_line(fd: int, size: int) -> bytes | None:
    """The last complete line of the file (without newline), ``None`` for an empty file."""
    if size == 0:
        return None
    chunk = 8192
    end = size - 1  # skip the final newline
    buf = b""
    pos = end
    while pos > 0:
        start = max(0, pos - chunk)
        buf = os.pread(fd, pos - start, start) + buf
        pos = start
        nl = buf.rfind(b"\n")
        if nl >= 0:
            return buf[nl + 1 :]
    return buf


_HEAD_SIZE = 128


def _write_head(path: Path, count: int, last_hash: str) -> None:
    """Overwrite the head in place: one fixed-size write at offset 0 (no rename, no fsync).

    The log itself is fsync-ed before the head is written, so the head never runs ahead
    of the log; after a crash it may lag behind, which :func:`verify` accepts (the next
    append repairs it). Truncation makes the log shorter than the head, which it rejects.
    """
    data = json.dumps({"count": count, "hash": last_hash}).encode().ljust(_HEAD_SIZE - 1) + b"\n"
    fd = os.open(head_path(path), os.O_WRONLY | os.O_CREAT, 0o640)
    try:
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)


def append(record: Mapping[str, Any], *, path: PathLike | None = None) -> dict[str, Any]:
    """Append one record to the audit log and return it as written (with seq, prev, hash).

    The log adds ``seq``, ``time``, ``user``, ``host``, ``pid``, ``prev`` and ``hash``.
    The write happens under an exclusive file lock and is fsync-ed before this returns;
    any failure raises :class:`~hpcai.errors.AuditError` (callers refuse the operation).

    >>> from hpcai import audit
    >>> len(audit.append({"operation": "to_device", "decision": "deny"}, path="/tmp/doc-a.jsonl")["prev"])
    64
    """
    clash = [k for k in _RESERVED if k in record]
    if clash:
        raise InvalidArgumentError(
            f"audit.append: the keys {', '.join(clash)} are set by the audit log itself; "
            "remove them from the record"
        )
    p = _resolve(path)
    user, host = _who()
    with _thread_lock:
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        except OSError as exc:
            raise AuditError(
                f"audit log {p}: cannot open for appending ({exc.strerror}); fix the path "
                "([audit] path in the configuration or $HPCAI_AUDIT_LOG) or its permissions"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                raise AuditError(
                    f"audit log {p}: its last record is incomplete (an interrupted write); "
                    "run `hpcai audit verify`, then move the file aside to start a new log"
                )
            last = _last_line(fd, size)
            if last is None:
                prev, seq = GENESIS, 0
            else:
                try:
                    seq = int(json.loads(last)["seq"]) + 1
                except (ValueError, KeyError, TypeError):
                    raise AuditError(
                        f"audit log {p}: its last line is not an audit record; run "
                        "`hpcai audit verify` and move the file aside to start a new log"
                    ) from None
                prev = line_hash(last)
            full: dict[str, Any] = {
                "seq": seq,
                "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds"),
                "user": user,
                "host": host,
                "pid": os.getpid(),
            }
            full.update(record)
            full["prev"] = prev
            full["hash"] = _content_hash(full)
            line = _dumps(full).encode()
            data = line + b"\n"
            written = os.write(fd, data)
            if written != len(data):
                raise AuditError(f"audit log {p}: short write ({written} of {len(data)} bytes); disk full?")
            os.fsync(fd)
            _write_head(p, seq + 1, line_hash(line))
        except OSError as exc:
            raise AuditError(f"audit log {p}: write failed ({exc}); the operation was not performed") from None
        finally:
            os.close(fd)  # closing releases the lock
    return full


# --------------------------------------------------------------------------------------------
# reading and verifying
# --------------------------------------------------------------------------------------------
def _read_locked(p: Path) -> tuple[bytes | None, bytes | None]:
    """Log bytes and head bytes, read together under a shared lock (``None`` if absent)."""
    try:
        fd = os.open(p, os.O_RDONLY)
    except FileNotFoundError:
        fd = -1
    except OSError as exc:
        raise AuditError(f"audit log {p}: cannot read ({exc.strerror})") from None
    try:
        data: bytes | None = None
        if fd >= 0:
            fcntl.flock(fd, fcntl.LOCK_SH)
            chunks = []
            while True:
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                chunks.append(b)
            data = b"".join(chunks)
        try:
            head: bytes | None = head_path(p).read_bytes()
        except FileNotFoundError:
            head = None
        return data, head
    finally:
        if fd >= 0:
            os.close(fd)


def _split(data: bytes) -> tuple[list[bytes], bool]:
    """Lines of the log and whether the last one is complete."""
    if not data:
        return [], True
    complete = data.endswith(b"\n")
    lines = data.split(b"\n")
    if complete:
        lines.pop()
    return lines, complete


def read(path: PathLike | None = None) -> list[dict[str, Any]]:
    """The records of the log, oldest first (``[]`` when there is no log yet).

    >>> from hpcai import audit
    >>> audit.read("/tmp/no-such-audit-log.jsonl")
    []
    """
    p = _resolve(path)
    data, _ = _read_locked(p)
    if data is None:
        return []
    lines, _ = _split(data)
    out = []
    for i, raw in enumerate(lines):
        try:
            rec = json.loads(raw)
        except ValueError:
            raise AuditError(f"audit log {p}: record {i} (line {i + 1}) is not valid JSON; run `hpcai audit verify`") from None
        if not isinstance(rec, dict):
            raise AuditError(f"audit log {p}: record {i} (line {i + 1}) is not a JSON object")
        out.append(rec)
    return out


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify` found: ``ok``, the number of records, the first bad one and why."""

    ok: bool
    count: int
    first_bad_index: int | None
    reason: str
    path: str = ""
    head_hash: str | None = None

    def __bool__(self) -> bool:
        return self.ok


def _bad(p: Path, count: int, index: int, reason: str) -> VerifyResult:
    return VerifyResult(False, count, index, f"record {index} (line {index + 1}): {reason}", str(p))


def verify(path: PathLike | None = None, *, anchor: str | None = None) -> VerifyResult:
    """Check the hash chain, the sequence numbers and the head of a log.

    Returns ``ok=False`` with the index of the first bad record after any edit,
    deletion, insertion, reordering or truncation. *anchor*, a head hash published
    earlier, must be the hash of some record in the log.

    >>> from hpcai import audit
    >>> audit.verify("/tmp/no-such-audit-log.jsonl").ok
    True
    """
    p = _resolve(path)
    data, head_raw = _read_locked(p)
    lines, complete = _split(data or b"")
    n = len(lines)
    prev = GENESIS
    hashes: list[str] = []
    for i, raw in enumerate(lines):
        if i == n - 1 and not complete:
            return _bad(p, n, i, "incomplete last line (an interrupted or truncated write)")
        try:
            rec = json.loads(raw)
        except ValueError:
            return _bad(p, n, i, "not valid JSON (the line was altered)")
        if not isinstance(rec, dict) or not isinstance(rec.get("hash"), str):
            return _bad(p, n, i, "not an audit record (no 'hash' field)")
        own = rec.pop("hash")
        if _content_hash(rec) != own:
            return _bad(p, n, i, "its content does not match its hash: the record was altered")
        seq = rec.get("seq")
        if seq != i:
            if isinstance(seq, int) and seq > i:
                why = f"records {i}..{seq - 1} are missing (deleted) or the records were reordered"
            else:
                why = "a record was inserted before it or the records were reordered"
            return _bad(p, n, i, f"sequence number {seq!r} at position {i}: {why}")
        if rec.get("prev") != prev:
            what = "the previous record" if i else "the start of the log"
            return _bad(p, n, i, f"'prev' does not match {what}: the records before it were altered, removed or reordered")
        prev = line_hash(raw)
        hashes.append(prev)
    head_hash = hashes[-1] if hashes else None
    note = ""
    if head_raw is None:
        if n > 1:  # one record without a head: the first append was interrupted
            return _bad(p, n, n - 1, f"the head file {head_path(p)} is missing, so truncation cannot be ruled out")
    else:
        try:
            head = json.loads(head_raw)
            h_count, h_hash = int(head["count"]), str(head["hash"])
        except (ValueError, KeyError, TypeError):
            return _bad(p, n, max(n - 1, 0), f"the head file {head_path(p)} is damaged")
        if h_count > n:
            return _bad(
                p, n, n,
                f"the log ends after {n} records but its head records {h_count}: "
                f"the last {h_count - n} record(s) were removed (truncation)",
            )
        if h_count > 0 and hashes[h_count - 1] != h_hash:
            return _bad(p, n, h_count - 1, "it does not match the hash stored in the head file: the record was replaced")
        if n > h_count:
            note = (
                f"the head lags {n - h_count} record(s) behind (appends interrupted by a crash); "
                "the next append repairs it"
            )
    if anchor is not None and anchor not in hashes:
        return VerifyResult(
            False, n, n,
            f"anchor {anchor[:16]}... is the hash of no record: the log was rewritten or truncated "
            "before the point the anchor was taken",
            str(p), head_hash,
        )
    return VerifyResult(True, n, None, note, str(p), head_hash)
