"""Issue 11, class 6: stored tags stripped by an allowed write.

Each test is the attack: an allowed write (through hpcai, untagged) that used to make tagged
data read as untagged, followed by the flows that then took it to the cloud (``st.copy``,
``hpcai cp``, ``st.load`` + ``st.save``). Each observes the storage itself: the bytes on the
cloud endpoint, the tags as the backend holds them, the audit log.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hpcai.storage import copy, filesystem, load, save, tags, untag

import hpcai as xp
from hpcai.cli import main
from hpcai.errors import InvalidArgumentError, ResidencyError

PERSONAL = {"classification": "personal"}
GROUP_JSON = json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}).encode()


def _zarr_objects(n: int = 4, chunk: int = 2) -> dict[str, bytes]:
    """The objects of a small plain zarr v3 array (metadata without hpcai attributes, chunks)."""
    import zarr

    store = zarr.storage.MemoryStore()
    a = zarr.create_array(store, shape=(n,), chunks=(chunk,), dtype="int32", compressors=None)
    a[...] = np.arange(n, dtype="int32") + 100
    return {k: v.to_bytes() for k, v in store._store_dict.items()}


def _cloud_untouched(world: Any) -> None:
    assert world.raw_list("cloud") == [], "personal data reached the US cloud endpoint"


def test_untagged_zarr_json_next_to_a_tagged_file(world: Any, capsys: pytest.CaptureFixture[str]) -> None:
    w = world
    filesystem("onprem", tags=PERSONAL).pipe_file(w.path("d/p.bin"), b"Jane Doe, 1970-01-01")
    # the attack: an allowed, untagged write of zarr metadata beside the tagged file
    filesystem("onprem").pipe_file(w.path("d/zarr.json"), GROUP_JSON)
    assert w.raw_tags("onprem", "d/p.bin") == {"classification": ["personal"]}
    assert dict(tags(w.url("onprem", "d/p.bin"))) == {"classification": frozenset({"personal"})}
    with pytest.raises(ResidencyError, match="gdpr-personal"):
        copy(w.url("onprem", "d/p.bin"), w.url("cloud", "d/p.bin"))
    assert main(["cp", "--no-progress", w.url("onprem", "d"), w.url("cloud", "d")]) == 3
    assert "gdpr-personal" in capsys.readouterr().err
    _cloud_untouched(w)
    assert len(w.denials("cloud")) == 2


def test_untagged_array_metadata_over_tagged_chunks(world: Any) -> None:
    """Tagged chunks, then an untagged ``zarr.json`` that makes them an array: ``load`` carries the tags."""
    w = world
    objs = _zarr_objects()
    tagged = filesystem("onprem", tags=PERSONAL)
    for k, v in objs.items():
        if k != "zarr.json":
            tagged.pipe_file(w.path(f"a/{k}"), v)
    filesystem("onprem").pipe_file(w.path("a/zarr.json"), objs["zarr.json"])  # the attack
    assert json.loads(w.raw_get("onprem", "a/zarr.json")).get("attributes", {}) == {}
    assert w.raw_tags("onprem", "a/zarr.json") == {"classification": ["personal"]}  # took its chunks' tags
    y = load(w.url("onprem", "a"))
    np.testing.assert_array_equal(np.asarray(y._data), np.arange(4) + 100)
    assert dict(y.tags) == {"classification": frozenset({"personal"})}
    with pytest.raises(ResidencyError, match="gdpr-personal"):
        save(y, w.url("cloud", "a.zarr"))
    with pytest.raises(ResidencyError, match="gdpr-personal"):
        copy(w.url("onprem", "a"), w.url("cloud", "a"))
    _cloud_untouched(w)


def test_rewriting_the_dataset_pointer_without_tags(world: Any, capsys: pytest.CaptureFixture[str]) -> None:
    w = world
    save(xp.tag(xp.arange(6.0), **PERSONAL), w.url("onprem", "p.zarr"), chunks=(3,))
    pointer = json.loads(w.raw_get("onprem", "p.zarr/zarr.json"))
    pointer["attributes"]["hpcai"]["tags"] = {}
    # the attack: an allowed, untagged rewrite of the pointer, naming the same version
    filesystem("onprem").pipe_file(w.path("p.zarr/zarr.json"), json.dumps(pointer).encode())
    assert json.loads(w.raw_get("onprem", "p.zarr/zarr.json"))["attributes"]["hpcai"]["tags"] == {}
    assert w.raw_tags("onprem", "p.zarr/zarr.json") == {"classification": ["personal"]}  # kept with the object
    assert dict(tags(w.url("onprem", "p.zarr"))) == {"classification": frozenset({"personal"})}
    y = load(w.url("onprem", "p.zarr"))
    assert dict(y.tags) == {"classification": frozenset({"personal"})}
    with pytest.raises(ResidencyError):
        save(y, w.url("cloud", "p.zarr"))
    with pytest.raises(ResidencyError):
        copy(w.url("onprem", "p.zarr"), w.url("cloud", "p.zarr"))
    assert main(["cp", "--no-progress", w.url("onprem", "p.zarr"), w.url("cloud", "p.zarr")]) == 3
    capsys.readouterr()
    _cloud_untouched(w)
    assert {r["operation"] for r in w.denials("cloud")} == {"save", "copy"}


def test_pointer_stripped_behind_hpcais_back_still_loads_tagged(world: Any) -> None:
    """Defence in depth: the version's own ``zarr.json`` still carries the tags ``load`` decides on."""
    w = world
    save(xp.tag(xp.arange(4.0), **PERSONAL), w.url("onprem", "q.zarr"))
    pointer = json.loads(w.raw_get("onprem", "q.zarr/zarr.json"))
    pointer["attributes"]["hpcai"]["tags"] = {}
    w.raw_put("onprem", "q.zarr/zarr.json", json.dumps(pointer).encode())  # no object tags, no xattrs
    y = load(w.url("onprem", "q.zarr"))
    assert dict(y.tags) == {"classification": frozenset({"personal"})}
    with pytest.raises(ResidencyError):
        save(y, w.url("cloud", "q.zarr"))
    with pytest.raises(ResidencyError):
        copy(w.url("onprem", "q.zarr"), w.url("cloud", "q.zarr"))
    _cloud_untouched(w)


def test_storage_options_tags_are_honoured_on_read(world: Any) -> None:
    """zarr through hpcai:// with storage_options={"tags": ...}: the tags live on the objects only."""
    import zarr

    w = world
    z = zarr.create_array(w.url("onprem", "so.zarr"), shape=(4,), chunks=(2,), dtype="int32",
                          storage_options={"tags": PERSONAL})
    z[...] = np.arange(4, dtype="int32")
    meta = json.loads(w.raw_get("onprem", "so.zarr/zarr.json"))
    assert "hpcai" not in (meta.get("attributes") or {})  # nothing in the zarr attributes
    assert w.raw_tags("onprem", "so.zarr/zarr.json") == {"classification": ["personal"]}
    assert dict(tags(w.url("onprem", "so.zarr"))) == {"classification": frozenset({"personal"})}
    y = load(w.url("onprem", "so.zarr"))
    assert dict(y.tags) == {"classification": frozenset({"personal"})}
    with pytest.raises(ResidencyError):
        save(y, w.url("cloud", "so.zarr"))
    with pytest.raises(ResidencyError):
        copy(w.url("onprem", "so.zarr"), w.url("cloud", "so.zarr"))
    _cloud_untouched(w)


def test_xarray_storage_options_tags_are_honoured(world: Any) -> None:
    xr = pytest.importorskip("xarray")
    w = world
    ds = xr.Dataset({"t": ("x", np.arange(4.0))})
    ds.to_zarr(w.url("onprem", "xr.zarr"), storage_options={"tags": PERSONAL}, zarr_format=3, consolidated=False)
    assert dict(tags(w.url("onprem", "xr.zarr/t"))) == {"classification": frozenset({"personal"})}
    with pytest.raises(ResidencyError):
        copy(w.url("onprem", "xr.zarr"), w.url("cloud", "xr.zarr"))
    _cloud_untouched(w)


def test_a_second_metadata_write_merges_tags(world: Any) -> None:
    w = world
    meta = {"zarr_format": 3, "node_type": "group", "attributes": {"hpcai": {"tags": {"classification": ["personal"]}}}}
    fs = filesystem("onprem")
    fs.pipe_file(w.path("g/zarr.json"), json.dumps(meta).encode())
    meta["attributes"]["hpcai"]["tags"] = {"origin": ["DE"]}
    fs.pipe_file(w.path("g/zarr.json"), json.dumps(meta).encode())
    assert dict(tags(w.url("onprem", "g"))) == {
        "classification": frozenset({"personal"}), "origin": frozenset({"DE"})}
    fs.pipe_file(w.path("g/data.bin"), b"inside the group")
    with pytest.raises(ResidencyError):
        copy(w.url("onprem", "g/data.bin"), w.url("cloud", "data.bin"))
    _cloud_untouched(w)


def test_only_an_audited_untag_removes_a_tag(world: Any) -> None:
    w = world
    filesystem("onprem", tags=PERSONAL).pipe_file(w.path("f.bin"), b"record")
    with pytest.raises(InvalidArgumentError, match="reason"):
        untag(w.url("onprem", "f.bin"), "classification", reason=" ")
    with pytest.raises(InvalidArgumentError, match="no tag 'origin'"):
        untag(w.url("onprem", "f.bin"), "origin", reason="x")
    assert not [r for r in w.audit() if r["operation"] == "untag"]
    assert w.raw_tags("onprem", "f.bin") == {"classification": ["personal"]}

    left = untag(w.url("onprem", "f.bin"), "classification", reason="anonymised (ticket 42)")
    assert dict(left) == {}
    assert w.raw_tags("onprem", "f.bin") == {}
    rec = [r for r in w.audit() if r["operation"] == "untag"]
    assert len(rec) == 1
    assert (rec[0]["reason"], rec[0]["removed"], rec[0]["dataset"]) == (
        "anonymised (ticket 42)", {"classification": ["personal"]}, w.url("onprem", "f.bin"))
    copy(w.url("onprem", "f.bin"), w.url("cloud", "f.bin"))
    assert w.raw_get("cloud", "f.bin") == b"record"
    assert xp.audit.verify(w.audit_path)


def test_untag_of_a_dataset_with_the_cli(world: Any, capsys: pytest.CaptureFixture[str]) -> None:
    w = world
    save(xp.tag(xp.arange(8.0), **PERSONAL), w.url("onprem", "d.zarr"), chunks=(4,))
    head = json.loads(w.raw_get("onprem", "d.zarr/zarr.json"))["attributes"]["hpcai"]["head"]
    with pytest.raises(InvalidArgumentError, match="enclosing zarr node"):  # a chunk's tag is its node's
        untag(w.url("onprem", f"d.zarr/{head}/c/0"), "classification", reason="x")
    with pytest.raises(SystemExit):  # --reason is required
        main(["untag", w.url("onprem", "d.zarr"), "classification"])
    assert main(["untag", w.url("onprem", "d.zarr"), "classification", "--reason", "k-anonymised, job 7"]) == 0
    assert "untagged classification" in capsys.readouterr().out
    assert dict(tags(w.url("onprem", "d.zarr"))) == {}
    for obj in w.raw_list("onprem"):
        rel = obj[len(w.prefix) + 1:]
        if obj.rsplit("/", 1)[-1].startswith(".hpcai-"):
            continue
        assert w.raw_tags("onprem", rel) == {}, obj
        if rel.endswith("zarr.json"):
            assert json.loads(w.raw_get("onprem", rel))["attributes"]["hpcai"]["tags"] == {}
    assert dict(load(w.url("onprem", "d.zarr")).tags) == {}
    copy(w.url("onprem", "d.zarr"), w.url("cloud", "d.zarr"))
    assert w.raw_list("cloud")
    rec = [r for r in w.audit() if r["operation"] == "untag"]
    assert [r["reason"] for r in rec] == ["k-anonymised, job 7"] and rec[0]["files"] == 4
