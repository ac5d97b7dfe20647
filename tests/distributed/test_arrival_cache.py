"""The serializer's decision cache: an arrival like one already allowed is allowed without a new
decision, keyed by the exact guard text that arrived (tags and carried rules), never by
something a sender could make collide with an allowed decision."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import pytest

import hpcai as xp
import hpcai.distributed as hd
from hpcai.errors import ResidencyError

RULES = {
    "groups": {"eu": ["DE", "FR"]},
    "policy": {
        "rules": [
            {"name": "gdpr-personal", "match": "classification=personal", "compute": "country=@eu"}
        ]
    },
}


@pytest.fixture(autouse=True)
def eu(tmp_path: Path) -> Path:
    audit = tmp_path / "audit.jsonl"
    xp.configure(data={"site": {"country": "DE"}, **RULES, "audit": {"path": str(audit)}})
    return audit


def _arrived(header: dict[str, Any]) -> dict[str, Any]:
    """The header as distributed hands it to the deserializer: freshly unpacked."""
    return msgpack.unpackb(msgpack.packb(header), use_list=False)  # type: ignore[no-any-return]


def _receives(audit: Path) -> int:
    if not audit.exists():
        return 0
    return sum(
        1
        for line in audit.read_text().splitlines()
        if json.loads(line).get("operation") == "dask-receive"
    )


def _with_guard(header: dict[str, Any], **changes: Any) -> dict[str, Any]:
    g = json.loads(header["guard"])
    g.update(changes)
    return {**header, "guard": json.dumps(g, sort_keys=True, separators=(",", ":"))}


def test_an_allowed_arrival_is_decided_and_audited_once(eu: Path) -> None:
    x = xp.tag(xp.arange(6.0), classification="personal")
    header, frames = hd._serialize(x)
    counts = []
    for _ in range(5):
        y = hd._deserialize(_arrived(header), frames)
        assert isinstance(y, xp.Array) and dict(y.tags) == {
            "classification": frozenset({"personal"})
        }
        assert float(xp.sum(xp.untag(y, "classification", reason="test"))) == 15.0
        counts.append(_receives(eu))
    # the first arrival is decided under this process's policy and under the carried rules
    # (a record each); the next ones reuse the decision
    assert counts[0] >= 1 and counts == counts[:1] * 5


def test_a_header_with_a_changed_rule_gets_a_fresh_decision(eu: Path) -> None:
    """An allowed arrival is cached; the same data with its carried rule tampered with (now
    requiring a US site) is another key: decided afresh, and refused here."""
    x = xp.tag(xp.ones(3), classification="personal")
    header, frames = hd._serialize(x)
    assert isinstance(hd._deserialize(_arrived(header), frames), xp.Array)  # allowed, cached
    allowed = _receives(eu)
    carried = json.loads(header["guard"])["carried"]
    carried["rules"][0]["compute"] = "country=US"
    tampered = _with_guard(header, carried=carried)
    y = hd._deserialize(_arrived(tampered), frames)
    assert isinstance(y, hd.RefusedData)
    with pytest.raises(ResidencyError, match="gdpr-personal"):
        y + 1
    # the cached allowance of the untampered header is still there, and still used
    assert isinstance(hd._deserialize(_arrived(header), frames), xp.Array)
    assert _receives(eu) > allowed  # the tampered header was decided (and its refusal audited)
    again = _receives(eu)
    assert isinstance(hd._deserialize(_arrived(tampered), frames), hd.RefusedData)
    assert _receives(eu) > again  # refusals are never cached: decided again each time


def test_a_changed_tag_or_chunk_device_gets_a_fresh_decision(tmp_path: Path) -> None:
    cfg = {
        "site": {"country": "DE"},
        **RULES,
        "audit": {"path": str(tmp_path / "a.jsonl")},
        "devices": {"emulated:1": {"attributes": {"country": "US"}}},
    }
    xp.configure(data=cfg)
    x = xp.ones(3)  # untagged: allowed anywhere, and cached
    header, frames = hd._serialize(x)
    assert isinstance(hd._deserialize(_arrived(header), frames), xp.Array)
    # the same header claiming covered tags, with the rules that cover them: decided (allowed in DE)
    covered = hd._serialize(xp.tag(x, classification="personal"))[0]
    assert json.loads(covered["guard"])["tags"] == {"classification": ["personal"]}
    assert isinstance(hd._deserialize(_arrived(covered), frames), xp.Array)
    # the sender's device in the header decides nothing: the chunk lands on this process's
    # chunk device (numpy:cpu here, in DE), so a header naming a US device is still allowed
    us = {**covered, "device": "emulated:1"}
    y = hd._deserialize(_arrived(us), frames)
    assert isinstance(y, xp.Array) and str(y.device) == "numpy:cpu"
    # this process's chunk device is the US one: the same header is decided afresh and refused
    xp.configure(data={**cfg, "dask": {"chunk_device": "emulated:1"}})
    assert isinstance(hd._deserialize(_arrived(covered), frames), hd.RefusedData)
    untagged = hd._deserialize(_arrived(header), frames)  # untagged data lands there
    assert isinstance(untagged, xp.Array) and str(untagged.device) == "emulated:1"


def test_a_configuration_change_empties_the_cache(tmp_path: Path) -> None:
    x = xp.tag(xp.ones(3), classification="personal")
    header, frames = hd._serialize(x)
    assert isinstance(hd._deserialize(_arrived(header), frames), xp.Array)
    xp.configure(
        data={"site": {"country": "US"}, **RULES, "audit": {"path": str(tmp_path / "us.jsonl")}}
    )
    assert isinstance(hd._deserialize(_arrived(header), frames), hd.RefusedData)


def test_the_sender_carries_the_rules_of_the_current_policy(tmp_path: Path) -> None:
    x = xp.tag(xp.ones(3), classification="personal")
    before = json.loads(hd._serialize(x)[0]["guard"])["carried"]
    assert before["rules"][0]["compute"] == "country=@eu"
    rules = {
        "policy": {
            "rules": [
                {"name": "fr-only", "match": "classification=personal", "compute": "country=FR"}
            ]
        }
    }
    xp.configure(
        data={"site": {"country": "FR"}, **rules, "audit": {"path": str(tmp_path / "fr.jsonl")}}
    )
    after = json.loads(hd._serialize(x)[0]["guard"])["carried"]
    assert [r["name"] for r in after["rules"]] == ["fr-only"]


@pytest.mark.parametrize(
    "guard", [None, "", "not json", "[]", '{"tags": []}', '{"tags": {}, "carried": 3}', ["x"]]
)
def test_a_malformed_guard_is_refused(guard: Any) -> None:
    header, frames = hd._serialize(xp.tag(xp.ones(3), classification="personal"))
    bad = {k: v for k, v in header.items() if k != "guard"}
    if guard is not None:
        bad["guard"] = guard
    y = hd._deserialize(bad, frames)
    assert isinstance(y, hd.RefusedData)
    with pytest.raises(ResidencyError, match="malformed"):
        _ = y.shape
