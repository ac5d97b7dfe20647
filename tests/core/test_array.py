"""The Array, devices, locality, emulated accelerators and configuration."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import numpy as np
import pytest

import hpcai as xp
from hpcai.errors import (
    ConfigError,
    DeviceMismatchError,
    ForeignArrayError,
    OutOfDeviceMemoryError,
    ShapeError,
    UnknownDeviceError,
    UnsupportedDtypeError,
)
from hpcai.testing import DeviceTests, to_numpy


class TestEveryDevice(DeviceTests):
    """The shipped device suite, on every available device (see the `device` fixture)."""


def test_namespace_version_and_array_namespace() -> None:
    x = xp.asarray([1, 2])
    assert xp.__array_api_version__ == "2024.12"
    assert x.__array_namespace__() is xp
    assert x.__array_namespace__(api_version="2023.12") is xp
    with pytest.raises(ValueError, match="api_version"):
        x.__array_namespace__(api_version="1999.01")


def test_array_cannot_be_constructed_directly() -> None:
    with pytest.raises(TypeError, match="asarray"):
        xp.Array(np.ones(3))


def test_device_strings_everywhere() -> None:
    d = xp.resolve_device("emulated:1")
    assert str(d) == "emulated:1"
    assert repr(d) == "Device('emulated:1')"
    assert d == "emulated:1" and d == xp.resolve_device(d)
    assert hash(d) == hash(xp.resolve_device("emulated:1"))
    assert xp.asarray([1], device=d).device is d
    with pytest.raises(UnknownDeviceError, match="nosuch:3"):
        xp.asarray([1], device="nosuch:3")
    with pytest.raises(UnknownDeviceError, match="available devices"):
        xp.zeros(2, device="emulated:99")
    with pytest.raises(UnknownDeviceError):
        xp.asarray([1], device=42)  # type: ignore[arg-type]


def test_array_attributes() -> None:
    x = xp.asarray(np.arange(6.0).reshape(2, 3), device="emulated:0")
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6
    assert x.T.shape == (3, 2) and x.mT.shape == (3, 2)
    np.testing.assert_array_equal(to_numpy(x.T), np.arange(6.0).reshape(2, 3).T)
    with pytest.raises(ShapeError):
        xp.ones(3).T  # noqa: B018
    with pytest.raises(ShapeError, match="0-d"):
        float(xp.ones(3))


def test_array_export_only_from_host() -> None:
    host = xp.asarray([1.0, 2.0])
    np.testing.assert_array_equal(np.asarray(host), [1.0, 2.0])
    dev = host.to_device("emulated:0")
    with pytest.raises(TypeError, match=r'to_device\("numpy:cpu"\)'):
        np.asarray(dev)
    # DLPack: host arrays are zero-copy kDLCPU; emulated memory is exported only as a copy,
    # made by the one movement path (recorded), never as a view of device memory
    assert host.__dlpack_device__() == (1, 0)
    np.testing.assert_array_equal(np.from_dlpack(host), [1.0, 2.0])
    assert dev.__dlpack_device__() == (1, 0)
    with pytest.raises(BufferError, match="copy=False"):
        dev.__dlpack__(copy=False)
    with pytest.raises(BufferError, match="copy=False"):
        np.from_dlpack(dev, copy=False)
    for kwargs in ({}, {"dl_device": (1, 0)}, {"max_version": (1, 0), "copy": True}):
        with xp.transfers() as log:
            cap = dev.__dlpack__(**kwargs)
        assert cap is not None and len(log) == 1 and log[0].destination == "numpy:cpu"
    with xp.transfers() as log:
        got = np.from_dlpack(dev)
    np.testing.assert_array_equal(got, [1.0, 2.0])
    assert len(log) == 1 and log[0].op == "__dlpack__"
    got[0] = 99.0  # the consumer's copy is its own
    assert float(dev[0]) == 1.0
    with pytest.raises(BufferError, match="DLPack device"):
        dev.__dlpack__(dl_device=(2, 0))


def test_foreign_arrays_are_not_mixed_implicitly() -> None:
    x = xp.asarray([1.0, 2.0])
    with pytest.raises(ForeignArrayError, match="xp.asarray"):
        x + np.ones(2)
    with pytest.raises(ForeignArrayError):
        np.ones(2) + x


def test_emulated_memory_is_separate_from_host() -> None:
    a = np.arange(4.0)
    x = xp.asarray(a, device="emulated:0")
    a[0] = 99.0
    assert float(x[0]) == 0.0  # the device got a copy, not a view
    y = x.to_device("numpy:cpu")
    x[1] = 42.0
    assert float(y[1]) == 1.0  # and the host got a copy back


def test_mismatch_error_names_devices_and_fix() -> None:
    x = xp.ones(2, device="emulated:0")
    y = xp.ones(2, device="emulated:1")
    with pytest.raises(DeviceMismatchError) as info:
        x * y
    msg = str(info.value)
    assert "emulated:0" in msg and "emulated:1" in msg and "to_device" in msg
    with pytest.raises(DeviceMismatchError):
        x[xp.asarray([0], device="emulated:1")]
    with pytest.raises(DeviceMismatchError):
        x[0:1] = y[0:1]


def test_transfer_log_and_modelled_cost() -> None:
    x = xp.asarray(np.zeros(2**20, dtype=np.float32))  # 4 MiB
    with xp.transfers() as outer:
        with xp.transfers() as inner:
            y = x.to_device("emulated:0")
        z = y.to_device("emulated:1")
        w = xp.asarray(z, device="numpy:cpu")
    assert [(t.source, t.destination) for t in outer] == [
        ("numpy:cpu", "emulated:0"),
        ("emulated:0", "emulated:1"),
        ("emulated:1", "numpy:cpu"),
    ]
    assert len(inner) == 1
    assert outer.total_bytes == 3 * 4 * 2**20
    # h100 preset: PCIe Gen5 x16 at 64 GB/s, 10 us latency
    assert inner[0].modelled_seconds == pytest.approx(10e-6 + 4 * 2**20 / 64e9)
    assert "emulated:0" in outer.table()
    np.testing.assert_array_equal(np.asarray(w), np.zeros(2**20, dtype=np.float32))


def test_capacity_accounting(config) -> None:
    config('[devices."emulated:2"]\npreset = "h100"\nmemory = "1 MiB"\n')
    dev = xp.resolve_device("emulated:2")
    backend = dev._backend
    assert dev.memory == 2**20
    gc.collect()
    base = backend.memory_used(dev)
    x = xp.zeros(2**16, device=dev, dtype=xp.float64)  # 512 KiB
    assert backend.memory_used(dev) - base == 2**19
    with pytest.raises(OutOfDeviceMemoryError, match="emulated:2"):
        xp.zeros(2**17, device=dev, dtype=xp.float64)  # 1 MiB more
    with pytest.raises(OutOfDeviceMemoryError):
        xp.asarray(np.ones(2**17), device=dev)
    y = x + 1  # another 512 KiB fits exactly
    with pytest.raises(OutOfDeviceMemoryError):
        _ = y * 2
    del x, y
    gc.collect()
    assert backend.memory_used(dev) == base
    z = xp.zeros(2**16, device=dev, dtype=xp.float64)
    view = z[: 2**10]  # views are not charged twice
    assert backend.memory_used(dev) - base == 2**19
    del z, view


def test_gaudi3_has_no_fp64(config) -> None:
    config('[devices."emulated:2"]\npreset = "gaudi3"\nmemory = "8 GiB"\n')
    d = xp.resolve_device("emulated:2")
    assert "float64" not in d.native_dtypes and d.memory == 8 * 2**30
    with pytest.raises(UnsupportedDtypeError, match="float64"):
        xp.asarray(np.ones(3), device="emulated:2")
    with pytest.raises(UnsupportedDtypeError, match="emulated:2"):
        xp.zeros(3, device="emulated:2", dtype=xp.float64)
    x = xp.asarray(np.ones(3, np.float32), device="emulated:2")
    assert x.dtype == xp.float32
    assert xp.asarray([1.0, 2.0], device="emulated:2").dtype == xp.float32  # device default float
    assert xp.zeros(2, device="emulated:2").dtype == xp.float32


def test_config_overrides_preset_figures(config) -> None:
    config(
        'default_device = "emulated:3"\n'
        '[devices."emulated:3"]\npreset = "mi300x"\nmemory = "2 GiB"\nlink_bandwidth = 1e9\nlink_latency = 0.001\n'
    )
    d = xp.resolve_device("emulated:3")
    assert d.spec.preset == "mi300x" and d.memory == 2 * 2**30
    assert d.spec.cost.transfer_seconds(10**9) == pytest.approx(1.001)
    assert xp.asarray([1]).device is d  # default device from config


@pytest.mark.parametrize(
    "text, match",
    [
        ('[devices."emulated:2"]\npreset = "tpu9"\n', "unknown preset"),
        ('[devices."emulated:2"]\nmemory = "lots"\n', "memory"),
        ('[devices."emulated:2"]\nprecison = "native"\n', "unknown key"),
        ('[devices."emulated:two"]\npreset = "h100"\n', "emulated:<n>"),
        ('[devices."warp:0"]\npreset = "h100"\n', "names no device"),
        ("colour = 'blue'\n", "unknown top-level key 'colour'"),
        ("[devices\n", "invalid TOML"),
    ],
)
def test_invalid_config_names_file_and_key(config, text: str, match: str) -> None:
    with pytest.raises((ConfigError, UnknownDeviceError), match=match) as info:
        config(text)
        xp.all_devices()
    assert "hpcai.toml" in str(info.value) or "devices" in str(info.value)


def test_default_device_from_environment(tmp_path) -> None:
    code = "import hpcai as xp; print(xp.asarray([1.0]).device, xp.default_device())"
    env = dict(os.environ, HPCAI_DEVICE="emulated:1")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["emulated:1", "emulated:1"]
    env["HPCAI_DEVICE"] = "nope:0"
    bad = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode != 0 and "HPCAI_DEVICE" in bad.stderr and "UnknownDeviceError" in bad.stderr


def test_config_from_pyproject(tmp_path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.hpcai]\ndefault_device = "emulated:0"\n')
    code = "import hpcai as xp; print(xp.default_device(), xp.get_config().source)"
    env = {k: v for k, v in os.environ.items() if k not in ("HPCAI_DEVICE", "HPCAI_CONFIG")}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "emulated:0" and "[tool.hpcai]" in out.stdout


def test_cli_devices_lists_devices(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hpcai.cli", "devices"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    for name in ("numpy:cpu", "emulated:0", "emulated:1"):
        assert name in out.stdout
    assert "h100" in out.stdout and "mi300x" in out.stdout


def test_dlpack_export_answers_every_max_version(device: str) -> None:
    """The standard lets a producer answer an unsupported max_version with another version."""
    x = xp.asarray([1.0, 2.0], device=device)
    assert x.__dlpack_device__()[0] in (1, 2, 3, 4, 7, 8, 9, 10, 13, 14)  # the standard's valid types
    for mv in ((0, 0), (1, 0), (2, 0), None):
        assert x.__dlpack__(max_version=mv) is not None
        assert x.__dlpack__(max_version=mv, dl_device=(1, 0), copy=True) is not None
    np.testing.assert_array_equal(np.from_dlpack(x), [1.0, 2.0])
