"""Attacks on the audit log, each written so that it succeeds if its defence is removed.

The attacker can write the audit directory (the log, its head, links next to them) but
does not hold the audit key. Each test names the defence it checks:

* the keyed chain (HMAC-SHA256 per record, keyed head) — forging, rewriting, downgrading;
* missing log / head are failures (``allow_empty`` only when nothing was recorded);
* append checks the head and the last record before it writes — nothing is papered over;
* no-follow writes (O_NOFOLLOW, temp + os.replace in one directory handle);
* anchors — deletion, truncation and rollback that the key alone cannot see;
* key hygiene — private key files, the key never written or printed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import shutil
import stat
from pathlib import Path

import pytest

import hpcai as xp
from hpcai import _config, audit
from hpcai.cli import main
from hpcai.errors import AuditError, ConfigError

KEY_HEX = "5e" * 8 + "c0ffee" * 4 + "0123456789abcdef"  # 32 bytes, distinctive in any output
KEY = bytes.fromhex(KEY_HEX)
ATTACKER_KEY = b"the attacker's own key, not ours"


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HPCAI_AUDIT_KEY", raising=False)
    monkeypatch.delenv("HPCAI_AUDIT_KEY_FILE", raising=False)


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> str:
    """The audit key in the environment, as hex; returns the key id."""
    monkeypatch.setenv("HPCAI_AUDIT_KEY", KEY_HEX)
    key = audit.configured_key()
    assert key is not None
    return key.kid


def _fill(path: Path, n: int) -> list[dict]:
    return [
        audit.append({"operation": "to_device", "bytes": i, "decision": "allow", "tags": {"k": [str(i)]}}, path=path)
        for i in range(n)
    ]


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def _write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _fails_at(log: Path, index: int, fragment: str, **kw) -> audit.VerifyResult:
    res = audit.verify(log, **kw)
    assert not res.ok, res
    assert res.first_bad_index == index, res
    assert fragment in res.reason, res.reason
    return res


def _forge(prev_line: bytes, fields: dict, digest, *, kid: bool = True) -> bytes:
    """A record chained onto *prev_line* (right ``seq`` and ``prev``), hashed by *digest(content)*.

    With ``kid=False`` it has the unkeyed record format (no key id).
    """
    prev = json.loads(prev_line)
    rec = {k: v for k, v in prev.items() if k not in ("hash", "prev") and (kid or k != "kid")}
    rec.update(fields)
    rec["seq"] = prev["seq"] + 1
    rec["prev"] = audit.line_hash(prev_line)
    content = json.dumps(rec, separators=(",", ":")).encode()
    rec["hash"] = digest(content)
    return json.dumps(rec, separators=(",", ":")).encode()


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _attacker_hmac(content: bytes) -> str:
    return hmac.new(ATTACKER_KEY, content, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------------------------
# missing log, missing head (defence: missing is a failure; append checks the head)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_key", [False, True])
def test_deleting_log_and_head_fails(tmp_path: Path, request: pytest.FixtureRequest, with_key: bool) -> None:
    if with_key:
        request.getfixturevalue("keyed")
    log = tmp_path / "a.jsonl"
    _fill(log, 4)
    log.unlink()
    audit.head_path(log).unlink()
    res = _fails_at(log, 0, "does not exist")
    assert "deleted" in res.reason and "allow_empty" in res.reason
    assert main(["audit", "verify", "--log", str(log)]) == 4
    # only a caller who states that nothing was recorded yet accepts it
    assert audit.verify(log, allow_empty=True).ok
    assert main(["audit", "verify", "--log", str(log), "--allow-empty"]) == 0


def test_deleting_only_the_log_fails_even_when_empty_is_allowed(tmp_path: Path, keyed: str) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 2)
    log.unlink()
    _fails_at(log, 0, "the log was deleted", allow_empty=True)


@pytest.mark.parametrize("with_key", [False, True])
def test_truncating_to_one_record_and_deleting_the_head_fails(
    tmp_path: Path, request: pytest.FixtureRequest, with_key: bool
) -> None:
    if with_key:
        request.getfixturevalue("keyed")
    log = tmp_path / "a.jsonl"
    _fill(log, 5)
    _write_lines(log, _lines(log)[:1])
    audit.head_path(log).unlink()
    _fails_at(log, 0, "head file")
    _fails_at(log, 0, "head file", allow_empty=True)
    # the next genuine append does not paper over it by writing a fresh head
    with pytest.raises(AuditError, match="head file .* is missing"):
        audit.append({"operation": "genuine"}, path=log)
    assert len(_lines(log)) == 1
    _fails_at(log, 0, "head file")


def test_truncating_and_forging_the_head_without_the_key_fails(tmp_path: Path, keyed: str) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 5)
    lines = _lines(log)[:2]
    _write_lines(log, lines)
    # the attacker writes the head an unkeyed log would have, and one copying our key id
    for head in (
        {"count": 2, "hash": audit.line_hash(lines[-1])},
        {"count": 2, "hash": audit.line_hash(lines[-1]), "kid": keyed, "mac": "0" * 64},
    ):
        audit.head_path(log).write_text(json.dumps(head))
        _fails_at(log, 1, "head file")
        with pytest.raises(AuditError, match="head"):
            audit.append({"operation": "genuine"}, path=log)


def test_truncation_is_not_papered_over_by_a_later_append(tmp_path: Path, keyed: str) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 6)
    _write_lines(log, _lines(log)[:4])
    with pytest.raises(AuditError, match="records were removed"):
        audit.append({"operation": "genuine"}, path=log)
    _fails_at(log, 4, "the last 2 record(s) were removed")


# --------------------------------------------------------------------------------------------
# forged records (defence: the keyed MAC; append checks the last record)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "how",
    ["unkeyed-sha256", "sha256-with-copied-kid", "attacker-hmac-with-copied-kid", "random-hash"],
)
def test_appended_forgery_fails_also_after_a_later_genuine_append(tmp_path: Path, keyed: str, how: str) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 4)
    lines = _lines(log)
    fields = {"operation": "forged", "decision": "allow", "destination": "us-cloud"}
    if how == "unkeyed-sha256":  # the unkeyed chain's formula: what hpcai writes without a key
        line = _forge(lines[-1], fields, _sha256, kid=False)
        assert "kid" not in json.loads(line)
    elif how == "sha256-with-copied-kid":
        line = _forge(lines[-1], fields, _sha256)
    elif how == "attacker-hmac-with-copied-kid":
        line = _forge(lines[-1], fields, _attacker_hmac)
    else:
        line = _forge(lines[-1], fields, lambda c: os.urandom(32).hex())
    assert json.loads(line)["seq"] == 4 and json.loads(line)["prev"] == audit.line_hash(lines[-1])
    _write_lines(log, [*lines, line])  # the head still says 4: what a crash would leave
    _fails_at(log, 4, "key")
    # the next genuine append refuses to chain onto it ...
    with pytest.raises(AuditError, match="last record"):
        audit.append({"operation": "genuine"}, path=log)
    assert len(_lines(log)) == 5
    # ... and even if a writer chained onto it anyway (here: one that skips the check), verify still fails
    _write_lines(log, [*lines, line, _forge(line, {"operation": "genuine"}, lambda c: hmac.new(KEY, c, hashlib.sha256).hexdigest())])
    _fails_at(log, 4, "key")


def test_forgery_with_a_forged_head_fails(tmp_path: Path, keyed: str) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 3)
    lines = _lines(log)
    line = _forge(lines[-1], {"operation": "forged"}, _sha256)
    _write_lines(log, [*lines, line])
    audit.head_path(log).write_text(json.dumps({"count": 4, "hash": audit.line_hash(line)}))
    _fails_at(log, 3, "key")


def test_unkeyed_record_inside_a_keyed_log_fails(tmp_path: Path, keyed: str) -> None:
    """Downgrade one record in the middle to the unkeyed format (and fix every later link)."""
    log = tmp_path / "a.jsonl"
    _fill(log, 5)
    lines = _lines(log)
    rec = json.loads(lines[2])
    rec.pop("kid")
    rec.pop("hash")
    rec["decision"] = "deny"
    rec["hash"] = audit._content_hash(rec)
    lines[2] = json.dumps(rec, separators=(",", ":")).encode()
    _write_lines(log, lines)
    _fails_at(log, 2, "written without the audit key")


def test_consistent_rewrite_without_the_key_fails_when_keyed(tmp_path: Path, keyed: str, monkeypatch) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 4)
    originals = [json.loads(line) for line in _lines(log)]
    # the attacker rewrites the whole chain with hpcai's own code, without the key ...
    monkeypatch.delenv("HPCAI_AUDIT_KEY")
    log.unlink()
    audit.head_path(log).unlink()
    for rec in originals:
        edited = {k: v for k, v in rec.items() if k not in audit._RESERVED}
        edited["decision"] = "deny"
        audit.append(edited, path=log)
    assert audit.verify(log).ok  # an unkeyed verifier cannot tell (and says the chain is unkeyed)
    assert "UNKEYED" in audit.verify(log).reason
    monkeypatch.setenv("HPCAI_AUDIT_KEY", KEY_HEX)
    _fails_at(log, 0, "written without the audit key")
    with pytest.raises(AuditError, match="without the audit key"):
        audit.append({"operation": "genuine"}, path=log)
    # ... or under a key of their own, copying our key id into every record and the head
    log.unlink()
    audit.head_path(log).unlink()
    prev_line = None
    lines = []
    for rec in originals:
        r = {k: v for k, v in rec.items() if k != "hash"}
        r["prev"] = audit.line_hash(prev_line) if prev_line else audit.GENESIS
        r["decision"] = "deny"
        content = json.dumps(r, separators=(",", ":")).encode()
        r["hash"] = _attacker_hmac(content)
        prev_line = json.dumps(r, separators=(",", ":")).encode()
        lines.append(prev_line)
    _write_lines(log, lines)
    head = {"count": 4, "hash": audit.line_hash(lines[-1]), "kid": keyed}
    head["mac"] = hmac.new(ATTACKER_KEY, f"hpcai-audit head\n4\n{head['hash']}".encode(), hashlib.sha256).hexdigest()
    audit.head_path(log).write_text(json.dumps(head))
    _fails_at(log, 0, "HMAC under the audit key")


def test_keyed_log_needs_its_key(tmp_path: Path, keyed: str, monkeypatch) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 2)
    assert audit.verify(log).keyed
    monkeypatch.delenv("HPCAI_AUDIT_KEY")
    _fails_at(log, 0, f"written with an audit key (key id {keyed})")
    with pytest.raises(AuditError, match="no audit key is configured"):
        audit.append({"operation": "unkeyed writer"}, path=log)
    monkeypatch.setenv("HPCAI_AUDIT_KEY", ATTACKER_KEY.hex())
    _fails_at(log, 0, "written under another key")
    with pytest.raises(AuditError, match="under another key"):
        audit.append({"operation": "wrong key"}, path=log)
    assert len(_lines(log)) == 2


# --------------------------------------------------------------------------------------------
# crashes stay recoverable (the head-lag design)
# --------------------------------------------------------------------------------------------
def test_keyed_head_lag_from_a_crash_is_accepted_and_repaired(tmp_path: Path, keyed: str) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 3)
    head = audit.head_path(log).read_bytes()
    _fill(log, 2)
    audit.head_path(log).write_bytes(head)  # head writes lost: genuine records beyond the head
    res = audit.verify(log)
    assert res.ok and res.keyed and "lags 2 record(s)" in res.reason and "verify under the audit key" in res.reason
    audit.append({"operation": "next"}, path=log)
    res = audit.verify(log)
    assert res.ok and res.count == 6 and "lags" not in res.reason


def test_crash_in_the_first_append_is_recoverable(tmp_path: Path, keyed: str) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 1)
    first_head = json.loads(audit.head_path(log).read_text())
    assert first_head["count"] == 1 and first_head["kid"] == keyed
    # the head written before the first record (count 0, keyed), as a crash would leave it
    audit.head_path(log).write_bytes(audit._head_bytes(0, audit.GENESIS, audit.configured_key()))
    assert audit.verify(log).ok and "lags 1" in audit.verify(log).reason
    _fill(log, 1)
    assert audit.verify(log).ok and audit.verify(log).count == 2


# --------------------------------------------------------------------------------------------
# links in the audit directory (defence: O_NOFOLLOW, temp + os.replace, entry checks)
# --------------------------------------------------------------------------------------------
def test_symlinked_head_is_refused_and_its_target_untouched(tmp_path: Path, keyed: str) -> None:
    log = tmp_path / "a.jsonl"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    _fill(log, 2)
    hp = audit.head_path(log)
    hp.unlink()
    hp.symlink_to(victim)
    with pytest.raises(AuditError, match="is a symbolic link"):
        audit.append({"operation": "x"}, path=log)
    assert victim.read_text() == "precious\n" and hp.is_symlink()  # refused: neither target nor link touched
    assert len(_lines(log)) == 2  # refused before the record was written
    res = audit.verify(log)
    assert not res.ok and "symbolic link" in res.reason


def test_symlinked_head_of_a_new_log_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "new.jsonl"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    audit.head_path(log).symlink_to(victim)
    with pytest.raises(AuditError, match="is a symbolic link"):
        audit.append({"operation": "x"}, path=log)
    assert victim.read_text() == "precious\n"


def test_head_creation_never_writes_through_a_link(tmp_path: Path) -> None:
    """A link planted at the new head's name or at the temporary name (a race) is replaced, not followed."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "a.jsonl.head").symlink_to(victim)
    (tmp_path / ".a.jsonl.head.tmp").symlink_to(victim)
    dfd = os.open(tmp_path, os.O_RDONLY)
    try:
        audit._create_head(dfd, "a.jsonl.head", audit._head_bytes(0, audit.GENESIS, None))
    finally:
        os.close(dfd)
    assert victim.read_text() == "precious\n"
    head = tmp_path / "a.jsonl.head"
    assert not head.is_symlink() and json.loads(head.read_text())["count"] == 0


def test_hardlinked_head_is_refused_and_the_other_name_untouched(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 2)
    other = tmp_path / "other-name"
    other.write_text("precious\n")
    audit.head_path(log).unlink()
    os.link(other, audit.head_path(log))  # e.g. a file of the victim's, hard-linked as the head
    with pytest.raises(AuditError, match="2 hard links"):
        audit.append({"operation": "x"}, path=log)
    assert other.read_text() == "precious\n" and len(_lines(log)) == 2


def test_fifo_head_does_not_hang_append(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 1)
    hp = audit.head_path(log)
    hp.unlink()
    os.mkfifo(hp)
    with pytest.raises(AuditError, match="not a regular file"):
        audit.append({"operation": "x"}, path=log)
    assert not audit.verify(log).ok


def test_symlinked_log_is_never_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    log = tmp_path / "a.jsonl"
    log.symlink_to(victim)
    with pytest.raises(AuditError, match="symbolic link"):
        audit.append({"operation": "x"}, path=log)
    assert victim.read_text() == "precious\n"
    res = audit.verify(log)
    assert not res.ok and "symbolic link" in res.reason
    with pytest.raises(AuditError, match="symbolic link"):
        audit.read(log)


# --------------------------------------------------------------------------------------------
# anchors (defence: the published head; what the key alone cannot see)
# --------------------------------------------------------------------------------------------
@pytest.fixture
def anchored(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "audit" / "a.jsonl"
    anchors = tmp_path / "elsewhere" / "anchors.jsonl"
    anchors.parent.mkdir()
    _fill(log, 5)
    assert main(["audit", "anchor", "--log", str(log), "--to", str(anchors)]) == 0
    _fill(log, 3)
    assert audit.verify(log, anchor=anchors).ok
    assert audit.verify(log, anchor=anchors).anchors == 1
    assert main(["audit", "verify", "--log", str(log), "--anchor", str(anchors)]) == 0
    return log, anchors


def test_anchor_file_holds_count_hash_and_time(anchored: tuple[Path, Path]) -> None:
    log, anchors = anchored
    (a,) = [json.loads(line) for line in anchors.read_text().splitlines()]
    assert a["count"] == 5 and a["hash"] == audit.line_hash(_lines(log)[4]) and a["time"] and a["log"] == str(log)
    audit.anchor(anchors, path=log)  # a second anchor is appended; both are checked
    assert audit.verify(log, anchor=anchors).anchors == 2


def test_truncation_before_the_anchor_fails(anchored: tuple[Path, Path]) -> None:
    log, anchors = anchored
    lines = _lines(log)[:3]
    _write_lines(log, lines)
    audit.head_path(log).write_text(json.dumps({"count": 3, "hash": audit.line_hash(lines[-1])}))  # unkeyed: consistent
    assert audit.verify(log).ok  # the unkeyed chain alone cannot see it ...
    _fails_at(log, 3, "records anchored then were removed", anchor=anchors)  # ... the anchor does
    assert main(["audit", "verify", "--log", str(log), "--anchor", str(anchors)]) == 4


def test_rewrite_before_the_anchor_fails(anchored: tuple[Path, Path]) -> None:
    log, anchors = anchored
    originals = [json.loads(line) for line in _lines(log)]
    log.unlink()
    audit.head_path(log).unlink()
    for i, rec in enumerate(originals):
        edited = {k: v for k, v in rec.items() if k not in audit._RESERVED}
        if i == 2:
            edited["decision"] = "deny"
        audit.append(edited, path=log)
    assert audit.verify(log).ok
    _fails_at(log, 4, "does not match the anchor", anchor=anchors)


def test_deletion_and_restart_fails_against_the_anchor(anchored: tuple[Path, Path]) -> None:
    log, anchors = anchored
    log.unlink()
    audit.head_path(log).unlink()
    _fails_at(log, 0, "records anchored then were removed", anchor=anchors, allow_empty=True)
    _fill(log, 6)  # genuine appends start a fresh log
    assert audit.verify(log).ok
    _fails_at(log, 4, "does not match the anchor", anchor=anchors)


def test_keyed_rollback_to_an_older_copy_fails_against_the_anchor(tmp_path: Path, keyed: str) -> None:
    log = tmp_path / "a.jsonl"
    anchors = tmp_path / "anchors.jsonl"
    _fill(log, 3)
    saved = tmp_path / "saved"
    saved.mkdir()
    shutil.copy(log, saved / "a.jsonl")
    shutil.copy(audit.head_path(log), saved / "a.jsonl.head")
    _fill(log, 3)
    audit.anchor(anchors, path=log)
    # the attacker puts back the older, genuinely keyed copy of log and head
    shutil.copy(saved / "a.jsonl", log)
    shutil.copy(saved / "a.jsonl.head", audit.head_path(log))
    assert audit.verify(log).ok  # every record and the head verify under the key ...
    _fails_at(log, 3, "records anchored then were removed", anchor=anchors)  # ... the anchor does not


def test_anchoring_a_tampered_log_is_refused(anchored: tuple[Path, Path]) -> None:
    log, anchors = anchored
    lines = _lines(log)
    lines[1] = lines[1].replace(b'"decision":"allow"', b'"decision":"deny"')
    _write_lines(log, lines)
    before = anchors.read_bytes()
    with pytest.raises(AuditError, match="was not anchored"):
        audit.anchor(anchors, path=log)
    assert main(["audit", "anchor", "--log", str(log), "--to", str(anchors)]) == 1
    assert anchors.read_bytes() == before


def test_anchor_through_a_storage_endpoint(tmp_path: Path) -> None:
    pytest.importorskip("hpcai.storage")
    (tmp_path / "vault").mkdir()
    xp.configure(data={"endpoints": {"vault": {"url": f"file://{tmp_path / 'vault'}"}}})
    log = tmp_path / "a.jsonl"
    _fill(log, 2)
    audit.anchor("hpcai://vault/anchors/a.jsonl", path=log)
    _fill(log, 1)
    audit.anchor("hpcai://vault/anchors/a.jsonl", path=log)
    assert audit.verify(log, anchor="hpcai://vault/anchors/a.jsonl").anchors == 2
    _write_lines(log, _lines(log)[:1])
    audit.head_path(log).write_text(json.dumps({"count": 1, "hash": audit.line_hash(_lines(log)[0])}))
    _fails_at(log, 1, "removed", anchor="hpcai://vault/anchors/a.jsonl")


# --------------------------------------------------------------------------------------------
# key hygiene (defence: private key files; the key is never written or printed)
# --------------------------------------------------------------------------------------------
def _use_key_file_in_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str) -> None:
    cfg = tmp_path / "hpcai.toml"
    cfg.write_text(f'[audit]\nkey_file = "{value}"\n')
    try:
        xp.configure(cfg)
    except ConfigError:  # the [audit] validator does not know key_file yet: read it as audit.py does
        fake = _config.Config({"audit": {"key_file": value}}, str(cfg))
        monkeypatch.setattr(audit._config, "get_config", lambda: fake)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, monkeypatch, mode: int) -> None:
    kf = tmp_path / "audit.key"
    kf.write_text(KEY_HEX + "\n")
    kf.chmod(mode)
    monkeypatch.setenv("HPCAI_AUDIT_KEY_FILE", str(kf))
    with pytest.raises(AuditError, match=f"chmod 600 {kf}") as info:
        audit.append({"operation": "x"}, path=tmp_path / "a.jsonl")
    assert KEY_HEX not in str(info.value)
    assert not (tmp_path / "a.jsonl").exists()  # nothing recorded with a compromised key
    kf.chmod(0o600)
    audit.append({"operation": "x"}, path=tmp_path / "a.jsonl")
    res = audit.verify(tmp_path / "a.jsonl")
    assert res.ok and res.keyed and res.key_id == audit.AuditKey(KEY).kid


def test_key_file_from_the_configuration_wins_over_the_environment(tmp_path: Path, monkeypatch) -> None:
    key = audit.generate_key_file(tmp_path / "audit.key")
    assert stat.S_IMODE((tmp_path / "audit.key").stat().st_mode) == 0o600
    with pytest.raises(AuditError, match="already exists"):
        audit.generate_key_file(tmp_path / "audit.key")
    monkeypatch.setenv("HPCAI_AUDIT_KEY", KEY_HEX)
    _use_key_file_in_config(monkeypatch, tmp_path, "audit.key")  # relative to the configuration file
    assert audit.configured_key().kid == key.kid != audit.AuditKey(KEY).kid
    audit.append({"operation": "x"}, path=tmp_path / "a.jsonl")
    assert audit.read(tmp_path / "a.jsonl")[0]["kid"] == key.kid


def test_short_or_empty_keys_are_refused(tmp_path: Path, monkeypatch) -> None:
    for bad in ("00ff00ff", "short pass", "  "):
        monkeypatch.setenv("HPCAI_AUDIT_KEY", bad)
        with pytest.raises(AuditError, match="audit key") as info:
            audit.append({"operation": "x"}, path=tmp_path / "a.jsonl")
        assert bad.strip() == "" or bad not in str(info.value)
    assert not (tmp_path / "a.jsonl").exists()


def test_the_key_never_appears_in_files_errors_or_reprs(tmp_path: Path, monkeypatch, capsys) -> None:
    raw_key = "correct horse battery staple, audit key"  # raw (not hex) key text
    spellings = [KEY_HEX, KEY_HEX.upper(), KEY.decode("latin-1"), raw_key, raw_key.encode().hex()]
    seen: list[str] = []
    for env_key in (KEY_HEX, raw_key):
        monkeypatch.setenv("HPCAI_AUDIT_KEY", env_key)
        log = tmp_path / f"log-{len(seen)}.jsonl"
        _fill(log, 3)
        audit.anchor(tmp_path / f"anchors-{len(seen)}.jsonl", path=log)
        key = audit.configured_key()
        seen += [repr(key), str(key), repr(audit.verify(log)), repr(audit.read(log))]
        with pytest.raises(TypeError):
            pickle.dumps(key)
        # errors: tampering (truncation), another key
        lines = _lines(log)
        _write_lines(log, lines[:2])
        seen.append(audit.verify(log).reason)
        with pytest.raises(AuditError) as info:
            audit.append({"operation": "x"}, path=log)
        seen.append(str(info.value))
        _write_lines(log, lines)
        monkeypatch.setenv("HPCAI_AUDIT_KEY", ATTACKER_KEY.hex())
        seen.append(audit.verify(log).reason)
        with pytest.raises(AuditError) as info:
            audit.append({"operation": "x"}, path=log)
        seen.append(str(info.value))
        monkeypatch.setenv("HPCAI_AUDIT_KEY", env_key)
        assert main(["audit", "verify", "--log", str(log), "--json"]) == 0
        assert main(["audit", "show", "--log", str(log), "--json"]) == 0
    kf = tmp_path / "loose.key"
    kf.write_text(KEY_HEX)
    kf.chmod(0o644)
    monkeypatch.setenv("HPCAI_AUDIT_KEY_FILE", str(kf))
    with pytest.raises(AuditError) as info:
        audit.configured_key()
    seen.append(str(info.value))
    out = capsys.readouterr()
    seen += [out.out, out.err]
    files = [p.read_bytes().decode("latin-1") for p in tmp_path.rglob("*") if p.is_file() and p != kf]
    for text in seen + files:
        for s in spellings:
            assert s not in text
