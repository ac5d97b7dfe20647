"""Copies between endpoints (policy-checked, audited) and the ls/cp/tags/rm command line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hpcai.storage import copy, filesystem, load, rm, save, tags
from hpcai.storage.testing import POLICY

import hpcai as xp
from hpcai.cli import main
from hpcai.errors import InvalidArgumentError, ResidencyError, StorageExistsError


@pytest.fixture
def env(endpoints_data: dict[str, Any], tmp_path: Path) -> Path:
    audit = tmp_path / "audit.jsonl"
    rules = [
        *POLICY["policy"]["rules"],
        {"name": "eu-only", "match": "residency=eu", "store": "jurisdiction=EU", "compute": "jurisdiction=EU"},
    ]
    xp.configure(data={**POLICY, **endpoints_data, "policy": {"rules": rules}, "audit": {"path": str(audit)}})
    return audit


def _unique(name: str) -> str:
    import uuid

    return f"{name}-{uuid.uuid4().hex[:8]}"


def test_copy_dataset_between_endpoints_keeps_values_and_tags(env: Path) -> None:
    p = _unique("ds")
    ref = np.arange(600.0).reshape(20, 30)
    save(xp.tag(xp.asarray(ref), residency="eu", origin="DE"), f"hpcai://onprem/{p}/x.zarr", chunks=(5, 10))
    calls: list[tuple[int, int]] = []
    r = copy(f"hpcai://onprem/{p}/x.zarr", f"hpcai://scratch/{p}/x.zarr", progress=lambda d, t: calls.append((d, t)))
    assert r.files == 12 + 1 + 1  # 12 chunks, the version's zarr.json, the pointer
    y = load(f"hpcai://scratch/{p}/x.zarr")
    np.testing.assert_array_equal(np.asarray(y._data), ref)
    assert dict(y.tags) == {"origin": frozenset({"DE"}), "residency": frozenset({"eu"})}
    assert calls[0] == (0, r.nbytes) and calls[-1] == (r.nbytes, r.nbytes)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    copies = [rec for rec in xp.audit.read(env) if rec["operation"] == "copy"]
    assert [(c["decision"], c["destination"], c["source"]) for c in copies] == [("allow", "scratch", "onprem")]


def test_refused_copy_leaves_destination_empty(env: Path) -> None:
    p = _unique("eu")
    save(xp.tag(xp.ones((10, 10)), residency="eu"), f"hpcai://onprem/{p}/x.zarr", chunks=(5, 5))
    filesystem("onprem", tags={"residency": "eu"}).pipe_file(f"{p}/notes.txt", b"eu only")
    for src in (f"hpcai://onprem/{p}/x.zarr", f"hpcai://onprem/{p}/notes.txt", f"hpcai://onprem/{p}"):
        with pytest.raises(ResidencyError, match="eu-only"):
            copy(src, f"hpcai://cloud/{p}/copy")
        assert not filesystem("cloud").exists(p)
    denied = [rec for rec in xp.audit.read(env) if rec["decision"] == "deny"]
    assert len(denied) == 3 and {d["destination"] for d in denied} == {"cloud"}


def test_mixed_directory_is_checked_per_tag_set(env: Path) -> None:
    p = _unique("mixed")
    filesystem("onprem").pipe_file(f"{p}/public.txt", b"public")
    filesystem("onprem", tags={"residency": "eu"}).pipe_file(f"{p}/private.txt", b"private")
    with pytest.raises(ResidencyError):
        copy(f"hpcai://onprem/{p}", f"hpcai://cloud/{p}")
    assert not filesystem("cloud").exists(p)  # not even the public file went first
    r = copy(f"hpcai://onprem/{p}/public.txt", f"hpcai://cloud/{p}/public.txt")
    assert r.nbytes == 6 and filesystem("cloud").cat_file(f"{p}/public.txt") == b"public"


def test_upload_and_download_local_files(env: Path, tmp_path: Path) -> None:
    p = _unique("up")
    src = tmp_path / "local.csv"
    src.write_text("a,b\n1,2\n")
    copy(str(src), f"hpcai://onprem/{p}/local.csv", tags={"residency": "eu"})
    assert dict(tags(f"hpcai://onprem/{p}/local.csv")) == {"residency": frozenset({"eu"})}
    with pytest.raises(ResidencyError):
        copy(str(src), f"hpcai://cloud/{p}/local.csv", tags={"residency": "eu"})
    out = tmp_path / "back.csv"
    copy(f"hpcai://onprem/{p}/local.csv", str(out))
    assert out.read_text() == "a,b\n1,2\n"
    xp.configure(data={**xp.get_config().data, "site": {"country": "US", "jurisdiction": "US", "provider": "x"}})
    with pytest.raises(ResidencyError):
        copy(f"hpcai://onprem/{p}/local.csv", str(tmp_path / "us.csv"))
    assert not (tmp_path / "us.csv").exists()


def test_copy_into_an_existing_directory_as_posix_cp_does(env: Path) -> None:
    p = _unique("dup")
    save(xp.ones(4), f"hpcai://onprem/{p}/a.zarr")
    filesystem("onprem").pipe_file(f"{p}/notes/n.txt", b"n")
    assert copy(f"hpcai://onprem/{p}/a.zarr", f"hpcai://scratch/{p}/a.zarr").destination == f"hpcai://scratch/{p}/a.zarr"
    # an existing directory is a destination to copy into, as with `cp -r`
    copy(f"hpcai://onprem/{p}/notes", f"hpcai://scratch/{p}/x")  # a new name: the copy is x
    assert filesystem("scratch").cat_file(f"{p}/x/n.txt") == b"n"
    r = copy(f"hpcai://onprem/{p}/notes", f"hpcai://scratch/{p}/x")
    assert r.destination == f"hpcai://scratch/{p}/x/notes"
    assert filesystem("scratch").cat_file(f"{p}/x/notes/n.txt") == b"n"
    # a saved dataset is one object: copying onto it replaces it (with overwrite), never nests inside it
    listing = sorted(filesystem("scratch").find(p))
    with pytest.raises(StorageExistsError, match=r"exists; pass overwrite=True \(--overwrite\)"):
        copy(f"hpcai://onprem/{p}/a.zarr", f"hpcai://scratch/{p}/a.zarr")
    assert sorted(filesystem("scratch").find(p)) == listing
    save(xp.full(4, 2.0), f"hpcai://onprem/{p}/a.zarr")
    assert copy(f"hpcai://onprem/{p}/a.zarr", f"hpcai://scratch/{p}/a.zarr", overwrite=True).destination == f"hpcai://scratch/{p}/a.zarr"
    np.testing.assert_array_equal(np.asarray(load(f"hpcai://scratch/{p}/a.zarr")._data), np.full(4, 2.0))
    # a trailing slash means "into": there the files exist, so nothing is written without overwrite
    with pytest.raises(StorageExistsError):
        copy(f"hpcai://onprem/{p}/a.zarr", f"hpcai://scratch/{p}/")
    # a file where a directory must go, and a directory where a file must go, are refused
    filesystem("scratch").pipe_file(f"{p}/plain.txt", b"x")
    with pytest.raises(InvalidArgumentError, match="in the way"):
        copy(f"hpcai://onprem/{p}/a.zarr", f"hpcai://scratch/{p}/plain.txt", overwrite=True)
    # the root of an endpoint receives the source under its own name
    q = _unique("root")
    filesystem("onprem").pipe_file(f"{q}/note.txt", b"n")
    assert copy(f"hpcai://onprem/{q}/note.txt", "hpcai://scratch").destination == "hpcai://scratch/note.txt"


def test_cli_cp_follows_posix_cp(env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The problems a new user met: an existing file overwritten silently; `cp URL .` failing;
    --overwrite into an empty directory raising IsADirectoryError and leaving a temporary file."""
    p = _unique("posix")
    filesystem("onprem").pipe_file(f"{p}/a.txt", b"old")
    filesystem("onprem").pipe_file(f"{p}/small.txt", b"small")
    other = tmp_path / "other.txt"
    other.write_bytes(b"new")
    assert main(["cp", "--no-progress", str(other), f"hpcai://onprem/{p}/a.txt"]) == 1
    err = capsys.readouterr().err
    assert "exists" in err and "--overwrite" in err and "Traceback" not in err
    assert filesystem("onprem").cat_file(f"{p}/a.txt") == b"old"
    assert main(["cp", "--no-progress", "--overwrite", str(other), f"hpcai://onprem/{p}/a.txt"]) == 0
    assert filesystem("onprem").cat_file(f"{p}/a.txt") == b"new"

    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["cp", "--no-progress", f"hpcai://onprem/{p}/small.txt", "."]) == 0
    assert f"to {here / 'small.txt'}" in capsys.readouterr().out
    assert (here / "small.txt").read_bytes() == b"small"
    assert main(["cp", "--no-progress", f"hpcai://onprem/{p}/small.txt", "."]) == 1  # exists now
    assert "--overwrite" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["cp", "--no-progress", "--overwrite", f"hpcai://onprem/{p}/small.txt", str(empty)]) == 0
    assert os.listdir(empty) == ["small.txt"]  # into it; no temporary file left
    blocked = tmp_path / "blocked"
    (blocked / "small.txt").mkdir(parents=True)
    assert main(["cp", "--no-progress", "--overwrite", f"hpcai://onprem/{p}/small.txt", str(blocked)]) == 1
    assert "in the way" in capsys.readouterr().err
    assert os.listdir(blocked) == ["small.txt"] and os.listdir(blocked / "small.txt") == []
    assert main(["cp", "--no-progress", f"hpcai://onprem/{p}/small.txt", str(tmp_path / "no" / "dir" / "x")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_cli_json_everywhere_including_errors(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = _unique("json")
    filesystem("onprem", tags={"residency": "eu"}).pipe_file(f"{p}/a.txt", b"abc")
    assert main(["cp", "--json", f"hpcai://onprem/{p}/a.txt", f"hpcai://scratch/{p}/a.txt"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["files"], out["bytes"], out["destination"]) == (True, 1, 3, f"hpcai://scratch/{p}/a.txt")
    assert out["tag_sets"] == [{"residency": ["eu"]}]
    assert main(["cp", "--json", f"hpcai://onprem/{p}/a.txt", f"hpcai://cloud/{p}/a.txt"]) == 3
    cap = capsys.readouterr()
    err = json.loads(cap.out)
    assert (err["ok"], err["exit_code"], err["error"], err["type"]) == (False, 3, "refused", "ResidencyError")
    assert "eu-only" in err["message"] and cap.err.startswith("hpcai: refused:")
    assert main(["rm", "--json", f"hpcai://scratch/{p}/a.txt"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "url": f"hpcai://scratch/{p}/a.txt", "files": 1}
    assert main(["rm", "--json", f"hpcai://scratch/{p}/a.txt"]) == 1
    err = json.loads(capsys.readouterr().out)
    assert (err["exit_code"], err["error"]) == (1, "error") and "does not exist" in err["message"]
    assert main(["untag", "--json", f"hpcai://onprem/{p}/a.txt", "residency", "--reason", "test"]) == 0
    assert json.loads(capsys.readouterr().out)["tags"] == {}
    with pytest.raises(SystemExit) as info:
        main(["cp", "--json", "--no-such-flag", "a", "b"])
    assert info.value.code == 2
    err = json.loads(capsys.readouterr().out)
    assert (err["exit_code"], err["error"]) == (2, "usage") and "--no-such-flag" in err["message"]
    key = tmp_path / "k.key"
    assert main(["audit", "keygen", "--json", str(key)]) == 0
    assert json.loads(capsys.readouterr().out)["key_file"] == str(key)


def test_cli_policy_explain_names_an_endpoint(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "explain", "--endpoint", "cloud", "--tags", "residency=eu", "--json"]) == 3
    d = json.loads(capsys.readouterr().out)
    assert (d["allowed"], d["op"], d["rule"], d["destination"]) == (False, "store", "eu-only", "endpoint cloud")
    assert d["attributes"]["jurisdiction"] == "US"
    assert main(["policy", "explain", "--endpoint", "onprem", "--tags", "residency=eu"]) == 0
    assert "ALLOW" in capsys.readouterr().out
    assert main(["policy", "explain", "--to", "onprem", "--op", "store", "--tags", "residency=eu"]) == 1
    assert "use --endpoint onprem" in capsys.readouterr().err
    assert main(["policy", "explain", "--endpoint", "nowhere", "--tags", "residency=eu"]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_fsspec_level_cross_endpoint_copy_is_checked(env: Path) -> None:
    import fsspec

    p = _unique("fs")
    fs = fsspec.filesystem("hpcai")
    filesystem("onprem", tags={"residency": "eu"}).pipe_file(f"{p}/a.bin", b"abc")
    fs.copy(f"onprem/{p}/a.bin", f"scratch/{p}/a.bin")
    assert dict(tags(f"hpcai://scratch/{p}/a.bin")) == {"residency": frozenset({"eu"})}
    with pytest.raises(ResidencyError):
        fs.copy(f"onprem/{p}/a.bin", f"cloud/{p}/a.bin")
    assert not filesystem("cloud").exists(f"{p}/a.bin")
    assert sorted(fs.ls("", detail=False)) == ["cloud", "onprem", "scratch"]


# -- the command line -------------------------------------------------------------------------
def test_cli_ls_tags_cp_rm(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = _unique("cli")
    save(xp.tag(xp.arange(12.0), residency="eu"), f"hpcai://onprem/{p}/x.zarr", chunks=(4,))
    filesystem("onprem").pipe_file(f"{p}/readme.txt", b"hello")
    assert main(["ls", f"hpcai://onprem/{p}"]) == 0
    out = capsys.readouterr().out
    assert "dataset" in out and f"hpcai://onprem/{p}/x.zarr" in out and "5 B" in out
    assert main(["ls", "--json", "--tags", f"hpcai://onprem/{p}"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {e["url"].rsplit("/", 1)[-1]: e["tags"] for e in listing} == {"readme.txt": {}, "x.zarr": {"residency": ["eu"]}}
    assert main(["tags", f"hpcai://onprem/{p}/x.zarr"]) == 0
    assert capsys.readouterr().out.strip() == "residency = eu"

    assert main(["cp", "--progress", f"hpcai://onprem/{p}/x.zarr", f"hpcai://scratch/{p}/x.zarr"]) == 0
    captured = capsys.readouterr()
    assert "100%|" in captured.err and "copied 5 file(s)" in captured.out  # tqdm's bar (the test extra has tqdm)
    np.testing.assert_array_equal(np.asarray(load(f"hpcai://scratch/{p}/x.zarr")._data), np.arange(12.0))

    assert main(["cp", "--no-progress", f"hpcai://onprem/{p}/x.zarr", f"hpcai://cloud/{p}/x.zarr"]) == 3  # refused
    err = capsys.readouterr().err
    assert "hpcai: refused:" in err and "eu-only" in err and "cloud" in err
    assert not filesystem("cloud").exists(p)

    assert main(["rm", f"hpcai://scratch/{p}/x.zarr"]) == 1
    assert "recursive" in capsys.readouterr().err
    assert main(["rm", "-r", f"hpcai://scratch/{p}/x.zarr"]) == 0
    assert not filesystem("scratch").exists(f"{p}/x.zarr")
    assert main(["tags", f"hpcai://onprem/{p}/missing.bin"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["ls", "hpcai://nowhere/x"]) == 1
    assert "unknown storage endpoint 'nowhere'" in capsys.readouterr().err


def test_rm_removes_dataset_pointer_first(env: Path) -> None:
    p = _unique("rm")
    save(xp.ones(6), f"hpcai://onprem/{p}/x.zarr", chunks=(2,))
    assert rm(f"hpcai://onprem/{p}/x.zarr", recursive=True) == 5
    assert not filesystem("onprem").exists(f"{p}/x.zarr")
    assert not filesystem("onprem").exists(p)


def test_recursive_fsspec_copy_checks_everything_first(env: Path) -> None:
    import fsspec

    p = _unique("rec")
    fs = fsspec.filesystem("hpcai")
    filesystem("onprem").pipe_file(f"{p}/a-public.txt", b"public")
    filesystem("onprem", tags={"residency": "eu"}).pipe_file(f"{p}/b-private.txt", b"private")
    with pytest.raises(ResidencyError):
        fs.copy(f"onprem/{p}", f"cloud/{p}", recursive=True)
    assert not filesystem("cloud").exists(p)
    fs.copy(f"onprem/{p}", f"scratch/{p}", recursive=True)
    assert sorted(filesystem("scratch").find(p)) == [f"{p}/a-public.txt", f"{p}/b-private.txt"]


def test_progress_bars_with_and_without_tqdm(env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    import hpcai._cli_storage as c

    p = _unique("bar")
    data = bytes(range(256)) * 4096  # 1 MiB
    for i in range(3):
        filesystem("onprem").pipe_file(f"{p}/f{i}.bin", data)
    assert main(["cp", "--progress", f"hpcai://onprem/{p}", f"hpcai://scratch/{p}"]) == 0
    err = capsys.readouterr().err
    assert "100%|" in err and "3.00M/3.00M" in err  # tqdm: bytes, binary units
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if tqdm were not installed
    assert isinstance(c.progress_callback(True), c._Bar)
    assert main(["cp", "--progress", f"hpcai://onprem/{p}", f"hpcai://scratch/{p}-2"]) == 0
    err = capsys.readouterr().err
    assert "100.0%" in err and "3.0 MiB/3.0 MiB" in err and err.endswith("\n")
    assert main(["rm", "-r", "--progress", f"hpcai://scratch/{p}-2"]) == 0
    assert "3 files/3 files" in capsys.readouterr().err
    # not a terminal and no --progress: silent
    assert main(["cp", f"hpcai://onprem/{p}", f"hpcai://scratch/{p}-3"]) == 0
    assert capsys.readouterr().err == ""
