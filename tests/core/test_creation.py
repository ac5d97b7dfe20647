"""Creation functions: values against NumPy on every device, copy semantics, errors, capacity."""

from __future__ import annotations

import array
import functools
import gc
from collections.abc import Callable
from typing import Literal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hpcai as xp
from hpcai.errors import (
    DeviceMismatchError,
    DLPackUnsupportedError,
    DTypeError,
    HpcaiError,
    InvalidArgumentError,
    OutOfDeviceMemoryError,
    ScalarOverflowError,
    ShapeError,
    TransferForbiddenError,
    UnknownDeviceError,
    UnsupportedDtypeError,
)
from hpcai.testing import to_numpy

GAUDI = '[devices."emulated:2"]\npreset = "gaudi3"\nmemory = "1 MiB"\n'


def _other(device: str) -> str:
    return "emulated:0" if device == "numpy:cpu" else "numpy:cpu"


def _check(x: xp.Array, expected: np.ndarray, device: str) -> None:
    assert str(x.device) == device
    assert x.dtype == expected.dtype, (x.dtype, expected.dtype)
    assert x.shape == expected.shape
    np.testing.assert_array_equal(to_numpy(x), expected)


def _used(device: str) -> int:
    d = xp.resolve_device(device)
    return int(d._backend.memory_used(d))  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# arange, eye, linspace
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((5,), {}),
        ((1, 7, 2), {}),
        ((10, 0, -3), {}),
        ((3, 3), {}),
        ((0.0, 1.0, 0.25), {}),
        ((0, 1, 0.1), {}),
        ((-2.5, 2), {}),
        ((0, 10, 3), {"dtype": "int8"}),
        ((0, 5), {"dtype": "float32"}),
    ],
)
def test_arange_matches_numpy(device: str, args: tuple, kwargs: dict) -> None:
    dtype = kwargs.get("dtype")
    x = xp.arange(*args, dtype=getattr(xp, dtype) if dtype else None, device=device)
    expected = np.arange(*args, dtype=dtype)
    _check(x, expected, device)


def test_arange_bad_input() -> None:
    with pytest.raises(InvalidArgumentError, match="step must not be 0"):
        xp.arange(0, 5, 0)
    with pytest.raises(DTypeError, match="start must be an int or a float"):
        xp.arange(1j)  # type: ignore[arg-type]
    with pytest.raises(DTypeError, match="stop"):
        xp.arange(0, "5")  # type: ignore[arg-type]
    with pytest.raises(DTypeError, match="bool"):
        xp.arange(True)
    with pytest.raises(ScalarOverflowError, match="int8"):
        xp.arange(0, 300, dtype=xp.int8)
    with pytest.raises(UnknownDeviceError, match="nosuch:0"):
        xp.arange(3, device="nosuch:0")
    with pytest.raises(DTypeError, match="not a data type"):
        xp.arange(3, dtype="floaty")


@pytest.mark.parametrize(("n", "m", "k"), [(3, None, 0), (2, 4, 1), (4, 2, -1), (3, 3, 5), (0, None, 0)])
def test_eye_matches_numpy(device: str, n: int, m: int | None, k: int) -> None:
    _check(xp.eye(n, m, k=k, device=device), np.eye(n, m, k=k), device)
    _check(xp.eye(n, m, k=k, dtype=xp.complex64, device=device), np.eye(n, m, k=k, dtype=np.complex64), device)


def test_eye_bad_input() -> None:
    with pytest.raises(InvalidArgumentError, match="n_rows must be non-negative"):
        xp.eye(-1)
    with pytest.raises(DTypeError, match="n_cols must be an int"):
        xp.eye(2, 2.5)  # type: ignore[arg-type]
    with pytest.raises(DTypeError, match="k must be an int"):
        xp.eye(2, k=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("start", "stop", "num", "endpoint", "dtype"),
    [
        (0, 1, 5, True, None),
        (0, 1, 5, False, None),
        (-3.5, 10, 1, True, None),
        (2, 3, 0, True, None),
        (0, 1, 7, True, "float32"),
        (0, 1 + 2j, 4, True, None),
        (1j, 2, 3, False, "complex64"),
    ],
)
def test_linspace_matches_numpy(device: str, start, stop, num, endpoint, dtype) -> None:
    x = xp.linspace(start, stop, num, endpoint=endpoint, dtype=getattr(xp, dtype) if dtype else None, device=device)
    expected = np.linspace(start, stop, num, endpoint=endpoint, dtype=dtype)
    assert str(x.device) == device and x.dtype == expected.dtype and x.shape == expected.shape
    np.testing.assert_allclose(to_numpy(x), expected, rtol=1e-6)


def test_linspace_bad_input() -> None:
    with pytest.raises(InvalidArgumentError, match="num must be non-negative"):
        xp.linspace(0, 1, -1)
    with pytest.raises(DTypeError, match="complex start/stop need a complex dtype"):
        xp.linspace(0, 1j, 3, dtype=xp.float64)
    with pytest.raises(DTypeError, match="start must be an int, float or complex"):
        xp.linspace("0", 1, 3)  # type: ignore[arg-type]
    with pytest.raises(DTypeError, match="num must be an int"):
        xp.linspace(0, 1, 2.5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# zeros, ones, empty, full and the *_like functions
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [3, (2, 3), (), (0, 4), [2, 1]])
def test_filled_creation_matches_numpy(device: str, shape) -> None:
    np_shape = tuple(shape) if isinstance(shape, list) else shape
    _check(xp.zeros(shape, device=device), np.zeros(np_shape), device)
    _check(xp.ones(shape, dtype=xp.int16, device=device), np.ones(np_shape, dtype=np.int16), device)
    e = xp.empty(shape, dtype=xp.uint8, device=device)
    assert e.shape == np.empty(np_shape).shape and e.dtype == xp.uint8 and str(e.device) == device
    _check(xp.full(shape, 2.5, device=device), np.full(np_shape, 2.5), device)
    _check(xp.full(shape, 7, device=device), np.full(np_shape, 7, dtype=np.int64), device)
    _check(xp.full(shape, True, device=device), np.full(np_shape, True), device)
    _check(xp.full(shape, 1 - 2j, device=device), np.full(np_shape, 1 - 2j), device)
    _check(xp.full(shape, 3, dtype=xp.float32, device=device), np.full(np_shape, 3, dtype=np.float32), device)
    _check(xp.ones(shape, dtype=xp.complex64, device=device), np.ones(np_shape, dtype=np.complex64), device)


@pytest.mark.parametrize("fname", ["zeros", "ones", "empty"])
@pytest.mark.parametrize("shape", [-1, (2, -3), 2.5, (2, 2.0), "3", True, (True, 2), None])
def test_bad_shapes(fname: str, shape) -> None:
    with pytest.raises(InvalidArgumentError, match=f"xp.{fname}: shape"):
        getattr(xp, fname)(shape)


def test_full_fill_value_checks() -> None:
    with pytest.raises(DTypeError, match="cannot be stored in int32"):
        xp.full(2, 1.5, dtype=xp.int32)
    with pytest.raises(DTypeError, match="cannot be stored in float64"):
        xp.full(2, 1j, dtype=xp.float64)
    with pytest.raises(ScalarOverflowError, match="int8"):
        xp.full(2, 300, dtype=xp.int8)
    with pytest.raises(ScalarOverflowError, match="int64"):
        xp.full(2, 2**63)
    with pytest.raises(DTypeError, match="fill_value must be a bool, int, float or complex"):
        xp.full(2, "a")  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="fill_value must be a scalar"):
        xp.full(2, xp.asarray([1, 2]))  # type: ignore[arg-type]
    # A 0-d array and a NumPy scalar are accepted as values
    _check(xp.full(2, xp.asarray(4.0)), np.full(2, 4.0), "numpy:cpu")  # type: ignore[arg-type]
    _check(xp.full(2, np.int8(3), dtype=xp.int8), np.full(2, 3, dtype=np.int8), "numpy:cpu")  # type: ignore[arg-type]
    # bool fills any dtype (True == 1)
    _check(xp.full(2, True, dtype=xp.float32), np.ones(2, dtype=np.float32), "numpy:cpu")


def test_like_functions_follow_x(device: str) -> None:
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    x = xp.asarray(a, device=device, tags={"origin": "DE"})
    for r, expected in [
        (xp.zeros_like(x), np.zeros_like(a)),
        (xp.ones_like(x), np.ones_like(a)),
        (xp.full_like(x, 9), np.full_like(a, 9)),
    ]:
        _check(r, expected, device)
        assert r.tags == {"origin": frozenset({"DE"})}
    e = xp.empty_like(x)
    assert e.shape == (2, 3) and e.dtype == xp.int32 and str(e.device) == device and e.tags == x.tags
    # dtype and device overrides
    other = _other(device)
    z = xp.zeros_like(x, dtype=xp.float32, device=other)
    _check(z, np.zeros((2, 3), dtype=np.float32), other)
    assert z.tags == x.tags
    _check(xp.full_like(x, 0.5, dtype=xp.float64), np.full((2, 3), 0.5), device)
    _check(xp.ones_like(x, device=other), np.ones_like(a), other)
    e2 = xp.empty_like(x, dtype=xp.complex64, device=other)
    assert e2.dtype == xp.complex64 and str(e2.device) == other


def test_like_functions_bad_input() -> None:
    x = xp.asarray([1, 2])
    with pytest.raises(DTypeError, match="cannot be stored in int64"):
        xp.full_like(x, 0.5)
    with pytest.raises(UnknownDeviceError):
        xp.zeros_like(x, device="gpu:7")
    with pytest.raises(HpcaiError, match="hpcai Array"):
        xp.ones_like(np.ones(3))  # type: ignore[arg-type]
    with pytest.raises(DTypeError, match="expected an hpcai Array"):
        xp.empty_like([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fn",
    [
        lambda d: xp.zeros(2, device=d),
        lambda d: xp.ones(2, device=d),
        lambda d: xp.empty(2, device=d),
        lambda d: xp.full(2, 1.0, device=d),
        lambda d: xp.arange(2, device=d),
        lambda d: xp.eye(2, device=d),
        lambda d: xp.linspace(0, 1, 3, device=d),
        lambda d: xp.asarray([1.0], device=d),
        lambda d: xp.zeros_like(xp.ones(2), device=d),
        lambda d: xp.from_dlpack(np.ones(2), device=d),
    ],
)
def test_unknown_device_strings(fn) -> None:
    with pytest.raises(UnknownDeviceError, match="nosuch:1"):
        fn("nosuch:1")


# --------------------------------------------------------------------------------------------
# meshgrid, tril, triu
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("indexing", ["xy", "ij"])
def test_meshgrid_matches_numpy(device: str, indexing: Literal["xy", "ij"]) -> None:
    a, b, c = np.arange(3.0), np.arange(4.0) * 2, np.array([5.0, 6.0])
    xs = [xp.asarray(v, device=device) for v in (a, b, c)]
    xs[1] = xp.asarray(b, device=device, tags={"site": "a"})
    out = xp.meshgrid(*xs, indexing=indexing)
    expected = np.meshgrid(a, b, c, indexing=indexing)
    assert isinstance(out, list) and len(out) == 3
    for r, e in zip(out, expected):
        _check(r, e, device)
        assert r.tags == {"site": frozenset({"a"})}
    assert xp.meshgrid() == []
    (single,) = xp.meshgrid(xs[0], indexing=indexing)
    _check(single, np.meshgrid(a, indexing=indexing)[0], device)


def test_meshgrid_bad_input(device: str) -> None:
    x = xp.asarray([1.0, 2.0], device=device)
    with pytest.raises(DeviceMismatchError, match="different devices"):
        xp.meshgrid(x, xp.asarray([1.0], device=_other(device)))
    with pytest.raises(InvalidArgumentError, match="indexing must be 'xy' or 'ij'"):
        xp.meshgrid(x, indexing="yx")  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="1-D"):
        xp.meshgrid(x, xp.ones((2, 2), device=device))
    with pytest.raises(DTypeError, match="same dtype"):
        xp.meshgrid(x, xp.asarray([1, 2], device=device))


@pytest.mark.parametrize("k", [-1, 0, 2])
def test_tril_triu_match_numpy(device: str, k: int) -> None:
    a = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) + 1
    x = xp.asarray(a, device=device, tags={"t": "1"})
    for fname in ("tril", "triu"):
        r = getattr(xp, fname)(x, k=k)
        _check(r, getattr(np, fname)(a, k=k), device)
        assert r.tags == x.tags
    with pytest.raises(ShapeError, match="at least 2 dimensions"):
        xp.tril(xp.ones(3, device=device))
    with pytest.raises(DTypeError, match="k must be an int"):
        xp.triu(x, k=1.5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# asarray: dtypes, Python scalars, nested sequences, buffers, copy semantics
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "obj",
    [
        1,
        -2.5,
        1 + 2j,
        True,
        [1, 2, 3],
        [True, False],
        [True, 2],
        [1, 2.5],
        [[1, 2], [3, 4]],
        [[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]],
        [1, 1j],
        (1, 2),
        [],
        2**63 - 1,
        -(2**63),
    ],
)
def test_asarray_python_data_matches_numpy(device: str, obj) -> None:
    _check(xp.asarray(obj, device=device), np.asarray(obj), device)


@pytest.mark.parametrize("dtype", ["int8", "uint16", "float32", "complex64", "bool"])
def test_asarray_dtype_conversion(device: str, dtype: str) -> None:
    data = [[0, 1], [2, 3]]
    _check(xp.asarray(data, dtype=getattr(xp, dtype), device=device), np.asarray(data, dtype=dtype), device)
    src = xp.asarray(np.array(data, dtype=np.float64), device=_other(device))
    _check(xp.asarray(src, dtype=dtype, device=device), np.asarray(data, dtype=dtype), device)


@pytest.mark.parametrize(
    ("obj", "kwargs"),
    [
        (2**63, {}),
        (-(2**63) - 1, {}),
        ([1, 2**63], {}),
        ([[1], [2**64]], {}),
        ([2**70], {}),
        (300, {"dtype": "int8"}),
        ([-1], {"dtype": "uint8"}),
        (2**64, {"dtype": "uint64"}),
    ],
)
def test_asarray_out_of_range_ints(device: str, obj, kwargs) -> None:
    if "dtype" in kwargs:
        kwargs = {"dtype": getattr(xp, kwargs["dtype"])}
    with pytest.raises(ScalarOverflowError, match="xp.asarray"):
        xp.asarray(obj, device=device, **kwargs)


def test_asarray_large_ints_that_fit() -> None:
    _check(xp.asarray(2**63, dtype=xp.uint64), np.asarray(2**63, dtype=np.uint64), "numpy:cpu")
    # A float list with large values is not an integer overflow
    _check(xp.asarray([1.0, 1e20]), np.asarray([1.0, 1e20]), "numpy:cpu")


def test_asarray_rejects_unsupported_data() -> None:
    with pytest.raises(DTypeError, match="does not support"):
        xp.asarray(np.array(["2020-01-01"], dtype="datetime64[D]"))
    with pytest.raises(DTypeError, match="does not support"):
        xp.asarray(["a", "b"])
    with pytest.raises(DTypeError, match="does not support"):
        xp.asarray({"a": 1})
    with pytest.raises(DTypeError, match="not a data type"):
        xp.asarray([1], dtype="nope")


def test_asarray_buffers(device: str) -> None:
    buf = array.array("d", [1.0, 2.0, 3.0])
    _check(xp.asarray(buf, device=device), np.asarray(buf), device)
    _check(xp.asarray(memoryview(bytearray(b"\x01\x02")), device=device), np.array([1, 2], np.uint8), device)


def test_asarray_copy_none_shares_host_memory() -> None:
    a = np.arange(4.0)
    x = xp.asarray(a)
    a[0] = 42.0
    assert float(x[0]) == 42.0
    x2 = xp.asarray(a, copy=False)
    assert np.shares_memory(np.asarray(x2), a)
    buf = bytearray(b"\x00\x01")
    x3 = xp.asarray(buf, copy=False)
    buf[0] = 9
    assert int(x3[0]) == 9


@pytest.mark.parametrize("device", ["numpy:cpu", "emulated:0", "emulated:1"])
def test_asarray_copy_semantics_on_mutable_devices(device: str) -> None:
    x = xp.asarray([1.0, 2.0, 3.0], device=device)
    shared = xp.asarray(x)
    same = xp.asarray(x, copy=False)
    copied = xp.asarray(x, copy=True)
    x[0] = 9.0
    assert float(shared[0]) == 9.0 and float(same[0]) == 9.0
    assert float(copied[0]) == 1.0
    assert str(copied.device) == device


def test_asarray_copy_true_from_host_array() -> None:
    a = np.arange(3)
    x = xp.asarray(a, copy=True)
    a[0] = 100
    assert int(x[0]) == 0
    assert not np.shares_memory(np.asarray(x), a)


def test_asarray_copy_false_refusals(device: str) -> None:
    x = xp.asarray([1.0, 2.0], device=device)
    with pytest.raises(InvalidArgumentError, match="copy=False"):
        xp.asarray(x, device=_other(device), copy=False)
    with pytest.raises(InvalidArgumentError, match="copy=False"):
        xp.asarray(x, dtype=xp.float32, copy=False)
    with pytest.raises(InvalidArgumentError, match="copy=False is impossible for list"):
        xp.asarray([1, 2], device=device, copy=False)
    with pytest.raises(ValueError):
        xp.asarray(np.ones(2, dtype=np.float32), dtype=xp.float64, copy=False)
    # copy=False on the same device with the same dtype is fine
    assert xp.asarray(x, copy=False).device == x.device


def test_asarray_copy_false_into_device_memory_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="its own memory"):
        xp.asarray(bytearray(b"\x01"), device="emulated:0", copy=False)
    with pytest.raises(InvalidArgumentError, match="copy=False"):
        xp.asarray(np.ones(2), device="emulated:0", copy=False)


def test_asarray_moves_are_recorded(device: str) -> None:
    x = xp.asarray([1.0, 2.0], device=_other(device))
    with xp.transfers() as log:
        y = xp.asarray(x, device=device)
        xp.asarray(x, dtype=xp.float32, device=device)
    assert [r.op for r in log] == ["asarray", "asarray"]
    assert log[0].source == str(x.device) and log[0].destination == device
    _check(y, np.array([1.0, 2.0]), device)
    with xp.transfers(forbid=True), pytest.raises(TransferForbiddenError):
        xp.asarray(x, device=device)


def test_asarray_tags() -> None:
    x = xp.asarray([1, 2], tags={"origin": "DE"})
    y = xp.asarray(x, tags={"origin": "FR", "project": "p1"}, device="emulated:0")
    assert y.tags == {"origin": frozenset({"DE", "FR"}), "project": frozenset({"p1"})}
    assert x.tags == {"origin": frozenset({"DE"})}


def test_asarray_of_a_sequence_of_arrays_stays_on_their_device(device: str) -> None:
    """[[x[i, j] ...]] (the conformance suite's reference values) builds where x lives, tags kept."""
    a = np.arange(6, dtype=np.int16).reshape(2, 3)
    x = xp.asarray(a, device=device, tags={"origin": "DE"})
    with xp.transfers() as log:
        t = xp.asarray([[x[i, j] for i in range(2)] for j in range(3)])
        rows = xp.asarray((x[0], x[1]))
        mixed = xp.asarray([x[0, 0], 2.5, True])
    assert len(log) == 0  # nothing moved
    assert t.device == xp.resolve_device(device) and t.dtype == xp.int16
    np.testing.assert_array_equal(to_numpy(t), a.T)
    np.testing.assert_array_equal(to_numpy(rows), a)
    assert t.tags == rows.tags == mixed.tags == {"origin": frozenset({"DE"})}
    assert mixed.dtype == xp.float64 and to_numpy(mixed).tolist() == [0.0, 2.5, 1.0]
    assert xp.asarray([x[0, 1], x[0, 2]], dtype=xp.float32).dtype == xp.float32


def test_asarray_of_a_sequence_of_arrays_moves_only_explicitly() -> None:
    x = xp.asarray([1.0, 2.0], device="emulated:0", tags={"origin": "DE"})
    with xp.transfers() as log:
        y = xp.asarray([x[0], x[1]], device="numpy:cpu")
    assert y.device == xp.resolve_device("numpy:cpu") and y.tags == x.tags
    assert [(r.source, r.destination, r.op) for r in log] == [("emulated:0", "numpy:cpu", "asarray")]
    with pytest.raises(DeviceMismatchError):
        xp.asarray([x[0], xp.asarray(1.0)])
    with pytest.raises(InvalidArgumentError, match="copy=False"):
        xp.asarray([x[0]], copy=False)
    with pytest.raises(ShapeError):
        xp.asarray([x, x[0]])


# --------------------------------------------------------------------------------------------
# from_dlpack
# --------------------------------------------------------------------------------------------
class _Producer:
    """A foreign object that offers only the DLPack protocol."""

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    def __dlpack__(self, **kwargs):  # type: ignore[no-untyped-def]
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):  # type: ignore[no-untyped-def]
        return self._a.__dlpack_device__()


def test_from_dlpack_host_objects_copy_semantics() -> None:
    a = np.arange(4.0)
    x = xp.from_dlpack(a)
    assert str(x.device) == "numpy:cpu"
    assert np.shares_memory(np.asarray(x), a)
    assert np.shares_memory(np.asarray(xp.from_dlpack(a, copy=False)), a)
    c = xp.from_dlpack(a, copy=True)
    assert not np.shares_memory(np.asarray(c), a)
    np.testing.assert_array_equal(np.asarray(c), a)
    p = xp.from_dlpack(_Producer(a))
    assert np.shares_memory(np.asarray(p), a)
    with pytest.raises(DLPackUnsupportedError, match="does not implement DLPack") as info:
        xp.from_dlpack([1, 2, 3])
    assert isinstance(info.value, AttributeError)


def test_from_dlpack_onto_devices(device: str) -> None:
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    with xp.transfers() as log:
        x = xp.from_dlpack(_Producer(a), device=device)
    _check(x, a, device)
    if device != "numpy:cpu":
        assert [r.op for r in log] == ["from_dlpack"]
        with pytest.raises(InvalidArgumentError, match="copy=False"):
            xp.from_dlpack(a, device=device, copy=False)
        with xp.transfers(forbid=True), pytest.raises(TransferForbiddenError):
            xp.from_dlpack(a, device=device)
        if xp.resolve_device(device).backend == "emulated":
            a[0, 0] = 99  # device memory never aliases the host
            assert int(x[0, 0]) == 0


def test_from_dlpack_hpcai_arrays_move_directly(device: str) -> None:
    x = xp.asarray([1.0, 2.0, 3.0], device=device, tags={"origin": "DE"})
    # Emulated arrays cannot be exported through a capsule: this works only without one.
    same = xp.from_dlpack(x)
    assert str(same.device) == device and same.tags == x.tags
    other = _other(device)
    with xp.transfers() as log:
        y = xp.from_dlpack(x, device=other)
    assert [(r.op, r.source, r.destination) for r in log] == [("from_dlpack", device, other)]
    _check(y, np.array([1.0, 2.0, 3.0]), other)
    assert y.tags == x.tags
    with pytest.raises(InvalidArgumentError, match="copy=False"):
        xp.from_dlpack(x, device=other, copy=False)
    c = xp.from_dlpack(x, copy=True)
    x[0] = 5.0
    assert float(c[0]) == 1.0


def test_from_dlpack_keeps_foreign_device_arrays_on_their_device() -> None:
    jax = pytest.importorskip("jax")
    devs = [d for d in xp.all_devices() if d.backend == "jax"]
    if len(devs) < 2:
        pytest.skip("needs two JAX devices")
    native = jax.device_put(jax.numpy.arange(3.0), devs[1].spec.handle)
    x = xp.from_dlpack(native)
    assert x.device is devs[1]
    _check(xp.from_dlpack(native, device="numpy:cpu"), np.arange(3.0), "numpy:cpu")


# --------------------------------------------------------------------------------------------
# capacity and capability on a small FP64-less emulated device
# --------------------------------------------------------------------------------------------
def test_creation_past_capacity_raises_and_memory_returns(config) -> None:
    config(GAUDI)
    dev = "emulated:2"
    gc.collect()
    base = _used(dev)
    a = xp.zeros(200_000, dtype=xp.float32, device=dev)  # 800 kB of 1 MiB
    assert _used(dev) == base + 800_000
    makers: list[Callable[[], xp.Array]] = [
        lambda: xp.zeros(100_000, dtype=xp.float32, device=dev),
        lambda: xp.ones(100_000, dtype=xp.int32, device=dev),
        lambda: xp.empty((500, 200), dtype=xp.float32, device=dev),
        lambda: xp.full(100_000, 1.0, device=dev),
        lambda: xp.arange(100_000, dtype=xp.int32, device=dev),
        lambda: xp.eye(300, dtype=xp.float32, device=dev),
        lambda: xp.linspace(0, 1, 100_000, device=dev),
        lambda: xp.asarray(np.ones(100_000, np.float32), device=dev),
        functools.partial(xp.zeros_like, a),
        lambda: xp.from_dlpack(np.ones(100_000, np.float32), device=dev),
    ]
    for make in makers:
        with pytest.raises(OutOfDeviceMemoryError, match="exceeds capacity"):
            make()
    del makers, make
    gc.collect()
    assert _used(dev) == base + 800_000
    del a
    gc.collect()
    assert _used(dev) == base
    b = xp.ones(250_000, dtype=xp.float32, device=dev)  # fits again
    assert b.shape == (250_000,)


def test_fp64_less_device_defaults_to_float32(config) -> None:
    config(GAUDI)
    dev = "emulated:2"
    for x in [
        xp.zeros(2, device=dev),
        xp.ones(2, device=dev),
        xp.empty(2, device=dev),
        xp.eye(2, device=dev),
        xp.linspace(0, 1, 3, device=dev),
        xp.arange(0.0, 1.0, 0.5, device=dev),
        xp.full(2, 1.5, device=dev),
        xp.asarray([1.5, 2.0], device=dev),
        xp.asarray(2.5, device=dev),
    ]:
        assert x.dtype == xp.float32, x
    assert xp.full(2, 1j, device=dev).dtype == xp.complex64
    assert xp.asarray([1j], device=dev).dtype == xp.complex64
    assert xp.arange(3, device=dev).dtype == xp.int64
    # A float64 NumPy array converted with an explicit float32 dtype is cast before it moves
    _check(xp.asarray(np.arange(3.0), dtype=xp.float32, device=dev), np.arange(3.0, dtype=np.float32), dev)


@pytest.mark.parametrize(
    "make",
    [
        lambda d: xp.zeros(2, dtype=xp.float64, device=d),
        lambda d: xp.ones(2, dtype=xp.complex128, device=d),
        lambda d: xp.empty(2, dtype=xp.float64, device=d),
        lambda d: xp.full(2, 1.0, dtype=xp.float64, device=d),
        lambda d: xp.eye(2, dtype=xp.float64, device=d),
        lambda d: xp.arange(3, dtype=xp.float64, device=d),
        lambda d: xp.linspace(0, 1, 3, dtype=xp.float64, device=d),
        lambda d: xp.asarray([1.0], dtype=xp.float64, device=d),
        lambda d: xp.asarray(np.ones(2), device=d),
        lambda d: xp.zeros_like(xp.ones(2), device=d),
        lambda d: xp.from_dlpack(np.ones(2), device=d),
    ],
)
def test_float64_on_fp64_less_device_raises(config, make) -> None:
    config(GAUDI)
    with pytest.raises(UnsupportedDtypeError, match="float64|complex128"):
        make("emulated:2")


# --------------------------------------------------------------------------------------------
# properties against NumPy
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", ["numpy:cpu", "emulated:1"])
@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(-50, 50),
    stop=st.none() | st.integers(-50, 50),
    step=st.integers(-7, 7).filter(bool),
    as_float=st.booleans(),
)
def test_arange_property(device: str, start: int, stop: int | None, step: int, as_float: bool) -> None:
    args: tuple[float, ...] = (start,) if stop is None else (start, stop, step)
    if as_float:
        args = tuple(v / 4 for v in args)
    _check(xp.arange(*args, device=device), np.arange(*args), device)


@pytest.mark.parametrize("device", ["numpy:cpu", "emulated:1"])
@settings(max_examples=60, deadline=None)
@given(
    data=st.recursive(
        st.integers(-(2**40), 2**40) | st.booleans() | st.floats(allow_nan=False, width=32),
        lambda inner: st.lists(inner, min_size=2, max_size=2),
        max_leaves=8,
    )
)
def test_asarray_nested_property(device: str, data: object) -> None:
    try:
        expected = np.asarray(data)
    except ValueError:  # ragged nesting: NumPy refuses too
        with pytest.raises(ValueError):
            xp.asarray(data, device=device)
        return
    _check(xp.asarray(data, device=device), expected, device)
