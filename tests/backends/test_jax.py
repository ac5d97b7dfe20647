"""The JAX backend: one hpcai device per JAX device, committed arrays, moves, mutation, jit.

tests/conftest.py sets ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` before JAX is
imported, so four real JAX CPU devices exist.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import textwrap
from typing import Any

import numpy as np
import pytest

import hpcai as xp
from hpcai.errors import (
    ArrayIndexError,
    DeviceMismatchError,
    DTypeError,
    InvalidArgumentError,
    TransferForbiddenError,
)

jax = pytest.importorskip("jax")
jnp = jax.numpy

JAX_CPU = [f"jax:cpu:{i}" for i in range(4)]


def _host(x: xp.Array) -> np.ndarray:
    return np.asarray(x.to_device("numpy:cpu"))


def _jax_device(name: str):
    return xp.resolve_device(name).spec.handle


def _on(x: xp.Array, name: str) -> None:
    """The hpcai device and the native array's own placement agree with *name*."""
    assert str(x.device) == name
    assert x._data.devices() == {_jax_device(name)}
    assert x._data.committed


# -- devices --------------------------------------------------------------------------------
def test_four_jax_cpu_devices_in_the_namespace_info() -> None:
    names = [str(d) for d in xp.__array_namespace_info__().devices()]
    assert [n for n in names if n.startswith("jax:cpu:")] == JAX_CPU


def test_one_device_per_jax_device() -> None:
    cpu = jax.devices("cpu")
    assert len(cpu) == 4
    for i, d in enumerate(cpu):
        dev = xp.resolve_device(f"jax:cpu:{i}")
        assert dev.spec.handle == d
        assert dev.kind == "cpu" and dev.backend == "jax"
        assert "float64" in dev.native_dtypes


def test_x64_is_enabled_when_the_backend_loads() -> None:
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    code = textwrap.dedent(
        """
        import hpcai as xp
        x = xp.asarray([1.5, 2.5], device="jax:cpu:0")
        i = xp.asarray([1, 2], device="jax:cpu:0")
        print(x.dtype, i.dtype, (x * 3).dtype, xp.zeros(2, device="jax:cpu:0").dtype)
        """
    )
    # Run outside the source tree so the installed package is imported, not ./hpcai.
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
        cwd=tempfile.gettempdir(),
    )
    assert out.stdout.split() == ["float64", "int64", "float64", "float64"]


# -- placement ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", JAX_CPU)
def test_creation_allocates_on_the_device(name: str) -> None:
    _on(xp.zeros((2, 3), device=name), name)
    _on(xp.ones(4, device=name), name)
    _on(xp.arange(5, device=name), name)
    _on(xp.full((2,), 7.0, device=name), name)
    _on(xp.eye(3, device=name), name)
    _on(xp.linspace(0, 1, 5, device=name), name)
    _on(xp.asarray([1.0, 2.0], device=name), name)
    x = xp.asarray([[1.0, 2.0], [3.0, 4.0]], device=name)
    _on(xp.zeros_like(x), name)
    _on(xp.empty_like(x), name)
    for m in xp.meshgrid(xp.arange(2, device=name), xp.arange(3, device=name)):
        _on(m, name)


@pytest.mark.parametrize("name", ["jax:cpu:1", "jax:cpu:3"])
def test_results_stay_on_the_device(name: str) -> None:
    a = np.array([[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]])
    x = xp.asarray(a, device=name)
    y = xp.asarray(a[::-1].copy(), device=name)
    results = {
        "add": (x + y, a + a[::-1]),
        "radd": (1 + x, 1 + a),
        "matmul": (x @ y.mT, a @ a[::-1].T),
        "sum": (xp.sum(x, axis=0), a.sum(axis=0)),
        "sqrt": (xp.sqrt(xp.abs(x)), np.sqrt(np.abs(a))),
        "getitem": (x[1, 1:], a[1, 1:]),
        "mask": (x[x > 0], a[a > 0]),
        "where": (xp.where(x > 0, x, y), np.where(a > 0, a, a[::-1])),
        "sort": (xp.sort(x, axis=1), np.sort(a, axis=1)),
        "linalg": (xp.linalg.matrix_norm(x), np.linalg.norm(a)),
        "astype": (xp.astype(x, xp.float32), a.astype(np.float32)),
        "reshape": (xp.reshape(x, (3, 2)), a.reshape(3, 2)),
        "concat": (xp.concat([x, y]), np.concatenate([a, a[::-1]])),
        "0-d": (xp.max(x), a.max()),
    }
    for op, (r, expected) in results.items():
        _on(r, name)
        np.testing.assert_allclose(_host(r), expected, rtol=1e-6, err_msg=op)


@pytest.mark.parametrize("name", ["jax:cpu:3"])
def test_constant_results_are_committed_to_the_device(name: str) -> None:
    """Results that do not depend on the input's values (JAX makes them on its default
    device, uncommitted) live on the input's device all the same, eagerly and under jit."""
    i = xp.asarray(np.arange(6).reshape(2, 3), device=name)
    m = xp.asarray(np.arange(4.0).reshape(2, 2), device=name)
    cases = {
        "isfinite(int)": (lambda: xp.isfinite(i), np.ones((2, 3), bool)),
        "isinf(int)": (lambda: xp.isinf(i), np.zeros((2, 3), bool)),
        "matrix_power(x, 0)": (lambda: xp.linalg.matrix_power(m, 0), np.eye(2)),
        "jit constant": (lambda: xp.jit(lambda t: xp.isfinite(t))(i), np.ones((2, 3), bool)),
    }
    for what, (run, want) in cases.items():
        r = run()
        _on(r, name)
        np.testing.assert_array_equal(_host(r), want, err_msg=what)


# -- movement -------------------------------------------------------------------------------
@pytest.mark.parametrize(("src", "dst"), [("jax:cpu:0", "jax:cpu:1"), ("jax:cpu:3", "jax:cpu:2")])
def test_move_between_jax_devices_is_direct_and_recorded(src: str, dst: str) -> None:
    a = np.arange(12.0).reshape(3, 4)
    x = xp.asarray(a, device=src, tags={"origin": "DE"})
    with xp.transfers() as log:
        y = x.to_device(dst)
    _on(y, dst)
    _on(x, src)
    np.testing.assert_array_equal(_host(y), a)
    assert y.tags == x.tags
    (rec,) = list(log)
    assert (rec.source, rec.destination, rec.nbytes, rec.path) == (src, dst, a.nbytes, "direct")
    assert rec.wall_seconds > 0


def test_numpy_jax_round_trip_is_recorded_and_independent() -> None:
    a = np.arange(6.0)
    x = xp.asarray(a.copy())
    with xp.transfers() as log:
        j = x.to_device("jax:cpu:2")
        back = j.to_device("numpy:cpu")
    _on(j, "jax:cpu:2")
    assert [(r.source, r.destination) for r in log] == [
        ("numpy:cpu", "jax:cpu:2"),
        ("jax:cpu:2", "numpy:cpu"),
    ]
    assert [r.nbytes for r in log] == [a.nbytes, a.nbytes]
    # JAX never aliases the NumPy buffer, and the host copy is writable and its own.
    x[0] = 100.0
    assert float(j[0]) == 0.0
    back[1] = -1.0
    np.testing.assert_array_equal(_host(j), a)
    np.testing.assert_array_equal(np.asarray(back), [0.0, -1.0, 2.0, 3.0, 4.0, 5.0])


def _aligned(values: np.ndarray) -> np.ndarray:
    """A copy of *values* whose buffer is 64-byte aligned (XLA's CPU client aliases those)."""
    buf = np.empty(values.nbytes + 64, dtype=np.uint8)
    offset = -buf.ctypes.data % 64
    out = buf[offset : offset + values.nbytes].view(values.dtype).reshape(values.shape)
    out[...] = values
    return out


@pytest.mark.parametrize("dtype", ["float64", "int32", "bool", "complex64"])
def test_moves_from_aligned_host_memory_are_copies(dtype: str) -> None:
    values = np.arange(8).astype(dtype)
    h = _aligned(values)
    assert h.ctypes.data % 64 == 0
    moved = xp.asarray(h).to_device("jax:cpu:1")
    direct = xp.asarray(h, device="jax:cpu:2")
    via_dlpack = xp.from_dlpack(h, device="jax:cpu:3")
    h[...] = np.zeros(8).astype(dtype)
    for x in (moved, direct, via_dlpack):
        assert x._data.unsafe_buffer_pointer() != h.ctypes.data
        np.testing.assert_array_equal(_host(x), values)


def test_moves_to_and_from_emulated_devices_go_through_the_host() -> None:
    a = np.linspace(0, 1, 7)
    x = xp.asarray(a, device="jax:cpu:1")
    with xp.transfers() as log:
        e = x.to_device("emulated:0")
        j = e.to_device("jax:cpu:3")
    assert [r.path for r in log] == ["host", "host"]
    _on(j, "jax:cpu:3")
    np.testing.assert_array_equal(_host(j), a)


def test_forbidden_moves_copy_nothing() -> None:
    x = xp.asarray([1.0, 2.0], device="jax:cpu:0")
    with (
        xp.transfers(forbid=True),
        pytest.raises(TransferForbiddenError, match="jax:cpu:0 to jax:cpu:1"),
    ):
        x.to_device("jax:cpu:1")


def test_stream_is_refused_for_jax_devices() -> None:
    x = xp.asarray([1.0], device="jax:cpu:0")
    with pytest.raises(InvalidArgumentError, match="stream"):
        x.to_device("jax:cpu:1", stream=1)


def test_mixing_jax_devices_raises() -> None:
    x = xp.ones(3, device="jax:cpu:0")
    y = xp.ones(3, device="jax:cpu:1")
    with pytest.raises(DeviceMismatchError, match=r"jax:cpu:0 and jax:cpu:1"):
        x + y
    with pytest.raises(DeviceMismatchError):
        xp.add(x, y)
    with pytest.raises(DeviceMismatchError):
        xp.stack([x, y])
    with pytest.raises(DeviceMismatchError):
        x + xp.ones(3)
    with pytest.raises(DeviceMismatchError):
        x[0] = y[0]


# -- foreign JAX arrays and DLPack ----------------------------------------------------------
def test_asarray_of_a_jax_array_keeps_its_device() -> None:
    native = jax.device_put(jnp.arange(4.0), jax.devices("cpu")[2])
    with xp.transfers() as log:
        x = xp.asarray(native)
    assert str(x.device) == "jax:cpu:2" and x._data is native
    assert len(log) == 0
    y = xp.asarray(native, copy=True)
    _on(y, "jax:cpu:2")
    assert y._data is not native
    np.testing.assert_array_equal(_host(y), [0.0, 1.0, 2.0, 3.0])
    with xp.transfers() as log:
        z = xp.asarray(native, device="jax:cpu:0")
    _on(z, "jax:cpu:0")
    assert [(r.source, r.destination) for r in log] == [("jax:cpu:2", "jax:cpu:0")]
    with pytest.raises(InvalidArgumentError, match="copy=False"):
        xp.asarray(native, device="jax:cpu:1", copy=False)


def test_uncommitted_jax_arrays_live_on_jax_default_device() -> None:
    x = xp.asarray(jnp.ones(2))
    assert str(x.device) == "jax:cpu:0"


def test_sharded_jax_array_is_refused() -> None:
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(jax.devices("cpu")[:2]), ("i",))
    sharded = jax.device_put(jnp.arange(8.0), NamedSharding(mesh, PartitionSpec("i")))
    with pytest.raises(InvalidArgumentError, match="sharded across 2 devices"):
        xp.asarray(sharded)


def test_from_dlpack_of_jax_arrays() -> None:
    native = jax.device_put(jnp.arange(3.0), jax.devices("cpu")[3])
    x = xp.from_dlpack(native)
    assert str(x.device) == "jax:cpu:3"
    np.testing.assert_array_equal(_host(x), [0.0, 1.0, 2.0])
    h = xp.from_dlpack(native, device="numpy:cpu")
    assert str(h.device) == "numpy:cpu"
    np.testing.assert_array_equal(np.asarray(h), [0.0, 1.0, 2.0])


def test_dlpack_device_is_jaxs_but_locality_is_hpcais() -> None:
    xs = [xp.asarray([1.0, 2.0], device=n) for n in JAX_CPU]
    # JAX reports every virtual CPU device as (kDLCPU, 0) ...
    assert {x.__dlpack_device__() for x in xs} == {(1, 0)}
    # ... so the device comes from hpcai, never from DLPack.
    assert [str(x.device) for x in xs] == JAX_CPU
    h = np.from_dlpack(xs[2])
    np.testing.assert_array_equal(h, [1.0, 2.0])


# -- mutation -------------------------------------------------------------------------------
SET_KEYS = [
    1,
    -1,
    (0, 2),
    (slice(None), 1),
    slice(1, None, 2),
    (Ellipsis, 0),
    (None, 1),
    (slice(None, None, -1), slice(0, 2)),
]


@pytest.mark.parametrize("key", SET_KEYS, ids=repr)
@pytest.mark.parametrize("name", ["jax:cpu:0", "jax:cpu:2"])
def test_setitem_matches_numpy(name: str, key: Any) -> None:
    a = np.arange(12.0).reshape(3, 4)
    x = xp.asarray(a, device=name)
    ident = id(x)
    expected = a.copy()
    expected[key] = -5.0
    x[key] = -5.0
    assert id(x) == ident
    _on(x, name)
    np.testing.assert_array_equal(_host(x), expected)


def test_setitem_with_arrays_masks_and_tags() -> None:
    a = np.arange(6.0)
    x = xp.asarray(a, device="jax:cpu:1")
    idx = xp.asarray([0, 5], device="jax:cpu:1")
    x[idx] = xp.asarray(9.0, device="jax:cpu:1", tags={"origin": "FR"})
    x[x > 3.5] = 1.0  # a boolean mask (data-dependent shape)
    x[2:4] = xp.asarray([7.0, 8.0], device="jax:cpu:1")
    expected = a.copy()
    expected[[0, 5]] = 9.0
    expected[expected > 3.5] = 1.0
    expected[2:4] = [7.0, 8.0]
    np.testing.assert_array_equal(_host(x), expected)
    _on(x, "jax:cpu:1")
    assert x.tags == {"origin": frozenset({"FR"})}


def test_setitem_out_of_bounds_raises_like_numpy() -> None:
    x = xp.zeros((3, 4), device="jax:cpu:0")
    with pytest.raises(ArrayIndexError, match="out of bounds"):
        x[3] = 1.0
    with pytest.raises(IndexError):
        x[0, -5] = 1.0
    np.testing.assert_array_equal(_host(x), np.zeros((3, 4)))


def test_setitem_in_a_loop_compiles_once() -> None:
    x = xp.zeros(50, device="jax:cpu:3")
    for i in range(50):
        x[i] = float(i)
    np.testing.assert_array_equal(_host(x), np.arange(50.0))
    _on(x, "jax:cpu:3")


def test_slices_are_copies_on_jax() -> None:
    x = xp.asarray([1.0, 2.0, 3.0], device="jax:cpu:0")
    head = x[:2]
    x[0] = 10.0
    np.testing.assert_array_equal(_host(head), [1.0, 2.0])


INPLACE = [
    ("__iadd__", np.add, 1.5),
    ("__isub__", np.subtract, 2.0),
    ("__imul__", np.multiply, 3.0),
    ("__itruediv__", np.divide, 4.0),
    ("__ifloordiv__", np.floor_divide, 2.0),
    ("__imod__", np.remainder, 3.0),
    ("__ipow__", np.power, 2.0),
]


@pytest.mark.parametrize(("op", "ref", "scalar"), INPLACE, ids=[o[0] for o in INPLACE])
def test_inplace_operators_match_numpy(op: str, ref, scalar: float) -> None:
    a = np.array([1.0, -2.0, 3.5, 8.0])
    b = np.array([2.0, 3.0, -1.0, 0.5])
    x = xp.asarray(a, device="jax:cpu:1")
    y = xp.asarray(b, device="jax:cpu:1", tags={"k": "v"})
    ident = id(x)
    out = getattr(x, op)(y)
    assert out is x and id(x) == ident
    _on(x, "jax:cpu:1")
    np.testing.assert_allclose(_host(x), ref(a, b))
    assert x.tags == {"k": frozenset({"v"})}
    getattr(x, op)(scalar)
    np.testing.assert_allclose(_host(x), ref(ref(a, b), scalar))


def test_inplace_integer_and_matmul_operators() -> None:
    a = np.array([[5, 6], [7, 8]], dtype=np.int64)
    x = xp.asarray(a, device="jax:cpu:2")
    x &= 6
    x |= 1
    x ^= 2
    x <<= 1
    x >>= 1
    expected = (((a & 6) | 1) ^ 2) << 1 >> 1
    np.testing.assert_array_equal(_host(x), expected)
    m = xp.asarray([[1.0, 2.0], [3.0, 4.0]], device="jax:cpu:2")
    m @= xp.eye(2, device="jax:cpu:2") * 2
    np.testing.assert_array_equal(_host(m), [[2.0, 4.0], [6.0, 8.0]])
    _on(m, "jax:cpu:2")


def test_inplace_cannot_change_dtype() -> None:
    x = xp.asarray([1, 2], device="jax:cpu:0")
    with pytest.raises(DTypeError):
        x += 1.5
    np.testing.assert_array_equal(_host(x), [1, 2])


# -- the standard's special cases where XLA and jax.numpy miss them ------------------------
def _bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a).view(np.dtype(f"u{np.asarray(a).dtype.itemsize}"))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_division_by_a_broadcast_divisor_is_correctly_rounded(dtype: str) -> None:
    """XLA turns ``x / broadcast(y)`` into ``x * (1/y)``; every route of hpcai divides."""
    rng = np.random.default_rng(7)
    big = float(np.finfo(dtype).max)
    a = np.concatenate([rng.standard_normal(500) * 1e3, [np.inf, -np.inf, big, -big]])
    a = a.astype(dtype)
    d = np.asarray([1.5, 3.0, 2.5, -7.0, 0.1], dtype=dtype)  # no quotient is subnormal
    x = xp.asarray(a, device="jax:cpu:1")
    for s in d.tolist():
        want = a / np.asarray(s, dtype=dtype)
        for got in (
            x / s,  # operator, Python scalar
            s * 0 + x / xp.asarray(s, dtype=x.dtype, device="jax:cpu:1"),  # 0-d divisor
            xp.divide(x, s),
            xp.divide(x, xp.asarray(np.full((1,), s, dtype=dtype), device="jax:cpu:1")),
        ):
            _on(got, "jax:cpu:1")
            np.testing.assert_array_equal(_bits(_host(got)), _bits(want))
        y = xp.asarray(a, device="jax:cpu:1")
        y /= s
        np.testing.assert_array_equal(_bits(_host(y)), _bits(want))
    # column / row: both operands broadcast
    col = xp.asarray(a.reshape(-1, 1), device="jax:cpu:1")
    row = xp.asarray(d.reshape(1, -1), device="jax:cpu:1")
    want = a.reshape(-1, 1) / d.reshape(1, -1)
    np.testing.assert_array_equal(_bits(_host(col / row)), _bits(want))
    # inf / huge is inf (not NaN), huge // huge is 1 (not 0)
    assert float((xp.asarray([np.inf], dtype=x.dtype, device="jax:cpu:1") / big)[0]) == np.inf
    assert float(xp.floor_divide(xp.asarray([big], dtype=x.dtype, device="jax:cpu:1"), big)[0]) == 1


def test_corrected_functions_trace_under_jit_and_grad() -> None:
    a = np.array([2.5, -3.0, 1e300, np.inf])
    x = xp.asarray(a, device="jax:cpu:2", tags={"origin": "DE"})

    @xp.jit
    def f(t, z):
        return t / 1.5, xp.sqrt(z), xp.exp(z), xp.log(z), abs(z)

    z = xp.asarray(
        np.array([complex(-0.0, -0.0), complex(np.inf, np.nan), complex(np.nan, -np.inf)]),
        device="jax:cpu:2",
    )
    q, r, e, lg, m = f(x, z)
    _on(q, "jax:cpu:2")
    assert q.tags == x.tags
    np.testing.assert_array_equal(_bits(_host(q)), _bits(a / 1.5))
    r_h, e_h, lg_h, m_h = (_host(v) for v in (r, e, lg, m))
    # sqrt(-0-0j) = +0-0j; sqrt(inf+nanj) = inf+nanj; sqrt(nan-infj) = inf-infj
    assert np.signbit(r_h[0].imag) and not np.signbit(r_h[0].real)
    assert r_h[1].real == np.inf and np.isnan(r_h[1].imag)
    assert r_h[2] == complex(np.inf, -np.inf)
    # exp(-0-0j) = 1-0j; exp(inf+nanj) = (±inf, nan)
    assert e_h[0].real == 1.0 and e_h[0].imag == 0 and np.signbit(e_h[0].imag)
    assert np.isinf(e_h[1].real) and np.isnan(e_h[1].imag)
    # log and abs of a value with an infinite component: real part +inf beside NaN
    assert lg_h[1].real == np.inf and lg_h[2].real == np.inf
    assert m_h.tolist()[1:] == [np.inf, np.inf] and m_h[0] == 0
    g = jax.grad(lambda t: xp.sum(t / 4.0)._data)(xp.asarray([1.0, 2.0], device="jax:cpu:2"))
    np.testing.assert_array_equal(_host(g), [0.25, 0.25])


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal values, NaN where NaN, and the same sign of zero (component-wise for complex)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "c":
        return _same(a.real.copy(), b.real.copy()) and _same(a.imag.copy(), b.imag.copy())
    if a.dtype.kind == "f":
        return bool(np.all((a == b) & (np.signbit(a) == np.signbit(b)) | np.isnan(a) & np.isnan(b)))
    return bool(np.all(a == b))


def test_every_elementwise_function_traces_with_its_corrections() -> None:
    """Under xp.jit every elementwise function gives what it gives eagerly, special values
    included: the corrections of hpcai and of the JAX namespace are traceable."""
    from hpcai.testing import ELEMENTWISE_FUNCTIONS

    sv = [0.0, -0.0, 0.5, -1.5, 2.0, np.inf, -np.inf, np.nan]
    f1 = np.array(sv * len(sv))
    f2 = np.repeat(sv, len(sv))
    dev = "jax:cpu:3"
    inputs = {
        "f": (xp.asarray(f1, device=dev), xp.asarray(f2, device=dev)),
        "c": (xp.asarray(f1 + 1j * f2, device=dev), xp.asarray(f2 - 1j * f1, device=dev)),
        "i": (xp.asarray(np.arange(-8, 8), device=dev), xp.asarray(np.arange(16) % 5 + 1, device=dev)),
        "b": (xp.asarray(np.arange(16) % 2 == 0, device=dev), xp.asarray(np.arange(16) % 3 == 0, device=dev)),
    }
    checked = set()
    for name in ELEMENTWISE_FUNCTIONS:
        f = getattr(xp, name)
        for kind, (a, b) in inputs.items():
            for args in ((a,), (a, b), (a, 2), (a, -1.0, 1.0)):
                if kind == "i" and name.startswith("bitwise_") and name.endswith("shift"):
                    args = (xp.abs(a), b) if len(args) == 2 else args
                try:
                    with np.errstate(all="ignore"):
                        eager = f(*args)
                except Exception:
                    continue
                _on(eager, dev)
                traced = xp.jit(f)(*args)
                _on(traced, dev)
                assert _same(_host(traced), _host(eager)), f"{name}{kind}{len(args)}: jit differs"
                checked.add(name)
    assert checked == set(ELEMENTWISE_FUNCTIONS)


def test_complex_special_values_are_corrected_in_the_namespace_also_under_jit() -> None:
    """jax.numpy's complex special values are corrected by the JAX namespace itself, with
    traceable code: hpcai's NumPy corrections (which write parts in place) never run on JAX,
    and the standard's values hold on another device and inside xp.jit."""
    from hpcai import _elementwise

    ns = xp.resolve_device("jax:cpu:1")._ns
    assert not {"expm1_complex", "tanh_complex"} & _elementwise._quirks(ns)
    inf, nan = np.inf, np.nan
    z = xp.asarray(
        np.array([complex(-inf, inf), complex(inf, 2.0), complex(nan, inf), complex(0.0, nan)]),
        device="jax:cpu:1",
    )

    def f(t):
        return xp.expm1(t), xp.tanh(t), xp.log1p(t), xp.atanh(t), xp.cosh(t), xp.acos(t)

    for e, th, l1, at, ch, ac in (f(z), xp.jit(f)(z)):
        for r in (e, th, l1, at, ch, ac):
            _on(r, "jax:cpu:1")
        e, th, l1, at, ch, ac = (_host(r) for r in (e, th, l1, at, ch, ac))
        assert e[0].real == -1.0 and e[0].imag == 0  # expm1(-inf + inf j) = -1 ± 0j
        assert th[1] == 1 and not np.signbit(th[1].imag)  # tanh(inf + 2j) = 1 + 0j
        assert l1[2].real == inf and np.isnan(l1[2].imag)  # log1p(nan + inf j) = inf + nan j
        assert at[3].real == 0 and not np.signbit(at[3].real) and np.isnan(at[3].imag)
        assert np.isnan(ch[3].real) and ch[3].imag == 0  # cosh(+0 + nan j) = nan ± 0j
        assert ac[3].real == np.pi / 2 and np.isnan(ac[3].imag)  # acos(+0 + nan j)
    # real input takes jax.numpy's own functions; sign(-0.0) is +0 there too
    r = _host(xp.jit(xp.sign)(xp.asarray([-0.0, -2.0], device="jax:cpu:1")))
    assert r.tolist() == [0.0, -1.0] and not np.signbit(r[0])


def test_subnormals_flush_to_zero_on_jax_cpu() -> None:
    """XLA on CPU flushes subnormals (the standard leaves them implementation-defined)."""
    tiny = float(np.finfo(np.float64).smallest_normal)
    x = xp.asarray([tiny], device="jax:cpu:0")
    h = xp.asarray([tiny], device="numpy:cpu")
    assert float((h / 4.0)[0]) == tiny / 4 != 0
    assert float((x / 4.0)[0]) == 0.0


# -- pickling -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", JAX_CPU)
def test_pickle_round_trip_keeps_device_and_tags(name: str) -> None:
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    x = xp.asarray(a, device=name, tags={"origin": "DE"})
    y = pickle.loads(pickle.dumps(x))
    _on(y, name)
    assert y.dtype == xp.int32
    assert y.tags == x.tags
    np.testing.assert_array_equal(_host(y), a)


# -- pytrees and jit ------------------------------------------------------------------------
def test_arrays_are_pytrees() -> None:
    x = xp.asarray([1.0, 2.0], device="jax:cpu:1", tags={"origin": "DE"})
    leaves, treedef = jax.tree_util.tree_flatten({"a": x, "b": [x, 3]})
    assert leaves[0] is x._data and leaves[2] == 3
    back = jax.tree_util.tree_unflatten(treedef, leaves)
    assert back["a"].__class__ is xp.Array
    assert back["a"].device == x.device and back["a"].tags == x.tags
    doubled = jax.tree_util.tree_map(lambda n: n * 2, x)
    assert doubled.__class__ is xp.Array
    np.testing.assert_array_equal(_host(doubled), [2.0, 4.0])


def test_jax_jit_and_grad_accept_arrays() -> None:
    x = xp.asarray([1.0, 2.0, 3.0], device="jax:cpu:2", tags={"origin": "DE"})
    y = jax.jit(lambda t: xp.sin(t) * 2)(x)
    _on(y, "jax:cpu:2")
    assert y.tags == x.tags
    np.testing.assert_allclose(_host(y), 2 * np.sin([1.0, 2.0, 3.0]))
    g = jax.grad(lambda t: xp.sum(t * t)._data)(x)
    assert g.__class__ is xp.Array
    np.testing.assert_allclose(_host(g), [2.0, 4.0, 6.0])


def test_xp_jit_compiles_once_and_keeps_device_and_tags() -> None:
    traces = []

    @xp.jit
    def axpy(a, x, y):
        traces.append(type(x._data).__name__)
        return a * x + y, xp.sum(x)

    x = xp.asarray([1.0, 2.0], device="jax:cpu:3", tags={"origin": "DE"})
    y = xp.asarray([10.0, 20.0], device="jax:cpu:3")
    r, s = axpy(2.0, x, y)
    r2, _ = axpy(2.0, x + 1, y)
    assert len(traces) == 1 and "Tracer" in traces[0]
    _on(r, "jax:cpu:3")
    _on(s, "jax:cpu:3")
    assert r.tags == {"origin": frozenset({"DE"})}
    np.testing.assert_array_equal(_host(r), [12.0, 24.0])
    np.testing.assert_array_equal(_host(r2), [14.0, 26.0])
    assert float(s) == 3.0
    # a new constant or new tags trace again (both are part of the compiled program)
    axpy(3.0, x, y)
    axpy(2.0, xp.asarray([1.0, 2.0], device="jax:cpu:3", tags={"origin": "FR"}), y)
    assert len(traces) == 3


def test_xp_jit_runs_unchanged_off_jax() -> None:
    calls = []

    @xp.jit
    def f(x):
        calls.append(type(x._data))
        return x * 2

    for name in ["numpy:cpu", "emulated:1"]:
        r = f(xp.asarray([1.0, 2.0], device=name))
        assert str(r.device) == name
        np.testing.assert_array_equal(_host(r), [2.0, 4.0])
    assert calls == [np.ndarray, np.ndarray]
    assert f.__name__ == "f"


def test_xp_jit_errors() -> None:
    @xp.jit
    def add(x, y):
        return x + y

    with pytest.raises(DeviceMismatchError):
        add(xp.ones(2, device="jax:cpu:0"), xp.ones(2, device="jax:cpu:1"))

    @xp.jit
    def scale(x, factors):
        return x * factors[0]

    with pytest.raises(InvalidArgumentError, match="neither an hpcai Array nor hashable"):
        scale(xp.ones(2, device="jax:cpu:0"), np.ones(2))

    @xp.jit
    def move(x):
        return x.to_device("jax:cpu:1")

    with (
        xp.transfers() as log,
        pytest.raises(InvalidArgumentError, match="cannot move data inside"),
    ):
        move(xp.ones(2, device="jax:cpu:0"))
    assert len(log) == 0


# -- scikit-learn and SciPy -----------------------------------------------------------------
def _run_with_array_api(code: str) -> None:
    """Run *code* in a fresh interpreter with SciPy's array API support switched on.

    ``SCIPY_ARRAY_API`` is read when SciPy is imported, so it cannot be turned on inside a
    test process that may have imported SciPy already.
    """
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
        cwd=tempfile.gettempdir(),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok"), out.stdout[-2000:]


def test_sklearn_on_jax_devices() -> None:
    pytest.importorskip("sklearn")
    _run_with_array_api(
        """
        import numpy as np, sklearn
        from sklearn.decomposition import PCA
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
        import hpcai as xp

        rng = np.random.default_rng(7)
        X = rng.standard_normal((80, 4))
        y = (X[:, 0] - X[:, 2] > 0).astype(np.int64)
        ref_pca = PCA(n_components=2, svd_solver="full").fit(X)
        ref_lda = LinearDiscriminantAnalysis().fit(X, y)

        def host(a):
            assert isinstance(a, xp.Array), type(a)
            assert str(a.device) == name and a._data.devices() == {a.device.spec.handle}, a.device
            return np.asarray(a.to_device("numpy:cpu"))

        with sklearn.config_context(array_api_dispatch=True):
            for name in ["jax:cpu:1", "jax:cpu:3"]:
                Xh = xp.asarray(X, device=name)
                pca = PCA(n_components=2, svd_solver="full").fit(Xh)
                np.testing.assert_allclose(
                    np.abs(host(pca.transform(Xh))), np.abs(ref_pca.transform(X)), rtol=1e-6, atol=1e-9
                )
                np.testing.assert_allclose(host(pca.explained_variance_), ref_pca.explained_variance_, rtol=1e-6)
                lda = LinearDiscriminantAnalysis().fit(Xh, xp.asarray(y, device=name))
                np.testing.assert_allclose(host(lda.predict_proba(Xh)), ref_lda.predict_proba(X), rtol=1e-6, atol=1e-9)
                np.testing.assert_array_equal(host(lda.predict(Xh)), ref_lda.predict(X))
        print("ok")
        """
    )


def test_scipy_on_jax_devices() -> None:
    pytest.importorskip("scipy")
    _run_with_array_api(
        """
        import numpy as np, scipy.fft, scipy.special
        import hpcai as xp
        a = np.linspace(0.05, 0.95, 12).reshape(3, 4)
        for name in ["jax:cpu:1", "jax:cpu:2"]:
            x = xp.asarray(a, device=name, tags={"origin": "DE"})
            cases = {
                "erf": (scipy.special.erf(x), scipy.special.erf(a)),
                "gammaln": (scipy.special.gammaln(x), scipy.special.gammaln(a)),
                "xlogy": (scipy.special.xlogy(x, x), scipy.special.xlogy(a, a)),
                "entr": (scipy.special.entr(x), scipy.special.entr(a)),
                "logsumexp": (scipy.special.logsumexp(x, axis=1), scipy.special.logsumexp(a, axis=1)),
                "softmax": (scipy.special.softmax(x, axis=0), scipy.special.softmax(a, axis=0)),
                "fft": (scipy.fft.fft(x, axis=1), scipy.fft.fft(a, axis=1)),
                "rfft": (scipy.fft.rfft(x), scipy.fft.rfft(a)),
            }
            for fname, (got, want) in cases.items():
                assert isinstance(got, xp.Array), (fname, type(got))
                assert str(got.device) == name, (fname, got.device)
                assert got._data.devices() == {x.device.spec.handle}, fname
                assert got.tags == x.tags, (fname, got.tags)
                np.testing.assert_allclose(np.asarray(got.to_device("numpy:cpu")), want, rtol=1e-10, err_msg=fname)
        print("ok")
        """
    )
