"""Data type functions and the inspection namespace, checked against array-api-strict and NumPy."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import array_api_strict as strict
import numpy as np
import pytest

import hpcai as xp
import hpcai._info
from hpcai.errors import (
    DeviceMismatchError,
    DTypeError,
    ForeignArrayError,
    InvalidArgumentError,
    TransferForbiddenError,
    UnknownDeviceError,
    UnsupportedDtypeError,
)
from hpcai.testing import to_numpy

GAUDI = '[devices."emulated:2"]\npreset = "gaudi3"\nmemory = "1 MiB"\n'
NAMES = [
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float64",
    "complex64",
    "complex128",
]
KINDS = ["bool", "signed integer", "unsigned integer", "integral", "real floating", "complex floating", "numeric"]


def _other(device: str) -> str:
    return "emulated:0" if device == "numpy:cpu" else "numpy:cpu"


def _strict_result_type(*args):  # type: ignore[no-untyped-def]
    """array-api-strict's answer, or None where the standard leaves the promotion unspecified."""
    try:
        return np.dtype(str(strict.result_type(*args)).split(".")[-1])
    except TypeError:
        return None


# --------------------------------------------------------------------------------------------
# astype
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("src", "dst"), [("float64", "int32"), ("int16", "float32"), ("bool", "complex64"),
                                          ("uint8", "int8"), ("float32", "bool"), ("complex128", "complex64"),
                                          ("complex64", "bool"), ("int64", "uint16")])
def test_astype_matches_numpy(device: str, src: str, dst: str) -> None:
    a = np.array([0, 1.75, -2.5, 3, 0], dtype=np.float64).astype(src) if src != "bool" else np.array([True, False])
    x = xp.asarray(a, device=device, tags={"k": "v"})
    r = xp.astype(x, getattr(xp, dst))
    with np.errstate(invalid="ignore"):
        expected = a.astype(dst)
    assert str(r.device) == device and r.dtype == expected.dtype and r.tags == x.tags
    np.testing.assert_array_equal(to_numpy(r), expected)


def test_astype_copy_semantics(device: str) -> None:
    x = xp.asarray([1.0, 2.0], device=device)
    assert xp.astype(x, xp.float64, copy=False) is x
    y = xp.astype(x, xp.float64)
    assert y is not x
    if xp.resolve_device(device).backend in ("numpy", "emulated"):
        x[0] = 7.0
        assert float(y[0]) == 1.0
    z = xp.astype(x, "float32", copy=False)
    assert z.dtype == xp.float32


def test_astype_to_another_device(device: str) -> None:
    other = _other(device)
    x = xp.asarray([1.5, 2.5], device=device, tags={"origin": "DE"})
    with xp.transfers() as log:
        y = xp.astype(x, xp.int32, device=other)
    assert str(y.device) == other and y.dtype == xp.int32 and y.tags == x.tags
    assert [(r.op, r.source, r.destination) for r in log] == [("astype", device, other)]
    assert log[0].nbytes == 8  # cast first: two int32 values travel, not two float64
    np.testing.assert_array_equal(to_numpy(y), [1, 2])
    with xp.transfers(forbid=True), pytest.raises(TransferForbiddenError):
        xp.astype(x, xp.float32, device=other)


def test_astype_bad_input() -> None:
    z = xp.asarray([1 + 2j])
    with pytest.raises(DTypeError, match="imaginary part"):
        xp.astype(z, xp.float64)
    with pytest.raises(DTypeError, match="imaginary part"):
        xp.astype(z, xp.int32)
    assert bool(xp.astype(z, xp.bool)[0])
    with pytest.raises(DTypeError, match="dtype is required"):
        xp.astype(z, None)
    with pytest.raises(DTypeError, match="not a data type"):
        xp.astype(z, "complex7")
    with pytest.raises(ForeignArrayError):
        xp.astype(np.ones(2), xp.float32)  # type: ignore[arg-type]
    with pytest.raises(UnknownDeviceError):
        xp.astype(z, xp.complex64, device="nosuch:0")


def test_astype_on_fp64_less_device(config) -> None:
    config(GAUDI)
    host64 = xp.asarray([1.25, 2.5])
    y = xp.astype(host64, xp.float32, device="emulated:2")  # cast on the host, then move
    assert str(y.device) == "emulated:2" and y.dtype == xp.float32
    with pytest.raises(UnsupportedDtypeError, match="xp.astype: emulated:2 has no native float64"):
        xp.astype(y, xp.float64)
    back = xp.astype(y, xp.float64, device="numpy:cpu")  # move first, then cast on the host
    assert back.dtype == xp.float64 and str(back.device) == "numpy:cpu"
    np.testing.assert_array_equal(np.asarray(back), [1.25, 2.5])


# --------------------------------------------------------------------------------------------
# can_cast, result_type
# --------------------------------------------------------------------------------------------
def test_promotion_matches_the_standard() -> None:
    for a, b in itertools.product(NAMES, NAMES):
        da, db = getattr(xp, a), getattr(xp, b)
        ref = _strict_result_type(getattr(strict, a), getattr(strict, b))
        got = xp.result_type(da, db)
        if ref is not None:
            assert got == ref, (a, b, got, ref)
        else:  # unspecified by the standard: what NumPy computes
            assert got == np.result_type(da, db), (a, b)
        assert xp.can_cast(da, db) == strict.can_cast(getattr(strict, a), getattr(strict, b)), (a, b)


@pytest.mark.parametrize("scalar", [True, 3, -1.5, 2j])
def test_result_type_with_python_scalars(device: str, scalar) -> None:
    for name in NAMES:
        x = xp.asarray(np.zeros(2, dtype=name), device=device)
        ref = _strict_result_type(strict.asarray(np.zeros(2, dtype=name)), scalar)
        got = xp.result_type(x, scalar)
        if ref is not None:
            assert got == ref, (name, scalar, got, ref)
        else:
            assert got == np.result_type(np.dtype(name), scalar), (name, scalar)
        assert xp.result_type(getattr(xp, name), scalar) == got


def test_result_type_mixes_arrays_dtypes_and_scalars(device: str) -> None:
    x = xp.asarray([1], dtype=xp.int8, device=device)
    y = xp.asarray([1], dtype=xp.uint8, device=device)
    assert xp.result_type(x, y, xp.int32, 7) == xp.int32
    assert xp.result_type(xp.float32, xp.complex64, 1) == xp.complex64
    assert xp.result_type(xp.float32, 1.0, 2) == xp.float32
    assert xp.result_type(x) == xp.int8


def test_result_type_bad_input(device: str) -> None:
    x = xp.asarray([1.0], device=device)
    with pytest.raises(DeviceMismatchError, match="different devices"):
        xp.result_type(x, xp.asarray([1.0], device=_other(device)))
    with pytest.raises(DTypeError, match="at least one array or dtype"):
        xp.result_type()
    with pytest.raises(DTypeError, match="only Python scalars"):
        xp.result_type(1, 2.0)
    with pytest.raises(DTypeError, match="not a data type"):
        xp.result_type(x, "float99")
    with pytest.raises(ForeignArrayError):
        xp.result_type(x, np.ones(2))
    with pytest.raises(DTypeError):
        xp.result_type(x, None)


def test_can_cast_with_arrays_and_devices(config) -> None:
    config(GAUDI)
    x = xp.asarray([1.0], dtype=xp.float32, device="emulated:2")
    assert xp.can_cast(x, xp.float32)
    assert not xp.can_cast(x, xp.float64)  # the device has no float64
    assert xp.can_cast(xp.float32, xp.float64)  # the dtype lattice alone allows it
    assert xp.can_cast(xp.asarray([1], dtype=xp.int8), xp.int16)
    assert not xp.can_cast(xp.asarray([1], dtype=xp.int64), xp.float64)  # cross-kind
    with pytest.raises(DTypeError, match="`to` must be a dtype"):
        xp.can_cast(xp.int8, x)
    with pytest.raises(DTypeError, match="must be a dtype or an hpcai Array"):
        xp.can_cast(1, xp.int8)


def test_result_type_respects_device_dtypes(config) -> None:
    config(GAUDI)
    i = xp.asarray([1], dtype=xp.int32, device="emulated:2")
    f = xp.asarray([1.0], dtype=xp.float32, device="emulated:2")
    assert xp.result_type(i, 1.5) == xp.float32  # the device's default float
    assert xp.result_type(f, 1j) == xp.complex64
    with pytest.raises(UnsupportedDtypeError, match="result_type: emulated:2 has no native float64"):
        xp.result_type(f, xp.float64)
    assert xp.result_type(xp.float32, xp.float64) == xp.float64  # dtypes alone: no device


# --------------------------------------------------------------------------------------------
# finfo, iinfo, isdtype
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["float32", "float64", "complex64", "complex128"])
def test_finfo_matches_numpy(name: str) -> None:
    ref = np.finfo(np.dtype(name))
    for arg in (getattr(xp, name), xp.asarray([1], dtype=getattr(xp, name))):
        fi = xp.finfo(arg)
        assert fi.bits == ref.bits and isinstance(fi.bits, int)
        for attr in ("eps", "max", "min", "smallest_normal"):
            v = getattr(fi, attr)
            assert type(v) is float and v == float(getattr(ref, attr)), attr
        assert fi.dtype == ref.dtype and fi.dtype in (xp.float32, xp.float64)


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith(("int", "uint"))])
def test_iinfo_matches_numpy(name: str) -> None:
    ref = np.iinfo(np.dtype(name))
    for arg in (getattr(xp, name), xp.asarray([1], dtype=getattr(xp, name))):
        ii = xp.iinfo(arg)
        assert (ii.bits, ii.min, ii.max) == (ref.bits, ref.min, ref.max)
        assert type(ii.max) is int and ii.dtype == np.dtype(name)


def test_finfo_iinfo_bad_input() -> None:
    with pytest.raises(DTypeError, match="xp.finfo: needs a floating-point dtype"):
        xp.finfo(xp.int32)
    with pytest.raises(DTypeError, match="xp.iinfo: needs an integer dtype"):
        xp.iinfo(xp.float32)
    with pytest.raises(DTypeError, match="xp.iinfo"):
        xp.iinfo(xp.bool)
    with pytest.raises(DTypeError):
        xp.finfo(1.0)  # type: ignore[arg-type]


def test_isdtype_matches_strict() -> None:
    for name, kind in itertools.product(NAMES, KINDS):
        assert xp.isdtype(getattr(xp, name), kind) == strict.isdtype(getattr(strict, name), kind), (name, kind)
    for name, other in itertools.product(NAMES, NAMES):
        assert xp.isdtype(getattr(xp, name), getattr(xp, other)) == (name == other)
    assert xp.isdtype(xp.int8, ("real floating", xp.int8))
    assert xp.isdtype(xp.uint8, ("bool", "integral"))
    assert not xp.isdtype(xp.complex64, ("bool", "real floating", xp.float32))
    assert xp.isdtype(xp.float64, ()) is False


def test_isdtype_bad_input() -> None:
    with pytest.raises(InvalidArgumentError, match="unknown kind 'floating'"):
        xp.isdtype(xp.float32, "floating")
    with pytest.raises(DTypeError, match="pass x.dtype"):
        xp.isdtype(xp.asarray([1.0]), "real floating")
    with pytest.raises(DTypeError, match="kind must be"):
        xp.isdtype(xp.float32, 3)
    with pytest.raises(DTypeError, match="kind must be"):
        xp.isdtype(xp.float32, (("integral",),))


# --------------------------------------------------------------------------------------------
# __array_namespace_info__
# --------------------------------------------------------------------------------------------
def test_info_module_exports_only_the_entry_point() -> None:
    assert hpcai._info.__all__ == ["__array_namespace_info__"]
    info = xp.__array_namespace_info__()
    assert xp.asarray([1]).__array_namespace__().__array_namespace_info__() is info


def test_info_capabilities_and_devices() -> None:
    info = xp.__array_namespace_info__()
    assert info.capabilities() == {"boolean indexing": True, "data-dependent shapes": True, "max dimensions": 64}
    assert info.default_device() is xp.default_device()
    devices = info.devices()
    assert devices == xp.all_devices() and len(devices) >= 3
    for d in devices:  # each one is a valid device= argument
        assert xp.zeros(1, dtype=xp.int8, device=d).device is d
    # max dimensions is real: 64 dimensions work, 65 do not
    assert xp.reshape(xp.ones(1), (1,) * 64).ndim == 64
    with pytest.raises(ValueError):
        xp.reshape(xp.ones(1), (1,) * 65)


def test_info_dtypes_per_device(device: str) -> None:
    info = xp.__array_namespace_info__()
    all_ = info.dtypes(device=device)
    assert list(all_) == NAMES  # every standard dtype on these devices, in the standard's order
    assert all(all_[n] == getattr(xp, n) for n in NAMES)
    for kind in KINDS:
        got = info.dtypes(device=device, kind=kind)
        assert set(got) == {n for n in NAMES if strict.isdtype(getattr(strict, n), kind)}, kind
    both = info.dtypes(device=device, kind=("bool", "complex floating"))
    assert list(both) == ["bool", "complex64", "complex128"]
    assert info.default_dtypes(device=device) == {
        "real floating": xp.float64,
        "complex floating": xp.complex128,
        "integral": xp.int64,
        "indexing": xp.int64,
    }


def test_info_on_fp64_less_device(config) -> None:
    config(GAUDI)
    info = xp.__array_namespace_info__()
    dev = xp.resolve_device("emulated:2")
    assert dev in info.devices()
    got = info.dtypes(device=dev)
    assert set(got) == set(NAMES) - {"float64", "complex128"}
    assert list(info.dtypes(device="emulated:2", kind="real floating")) == ["float32"]
    assert info.default_dtypes(device="emulated:2") == {
        "real floating": xp.float32,
        "complex floating": xp.complex64,
        "integral": xp.int64,
        "indexing": xp.int64,
    }
    # the defaults it reports are what creation uses
    assert xp.zeros(1, device=dev).dtype == info.default_dtypes(device=dev)["real floating"]


def test_info_bad_input() -> None:
    info = xp.__array_namespace_info__()
    with pytest.raises(UnknownDeviceError, match="nosuch:0"):
        info.dtypes(device="nosuch:0")
    with pytest.raises(UnknownDeviceError):
        info.default_dtypes(device="nosuch:0")
    with pytest.raises(InvalidArgumentError, match="unknown kind 'float'"):
        info.dtypes(kind="float")
    with pytest.raises(DTypeError, match="kind must be"):
        info.dtypes(kind=3)  # type: ignore[arg-type]
    with pytest.raises(DTypeError, match="each kind must be a string"):
        info.dtypes(kind=("bool", xp.int8))  # type: ignore[arg-type]


def test_info_default_device_follows_environment(tmp_path) -> None:
    code = (
        "import hpcai as xp; i = xp.__array_namespace_info__(); "
        "print(i.default_device(), i.default_dtypes()['real floating'])"
    )
    env = dict(os.environ, HPCAI_DEVICE="emulated:1")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["emulated:1", "float64"]


def test_devices_keep_their_identity_across_configure(config) -> None:
    """Arrays made before ``xp.configure`` combine with arrays made after it: a device keeps
    its object, and its description (preset, dtypes, attributes) is the new one."""
    before = xp.asarray([1.0, 2.0], device="emulated:1", dtype=xp.float32)
    dev = before.device
    assert "float64" in dev.native_dtypes
    config('[devices."emulated:1"]\npreset = "gaudi3"\n[devices."emulated:1".attributes]\ncountry = "DE"\n')
    after = xp.asarray([3.0, 4.0], device="emulated:1", dtype=xp.float32)
    assert after.device is dev and xp.resolve_device("emulated:1") is dev
    assert "float64" not in dev.native_dtypes  # now a gaudi3
    assert dev.attributes.get("country") == "DE"
    np.testing.assert_array_equal(np.asarray((before + after).to_device("numpy:cpu")), [4.0, 6.0])


# --------------------------------------------------------------------------------------------
# dtype objects: NumPy dtypes, the same objects everywhere
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_dtypes_are_numpy_dtypes(name: str) -> None:
    d = getattr(xp, name)
    assert isinstance(d, xp.DType) and isinstance(d, np.dtype) and d is np.dtype(name)
    assert d == d and not (d != d)
    assert all(d != getattr(xp, other) for other in NAMES if other != name)
    assert str(d) == name and d.name == name
    # what code written for NumPy reads from a dtype (xarray's fill values, pandas, np.issubdtype)
    assert d.type is np.dtype(name).type and d.kind == np.dtype(name).kind


def test_dtype_objects_are_the_same_everywhere() -> None:
    x = xp.asarray([1.0, 2.0])
    assert x.dtype is xp.float64
    assert xp.result_type(xp.int8, xp.uint8) is xp.int16
    assert xp.__array_namespace_info__().dtypes()["int32"] is xp.int32
    assert xp.__array_namespace_info__().default_dtypes()["real floating"] is xp.float64
    assert xp.finfo(xp.complex64).dtype is xp.float32 and xp.iinfo(xp.uint8).dtype is xp.uint8
    import copy
    import pickle

    # NumPy does not intern unpickled dtypes: equal (and hashing alike), not identical
    assert pickle.loads(pickle.dumps(xp.complex64)) == xp.complex64
    assert xp.ones(2, dtype=pickle.loads(pickle.dumps(xp.int8))).dtype == xp.int8
    assert copy.deepcopy(xp.int8) == xp.int8


@pytest.mark.parametrize("device", ["numpy:cpu", "emulated:0", "jax:cpu:0"])
def test_array_dtype_is_the_namespace_dtype_on_every_device(device: str) -> None:
    if device.startswith("jax") and not any(str(d) == device for d in xp.all_devices()):
        pytest.skip("JAX is not installed")
    for name in ("bool", "int8", "uint16", "int64", "float32", "complex64"):
        assert xp.ones(2, dtype=getattr(xp, name), device=device).dtype is getattr(xp, name)


@pytest.mark.parametrize("device", ["numpy:cpu", "emulated:0"])
def test_dtype_objects_are_accepted_wherever_a_dtype_is(device: str) -> None:
    x = xp.zeros(3, dtype=xp.int16, device=device)
    assert x.dtype is xp.int16 and xp.astype(x, xp.float32).dtype is xp.float32
    assert xp.asarray([1, 2], dtype=xp.uint8, device=device).dtype is xp.uint8
    assert xp.isdtype(x.dtype, "signed integer") and xp.isdtype(x.dtype, (xp.int16, "bool"))
    assert xp.can_cast(x.dtype, xp.int32) and not xp.can_cast(xp.float64, xp.float32)
    # NumPy dtypes and names stay accepted as input, and give the same result.
    assert xp.zeros(2, dtype=np.dtype("int16"), device=device).dtype is xp.int16
    assert xp.zeros(2, dtype="int16", device=device).dtype is xp.int16
