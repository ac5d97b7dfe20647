"""The audit log: hash chain, head anchor, concurrent appends, tamper detection.

These run the unkeyed chain (no audit key in the environment); the keyed chain and the
attacks it defends against are in tests/security/test_audit_log.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hpcai import audit
from hpcai.errors import AuditError, InvalidArgumentError


@pytest.fixture(autouse=True)
def _unkeyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HPCAI_AUDIT_KEY", raising=False)
    monkeypatch.delenv("HPCAI_AUDIT_KEY_FILE", raising=False)


def _fill(path: Path, n: int) -> list[dict]:
    return [audit.append({"operation": "to_device", "bytes": i, "decision": "allow", "tags": {"k": [str(i)]}}, path=path) for i in range(n)]


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def _write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def test_append_builds_a_chain(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    recs = _fill(log, 4)
    lines = _lines(log)
    assert [json.loads(line) for line in lines] == recs == audit.read(log)
    assert recs[0]["prev"] == audit.GENESIS == "0" * 64
    for i in range(1, 4):
        assert recs[i]["prev"] == audit.line_hash(lines[i - 1])
        assert recs[i]["seq"] == i
    for key in ("time", "user", "host", "pid"):
        assert recs[0][key]
    assert recs[2]["tags"] == {"k": ["2"]} and recs[2]["bytes"] == 2
    head = json.loads(audit.head_path(log).read_text())
    assert head == {"count": 4, "hash": audit.line_hash(lines[-1])}
    for line, rec in zip(lines, recs, strict=True):  # the unkeyed hash: SHA-256 of the line without it
        assert rec["hash"] == audit._content_hash({k: v for k, v in rec.items() if k != "hash"})
        assert line.endswith(b',"hash":"' + rec["hash"].encode() + b'"}')
    res = audit.verify(log)
    assert res.ok and res.count == 4 and res.first_bad_index is None and res.head_hash == head["hash"]


def test_empty_and_missing_logs(tmp_path: Path) -> None:
    assert audit.read(tmp_path / "none.jsonl") == []
    res = audit.verify(tmp_path / "none.jsonl")  # a missing log fails unless it is expected
    assert not res.ok and res.first_bad_index == 0 and "allow_empty" in res.reason
    res = audit.verify(tmp_path / "none.jsonl", allow_empty=True)
    assert res.ok and res.count == 0 and "no log yet" in res.reason
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert not audit.verify(tmp_path / "empty.jsonl").ok
    assert audit.verify(tmp_path / "empty.jsonl", allow_empty=True).ok


def test_unkeyed_chain_says_so(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 2)
    res = audit.verify(log)
    assert res.ok and not res.keyed and res.key_id is None
    assert "UNKEYED" in res.reason and "anyone with write access" in res.reason
    assert "kid" not in audit.read(log)[0]


def test_reserved_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="prev, hash"):
        audit.append({"prev": "x", "hash": "y"}, path=tmp_path / "a.jsonl")
    assert not (tmp_path / "a.jsonl").exists()


def _bad_at(log: Path, index: int, fragment: str) -> None:
    res = audit.verify(log)
    assert not res.ok, res
    assert res.first_bad_index == index, res
    assert res.reason.startswith(f"record {index} (line {index + 1}): "), res.reason
    assert fragment in res.reason, res.reason


def test_edit_is_found_at_the_edited_record(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 6)
    lines = _lines(log)
    lines[3] = lines[3].replace(b'"decision":"allow"', b'"decision":"deny"')
    _write_lines(log, lines)
    _bad_at(log, 3, "content does not match its hash")


def test_edit_with_recomputed_own_hash_is_found_by_the_next_record(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 6)
    lines = _lines(log)
    rec = json.loads(lines[2])
    rec["destination"] = "somewhere-else"
    del rec["hash"]
    rec["hash"] = audit._content_hash(rec)
    lines[2] = json.dumps(rec, separators=(",", ":")).encode()
    _write_lines(log, lines)
    _bad_at(log, 3, "'prev' does not match the previous record")


def test_edit_of_the_last_record_is_found(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 3)
    lines = _lines(log)
    rec = json.loads(lines[2])
    rec["bytes"] = 999
    del rec["hash"]
    rec["hash"] = audit._content_hash(rec)  # a careful forger: own hash and prev are fine
    lines[2] = json.dumps(rec, separators=(",", ":")).encode()
    _write_lines(log, lines)
    _bad_at(log, 2, "does not match the hash stored in the head file")


@pytest.mark.parametrize("k", [0, 2, 4])
def test_deletion_is_found_where_the_gap_is(tmp_path: Path, k: int) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 6)
    lines = _lines(log)
    del lines[k]
    _write_lines(log, lines)
    _bad_at(log, k, f"records {k}..{k} are missing")


def test_insertion_is_found(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 6)
    lines = _lines(log)
    lines.insert(3, lines[1])  # a replayed record
    _write_lines(log, lines)
    _bad_at(log, 3, "sequence number 1 at position 3")


def test_forged_insertion_with_consistent_fields_is_found_at_the_next_record(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 6)
    lines = _lines(log)
    forged = json.loads(lines[3])
    forged["prev"] = audit.line_hash(lines[2])
    forged["operation"] = "forged"
    del forged["hash"]
    forged["hash"] = audit._content_hash(forged)
    lines.insert(3, json.dumps(forged, separators=(",", ":")).encode())
    _write_lines(log, lines)
    _bad_at(log, 4, "sequence number 3 at position 4")


def test_reordering_is_found(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 6)
    lines = _lines(log)
    lines[2], lines[3] = lines[3], lines[2]
    _write_lines(log, lines)
    _bad_at(log, 2, "sequence number 3 at position 2")


@pytest.mark.parametrize("keep", [0, 1, 4])
def test_truncation_is_found_through_the_head(tmp_path: Path, keep: int) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 6)
    _write_lines(log, _lines(log)[:keep])
    _bad_at(log, keep, f"the last {6 - keep} record(s) were removed")


def test_truncation_inside_a_line_is_found(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 4)
    data = log.read_bytes()
    log.write_bytes(data[: len(data) - 30])
    _bad_at(log, 3, "incomplete last line")
    with pytest.raises(AuditError, match="last record is incomplete"):
        audit.append({"operation": "x"}, path=log)


@pytest.mark.parametrize("n", [1, 3])
def test_deleted_head_is_found(tmp_path: Path, n: int) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, n)
    audit.head_path(log).unlink()
    _bad_at(log, n - 1, "head file")
    with pytest.raises(AuditError, match="head file .* is missing"):  # and nothing papers over it
        audit.append({"operation": "x"}, path=log)
    _bad_at(log, n - 1, "head file")


def test_first_append_writes_a_head_before_its_record(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 1)
    audit.head_path(log).write_text(json.dumps({"count": 0, "hash": audit.GENESIS}))  # crash before the head update
    res = audit.verify(log)
    assert res.ok and "lags 1 record(s)" in res.reason
    log.write_bytes(b"")  # crash before the first record: an empty log with its head
    assert audit.verify(log).ok
    _fill(log, 2)
    assert audit.verify(log).ok and audit.verify(log).count == 2


def test_head_lagging_behind_is_an_interrupted_append(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 3)
    head = audit.head_path(log).read_bytes()
    _fill(log, 1)
    audit.head_path(log).write_bytes(head)  # as if the head write was lost in a crash
    res = audit.verify(log)
    assert res.ok and res.count == 4 and "lags 1 record(s)" in res.reason
    audit.append({"operation": "y"}, path=log)  # the next append repairs the head
    res = audit.verify(log)
    assert res.ok and "lags" not in res.reason and res.count == 5
    assert json.loads(audit.head_path(log).read_text())["count"] == 5


def test_unkeyed_head_lagging_more_than_a_crash_leaves_fails(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 3)
    head = audit.head_path(log).read_bytes()
    _fill(log, 2)
    audit.head_path(log).write_bytes(head)
    _bad_at(log, 3, "2 records lie beyond the head")
    with pytest.raises(AuditError, match="2 records lie beyond its head"):
        audit.append({"operation": "y"}, path=log)


def test_truncation_is_not_papered_over_by_the_next_append(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 5)
    _write_lines(log, _lines(log)[:3])
    with pytest.raises(AuditError, match="its head records 5: records were removed"):
        audit.append({"operation": "y"}, path=log)
    _bad_at(log, 3, "the last 2 record(s) were removed")


def test_damaged_head_is_found(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 3)
    audit.head_path(log).write_text("{broken")
    _bad_at(log, 2, "damaged")


def test_anchor(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 5)
    anchor = audit.verify(log).head_hash
    assert anchor is not None
    _fill(log, 3)
    assert audit.verify(log, anchor=anchor).ok  # a bare head hash: some record must have it
    # someone rewrites log and head consistently from record 2 on: the anchor is gone
    lines = _lines(log)[:2]
    log.unlink()
    audit.head_path(log).unlink()
    for line in lines:
        rec = json.loads(line)
        audit.append({k: v for k, v in rec.items() if k not in audit._RESERVED}, path=log)
    assert audit.verify(log).ok
    res = audit.verify(log, anchor=anchor)
    assert not res.ok and "anchor" in res.reason


def test_garbage_line_is_found(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    _fill(log, 3)
    lines = _lines(log)
    lines[1] = b"not json at all"
    _write_lines(log, lines)
    _bad_at(log, 1, "not valid JSON")
    with pytest.raises(AuditError, match="record 1"):
        audit.read(log)


def test_threads_append_safely(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"

    def work(t: int) -> None:
        for i in range(200):
            audit.append({"operation": "t", "thread": t, "i": i}, path=log)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    res = audit.verify(log)
    assert res.ok and res.count == 1600
    recs = audit.read(log)
    for t in range(8):
        assert [r["i"] for r in recs if r["thread"] == t] == list(range(200))


_WORKER = """
import sys
from hpcai import audit
path, worker, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    audit.append({"operation": "proc", "worker": worker, "i": i, "decision": "allow"}, path=path)
"""


def test_eight_processes_times_a_thousand_appends(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(log), str(w), "1000"], cwd=tmp_path)
        for w in range(8)
    ]
    for p in procs:
        assert p.wait(timeout=300) == 0
    res = audit.verify(log)
    assert res.ok, res.reason
    assert res.count == 8000
    recs = audit.read(log)
    assert [r["seq"] for r in recs] == list(range(8000))
    assert len({r["pid"] for r in recs}) == 8
    for w in range(8):
        assert [r["i"] for r in recs if r["worker"] == w] == list(range(1000))
