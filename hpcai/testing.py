"""A conformance suite for devices, shipped with hpcai so plugin backends can run it too.

Subclass :class:`DeviceTests` in a pytest module and provide a ``device`` fixture that
yields device names; every test then runs on every device::

    import pytest
    from hpcai.testing import DeviceTests

    class TestMyVendor(DeviceTests):
        @pytest.fixture(params=["myvendor:0"])
        def device(self, request):
            return request.param

The suite checks what every backend must get right: creation on the device, operators,
in-place updates, indexing, Python scalar conversion, explicit movement (and its log),
device-mismatch errors, pickling and DLPack locality.
"""

from __future__ import annotations

import operator
import pickle
from typing import Any

import numpy as np

import hpcai as xp
from hpcai.errors import DeviceMismatchError, TransferForbiddenError

__all__ = ["DeviceTests", "to_numpy"]


def to_numpy(x: Any) -> np.ndarray:
    """Copy an hpcai Array from any device into a NumPy array (an explicit, logged move)."""
    return np.asarray(x.to_device("numpy:cpu"))


class DeviceTests:
    """Device conformance tests; subclasses provide a ``device`` fixture (device names)."""

    def _other(self, device: str) -> str:
        for d in xp.all_devices():
            if str(d) != device:
                return str(d)
        raise AssertionError("the suite needs at least two devices")

    def test_creation_lives_on_device(self, device: str) -> None:
        x = xp.asarray([1.0, 2.0, 3.0], device=device, dtype=xp.float32)
        assert str(x.device) == device
        assert x.device == xp.resolve_device(device)
        assert x.dtype == xp.float32
        assert x.shape == (3,) and x.ndim == 1 and x.size == 3
        np.testing.assert_array_equal(to_numpy(x), np.array([1, 2, 3], np.float32))

    def test_operators_match_numpy(self, device: str) -> None:
        a = np.array([[1.5, -2.0], [3.0, 4.25]], dtype=np.float32)
        b = np.array([[0.5, 2.0], [-1.0, 8.0]], dtype=np.float32)
        x = xp.asarray(a, device=device)
        y = xp.asarray(b, device=device)
        ops = [operator.add, operator.sub, operator.mul, operator.truediv, operator.lt,
               operator.le, operator.gt, operator.ge, operator.eq, operator.ne]
        for op in ops:
            r = op(x, y)
            assert str(r.device) == device
            np.testing.assert_allclose(to_numpy(r), op(a, b), rtol=1e-6)
        np.testing.assert_allclose(to_numpy(x @ y), a @ b, rtol=1e-5)
        np.testing.assert_allclose(to_numpy(2 * x - 1), 2 * a - 1, rtol=1e-6)
        np.testing.assert_allclose(to_numpy(-x), -a)
        np.testing.assert_allclose(to_numpy(abs(x)), abs(a))

    def test_integer_bitwise_and_shifts(self, device: str) -> None:
        a = np.array([1, 6, 255, 1024], dtype=np.int32)
        x = xp.asarray(a, device=device)
        np.testing.assert_array_equal(to_numpy(x & 3), a & 3)
        np.testing.assert_array_equal(to_numpy(x | 8), a | 8)
        np.testing.assert_array_equal(to_numpy(x ^ x), a ^ a)
        np.testing.assert_array_equal(to_numpy(~x), ~a)
        np.testing.assert_array_equal(to_numpy(x << 2), a << 2)
        np.testing.assert_array_equal(to_numpy(x >> 1), a >> 1)
        np.testing.assert_array_equal(to_numpy(x // 3), a // 3)
        np.testing.assert_array_equal(to_numpy(x % 7), a % 7)

    def test_inplace_keeps_identity_dtype_and_device(self, device: str) -> None:
        x = xp.asarray([1.0, 2.0, 3.0], device=device, dtype=xp.float32)
        y = xp.asarray([1.0, 1.0, 1.0], device=device, dtype=xp.float32)
        ident = id(x)
        x += y
        x *= 2
        x -= 1
        x /= 2
        assert id(x) == ident
        assert x.dtype == xp.float32 and str(x.device) == device
        np.testing.assert_allclose(to_numpy(x), (np.array([1, 2, 3], np.float32) + 1) * 2 / 2 - 0.5)

    def test_getitem_setitem(self, device: str) -> None:
        a = np.arange(12, dtype=np.int64).reshape(3, 4)
        x = xp.asarray(a, device=device)
        np.testing.assert_array_equal(to_numpy(x[1]), a[1])
        np.testing.assert_array_equal(to_numpy(x[:, 1:3]), a[:, 1:3])
        np.testing.assert_array_equal(to_numpy(x[..., None]), a[..., None])
        mask = xp.asarray(a > 5, device=device)
        np.testing.assert_array_equal(to_numpy(x[mask]), a[a > 5])
        idx = xp.asarray([2, 0], device=device)
        np.testing.assert_array_equal(to_numpy(x[idx]), a[[2, 0]])
        x[0, 0] = 100
        x[1] = xp.asarray([7, 7, 7, 7], device=device)
        a[0, 0] = 100
        a[1] = 7
        np.testing.assert_array_equal(to_numpy(x), a)

    def test_python_scalars(self, device: str) -> None:
        assert float(xp.asarray(2.5, device=device)) == 2.5
        assert int(xp.asarray(7, device=device)) == 7
        assert bool(xp.asarray(True, device=device)) is True
        assert complex(xp.asarray(1.0, device=device)) == 1 + 0j
        assert operator.index(xp.asarray(3, device=device)) == 3

    def test_mixing_devices_raises(self, device: str) -> None:
        other = self._other(device)
        x = xp.ones(3, device=device, dtype=xp.float32)
        y = xp.ones(3, device=other, dtype=xp.float32)
        for op in (operator.add, operator.mul, operator.lt):
            try:
                op(x, y)
            except DeviceMismatchError as exc:
                assert device in str(exc) and other in str(exc) and "to_device" in str(exc)
            else:
                raise AssertionError("mixing devices must raise DeviceMismatchError")

    def test_explicit_move_is_logged(self, device: str) -> None:
        other = self._other(device)
        x = xp.asarray(np.arange(256, dtype=np.float32), device=device)
        with xp.transfers() as log:
            y = x.to_device(other)
        assert str(y.device) == other
        assert len(log) == 1
        rec = log[0]
        assert (rec.source, rec.destination, rec.nbytes) == (device, other, 1024)
        assert rec.wall_seconds >= 0 and rec.modelled_seconds >= 0
        np.testing.assert_array_equal(to_numpy(y), np.arange(256, dtype=np.float32))
        assert x.to_device(device) is x  # no move, no record

    def test_forbid_blocks_every_move(self, device: str) -> None:
        other = self._other(device)
        x = xp.ones(4, device=device, dtype=xp.float32)
        with xp.transfers(forbid=True):
            for move in (lambda: x.to_device(other), lambda: xp.asarray(x, device=other)):
                try:
                    move()
                except TransferForbiddenError:
                    pass
                else:
                    raise AssertionError("a move inside transfers(forbid=True) must raise")
            _ = x + 1  # computing on the device is not a move

    def test_pickle_roundtrip_keeps_device(self, device: str) -> None:
        x = xp.asarray([[1, 2], [3, 4]], device=device, dtype=xp.int32)
        y = pickle.loads(pickle.dumps(x))
        assert y.device == x.device and y.dtype == x.dtype
        np.testing.assert_array_equal(to_numpy(y), to_numpy(x))

    def test_dlpack_device_reports_locality(self, device: str) -> None:
        x = xp.ones(2, device=device, dtype=xp.float32)
        kind, _ = x.__dlpack_device__()
        dev = xp.resolve_device(device)
        if dev.backend == "emulated":
            assert kind == 12  # kDLExtDev
        elif dev.kind == "cpu":
            assert kind == 1  # kDLCPU
