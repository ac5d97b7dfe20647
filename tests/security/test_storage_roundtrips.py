"""Issue 11, class 7: round trips through places hpcai does not watch.

The three flows that took personal data to the US cloud untagged: a download to a local
directory and an upload from it (``hpcai cp`` twice); dask's ``from_zarr(...).to_zarr(...)``;
and byte copies chunk by chunk (``cloud.pipe_file(f, onprem.cat_file(f))``). Each test runs the
flow as an attacker would and observes the cloud endpoint's objects and the audit log; where
the data may go (the EU archive), it observes that the tags arrived with it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hpcai.storage import copy, filesystem, load, save, tags, taint, untaint

import hpcai as xp
from hpcai.cli import main
from hpcai.errors import InvalidArgumentError, ResidencyError

PERSONAL = {"classification": "personal"}
TAGGED = {"classification": frozenset({"personal"})}


def _strip_local_records(root: Path) -> None:
    """Remove what a download records beside the files (xattrs, sidecars): only the data is left."""
    for p in [root, *root.rglob("*")] if root.is_dir() else [root]:
        if p.name.startswith(".hpcai-tags."):
            p.unlink()
            continue
        for n in os.listxattr(p):
            if n.startswith("user.hpcai."):
                os.removexattr(p, n)


def test_download_then_upload_with_hpcai_cp(world: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = world
    ref = np.arange(24.0).reshape(4, 6)
    save(xp.tag(xp.asarray(ref), **PERSONAL), w.url("onprem", "p.zarr"), chunks=(2, 3))
    local = tmp_path / "local.zarr"
    assert main(["cp", "--no-progress", w.url("onprem", "p.zarr"), str(local)]) == 0  # allowed: the host is in the EU
    w.configure()  # a new configuration, as a new `hpcai` process: nothing remembered in memory
    assert main(["cp", "--no-progress", str(local), w.url("cloud", "p.zarr")]) == 3
    assert "gdpr-personal" in capsys.readouterr().err
    assert w.raw_list("cloud") == []
    # without the records the download left beside the files, the zarr attributes still carry the tags
    _strip_local_records(local)
    assert main(["cp", "--no-progress", str(local), w.url("cloud", "p.zarr")]) == 3
    assert w.raw_list("cloud") == []
    assert [(r["operation"], r["source"]) for r in w.denials("cloud")] == [("copy", "local"), ("copy", "local")]
    # where it may go, it arrives tagged
    assert main(["cp", "--no-progress", str(local), w.url("archive", "p.zarr")]) == 0
    y = load(w.url("archive", "p.zarr"))
    assert dict(y.tags) == TAGGED
    np.testing.assert_array_equal(np.asarray(y._data), ref)


def test_download_then_upload_of_a_tagged_file(world: Any, tmp_path: Path) -> None:
    w = world
    filesystem("onprem", tags=PERSONAL).pipe_file(w.path("records.csv"), b"name,born\nJane,1970\n")
    local = tmp_path / "records.csv"
    copy(w.url("onprem", "records.csv"), str(local))
    w.configure()
    with pytest.raises(ResidencyError, match="gdpr-personal"):
        copy(str(local), w.url("cloud", "records.csv"))
    fs = filesystem("cloud")
    with pytest.raises(ResidencyError):
        fs.put_file(str(local), w.path("records.csv"))  # fsspec's upload honours them too
    assert w.raw_list("cloud") == []
    copy(str(local), w.url("archive", "records.csv"))
    assert w.raw_tags("archive", "records.csv") == {"classification": ["personal"]}


def test_dask_from_zarr_to_zarr(world: Any) -> None:
    da = pytest.importorskip("dask.array")
    import zarr

    w = world
    ref = np.arange(144.0).reshape(12, 12)
    save(xp.tag(xp.asarray(ref), **PERSONAL), w.url("onprem", "p.zarr"), chunks=(4, 4))
    head = zarr.open_group(w.url("onprem", "p.zarr"), mode="r").attrs["hpcai"]["head"]
    src = da.from_zarr(w.url("onprem", f"p.zarr/{head}"))
    with pytest.raises(ResidencyError, match="read-taint") as info:
        src.to_zarr(w.url("cloud", "p.zarr"))
    assert "gdpr-personal" in str(info.value) and w.url("onprem", "p.zarr") in str(info.value)
    assert w.raw_list("cloud") == []
    assert {r["destination"] for r in w.denials()} == {"cloud"}
    # tracked where it is allowed to go: every object written carries the tags
    src.to_zarr(w.url("archive", "copy.zarr"))
    assert dict(tags(w.url("archive", "copy.zarr"))) == TAGGED
    for obj in w.raw_list("archive"):
        if not obj.rsplit("/", 1)[-1].startswith(".hpcai-") and (w.kind == "s3" or obj.endswith("zarr.json")):
            assert w.raw_tags("archive", obj[len(w.prefix) + 1:]) == {"classification": ["personal"]}, obj
    y = load(w.url("archive", "copy.zarr"))
    assert dict(y.tags) == TAGGED
    np.testing.assert_array_equal(np.asarray(y._data), ref)


def test_plain_zarr_read_then_write(world: Any) -> None:
    import zarr

    w = world
    save(xp.tag(xp.arange(10.0), **PERSONAL), w.url("onprem", "p.zarr"), chunks=(5,))
    head = json.loads(w.raw_get("onprem", "p.zarr/zarr.json"))["attributes"]["hpcai"]["head"]
    values = zarr.open_array(w.url("onprem", f"p.zarr/{head}"), mode="r")[...]
    with pytest.raises(ResidencyError):
        zarr.create_array(w.url("cloud", "p.zarr"), data=values, chunks=(5,))
    with pytest.raises(ResidencyError):  # an hpcai array made from those values carries no tags; save adds them
        save(xp.asarray(values), w.url("cloud", "p2.zarr"))
    assert w.raw_list("cloud") == []


def test_byte_copies_chunk_by_chunk(world: Any) -> None:
    import fsspec

    w = world
    save(xp.tag(xp.arange(20.0), **PERSONAL), w.url("onprem", "p.zarr"), chunks=(5,))
    onprem, cloud = filesystem("onprem"), filesystem("cloud")
    files = onprem.find(w.path("p.zarr"))
    chunks = [f for f in files if not f.endswith("zarr.json")]  # the data; metadata is easy to recreate
    assert len(files) == 6 and len(chunks) == 4
    with pytest.raises(ResidencyError, match="read-taint"):
        for f in chunks:
            cloud.pipe_file(f, onprem.cat_file(f))
    hp = fsspec.filesystem("hpcai")
    with pytest.raises(ResidencyError):
        for f in chunks:
            hp.pipe_file(f"cloud/{f}", hp.cat_file(f"onprem/{f}"))
    assert w.raw_list("cloud") == []
    assert dict(taint()) == TAGGED
    # allowed places get the bytes tagged
    for f in files:
        filesystem("archive").pipe_file(f, onprem.cat_file(f))
    assert dict(load(w.url("archive", "p.zarr")).tags) == TAGGED


def test_untaint_is_audited(world: Any) -> None:
    w = world
    filesystem("onprem", tags=PERSONAL).pipe_file(w.path("p.bin"), b"personal")
    assert filesystem("onprem").cat_file(w.path("p.bin")) == b"personal"
    with pytest.raises(ResidencyError):
        filesystem("cloud").pipe_file(w.path("stats.txt"), b"42 rows")
    with pytest.raises(InvalidArgumentError, match="reason"):
        untaint(reason="")
    assert dict(untaint(reason="stats.txt holds only a row count")) == TAGGED
    filesystem("cloud").pipe_file(w.path("stats.txt"), b"42 rows")
    assert w.raw_list("cloud") == [w.path("stats.txt")]
    rec = [r for r in w.audit() if r["operation"] == "untaint"]
    assert len(rec) == 1 and rec[0]["reason"] == "stats.txt holds only a row count"
    assert rec[0]["removed"] == {"classification": ["personal"]} and w.url("onprem", "p.bin") in rec[0]["source"]


def test_hpcai_loaders_and_copies_do_not_taint(world: Any) -> None:
    w = world
    save(xp.tag(xp.arange(4.0), **PERSONAL), w.url("onprem", "p.zarr"))
    y = load(w.url("onprem", "p.zarr"))  # a tagged array: the tags travel with it, not the process
    copy(w.url("onprem", "p.zarr"), w.url("archive", "p.zarr"))
    assert dict(taint()) == {}
    filesystem("cloud").pipe_file(w.path("unrelated.txt"), b"public")
    assert w.raw_get("cloud", "unrelated.txt") == b"public"
    with pytest.raises(ResidencyError):
        save(y, w.url("cloud", "p.zarr"))
    assert w.raw_list("cloud") == [w.path("unrelated.txt")]
