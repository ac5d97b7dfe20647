"""The ``dask`` device on the embedded default cluster (an in-process LocalCluster: one site, the
workers share this process's configuration), the ``[dask]`` section, and what the device
refuses or does not support."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

import hpcai as xp
from hpcai.errors import ConfigError, DTypeError, InvalidArgumentError, ResidencyError

RULE = """
[[policy.rules]]
name = "gdpr-personal"
match = "classification=personal"
compute = "jurisdiction=EU"
"""


@pytest.fixture(scope="module", autouse=True)
def _close() -> Iterator[None]:
    yield
    xp.dask.close()


@pytest.fixture
def eu(config: object, tmp_path: Path) -> None:
    config(f'[site]\njurisdiction = "EU"\n[audit]\npath = "{tmp_path / "audit.jsonl"}"\n' + RULE)  # type: ignore[operator]


def test_untagged_pipeline_on_the_embedded_cluster() -> None:
    h = np.arange(48.0).reshape(6, 8)
    x = xp.asarray(h)
    d = x.to_device("dask")
    assert d.device == "dask" and not d.tags
    assert xp.dask.client().cluster is not None  # the embedded LocalCluster
    with xp.transfers() as log:
        out = (xp.sqrt(d) @ xp.matrix_transpose(d) + 1).to_device("numpy:cpu")
    assert [(t.source, t.destination, t.path) for t in log] == [("dask", "numpy:cpu", "placed")]
    np.testing.assert_allclose(np.asarray(out), np.sqrt(h) @ h.T + 1)
    y = xp.asarray([[1.0, 2.0], [3.0, 4.0]], device="dask")
    assert float(xp.max(y).to_device("numpy:cpu")) == 4.0
    assert xp.all(xp.asarray([True, True], device="dask")).to_device("numpy:cpu")
    s = xp.stack([y, y * 2], axis=0)
    np.testing.assert_allclose(np.asarray(xp.sum(s, axis=(1, 2)).to_device("numpy:cpu")), [10.0, 20.0])
    assert xp.reshape(xp.dask.from_array(x, chunks=(3, 8)), (48,)).to_device("numpy:cpu").shape == (48,)


def test_tagged_data_on_a_one_site_cluster(eu: None, tmp_path: Path) -> None:
    x = xp.tag(xp.ones((4, 4)), classification="personal")
    d = xp.dask.from_array(x, chunks=2)
    assert dict(d.tags) == {"classification": frozenset({"personal"})}
    assert xp.dask.allowed_workers(d) == xp.dask.allowed_workers(None)  # every embedded worker is at this site
    r = xp.var(d * 3.0).to_device("numpy:cpu")
    assert dict(r.tags) == {"classification": frozenset({"personal"})}
    t = xp.asarray([1.0, 2.0], device="dask", tags={"classification": "personal"})
    assert dict(t.tags) == {"classification": frozenset({"personal"})}
    assert "dask" in (tmp_path / "audit.jsonl").read_text()  # the moves were audited


def test_a_refused_move_off_the_cluster_cancels_the_started_computation(config: object, tmp_path: Path) -> None:
    """The cluster starts computing a result while the move back is decided and audited; a
    refused move cancels that computation and nothing reaches the destination."""
    config(  # type: ignore[operator]
        f'[site]\njurisdiction = "EU"\n[audit]\npath = "{tmp_path / "audit.jsonl"}"\n'
        '[devices."emulated:1".attributes]\njurisdiction = "US"\n' + RULE
    )
    d = xp.dask.from_array(xp.tag(xp.ones((4, 4)), classification="personal"), chunks=2)
    y = xp.sum(d * 2.0)
    client = xp.dask.client()
    before = set(client.futures)
    with xp.transfers() as log, pytest.raises(ResidencyError, match="gdpr-personal"):
        y.to_device("emulated:1")
    assert len(log) == 0
    started = [f for k, f in client.futures.items() if k not in before]
    assert all(f.status == "cancelled" for f in started), [(f.key, f.status) for f in started]
    # the same result may still come back to an allowed destination, decided and audited
    assert float(y.to_device("numpy:cpu")) == 32.0
    before = {k for k, f in client.futures.items() if f.status != "cancelled"}
    with xp.transfers(forbid=True), pytest.raises(xp.errors.TransferForbiddenError):
        y.to_device("numpy:cpu")  # a forbid block: nothing is even started
    assert {k for k, f in client.futures.items() if f.status != "cancelled"} <= before


def test_a_us_client_cannot_put_personal_data_on_its_cluster(config: object) -> None:
    config('[site]\njurisdiction = "US"\n' + RULE)  # type: ignore[operator]
    with pytest.raises(ResidencyError, match="gdpr-personal"):
        xp.tag(xp.ones(3), classification="personal").to_device("dask")


def test_implicit_values_and_unsupported_functions_raise_clear_errors() -> None:
    d = xp.asarray([3.0, 1.0, 2.0], device="dask")
    with pytest.raises(DTypeError, match="to_device"):
        float(xp.sum(d))
    with pytest.raises(InvalidArgumentError, match="xp.sort: not supported on the dask device"):
        xp.sort(d)
    with pytest.raises(InvalidArgumentError, match="dask reshapes only by merging or splitting"):
        xp.reshape(xp.dask.from_array(xp.ones((8, 8)), chunks=(4, 4)), (4, 16))
    assert "device='dask'" in repr(d)  # repr never computes


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ({"schedular": "tcp://x:1"}, "unknown key dask.schedular"),
        ({"chunk_size": "lots"}, "chunk_size"),
        ({"n_workers": 0}, "n_workers"),
        ({"timeout": -1}, "timeout"),
    ],
)
def test_the_dask_section_is_validated(table: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        xp.configure(data={"dask": table})


def test_chunk_size_from_config() -> None:
    xp.configure(data={"dask": {"chunk_size": "8 KiB"}})
    d = xp.ones((64, 64)).to_device("dask")  # 32 KiB of float64
    assert d._data.npartitions >= 4


def test_astype_and_nan_reductions_are_lazy_and_match_numpy() -> None:
    """xarray's default reductions take the skipna path (``xp.nanmean``, ...): on the dask
    device they are lazy chunked reductions; a slice of NaNs only gives what NumPy gives."""
    import warnings

    ref = np.arange(24.0).reshape(4, 6)
    ref[1, 2] = np.nan
    ref[:, 5] = np.nan  # one column of NaNs only
    d = xp.dask.from_array(xp.asarray(ref), chunks=(2, 3))
    i = xp.astype(d, xp.int32)
    assert str(i.device) == "dask" and i.dtype == xp.int32
    np.testing.assert_array_equal(np.asarray(xp.astype(xp.dask.from_array(xp.asarray([1.5, 2.5])), xp.int32)
                                             .to_device("numpy:cpu")), [1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for name in ("nansum", "nanprod", "nanmax", "nanmin", "nanmean", "nanvar", "nanstd"):
            for axis in (0, 1, None):
                got = getattr(xp, name)(d, axis=axis)
                assert str(got.device) == "dask", name
                want = getattr(np, name)(ref, axis=axis)
                np.testing.assert_allclose(np.asarray(got.to_device("numpy:cpu")), want, equal_nan=True, err_msg=f"{name} {axis}")
        got = xp.nanstd(d, axis=1, correction=1).to_device("numpy:cpu")
        np.testing.assert_allclose(np.asarray(got), np.nanstd(ref, axis=1, ddof=1))
