"""The demo environment, the hpcai:// protocol's options, pandas, and small API contracts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pytest
from hpcai.storage import demo_environment, filesystem, load, save
from hpcai.storage._demo import DEMO_KEY_ENV, DEMO_SECRET_ENV

import hpcai as xp
from hpcai.errors import InvalidArgumentError, ResidencyError


def test_demo_environment_starts_and_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEMO_KEY_ENV, raising=False)
    monkeypatch.delenv(DEMO_SECRET_ENV, raising=False)
    with demo_environment() as env:
        assert sorted(env.endpoints) == ["cloud", "onprem", "scratch"]
        assert os.environ[DEMO_KEY_ENV] and os.environ[DEMO_SECRET_ENV]
        xp.configure(data={
            **env.config(),
            "policy": {"rules": [{"name": "eu", "match": "origin=DE", "store": "jurisdiction=EU"}]},
            "audit": {"path": str(env.directory / "audit.jsonl")},
        })
        x = xp.tag(xp.arange(5.0), origin="DE")
        save(x, "hpcai://onprem/demo/x.zarr")
        np.testing.assert_array_equal(np.asarray(load("hpcai://onprem/demo/x.zarr")._data), np.arange(5.0))
        with pytest.raises(ResidencyError):
            save(x, "hpcai://cloud/demo/x.zarr")
        save(x, "hpcai://scratch/demo/x.zarr")
        directory = env.directory
        server = env.servers["onprem"]
    assert not directory.exists()
    assert DEMO_KEY_ENV not in os.environ and DEMO_SECRET_ENV not in os.environ
    import socket

    with pytest.raises(OSError):
        socket.create_connection((server.host, server.port), timeout=1).close()


def test_protocol_options_are_checked(tmp_path: Path) -> None:
    xp.configure(data={"endpoints": {"s": {"url": f"file://{tmp_path}"}}})
    with pytest.raises(InvalidArgumentError, match="key.*endpoints"):
        fsspec.filesystem("hpcai", key="AKIA...")
    with pytest.raises(InvalidArgumentError, match="names no endpoint"):
        fsspec.filesystem("hpcai").cat_file("hpcai:///x")
    with pytest.raises(InvalidArgumentError, match="written whole"):
        filesystem("s").open("a.txt", "ab")
    with pytest.raises(InvalidArgumentError, match="filesystem\\('s'\\)"):
        filesystem("hpcai://s/x")


def test_save_argument_errors(tmp_path: Path) -> None:
    xp.configure(data={"endpoints": {"s": {"url": f"file://{tmp_path}"}}})
    with pytest.raises(InvalidArgumentError, match="chunks must be"):
        save(xp.ones((4, 4)), "hpcai://s/a.zarr", chunks=(2,))
    with pytest.raises(TypeError, match="expected an hpcai Array"):
        save([1, 2, 3], "hpcai://s/a.zarr")
    with pytest.raises(InvalidArgumentError, match="endpoint root"):
        save(xp.ones(2), "hpcai://s")
    filesystem("s").pipe_file("plain.bin", b"x")
    with pytest.raises(InvalidArgumentError, match="is a file"):
        save(xp.ones(2), "hpcai://s/plain.bin")
    import zarr

    zarr.create_array(str(tmp_path / "foreign.zarr"), shape=(2,), dtype="int8")
    with pytest.raises(InvalidArgumentError, match="not saved by"):
        save(xp.ones(2), "hpcai://s/foreign.zarr")
    assert load("hpcai://s/foreign.zarr").shape == (2,)  # but plain zarr arrays load


def test_pandas_reads_and_writes_hpcai_urls(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    xp.configure(data={
        "endpoints": {"s": {"url": f"file://{tmp_path}", "attributes": {"country": "DE"}}},
        "policy": {"rules": [{"name": "no-store", "match": "classification=secret", "store": "country=nowhere"}]},
    })
    df = pd.DataFrame({"a": [1, 2], "b": [3.5, 4.5]})
    df.to_csv("hpcai://s/t.csv", index=False, storage_options={"tags": {"origin": "DE"}})
    pd.testing.assert_frame_equal(pd.read_csv("hpcai://s/t.csv"), df)
    with pytest.raises(ResidencyError):
        df.to_csv("hpcai://s/secret.csv", storage_options={"tags": {"classification": "secret"}})
    assert not (tmp_path / "secret.csv").exists()


def test_text_and_many_file_helpers(tmp_path: Path) -> None:
    xp.configure(data={"endpoints": {"s": {"url": f"file://{tmp_path}"}}})
    fs: Any = fsspec.filesystem("hpcai")
    fs.pipe({"s/d/a.txt": b"A", "s/d/b.txt": b"B"})
    assert fs.cat(["s/d/a.txt", "s/d/b.txt"]) == {"s/d/a.txt": b"A", "s/d/b.txt": b"B"}
    assert sorted(fs.glob("s/d/*.txt")) == ["s/d/a.txt", "s/d/b.txt"]
    assert fs.du("s/d") == 2
    fs.mv("s/d/a.txt", "s/d/c.txt")
    assert sorted(fs.find("s")) == ["s/d/b.txt", "s/d/c.txt"]
    local = tmp_path.parent / f"{tmp_path.name}-get.txt"
    fs.get_file("s/d/b.txt", str(local))
    assert local.read_bytes() == b"B"
    fs.put_file(str(local), "s/up/b.txt")
    assert fs.cat_file("s/up/b.txt") == b"B"
