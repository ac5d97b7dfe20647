"""Manipulation and indexing functions: values against NumPy on every device, errors, tags, capacity."""

from __future__ import annotations

import gc

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hpcai as xp
from hpcai.errors import (
    ArrayIndexError,
    AxisError,
    DeviceMismatchError,
    DTypeError,
    ForeignArrayError,
    InvalidArgumentError,
    OutOfDeviceMemoryError,
    ShapeError,
)
from hpcai.testing import to_numpy

GAUDI = '[devices."emulated:2"]\npreset = "gaudi3"\nmemory = "1 MiB"\n'
A = np.arange(24, dtype=np.float32).reshape(2, 3, 4)


def _other(device: str) -> str:
    return "emulated:0" if device == "numpy:cpu" else "numpy:cpu"


def _check(x: xp.Array, expected: np.ndarray, device: str) -> None:
    assert str(x.device) == device
    assert x.dtype == expected.dtype, (x.dtype, expected.dtype)
    assert x.shape == expected.shape, (x.shape, expected.shape)
    np.testing.assert_array_equal(to_numpy(x), expected)


def _mutable(device: str) -> bool:
    return xp.resolve_device(device).backend in ("numpy", "emulated")


@pytest.fixture
def x(device: str) -> xp.Array:
    return xp.asarray(A, device=device, tags={"origin": "DE"})


# --------------------------------------------------------------------------------------------
# single-array functions against NumPy
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fname", "args", "kwargs", "ref"),
    [
        ("broadcast_to", ((4, 2, 3, 4),), {}, lambda a: np.broadcast_to(a, (4, 2, 3, 4))),
        ("expand_dims", (0,), {}, lambda a: np.expand_dims(a, 0)),
        ("expand_dims", (-1,), {}, lambda a: np.expand_dims(a, -1)),
        ("expand_dims", (3,), {}, lambda a: np.expand_dims(a, 3)),
        ("expand_dims", ((0, 4),), {}, lambda a: np.expand_dims(a, (0, 4))),
        ("flip", (), {}, np.flip),
        ("flip", (), {"axis": 1}, lambda a: np.flip(a, 1)),
        ("flip", (), {"axis": (0, -1)}, lambda a: np.flip(a, (0, -1))),
        ("moveaxis", (0, -1), {}, lambda a: np.moveaxis(a, 0, -1)),
        ("moveaxis", ((0, 1), (2, 0)), {}, lambda a: np.moveaxis(a, (0, 1), (2, 0))),
        ("permute_dims", ((2, 0, 1),), {}, lambda a: np.transpose(a, (2, 0, 1))),
        ("permute_dims", ((-1, 0, 1),), {}, lambda a: np.transpose(a, (2, 0, 1))),
        ("repeat", (2,), {}, lambda a: np.repeat(a, 2)),
        ("repeat", (3,), {"axis": 1}, lambda a: np.repeat(a, 3, axis=1)),
        ("repeat", (0,), {"axis": -1}, lambda a: np.repeat(a, 0, axis=-1)),
        ("reshape", ((6, 4),), {}, lambda a: a.reshape(6, 4)),
        ("reshape", ((-1,),), {}, lambda a: a.reshape(-1)),
        ("reshape", ((4, -1, 2),), {"copy": True}, lambda a: a.reshape(4, -1, 2)),
        ("roll", (1,), {}, lambda a: np.roll(a, 1)),
        ("roll", (-2,), {"axis": 2}, lambda a: np.roll(a, -2, axis=2)),
        ("roll", ((1, 2),), {"axis": (0, 2)}, lambda a: np.roll(a, (1, 2), axis=(0, 2))),
        ("roll", (1,), {"axis": (1, 2)}, lambda a: np.roll(a, 1, axis=(1, 2))),
        ("tile", ((2,),), {}, lambda a: np.tile(a, (2,))),
        ("tile", ((2, 1, 1, 3),), {}, lambda a: np.tile(a, (2, 1, 1, 3))),
        ("tile", ((0, 2),), {}, lambda a: np.tile(a, (0, 2))),
    ],
)
def test_single_array_functions_match_numpy(x: xp.Array, device: str, fname, args, kwargs, ref) -> None:
    r = getattr(xp, fname)(x, *args, **kwargs)
    _check(r, ref(A), device)
    assert r.tags == x.tags


def test_squeeze_and_unstack(device: str) -> None:
    a = np.arange(6, dtype=np.int16).reshape(1, 3, 1, 2)
    x = xp.asarray(a, device=device, tags={"t": "1"})
    _check(xp.squeeze(x, axis=0), np.squeeze(a, axis=0), device)
    _check(xp.squeeze(x, axis=(0, -2)), np.squeeze(a, axis=(0, 2)), device)
    for axis in (0, 1, -1):
        parts = xp.unstack(x, axis=axis)
        ref = np.unstack(a, axis=axis)
        assert isinstance(parts, tuple) and len(parts) == len(ref)
        for p, e in zip(parts, ref):
            _check(p, e, device)
            assert p.tags == x.tags


def test_broadcast_arrays(device: str) -> None:
    a, b, c = np.ones((3, 1), np.int8), np.arange(4, dtype=np.float32), np.array(5, dtype=np.int64)
    xs = [xp.asarray(a, device=device), xp.asarray(b, device=device, tags={"s": "b"}), xp.asarray(c, device=device)]
    out = xp.broadcast_arrays(*xs)
    assert isinstance(out, list) and len(out) == 3
    for r, e in zip(out, np.broadcast_arrays(a, b, c)):
        _check(r, e, device)
        assert r.tags == {"s": frozenset({"b"})}
    assert xp.broadcast_arrays() == []
    with pytest.raises(ShapeError):
        xp.broadcast_arrays(xs[1], xp.ones(3, device=device))
    with pytest.raises(DeviceMismatchError, match="different devices"):
        xp.broadcast_arrays(xs[0], xp.ones(3, device=_other(device)))


@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_concat_matches_numpy(device: str, axis) -> None:
    a = np.arange(6, dtype=np.int8).reshape(2, 3)
    b = np.arange(6, 12, dtype=np.uint8).reshape(2, 3)  # int8 + uint8 promote to int16
    c = np.ones((2, 3), dtype=np.int8)
    xs = (xp.asarray(a, device=device, tags={"o": "a"}), xp.asarray(b, device=device, tags={"o": "b"}),
          xp.asarray(c, device=device))
    r = xp.concat(xs, axis=axis)
    _check(r, np.concat((a, b, c), axis=axis), device)
    assert r.dtype == xp.int16
    assert r.tags == {"o": frozenset({"a", "b"})}
    r2 = xp.concat([xs[0]], axis=axis)
    _check(r2, np.concat([a], axis=axis), device)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_stack_matches_numpy(device: str, axis: int) -> None:
    a, b = np.arange(6.0).reshape(2, 3), -np.arange(6.0).reshape(2, 3)
    xs = [xp.asarray(a, device=device), xp.asarray(b, device=device, tags={"o": "b"})]
    r = xp.stack(xs, axis=axis)
    _check(r, np.stack([a, b], axis=axis), device)
    assert r.tags == {"o": frozenset({"b"})}
    _check(xp.stack((xp.asarray(1.0, device=device),)), np.stack([np.array(1.0)]), device)


def test_repeat_with_array_counts(device: str) -> None:
    a = np.arange(6).reshape(2, 3)
    x = xp.asarray(a, device=device)
    for counts, axis in [([1, 0, 2], 1), ([3], 0), ([2, 1], 0), ([1, 2, 3, 0, 1, 2], None)]:
        for dt in (np.int64, np.uint8, np.int32):
            reps = xp.asarray(np.array(counts, dtype=dt), device=device, tags={"r": "1"})
            r = xp.repeat(x, reps, axis=axis)
            _check(r, np.repeat(a, np.array(counts), axis=axis), device)
            assert r.tags == {"r": frozenset({"1"})}
    with pytest.raises(DTypeError, match="integer dtype"):
        xp.repeat(x, xp.asarray([1.0], device=device))
    with pytest.raises(ShapeError, match="length 1 or 3"):
        xp.repeat(x, xp.asarray([1, 2], device=device), axis=1)
    with pytest.raises(ShapeError, match="1-D"):
        xp.repeat(x, xp.asarray([[1]], device=device), axis=1)
    with pytest.raises(DeviceMismatchError):
        xp.repeat(x, xp.asarray([1], device=_other(device)), axis=0)


# --------------------------------------------------------------------------------------------
# reshape's copy semantics
# --------------------------------------------------------------------------------------------
def test_reshape_copy_semantics(device: str) -> None:
    x = xp.asarray(np.arange(6.0), device=device)
    view = xp.reshape(x, (2, 3), copy=False)
    default = xp.reshape(x, (3, 2))
    copied = xp.reshape(x, (2, 3), copy=True)
    x[0] = 100.0
    assert float(copied[0, 0]) == 0.0
    if _mutable(device):
        assert float(view[0, 0]) == 100.0 and float(default[0, 0]) == 100.0
        t = xp.permute_dims(xp.reshape(x, (2, 3)), (1, 0))
        with pytest.raises(InvalidArgumentError, match="copy=False but reshaping"):
            xp.reshape(t, (6,), copy=False)
        _check(xp.reshape(t, (6,)), np.arange(6.0).reshape(2, 3).T.reshape(6) + np.eye(1, 6)[0] * 100, device)


@pytest.mark.parametrize(
    ("shape", "err", "match"),
    [
        ((5,), ShapeError, "cannot reshape"),
        ((-1, -1), ShapeError, "at most one -1"),
        ((-2, 12), ShapeError, "at most one -1"),
        ((0, -1), ShapeError, "cannot reshape"),
        ((2.0, 12), DTypeError, "shape must be an int"),
        ("24", DTypeError, "shape must be an int"),
    ],
)
def test_reshape_bad_shapes(x: xp.Array, shape, err, match) -> None:
    with pytest.raises(err, match=match):
        xp.reshape(x, shape)


def test_reshape_to_and_from_empty(device: str) -> None:
    e = xp.zeros((0, 3), device=device)
    _check(xp.reshape(e, (3, 0, 5)), np.zeros((3, 0, 5)), device)
    _check(xp.reshape(xp.asarray(7, device=device), (1, 1)), np.full((1, 1), 7), device)


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "err", "match"),
    [
        (lambda x: xp.expand_dims(x, 4), AxisError, "out of range"),
        (lambda x: xp.expand_dims(x, -5), AxisError, "out of range"),
        (lambda x: xp.expand_dims(x, (0, 0)), InvalidArgumentError, "repeated axis"),
        (lambda x: xp.expand_dims(x, 1.0), DTypeError, "axis must be an int"),  # type: ignore[arg-type]
        (lambda x: xp.flip(x, axis=3), AxisError, "out of range"),
        (lambda x: xp.flip(x, axis=(0, 0)), InvalidArgumentError, "repeated axis"),
        (lambda x: xp.moveaxis(x, 0, 3), AxisError, "out of range"),
        (lambda x: xp.moveaxis(x, (0, 1), 2), InvalidArgumentError, "as many axes"),
        (lambda x: xp.permute_dims(x, (0, 1)), InvalidArgumentError, "not a permutation"),
        (lambda x: xp.permute_dims(x, (0, 1, 1)), InvalidArgumentError, "not a permutation"),
        (lambda x: xp.permute_dims(x, 0), DTypeError, "tuple of ints"),  # type: ignore[arg-type]
        (lambda x: xp.permute_dims(x, (0, 1, 3)), AxisError, "out of range"),
        (lambda x: xp.squeeze(x, axis=0), ShapeError, "has size 2"),
        (lambda x: xp.squeeze(x, axis=5), AxisError, "out of range"),
        (lambda x: xp.broadcast_to(x, (3, 4)), ShapeError, "broadcast"),
        (lambda x: xp.broadcast_to(x, (2, -3, 4)), ShapeError, "non-negative"),
        (lambda x: xp.repeat(x, -1), InvalidArgumentError, "non-negative"),
        (lambda x: xp.repeat(x, 2, axis=3), AxisError, "out of range"),
        (lambda x: xp.repeat(x, 1.5), DTypeError, "repeats must be an int"),  # type: ignore[arg-type]
        (lambda x: xp.roll(x, (1, 2)), InvalidArgumentError, "tuple axis of the same length"),
        (lambda x: xp.roll(x, (1, 2), axis=0), InvalidArgumentError, "same length"),
        (lambda x: xp.roll(x, 1, axis=3), AxisError, "out of range"),
        (lambda x: xp.tile(x, 2), DTypeError, "tuple of ints"),  # type: ignore[arg-type]
        (lambda x: xp.tile(x, (-1,)), InvalidArgumentError, "non-negative"),
        (lambda x: xp.unstack(x, axis=3), AxisError, "out of range"),
        (lambda x: xp.unstack(x[0, 0, 0]), ShapeError, "0-d"),
        (lambda x: xp.concat(x), DTypeError, "tuple or list of arrays"),
        (lambda x: xp.concat([]), InvalidArgumentError, "at least one array"),
        (lambda x: xp.concat((x, x[0])), ShapeError, "shapes must match except along axis 0"),
        (lambda x: xp.concat((x, x[:, :1]), axis=2), ShapeError, "shapes must match except along axis 2"),
        (lambda x: xp.concat((x, x), axis=3), AxisError, "out of range"),
        (lambda x: xp.concat((x[0, 0, 0], x[0, 0, 0])), ShapeError, "0-dimensional"),
        (lambda x: xp.stack(x), DTypeError, "tuple or list"),
        (lambda x: xp.stack((x, x[0])), ShapeError, "same shape"),
        (lambda x: xp.stack((x, x), axis=4), AxisError, "out of range"),
        (lambda x: xp.stack((x, np.ones((2, 3, 4)))), ForeignArrayError, "numpy.ndarray"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_gives_hpcai_errors(x: xp.Array, call, err, match) -> None:
    with pytest.raises(err, match=match):
        call(x)


def test_mixed_devices_are_refused(device: str) -> None:
    a = xp.ones((2, 2), device=device)
    b = xp.ones((2, 2), device=_other(device))
    for fn in (
        lambda: xp.concat((a, b)),
        lambda: xp.stack([a, b]),
        lambda: xp.broadcast_arrays(a, b),
        lambda: xp.take(a, xp.asarray([0], device=_other(device)), axis=0),
        lambda: xp.take_along_axis(a, xp.zeros((2, 1), dtype=xp.int64, device=_other(device)), axis=1),
    ):
        with pytest.raises(DeviceMismatchError, match=f"{device}|{_other(device)}"):
            fn()


def test_functions_refuse_foreign_arrays() -> None:
    with pytest.raises(ForeignArrayError, match="xp.asarray"):
        xp.flip(np.ones(3))  # type: ignore[arg-type]
    with pytest.raises(DTypeError, match="expected an hpcai Array"):
        xp.reshape([1, 2], (2,))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# take and take_along_axis
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_take_matches_numpy(x: xp.Array, device: str, axis: int) -> None:
    n = A.shape[axis]
    idx = np.array([n - 1, 0, -1, 0], dtype=np.int32)
    i = xp.asarray(idx, device=device, tags={"i": "1"})
    r = xp.take(x, i, axis=axis)
    _check(r, np.take(A, idx, axis=axis), device)
    assert r.tags == {"origin": frozenset({"DE"}), "i": frozenset({"1"})}


def test_take_one_dimensional_and_errors(device: str) -> None:
    v = xp.asarray([10, 20, 30], device=device)
    _check(xp.take(v, xp.asarray([2, -3, 1], device=device)), np.array([30, 10, 20]), device)
    _check(xp.take(v, xp.asarray(np.array([], dtype=np.int64), device=device)), np.array([], dtype=np.int64), device)
    m = xp.ones((2, 2), device=device)
    with pytest.raises(InvalidArgumentError, match="axis is required"):
        xp.take(m, xp.asarray([0], device=device))
    with pytest.raises(DTypeError, match="integer dtype"):
        xp.take(v, xp.asarray([0.0], device=device))
    with pytest.raises(ShapeError, match="1-D"):
        xp.take(v, xp.asarray([[0]], device=device))
    with pytest.raises(DTypeError, match="hpcai integer array"):
        xp.take(v, [0, 1])  # type: ignore[arg-type]
    with pytest.raises(AxisError, match="out of range"):
        xp.take(v, xp.asarray([0], device=device), axis=1)
    with pytest.raises(ShapeError, match="0-d"):
        xp.take(xp.asarray(1, device=device), xp.asarray([0], device=device))


def test_take_out_of_bounds_on_host() -> None:
    with pytest.raises(ArrayIndexError, match="xp.take"):
        xp.take(xp.asarray([1, 2]), xp.asarray([5]))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_take_along_axis_matches_numpy(device: str, axis: int) -> None:
    a = np.array([[3, 1, 2], [9, 7, 8]], dtype=np.float32)
    idx = np.argsort(a, axis=axis)
    x = xp.asarray(a, device=device)
    i = xp.asarray(idx, device=device, tags={"i": "1"})
    r = xp.take_along_axis(x, i, axis=axis)
    _check(r, np.take_along_axis(a, idx, axis=axis), device)
    assert r.tags == {"i": frozenset({"1"})}
    neg = xp.asarray(np.full((2, 1), -1), device=device)
    _check(xp.take_along_axis(x, neg, axis=1), a[:, -1:], device)
    # default axis is -1
    _check(xp.take_along_axis(x, xp.asarray(idx, device=device)), np.take_along_axis(a, idx, axis=-1), device)
    with pytest.raises(ShapeError, match="same rank"):
        xp.take_along_axis(x, xp.asarray([0], device=device), axis=0)
    with pytest.raises(DTypeError, match="integer dtype"):
        xp.take_along_axis(x, xp.asarray([[True]], device=device), axis=0)
    with pytest.raises(AxisError):
        xp.take_along_axis(x, xp.asarray(idx, device=device), axis=2)


# --------------------------------------------------------------------------------------------
# capacity: results of manipulation functions are charged to the device
# --------------------------------------------------------------------------------------------
def test_manipulation_results_are_charged(config) -> None:
    config(GAUDI)
    dev = xp.resolve_device("emulated:2")
    used = dev._backend.memory_used  # type: ignore[attr-defined]
    gc.collect()
    base = used(dev)
    a = xp.ones(100_000, dtype=xp.float32, device=dev)  # 400 kB
    b = xp.ones(100_000, dtype=xp.float32, device=dev)  # 400 kB
    v = xp.reshape(a, (1000, 100))  # a view: no new memory
    bcast = xp.broadcast_to(a, (8, 100_000))  # a view as well
    assert used(dev) == base + 800_000
    with pytest.raises(OutOfDeviceMemoryError, match="exceeds capacity"):
        xp.concat((a, b))  # 800 kB more does not fit
    with pytest.raises(OutOfDeviceMemoryError):
        xp.tile(a, (2,))
    with pytest.raises(OutOfDeviceMemoryError):
        xp.stack((a, b))
    gc.collect()
    assert used(dev) == base + 800_000
    del b
    gc.collect()
    small = xp.concat((xp.reshape(v, (100_000,))[:10], a[:10]))  # a new 80-byte array
    assert small.shape == (20,) and used(dev) == base + 400_000 + 80
    del a, v, bcast, small
    gc.collect()
    assert used(dev) == base


# --------------------------------------------------------------------------------------------
# properties: random shapes and axes against NumPy
# --------------------------------------------------------------------------------------------
_PROP_DEVICES = ["numpy:cpu", "emulated:0", *[str(d) for d in xp.all_devices() if d.backend == "jax"][:1]]


@pytest.mark.parametrize("device", _PROP_DEVICES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_manipulation_properties(device: str, data: st.DataObject) -> None:
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4), label="shape")
    a = data.draw(hnp.arrays(np.int16, shape, elements=st.integers(-100, 100)), label="a")
    x = xp.asarray(a, device=device)
    nd = a.ndim
    axis = data.draw(st.integers(-nd, nd - 1), label="axis")
    _check(xp.flip(x, axis=axis), np.flip(a, axis), device)
    _check(xp.concat((x, x), axis=axis), np.concat((a, a), axis=axis), device)
    _check(xp.stack((x, x), axis=axis), np.stack((a, a), axis=axis), device)
    shift = data.draw(st.integers(-5, 5), label="shift")
    _check(xp.roll(x, shift, axis=axis), np.roll(a, shift, axis=axis), device)
    _check(xp.roll(x, shift), np.roll(a, shift), device)
    perm = tuple(data.draw(st.permutations(range(nd)), label="perm"))
    _check(xp.permute_dims(x, perm), np.transpose(a, perm), device)
    _check(xp.reshape(x, (-1,)), a.reshape(-1), device)
    reps = tuple(data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=5), label="reps"))
    _check(xp.tile(x, reps), np.tile(a, reps), device)
    _check(xp.repeat(x, 2, axis=axis), np.repeat(a, 2, axis=axis), device)
    if a.shape[axis]:
        idx = data.draw(hnp.arrays(np.int64, (3,), elements=st.integers(-a.shape[axis], a.shape[axis] - 1)))
        _check(xp.take(x, xp.asarray(idx, device=device), axis=axis), np.take(a, idx, axis=axis), device)
