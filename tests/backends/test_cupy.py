"""The CuPy backend: ``cupy:i`` per GPU, allocation under the device, streams, peer copies, DLPack.

Tests marked ``gpu`` need CuPy and a usable GPU and are skipped otherwise; the others check
how the backend reports itself where no GPU is usable, and run everywhere.
"""

from __future__ import annotations

import importlib.util
import pickle

import numpy as np
import pytest
from hpcai.backends import backend_infos, get_backend

import hpcai as xp
from hpcai.errors import DeviceMismatchError, InvalidArgumentError, UnknownDeviceError


def _gpu_count() -> int:
    if importlib.util.find_spec("cupy") is None:
        return 0
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount()) if cupy.is_available() else 0
    except Exception:  # CuPy without a working CUDA runtime
        return 0


GPUS = _gpu_count()
requires_gpu = pytest.mark.skipif(GPUS == 0, reason="needs CuPy and a GPU")
requires_two_gpus = pytest.mark.skipif(GPUS < 2, reason="needs CuPy and two GPUs")


def _host(x: xp.Array) -> np.ndarray:
    return np.asarray(x.to_device("numpy:cpu"))


def _on(x: xp.Array, name: str) -> None:
    """The hpcai device and the CuPy array's own device agree with *name*."""
    assert str(x.device) == name
    assert x._data.device.id == int(name.split(":")[1])


# -- without a GPU --------------------------------------------------------------------------
@pytest.mark.skipif(GPUS > 0, reason="a GPU is usable here")
def test_unusable_cupy_is_listed_as_unavailable_with_a_reason() -> None:
    from hpcai._device import unavailable_backends

    assert not any(d.backend == "cupy" for d in xp.all_devices())
    reason = unavailable_backends()["cupy"]
    assert "cupy" in reason and "pip install" in reason
    if backend_infos()["cupy"].installed:
        # CuPy imports but finds no GPU: the reason says so, the backend is real.
        backend = get_backend("cupy")
        assert not backend.available()
        assert "no usable GPU" in reason or "does not import" in reason
        assert backend.device_specs({}) == []
    with pytest.raises(UnknownDeviceError, match="cupy:0.*not available"):
        xp.zeros(2, device="cupy:0")


# -- with a GPU -----------------------------------------------------------------------------
@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("i", range(max(GPUS, 1)))
def test_one_device_per_gpu(i: int) -> None:
    import cupy

    dev = xp.resolve_device(f"cupy:{i}")
    assert dev.kind == "gpu" and dev.backend == "cupy"
    assert dev.memory == cupy.cuda.runtime.getDeviceProperties(i)["totalGlobalMem"]
    assert dev.__class__ is xp.Device
    assert f"cupy:{i}" in [str(d) for d in xp.__array_namespace_info__().devices()]


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("i", range(max(GPUS, 1)))
def test_creation_and_results_live_on_the_gpu(i: int) -> None:
    name = f"cupy:{i}"
    for x in (
        xp.zeros((2, 3), device=name),
        xp.ones(4, device=name),
        xp.arange(5, device=name),
        xp.eye(3, device=name),
        xp.linspace(0, 1, 5, device=name),
        xp.asarray([1.0, 2.0], device=name),
    ):
        _on(x, name)
    a = np.array([[2.0, 1.0], [1.0, 3.0]])
    x = xp.asarray(a, device=name)
    cases = {
        "add": (x + 1, a + 1),
        "matmul": (x @ x, a @ a),
        "sum": (xp.sum(x, axis=1), a.sum(axis=1)),
        "inv": (xp.linalg.inv(x), np.linalg.inv(a)),
        "getitem": (x[x > 1.5], a[a > 1.5]),
    }
    for op, (r, expected) in cases.items():
        _on(r, name)
        np.testing.assert_allclose(_host(r), expected, rtol=1e-12, err_msg=op)


@pytest.mark.gpu
@requires_gpu
def test_host_round_trip_is_recorded() -> None:
    a = np.arange(12.0).reshape(3, 4)[:, ::2]  # not contiguous
    with xp.transfers() as log:
        g = xp.asarray(a).to_device("cupy:0")
        back = g.to_device("numpy:cpu")
    _on(g, "cupy:0")
    np.testing.assert_array_equal(np.asarray(back), a)
    assert [(r.source, r.destination, r.nbytes) for r in log] == [
        ("numpy:cpu", "cupy:0", a.nbytes),
        ("cupy:0", "numpy:cpu", a.nbytes),
    ]


@pytest.mark.gpu
@requires_gpu
def test_stream_is_honoured() -> None:
    import cupy

    a = np.arange(1 << 16, dtype=np.float32)
    h = xp.asarray(a)
    with cupy.cuda.Device(0):
        s = cupy.cuda.Stream(non_blocking=True)
    g = h.to_device("cupy:0", stream=s)
    s.synchronize()
    np.testing.assert_array_equal(_host(g), a)
    g2 = h.to_device("cupy:0", stream=s.ptr)  # a raw pointer, as in DLPack
    s.synchronize()
    np.testing.assert_array_equal(_host(g2), a)
    back = g.to_device("numpy:cpu", stream=s)
    np.testing.assert_array_equal(np.asarray(back), a)
    with pytest.raises(InvalidArgumentError, match="stream"):
        h.to_device("cupy:0", stream="fast")
    with pytest.raises(InvalidArgumentError, match="stream"):
        h.to_device("emulated:0", stream=s)


@pytest.mark.gpu
@requires_two_gpus
def test_peer_copy_between_gpus() -> None:
    import cupy

    a = np.random.default_rng(0).standard_normal((64, 33))
    x = xp.asarray(a, device="cupy:0", tags={"origin": "DE"})
    with xp.transfers() as log:
        y = x.to_device("cupy:1")
        z = x.mT.to_device("cupy:1")  # non-contiguous source
    _on(y, "cupy:1")
    _on(z, "cupy:1")
    assert y.tags == x.tags
    np.testing.assert_array_equal(_host(y), a)
    np.testing.assert_array_equal(_host(z), a.T)
    assert [r.path for r in log] == ["direct", "direct"]
    with cupy.cuda.Device(1):
        s = cupy.cuda.Stream(non_blocking=True)
    w = x.to_device("cupy:1", stream=s)
    s.synchronize()
    np.testing.assert_array_equal(_host(w), a)
    with pytest.raises(DeviceMismatchError):
        x + y


@pytest.mark.gpu
@requires_two_gpus
def test_operators_keep_results_on_their_gpu() -> None:
    import cupy

    x = xp.asarray([1.0, 2.0], device="cupy:1")
    with cupy.cuda.Device(0):  # CuPy's current device is another GPU
        r = x * 2 + x
    _on(r, "cupy:1")
    np.testing.assert_array_equal(_host(r), [3.0, 6.0])


@pytest.mark.gpu
@requires_gpu
def test_dlpack_and_foreign_cupy_arrays() -> None:
    import cupy

    x = xp.asarray([1.0, 2.0, 3.0], device="cupy:0")
    assert x.__dlpack_device__()[1] == 0
    assert x.__dlpack_device__()[0] in (2, 10)  # kDLCUDA or kDLROCM
    c = cupy.from_dlpack(x)
    assert c.data.ptr == x._data.data.ptr  # zero-copy
    native = cupy.arange(4.0)
    y = xp.asarray(native)
    assert str(y.device) == "cupy:0" and y._data is native
    z = xp.asarray(native, copy=True)
    assert z._data.data.ptr != native.data.ptr
    w = xp.from_dlpack(native)
    assert str(w.device) == "cupy:0"
    np.testing.assert_array_equal(_host(w), [0.0, 1.0, 2.0, 3.0])


@pytest.mark.gpu
@requires_gpu
def test_setitem_inplace_and_pickle() -> None:
    x = xp.asarray(np.arange(6.0), device="cupy:0", tags={"origin": "DE"})
    x[1:3] = -1.0
    x += 1
    expected = np.arange(6.0)
    expected[1:3] = -1.0
    expected += 1
    np.testing.assert_array_equal(_host(x), expected)
    y = pickle.loads(pickle.dumps(x))
    _on(y, "cupy:0")
    assert y.tags == x.tags
    np.testing.assert_array_equal(_host(y), expected)
