"""The tamper-evident audit log: one JSON line per residency decision, chained by a keyed MAC.

Every record carries

* ``seq``: its position in the log (0, 1, 2, ...);
* ``kid``: the id of the audit key that signed it (only in a keyed log; a fingerprint
  derived from the key through the MAC, never the key);
* ``prev``: the SHA-256 of the previous record's whole line (64 zeros for the first record);
* ``hash``: the record's MAC, always its last field: **HMAC-SHA256 under the audit key** of
  the line without the ``hash`` field, or, when no key is configured, the plain SHA-256 of
  it (an *unkeyed* chain);

plus what happened: ``time`` (UTC, ISO 8601), ``user``, ``host``, ``pid``, ``operation``,
``tags``, ``bytes``, ``source``, ``destination``, ``decision``, ``rule`` and whatever the
caller adds. Records are appended under an exclusive ``flock`` on the log file and
``fsync``-ed, so many threads and processes can write one log.

**The key.** From, in order: the file named by ``[audit] key_file`` in the configuration
(relative to the configuration file's directory), the file named by
``$HPCAI_AUDIT_KEY_FILE``, or ``$HPCAI_AUDIT_KEY`` itself. A key is hex (an even number of
hex digits) or else taken as raw bytes, at least 16 bytes; ``hpcai audit keygen FILE``
writes a random one. A key file must be a regular file private to its owner (no group or
other permission bits, owned by the user or root) or it is refused, as ssh refuses private
keys. The key never appears in records, heads, anchors, errors or reprs: records carry only
its ``kid``. With a key, rewriting, forging or appending a record needs the key. Without
one the chain is plain SHA-256: it detects accidents and careless edits, but anyone who can
write the files can rebuild a consistent chain, and :func:`verify` says so in its result.
A keyed log must be verified and appended to with its key (a record without the key, or
under another key, fails); to introduce or change a key, move the log aside (anchor its head
first) and start a new one.

**The head.** Next to the log, ``<log>.head`` holds the number of records and the
SHA-256 of the last line (and, keyed, its ``kid`` and an HMAC over both), padded to one
fixed-size block. Links planted in the audit directory are never written through:

* the log is opened with ``O_NOFOLLOW`` (a symbolic link there refuses the append);
* a new log's head is created as a temporary file (``O_CREAT | O_EXCL | O_NOFOLLOW``),
  fsync-ed and ``os.replace``-d onto its name, relative to one open handle on the log's
  directory (so it lands in that directory, whole);
* after that, each append opens the head with ``O_NOFOLLOW`` relative to the same
  directory handle, checks on that descriptor that it is a regular file with a single link,
  reads it (see below) and, after the record is fsync-ed, rewrites the block in place with
  one ``pwrite``. A symbolic link, FIFO or hard link at the head's name refuses the append
  before the record is written, and the link's target is never touched. (In place rather
  than temp + ``os.replace`` per append: on ext4 a rename over an existing file forces a
  writeback that cost ~190 us per append, four times the rest of ``append``; a
  sub-sector write is as crash-atomic, and the no-follow open is race-free.)

**What verify checks.** The chain (each record's MAC, its ``seq`` and its ``prev``) finds
edits, deletions, insertions and reordering; the head finds truncation (the log is shorter
than the head says) and a deleted head. A missing log, or a log without its head, fails
unless an empty log is expected (``verify(..., allow_empty=True)``, ``hpcai audit verify
--allow-empty``), so deleting the log and its head is no longer "intact". :func:`append`
checks the head too before it writes (a log shorter than its head, a missing or forged
head, or a last record that does not verify under the key refuse the append), so a
truncation or a forged tail is not papered over by the next genuine append.

**A crash between the two writes** (the record is fsync-ed, the head not yet rewritten)
leaves a head one record behind the log. The first append of a log writes a head with
count 0 *before* its record, so even the first record is covered. A head that lags is
accepted, with a note, when the records beyond it verify: in a keyed log each one must carry
a valid MAC under the key (a forged tail cannot), in an unkeyed log at most one record may
lie beyond the head (the most a crash leaves; an unkeyed forger can rewrite the head anyway).
The next append repairs the head.

**Anchors.** The key does not stop someone who can write the directory from deleting the
log and its head (a fresh log then starts at record 0) or from putting back an older copy of
both. Against that, publish the head elsewhere with :func:`anchor` /
``hpcai audit anchor --to PATH`` (one JSON line per anchor: count, last line hash, time) and
check later with ``verify(anchor=PATH)`` / ``hpcai audit verify --anchor PATH``: every
anchored record must still be in the log at its position with the same hash.

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
import errno
import fcntl
import getpass
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _config
from .errors import AuditError, InvalidArgumentError

__all__ = [
    "GENESIS",
    "AuditKey",
    "VerifyResult",
    "anchor",
    "append",
    "configured_key",
    "generate_key_file",
    "head_path",
    "line_hash",
    "log_path",
    "read",
    "verify",
]

#: ``prev`` of the first record (and the hash in a head that counts 0 records).
GENESIS = "0" * 64

#: Keys the log sets itself; a caller's record may not contain them.
_RESERVED = ("seq", "time", "user", "host", "pid", "kid", "prev", "hash")

#: Every record line ends with its hash field: ``,"hash":"<64 hex>"}``.
_HASH_MARK = b',"hash":"'
_HASH_TAIL = len(_HASH_MARK) + 64 + 2
_HEX64 = re.compile(r"[0-9a-f]{64}")

_MIN_KEY_BYTES = 16
_MAX_KEY_FILE = 4096
_KEY_HELP = "$HPCAI_AUDIT_KEY, $HPCAI_AUDIT_KEY_FILE or [audit] key_file"

_thread_lock = threading.Lock()
_identity: tuple[str, str] | None = None

PathLike = str | os.PathLike[str]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_LINK_ERRNOS = {errno.ELOOP, errno.EMLINK}  # O_NOFOLLOW on a link: ELOOP (Linux, macOS), EMLINK (BSD)


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
    """The unkeyed chain's ``hash``: SHA-256 of the record line without its ``hash`` field."""
    return hashlib.sha256(_dumps(record_without_hash).encode()).hexdigest()


def _split_line(line: bytes) -> tuple[bytes, str] | None:
    """``(content, hash)`` of a record line: the line without its trailing hash field, and the hash.

    ``None`` when the line does not end in ``,"hash":"<64 hex>"}`` as the log writes it.
    """
    if len(line) <= _HASH_TAIL or line[-_HASH_TAIL : -66] != _HASH_MARK or line[-2:] != b'"}':
        return None
    digest = line[-66:-2]
    try:
        text = digest.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not _HEX64.fullmatch(text):
        return None
    return line[:-_HASH_TAIL] + b"}", text


# --------------------------------------------------------------------------------------------
# the key
# --------------------------------------------------------------------------------------------
class AuditKey:
    """The HMAC-SHA256 key of a keyed audit chain.

    Only its id (``kid``, 16 hex digits derived from the key through the MAC) and where it
    came from are visible; the secret is not in the repr and cannot be pickled.

    >>> AuditKey(bytes(range(32)), source="example")  # doctest: +ELLIPSIS
    AuditKey(kid='...', source='example')
    """

    __slots__ = ("_mac", "kid", "source")

    def __init__(self, secret: bytes, source: str = "key= argument") -> None:
        if not isinstance(secret, bytes | bytearray):
            raise InvalidArgumentError(f"audit key ({source}): expected bytes, got {type(secret).__name__}")
        if len(secret) < _MIN_KEY_BYTES:
            raise AuditError(
                f"audit key ({source}) is too short ({len(secret)} bytes); use at least {_MIN_KEY_BYTES} "
                "random bytes, e.g. a key file made by `hpcai audit keygen FILE`"
            )
        self._mac = hmac.new(bytes(secret), digestmod=hashlib.sha256)
        self.source = source
        self.kid = self.mac(b"hpcai-audit key id")[:16]

    def mac(self, data: bytes) -> str:
        """HMAC-SHA256 (hex) of *data* under this key."""
        m = self._mac.copy()
        m.update(data)
        return m.hexdigest()

    def __repr__(self) -> str:
        return f"AuditKey(kid={self.kid!r}, source={self.source!r})"

    def __reduce__(self) -> Any:
        raise TypeError("an audit key cannot be pickled (it would carry the secret)")


def _decode_key(raw: bytes, source: str) -> AuditKey:
    """A key from text: hex when it is an even number of hex digits, else the raw bytes."""
    text = raw.strip()
    if not text:
        raise AuditError(f"audit key ({source}) is empty; write a key with `hpcai audit keygen FILE`")
    if len(text) % 2 == 0 and re.fullmatch(rb"[0-9a-fA-F]+", text):
        return AuditKey(bytes.fromhex(text.decode("ascii")), source)
    return AuditKey(text, source)


_env_key: tuple[str, AuditKey] | None = None
_file_key: tuple[tuple[Any, ...], AuditKey] | None = None


def _configured_key_file() -> Path | None:
    """``[audit] key_file`` of the active configuration (relative to its file's directory)."""
    cfg = _config.get_config()
    value = cfg.section("audit").get("key_file")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise AuditError(f"{cfg.source}: audit.key_file must be a non-empty path string, got a {type(value).__name__}")
    p = Path(value).expanduser()
    if not p.is_absolute():
        src = cfg.source
        base = Path.cwd() if src.startswith("<") else Path(src.split(" [", 1)[0]).absolute().parent
        p = base / p
    return p


def _key_from_file(p: Path, how: str) -> AuditKey:
    global _file_key
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise AuditError(
            f"audit key file {p} (from {how}) does not exist; create it with `hpcai audit keygen {p}` "
            "or fix the setting"
        ) from None
    except OSError as exc:
        raise AuditError(f"audit key file {p} (from {how}): cannot read it ({exc.strerror})") from None
    sig = (str(p), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_mode, st.st_uid)
    cached = _file_key
    if cached is not None and cached[0] == sig:
        return cached[1]
    try:
        fd = os.open(p, os.O_RDONLY | _O_CLOEXEC | _O_NONBLOCK)
    except OSError as exc:
        raise AuditError(f"audit key file {p} (from {how}): cannot read it ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AuditError(f"audit key file {p} (from {how}) is not a regular file")
        if st.st_mode & 0o077:
            raise AuditError(
                f"audit key file {p} (from {how}) is accessible by group or others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}); an audit key must be private to its owner: "
                f"run `chmod 600 {p}`"
            )
        if st.st_uid not in (os.geteuid(), 0):
            raise AuditError(
                f"audit key file {p} (from {how}) belongs to uid {st.st_uid}, not to this user "
                f"(uid {os.geteuid()}) or root; its owner could change the key: `chown` it to yourself"
            )
        if st.st_size > _MAX_KEY_FILE:
            raise AuditError(f"audit key file {p} (from {how}) is larger than {_MAX_KEY_FILE} bytes; is it a key?")
        raw = os.read(fd, _MAX_KEY_FILE + 1)
    finally:
        os.close(fd)
    key = _decode_key(raw, f"key file {p}")
    sig = (str(p), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_mode, st.st_uid)
    _file_key = (sig, key)
    return key


def configured_key() -> AuditKey | None:
    """The audit key of this process, ``None`` for an unkeyed chain (see the module docs).

    Raises :class:`~hpcai.errors.AuditError` for a key file that is missing, unreadable,
    readable by others, or a key that is too short (the message never holds the key).
    """
    global _env_key
    f = _configured_key_file()
    if f is not None:
        return _key_from_file(f, "[audit] key_file")
    env_file = os.environ.get("HPCAI_AUDIT_KEY_FILE")
    if env_file:
        return _key_from_file(Path(env_file).expanduser(), "$HPCAI_AUDIT_KEY_FILE")
    env = os.environ.get("HPCAI_AUDIT_KEY")
    if env:
        cached = _env_key
        if cached is not None and cached[0] == env:
            return cached[1]
        key = _decode_key(env.encode(), "$HPCAI_AUDIT_KEY")
        _env_key = (env, key)
        return key
    return None


def _resolve_key(key: AuditKey | bytes | str | None) -> AuditKey | None:
    if key is None:
        return configured_key()
    if isinstance(key, AuditKey):
        return key
    if isinstance(key, str):
        return _decode_key(key.encode(), "key= argument")
    if isinstance(key, bytes | bytearray):
        return AuditKey(bytes(key))
    raise InvalidArgumentError(f"audit: key must be an AuditKey, bytes or a hex string, got {type(key).__name__}")


def generate_key_file(path: PathLike) -> AuditKey:
    """Write a new random 32-byte key (hex) to *path*, mode 0600, refusing to overwrite anything.

    Returns the key (its repr shows only the id). Point ``$HPCAI_AUDIT_KEY_FILE`` or
    ``[audit] key_file`` at the file.
    """
    p = Path(path).expanduser()
    secret = secrets.token_bytes(32)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o600)
    except FileExistsError:
        raise AuditError(f"audit key file {p} already exists; it was not overwritten") from None
    except OSError as exc:
        raise AuditError(f"audit key file {p}: cannot create it ({exc.strerror})") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, secret.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return AuditKey(secret, f"key file {p}")


# --------------------------------------------------------------------------------------------
# the head
# --------------------------------------------------------------------------------------------
def _head_mac(key: AuditKey, count: int, last_hash: str) -> str:
    return key.mac(f"hpcai-audit head\n{count}\n{last_hash}".encode())


#: A head is one fixed-size block, rewritten in place at offset 0: a single write of less
#: than a disk sector, so a crash leaves the old head or the new one, never a mix.
_HEAD_SIZE = 256


def _head_bytes(count: int, last_hash: str, key: AuditKey | None) -> bytes:
    head: dict[str, Any] = {"count": count, "hash": last_hash}
    if key is not None:
        head["kid"] = key.kid
        head["mac"] = _head_mac(key, count, last_hash)
    return json.dumps(head).encode().ljust(_HEAD_SIZE - 1) + b"\n"


def _parse_head(raw: bytes) -> dict[str, Any] | None:
    """The head's fields, ``None`` when it is not a head."""
    try:
        head = json.loads(raw)
        count, last_hash = head["count"], head["hash"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        return None
    if not isinstance(last_hash, str) or not _HEX64.fullmatch(last_hash):
        return None
    if count == 0 and last_hash != GENESIS:
        return None
    return head


def _head_key_problem(head: Mapping[str, Any], key: AuditKey | None) -> str | None:
    """Why a parsed head does not belong to a chain under *key* (``None`` if it does)."""
    kid = head.get("kid")
    if key is None:
        if kid is not None:
            return (
                f"the head was written with an audit key (key id {kid}) but none is configured here; "
                f"configure it ({_KEY_HELP}) to check this log"
            )
        return None
    if kid is None or "mac" not in head:
        return "the head file was not written under the audit key (it was replaced, or it predates the key)"
    if kid != key.kid:
        return f"the head was written under another key (key id {kid}; the configured key has id {key.kid})"
    mac = head.get("mac")
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _head_mac(key, head["count"], head["hash"])):
        return "the head file's MAC does not verify under the audit key: it was forged or altered"
    return None


def _open_nofollow_read(name: str | Path, dir_fd: int | None = None) -> int | None:
    """An fd for reading *name* without following a link; ``None`` if absent; raises ``_NotRegular``."""
    try:
        fd = os.open(name, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in _LINK_ERRNOS:
            raise _NotRegular("a symbolic link") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _NotRegular("not a regular file")
    return fd


class _NotRegular(Exception):
    pass


def _read_fd(fd: int) -> bytes:
    chunks = []
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def _create_head(dfd: int, name: str, data: bytes) -> None:
    """Create the head *name* of a new log in the directory *dfd*: a temporary file, then ``os.replace``.

    The temporary file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW``, fsync-ed, and
    renamed onto the head's name relative to the same directory handle (so the head
    appears whole, in the log's directory, and nothing at either name is followed); the
    directory is fsync-ed so that the head survives a power loss with the log.
    """
    tmp = f".{name}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o640, dir_fd=dfd)
    except FileExistsError:  # left by a crash (we hold the log's lock): unlink never follows a link
        os.unlink(tmp, dir_fd=dfd)
        fd = os.open(tmp, flags, 0o640, dir_fd=dfd)
    try:
        os.write(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp, dir_fd=dfd)
        raise
    os.close(fd)
    os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    os.fsync(dfd)


def _open_head_for_update(p: Path, dfd: int, name: str) -> int | None:
    """The head of log *p*, opened read-write without following a link (``None`` if absent).

    Anything but a regular file with a single link refuses the append: a symbolic link,
    a FIFO or a hard link planted where the head should be is never written through.
    """
    try:
        hfd = os.open(name, os.O_RDWR | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC, dir_fd=dfd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in _LINK_ERRNOS:
            raise _refuse(p, f"its head {head_path(p)} is a symbolic link (someone replaced it); it was left untouched") from None
        raise
    st = os.fstat(hfd)
    why = None
    if not stat.S_ISREG(st.st_mode):
        why = "is not a regular file"
    elif st.st_nlink != 1:
        why = f"has {st.st_nlink} hard links (someone linked it elsewhere)"
    if why is not None:
        os.close(hfd)
        raise _refuse(p, f"its head {head_path(p)} {why}; it was left untouched")
    return hfd


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


def _refuse(p: Path, what: str) -> AuditError:
    return AuditError(
        f"audit log {p}: {what}; nothing was appended. Run `hpcai audit verify --log {p}`; once "
        "the cause is understood, move the log and its head aside to start a new log"
    )


def _check_tail(p: Path, last: bytes, key: AuditKey | None) -> int:
    """The ``seq`` of the log's last line, after checking that it belongs to a chain under *key*."""
    try:
        rec = json.loads(last)
        seq = rec["seq"]
    except (ValueError, KeyError, TypeError):
        seq = None
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise AuditError(
            f"audit log {p}: its last line is not an audit record; run "
            "`hpcai audit verify` and move the file aside to start a new log"
        )
    kid = rec.get("kid")
    if key is None:
        if kid is not None:
            raise AuditError(
                f"audit log {p} is keyed (key id {kid}) but no audit key is configured in this "
                f"process; configure the same key as its other writers ({_KEY_HELP})"
            )
        return seq
    if kid is None:
        raise _refuse(
            p, "its last record was written without the audit key (forged, or the log predates the key)"
        )
    if kid != key.kid:
        raise _refuse(
            p, f"its last record was written under another key (key id {kid}; this process has {key.kid})"
        )
    parts = _split_line(last)
    if parts is None or not hmac.compare_digest(parts[1], key.mac(parts[0])):
        raise _refuse(p, f"its last record (record {seq}) does not verify under the audit key: it was forged or altered")
    return seq


def _check_head_for_append(p: Path, raw: bytes | None, n: int, last: bytes | None, key: AuditKey | None) -> None:
    """Refuse to append where the head shows truncation, is missing, forged, or a tail is unexplained."""
    hp = head_path(p)
    if raw is None:
        if n == 0:
            return
        raise _refuse(p, f"its head file {hp} is missing, so a truncation cannot be ruled out")
    head = _parse_head(raw)
    if head is None:
        raise _refuse(p, f"its head file {hp} is damaged")
    problem = _head_key_problem(head, key)
    if problem is not None:
        raise _refuse(p, problem)
    h_count = head["count"]
    if h_count > n:
        raise _refuse(p, f"it holds {n} record(s) but its head records {h_count}: records were removed (truncation)")
    if h_count == n and n > 0 and last is not None and head["hash"] != line_hash(last):
        raise _refuse(p, f"its last record (record {n - 1}) does not match the hash in its head: it was replaced")
    if key is None and n - h_count > 1:
        raise _refuse(
            p, f"{n - h_count} records lie beyond its head; an interrupted append leaves at most one "
            "(in an unkeyed log they cannot be told from forged ones)"
        )


def append(
    record: Mapping[str, Any], *, path: PathLike | None = None, key: AuditKey | bytes | str | None = None
) -> dict[str, Any]:
    """Append one record to the audit log and return it as written (with seq, prev, hash).

    The log adds ``seq``, ``time``, ``user``, ``host``, ``pid``, ``kid`` (keyed),
    ``prev`` and ``hash``. *key* defaults to :func:`configured_key`. The write happens
    under an exclusive file lock and is fsync-ed before this returns; any failure raises
    :class:`~hpcai.errors.AuditError` (callers refuse the operation), and so does a log
    whose head or last record shows tampering (see the module docs).

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
    k = _resolve_key(key)
    p = _resolve(path)
    hname = p.name + ".head"
    user, host = _who()
    with _thread_lock:
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            dfd = os.open(p.parent, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        except OSError as exc:
            raise AuditError(
                f"audit log {p}: cannot open its directory for appending ({exc.strerror}); fix the path "
                "([audit] path in the configuration or $HPCAI_AUDIT_LOG) or its permissions"
            ) from None
        try:
            try:
                fd = os.open(p.name, os.O_RDWR | os.O_CREAT | os.O_APPEND | _O_NOFOLLOW | _O_CLOEXEC, 0o640, dir_fd=dfd)
            except OSError as exc:
                if exc.errno in _LINK_ERRNOS:
                    raise AuditError(
                        f"audit log {p} is a symbolic link; the log is never written through a link: "
                        "point [audit] path or $HPCAI_AUDIT_LOG at the real file"
                    ) from None
                raise AuditError(
                    f"audit log {p}: cannot open for appending ({exc.strerror}); fix the path "
                    "([audit] path in the configuration or $HPCAI_AUDIT_LOG) or its permissions"
                ) from None
            hfd: int | None = None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise AuditError(f"audit log {p} is not a regular file")
                size = st.st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    raise AuditError(
                        f"audit log {p}: its last record is incomplete (an interrupted write); "
                        "run `hpcai audit verify`, then move the file aside to start a new log"
                    )
                # the head's directory entry, checked on the descriptor that is written later
                hfd = _open_head_for_update(p, dfd, hname)
                head_raw = _read_fd(hfd) if hfd is not None else None
                last = _last_line(fd, size)
                if last is None:
                    prev, seq = GENESIS, 0
                else:
                    seq = _check_tail(p, last, k) + 1
                    prev = line_hash(last)
                _check_head_for_append(p, head_raw, seq, last, k)
                if hfd is None:  # a new log: its head exists before its first record does
                    _create_head(dfd, hname, _head_bytes(0, GENESIS, k))
                    hfd = _open_head_for_update(p, dfd, hname)
                    assert hfd is not None
                full: dict[str, Any] = {
                    "seq": seq,
                    "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds"),
                    "user": user,
                    "host": host,
                    "pid": os.getpid(),
                }
                if k is not None:
                    full["kid"] = k.kid
                full.update(record)
                full["prev"] = prev
                content = _dumps(full).encode()
                digest = k.mac(content) if k is not None else hashlib.sha256(content).hexdigest()
                full["hash"] = digest
                line = content[:-1] + _HASH_MARK + digest.encode() + b'"}'
                data = line + b"\n"
                written = os.write(fd, data)
                if written != len(data):
                    raise AuditError(f"audit log {p}: short write ({written} of {len(data)} bytes); disk full?")
                os.fsync(fd)
                os.pwrite(hfd, _head_bytes(seq + 1, line_hash(line), k), 0)
            except AuditError:
                raise
            except OSError as exc:
                raise AuditError(f"audit log {p}: write failed ({exc}); the operation was not performed") from None
            finally:
                if hfd is not None:
                    os.close(hfd)
                os.close(fd)  # closing releases the lock
        finally:
            os.close(dfd)
    return full


# --------------------------------------------------------------------------------------------
# reading and verifying
# --------------------------------------------------------------------------------------------
def _read_locked(p: Path) -> tuple[bytes | None, bytes | None, str | None]:
    """Log bytes and head bytes, read together under a shared lock (``None`` if absent).

    The third value names a problem that prevents reading them as a log (a link or a
    non-regular file where the log or its head should be); neither is followed.
    """
    try:
        fd = _open_nofollow_read(p)
    except _NotRegular as why:
        return None, None, f"the log {p} is {why}; a log is never read or written through a link"
    except OSError as exc:
        raise AuditError(f"audit log {p}: cannot read ({exc.strerror})") from None
    try:
        data: bytes | None = None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_SH)
            data = _read_fd(fd)
        try:
            hfd = _open_nofollow_read(head_path(p))
        except _NotRegular as why:
            return data, None, f"the head file {head_path(p)} is {why} (someone replaced it)"
        except OSError as exc:
            raise AuditError(f"audit log {p}: cannot read its head ({exc.strerror})") from None
        head: bytes | None = None
        if hfd is not None:
            try:
                head = _read_fd(hfd)
            finally:
                os.close(hfd)
        return data, head, None
    finally:
        if fd is not None:
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

    Reading checks nothing; :func:`verify` does.

    >>> from hpcai import audit
    >>> audit.read("/tmp/no-such-audit-log.jsonl")
    []
    """
    p = _resolve(path)
    data, _, problem = _read_locked(p)
    if problem is not None and data is None:
        raise AuditError(f"audit log {p}: {problem}")
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
    """What :func:`verify` found: ``ok``, the number of records, the first bad one and why.

    On a log that verifies, ``notes`` says what to know about it (an unkeyed chain, a head
    that lags) and ``reason`` joins them with ``"; "``. ``keyed`` says whether the chain
    was checked under an audit key (``key_id``), ``anchors`` how many anchors held.
    """

    ok: bool
    count: int
    first_bad_index: int | None
    reason: str
    path: str = ""
    head_hash: str | None = None
    keyed: bool = False
    key_id: str | None = None
    anchors: int = 0
    notes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.ok


_UNKEYED_NOTE = (
    "the chain is UNKEYED (plain SHA-256): anyone with write access to the log and its head can "
    f"rewrite them consistently, so configure an audit key ({_KEY_HELP}) and publish anchors "
    "(hpcai audit anchor --to PATH)"
)


def _load_anchors(source: PathLike | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The anchors in an anchor file / ``hpcai://`` URL, a mapping, or a bare head hash."""
    if isinstance(source, Mapping):
        return [dict(source)]
    text = os.fspath(source)
    if isinstance(text, str) and _HEX64.fullmatch(text):
        return [{"hash": text}]
    if isinstance(text, str) and text.startswith("hpcai://"):
        fs, rel = _storage_target(text)
        try:
            raw = fs.cat_file(rel)
        except FileNotFoundError:
            raise AuditError(f"anchor {text} does not exist") from None
    else:
        try:
            raw = Path(text).read_bytes()
        except OSError as exc:
            raise AuditError(f"anchor file {text}: cannot read it ({exc.strerror})") from None
    out = []
    for n, line in enumerate(raw.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            a = json.loads(line)
        except ValueError:
            a = None
        if not isinstance(a, dict):
            raise AuditError(f"anchor file {text}: line {n} is not an anchor (a JSON object from `hpcai audit anchor`)")
        out.append(a)
    if not out:
        raise AuditError(f"anchor file {text} holds no anchor")
    return out


def _check_anchor(a: Mapping[str, Any], hashes: list[str]) -> tuple[int, str] | None:
    """``(index, reason)`` when anchor *a* does not hold for the log with line *hashes*."""
    h = a.get("hash")
    count = a.get("count")
    when = f" (taken {a['time']})" if isinstance(a.get("time"), str) else ""
    if not isinstance(h, str) or not _HEX64.fullmatch(h):
        return len(hashes), f"anchor{when} is malformed: no 64-hex 'hash'"
    if count is None:  # a bare head hash: wherever it is
        if h in hashes:
            return None
        return len(hashes), (
            f"anchor {h[:16]}... is the hash of no record: the log was rewritten or truncated "
            "before the point the anchor was taken"
        )
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        return len(hashes), f"anchor{when} is malformed: 'count' must be a positive integer"
    n = len(hashes)
    if count > n:
        return n, (
            f"the log holds {n} record(s) but an anchor{when} recorded {count}: records anchored "
            "then were removed (truncation, or the log was deleted and restarted)"
        )
    if hashes[count - 1] != h:
        return count - 1, (
            f"it does not match the anchor{when} taken at {count} record(s): the log was rewritten "
            "at or before this record"
        )
    return None


def _check_anchors(
    anchor: PathLike | Mapping[str, Any] | None, hashes: list[str]
) -> tuple[int, tuple[int, str] | None]:
    """How many anchors were checked, and the earliest ``(index, reason)`` that fails, if any."""
    if anchor is None:
        return 0, None
    found: tuple[int, str] | None = None
    anchors = _load_anchors(anchor)
    for a in anchors:
        miss = _check_anchor(a, hashes)
        if miss is not None and (found is None or miss[0] < found[0]):
            found = miss
    if found is None:
        return len(anchors), None
    return len(anchors), (found[0], f"record {found[0]} (line {found[0] + 1}): {found[1]}")


def verify(
    path: PathLike | None = None,
    *,
    anchor: PathLike | Mapping[str, Any] | None = None,
    allow_empty: bool = False,
    key: AuditKey | bytes | str | None = None,
) -> VerifyResult:
    """Check the chain (MAC, sequence numbers, links), the head and any anchors of a log.

    Returns ``ok=False`` with the index of the first bad record after any edit, forgery,
    deletion, insertion, reordering or truncation, and when the log or its head is missing
    (unless *allow_empty* and neither exists: nothing recorded yet). *key* defaults to
    :func:`configured_key`; without one the chain is checked as unkeyed and the result says
    so. *anchor* is an anchor file or ``hpcai://`` URL written by :func:`anchor` (every
    anchor in it must hold: the anchored record still at its position with its hash), an
    anchor mapping, or a bare head hash (which must be some record's hash).

    >>> from hpcai import audit
    >>> audit.verify("/tmp/no-such-audit-log.jsonl").ok
    False
    >>> audit.verify("/tmp/no-such-audit-log.jsonl", allow_empty=True).ok
    True
    """
    k = _resolve_key(key)
    p = _resolve(path)
    keyed = k is not None
    kid = k.kid if k is not None else None
    hp = head_path(p)

    def bad(count: int, index: int | None, reason: str, head_hash: str | None = None) -> VerifyResult:
        if index is not None:
            reason = f"record {index} (line {index + 1}): {reason}"
        return VerifyResult(False, count, index, reason, str(p), head_hash, keyed, kid)

    data, head_raw, problem = _read_locked(p)
    if problem is not None:
        return bad(len(_split(data)[0]) if data else 0, None, problem)
    if not data:  # no log, or an empty one
        if head_raw is None:
            if allow_empty:
                anchors, miss = _check_anchors(anchor, [])
                if miss is not None:  # anchored records are gone: emptiness was not expected
                    return VerifyResult(False, 0, miss[0], miss[1], str(p), None, keyed, kid, anchors)
                empty: tuple[str, ...] = (f"no log yet (nothing recorded){'' if data is None else ', an empty file'}",)
                if not keyed:
                    empty += (_UNKEYED_NOTE,)
                return VerifyResult(True, 0, None, "; ".join(empty), str(p), None, keyed, kid, anchors, empty)
            what = "does not exist" if data is None else "is empty"
            return bad(0, 0, (
                f"the log {what} and neither does its head {hp}: it was deleted (with its head) or "
                "nothing was recorded yet; if no record is expected yet, pass allow_empty=True "
                "(hpcai audit verify --allow-empty)"
            ))
        if data is None:
            return bad(0, 0, f"the log does not exist but its head {hp} does: the log was deleted")
    lines, complete = _split(data or b"")
    n = len(lines)
    prev = GENESIS
    hashes: list[str] = []
    for i, raw in enumerate(lines):
        if i == n - 1 and not complete:
            return bad(n, i, "incomplete last line (an interrupted or truncated write)")
        try:
            rec = json.loads(raw)
        except ValueError:
            return bad(n, i, "not valid JSON (the line was altered)")
        if not isinstance(rec, dict) or not isinstance(rec.get("hash"), str):
            return bad(n, i, "not an audit record (no 'hash' field)")
        parts = _split_line(raw)
        if parts is None:
            return bad(n, i, "its 'hash' is not the 64-hex last field the log writes: the line was rewritten")
        content, own = parts
        r_kid = rec.get("kid")
        if k is not None:
            if r_kid is None:
                return bad(n, i, (
                    "written without the audit key (an unkeyed record in a keyed log): it was forged "
                    "without the key, or the log was started before the key was configured"
                ))
            if r_kid != k.kid:
                return bad(n, i, (
                    f"written under another key (key id {r_kid}; the configured key has id {k.kid}): "
                    "it was forged, or the key was changed"
                ))
            if not hmac.compare_digest(own, k.mac(content)):
                return bad(n, i, (
                    "its content does not match its hash (HMAC under the audit key): the record was "
                    "altered or forged without the key"
                ))
        else:
            if r_kid is not None:
                return bad(n, i, (
                    f"written with an audit key (key id {r_kid}) but none is configured here; "
                    f"configure it ({_KEY_HELP}) to check this log"
                ))
            if hashlib.sha256(content).hexdigest() != own:
                return bad(n, i, "its content does not match its hash: the record was altered")
        seq = rec.get("seq")
        if seq != i:
            if isinstance(seq, int) and seq > i:
                why = f"records {i}..{seq - 1} are missing (deleted) or the records were reordered"
            else:
                why = "a record was inserted before it or the records were reordered"
            return bad(n, i, f"sequence number {seq!r} at position {i}: {why}")
        if rec.get("prev") != prev:
            what = "the previous record" if i else "the start of the log"
            return bad(n, i, f"'prev' does not match {what}: the records before it were altered, removed or reordered")
        prev = line_hash(raw)
        hashes.append(prev)
    head_hash = hashes[-1] if hashes else None
    last = max(n - 1, 0)
    notes: list[str] = []
    if head_raw is None:
        return bad(n, last, f"the head file {hp} is missing, so truncation cannot be ruled out")
    head = _parse_head(head_raw)
    if head is None:
        return bad(n, last, f"the head file {hp} is damaged")
    problem = _head_key_problem(head, k)
    if problem is not None:
        return bad(n, last, problem)
    h_count, h_hash = head["count"], head["hash"]
    if h_count > n:
        return bad(n, n, (
            f"the log ends after {n} records but its head records {h_count}: "
            f"the last {h_count - n} record(s) were removed (truncation)"
        ))
    if h_count > 0 and hashes[h_count - 1] != h_hash:
        return bad(n, h_count - 1, "it does not match the hash stored in the head file: the record was replaced")
    if n > h_count:
        lag = n - h_count
        if not keyed and lag > 1:
            return bad(n, h_count, (
                f"{lag} records lie beyond the head, which records {h_count}; an interrupted append "
                "leaves at most one: records were appended without updating the head (forged)"
            ))
        notes.append(
            f"the head lags {lag} record(s) behind (an append interrupted between the log and "
            f"head writes), {'and they verify under the audit key' if keyed else 'and unkeyed, it cannot be told from a forged record'}: "
            "the next append repairs it"
        )
    anchors, miss = _check_anchors(anchor, hashes)
    if miss is not None:
        return VerifyResult(False, n, miss[0], miss[1], str(p), head_hash, keyed, kid, anchors)
    if not keyed:
        notes.append(_UNKEYED_NOTE)
    return VerifyResult(True, n, None, "; ".join(notes), str(p), head_hash, keyed, kid, anchors, tuple(notes))


# --------------------------------------------------------------------------------------------
# anchors
# --------------------------------------------------------------------------------------------
def _storage_target(url: str) -> tuple[Any, str]:
    from .storage import filesystem, parse_url

    ep, rel = parse_url(url, fname="hpcai audit anchor")
    return filesystem(ep.name), rel


def anchor(
    to: PathLike, *, path: PathLike | None = None, key: AuditKey | bytes | str | None = None
) -> dict[str, Any]:
    """Publish the log's current head to *to* (a file, or an ``hpcai://endpoint/path`` URL).

    The log must verify first (against the anchors already in *to*, if any): anchoring a
    tampered log would bless it. One JSON line is appended to *to*: ``log``, ``count``,
    ``hash`` (of the last record's line), ``time`` and ``kid``. Returns that anchor.
    Keep *to* where the writers of the audit directory cannot write.
    """
    target = os.fspath(to)
    is_url = isinstance(target, str) and target.startswith("hpcai://")
    existing = b""
    if is_url:
        fs, rel = _storage_target(target)
        try:
            existing = fs.cat_file(rel)
        except FileNotFoundError:
            pass
        has_anchors = bool(existing.strip())
    else:
        has_anchors = os.path.isfile(target) and os.path.getsize(target) > 0
    res = verify(path, key=key, anchor=target if has_anchors else None)
    if not res.ok:
        raise AuditError(f"audit log {res.path} was not anchored: it does not verify: {res.reason}")
    if res.count == 0 or res.head_hash is None:
        raise AuditError(f"audit log {res.path} holds no record yet; there is nothing to anchor")
    rec = {
        "anchor": "hpcai-audit",
        "log": res.path,
        "count": res.count,
        "hash": res.head_hash,
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "kid": res.key_id,
    }
    line = (json.dumps(rec, separators=(",", ":")) + "\n").encode()
    if is_url:
        fs.pipe_file(rel, existing + line)
        return rec
    try:
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno in _LINK_ERRNOS:
            raise AuditError(f"anchor file {target} is a symbolic link; anchors are never written through a link") from None
        raise AuditError(f"anchor file {target}: cannot open it for appending ({exc.strerror})") from None
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return rec
