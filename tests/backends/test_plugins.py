"""Backend plugins: discovery through the ``hpcai.backends`` entry points, with fake entry points.

A working plugin's devices join ``xp.all_devices()``; a broken plugin raises
:class:`PluginError` naming it (never vanishes); a plugin whose library is missing is
listed by ``hpcai devices`` as unavailable with its install hint.
"""

from __future__ import annotations

import json
import sys
import tomllib
import types
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, ClassVar

import array_api_compat.numpy as compat_np
import numpy as np
import pytest
from hpcai.backends import DeviceSpec, location_attributes

import hpcai as xp
from hpcai import backends
from hpcai.cli import main
from hpcai.errors import BackendUnavailableError, PluginError, UnknownDeviceError

GROUP = "hpcai.backends"
PLUGIN_MODULE = "hpcai_test_fakevendor_plugin"


class FakeVendorBackend:
    """A vendor backend as a third-party package would ship it: two NumPy-backed 'NPUs'.

    Its memory is its own (copies in and out), so moves to and from it go through the host.
    """

    name: ClassVar[str] = "fakevendor"
    install_hint: ClassVar[str] = "pip install fakevendor-hpcai"
    native_type: type = np.ndarray

    def available(self) -> bool:
        return True

    def device_specs(self, config: Mapping[str, Any]) -> list[DeviceSpec]:
        return [
            DeviceSpec(
                name=f"fakevendor:{i}",
                backend="fakevendor",
                kind="npu",
                index=i,
                memory=2**30,
                attributes=location_attributes(config, f"fakevendor:{i}"),
            )
            for i in range(2)
        ]

    def namespace(self, device: Any) -> Any:
        return compat_np

    def adopt(self, device: Any, native: Any) -> Any:
        return np.asarray(native)

    def create(self, device: Any, fname: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(compat_np, fname)(*args, **kwargs)

    def from_host(self, host: np.ndarray, device: Any, *, copy: bool | None) -> Any:
        return np.array(host, copy=True)

    def to_host(self, native: Any, device: Any) -> np.ndarray:
        return np.array(native, copy=True)

    def transfer(self, native: Any, src: Any, dst: Any) -> Any:
        return np.array(native, copy=True)

    def setitem(self, device: Any, native: Any, key: Any, value: Any) -> Any:
        native[key] = value
        return native

    def dlpack_device(self, device: Any) -> tuple[int, int]:
        return (12, device.spec.index)

    def is_native(self, obj: Any) -> bool:
        return False


class SdkMissingBackend(FakeVendorBackend):
    """A plugin that imports but whose vendor SDK is not installed."""

    name: ClassVar[str] = "fakesdk"
    install_hint: ClassVar[str] = "pip install fakesdk-runtime"

    def available(self) -> bool:
        return False

    def unavailable_reason(self) -> str:
        return "the fakesdk runtime library was not found"


class NotABackend:
    """Has a name but none of the protocol's methods."""

    name: ClassVar[str] = "notabackend"


class ExplodingBackend(FakeVendorBackend):
    def __init__(self) -> None:
        raise RuntimeError("driver handshake failed")


def _ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=GROUP)


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Install fake entry points (and the fake plugin module) for one test."""
    module = types.ModuleType(PLUGIN_MODULE)
    module.FakeVendorBackend = FakeVendorBackend  # type: ignore[attr-defined]
    module.SdkMissingBackend = SdkMissingBackend  # type: ignore[attr-defined]
    module.NotABackend = NotABackend  # type: ignore[attr-defined]
    module.ExplodingBackend = ExplodingBackend  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, PLUGIN_MODULE, module)

    def install(*eps: EntryPoint) -> None:
        backends._set_entry_points_for_testing(list(eps))
        xp.configure(data={})

    yield install
    backends._set_entry_points_for_testing(None)
    xp.configure(data={})


def _devices_table(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    assert main(["devices", "--json"]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return rows


# -- a working plugin -----------------------------------------------------------------------
def test_working_plugin_devices_join_all_devices(plugins, capsys) -> None:
    plugins(_ep("fakevendor", f"{PLUGIN_MODULE}:FakeVendorBackend"))
    names = [str(d) for d in xp.all_devices()]
    assert "fakevendor:0" in names and "fakevendor:1" in names
    assert "numpy:cpu" in names  # built-ins stay
    dev = xp.resolve_device("fakevendor:1")
    assert dev.backend == "fakevendor" and dev.kind == "npu" and dev.memory == 2**30
    info_names = [str(d) for d in xp.__array_namespace_info__().devices()]
    assert "fakevendor:1" in info_names
    rows = {r["device"]: r for r in _devices_table(capsys)}
    assert rows["fakevendor:0"]["status"] == "available"


def test_working_plugin_computes_and_moves(plugins) -> None:
    plugins(_ep("fakevendor", f"{PLUGIN_MODULE}:FakeVendorBackend"))
    a = np.arange(6.0).reshape(2, 3)
    with xp.transfers() as log:
        x = xp.asarray(a, device="fakevendor:0")
        y = (x * 2 + 1).to_device("fakevendor:1")
        back = xp.sum(y, axis=0).to_device("numpy:cpu")
    assert str(y.device) == "fakevendor:1"
    np.testing.assert_array_equal(np.asarray(back), (a * 2 + 1).sum(axis=0))
    assert [(r.source, r.destination, r.path) for r in log] == [
        ("numpy:cpu", "fakevendor:0", "host"),  # a NumPy array is data in host memory
        ("fakevendor:0", "fakevendor:1", "direct"),
        ("fakevendor:1", "numpy:cpu", "host"),
    ]
    with pytest.raises(xp.errors.DeviceMismatchError):
        x + y


def test_plugin_devices_take_location_attributes_from_config(plugins, config) -> None:
    plugins(_ep("fakevendor", f"{PLUGIN_MODULE}:FakeVendorBackend"))
    config('[devices."fakevendor:1".attributes]\ncountry = "FR"\n')
    assert dict(xp.resolve_device("fakevendor:1").attributes)["country"] == "FR"


def test_backend_infos_import_nothing(plugins, tmp_path, monkeypatch) -> None:
    pkg = tmp_path / "hpcai_test_lazy_plugin.py"
    pkg.write_text(
        "from tests_fake_marker import *\n"  # would fail loudly if imported
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    backends._set_entry_points_for_testing([_ep("lazy", "hpcai_test_lazy_plugin:Backend")])
    try:
        infos = backends.backend_infos()
        assert "lazy" in infos and infos["lazy"].installed
        assert "hpcai_test_lazy_plugin" not in sys.modules
    finally:
        backends._set_entry_points_for_testing(None)


# -- broken plugins -------------------------------------------------------------------------
def test_plugin_whose_module_is_missing_raises_plugin_error(plugins) -> None:
    plugins(_ep("ghost", "hpcai_no_such_plugin_module:GhostBackend"))
    with pytest.raises(
        PluginError, match=r"'ghost'.*'hpcai_no_such_plugin_module' is not installed"
    ):
        xp.all_devices()
    with pytest.raises(PluginError, match="ghost"):
        backends.get_backend("ghost")


def test_plugin_without_the_class_raises_plugin_error(plugins) -> None:
    plugins(_ep("typo", f"{PLUGIN_MODULE}:FakeVendorBakend"))
    with pytest.raises(PluginError, match="has no attribute 'FakeVendorBakend'"):
        xp.all_devices()


def test_plugin_not_implementing_the_protocol_raises_plugin_error(plugins) -> None:
    plugins(_ep("notabackend", f"{PLUGIN_MODULE}:NotABackend"))
    with pytest.raises(
        PluginError, match=r"'notabackend'.*does not implement the hpcai.backends.Backend protocol"
    ):
        xp.all_devices()


def test_plugin_whose_constructor_fails_raises_plugin_error(plugins) -> None:
    plugins(_ep("exploding", f"{PLUGIN_MODULE}:ExplodingBackend"))
    with pytest.raises(PluginError, match="driver handshake failed"):
        xp.all_devices()


def test_malformed_entry_point_raises_plugin_error(plugins) -> None:
    plugins(_ep("nocolon", PLUGIN_MODULE))
    with pytest.raises(PluginError, match="must have the form 'module:Class'"):
        xp.all_devices()


def test_plugin_cannot_replace_a_builtin(plugins) -> None:
    plugins(_ep("numpy", f"{PLUGIN_MODULE}:FakeVendorBackend"))
    with pytest.raises(PluginError, match="clashes with the built-in backend"):
        xp.all_devices()


def test_builtin_entry_points_are_not_a_clash(plugins) -> None:
    plugins(
        _ep("numpy", "hpcai.backends.numpy:NumpyBackend"),
        _ep("fakevendor", f"{PLUGIN_MODULE}:FakeVendorBackend"),
    )
    assert "fakevendor:0" in [str(d) for d in xp.all_devices()]


def test_two_packages_declaring_one_backend_raise(plugins) -> None:
    plugins(
        _ep("fakevendor", f"{PLUGIN_MODULE}:FakeVendorBackend"),
        _ep("fakevendor", f"{PLUGIN_MODULE}:SdkMissingBackend"),
    )
    with pytest.raises(PluginError, match="two installed packages declare it"):
        xp.all_devices()


# -- missing libraries ------------------------------------------------------------------------
def test_plugin_whose_library_is_missing_is_listed_unavailable(plugins, capsys) -> None:
    plugins(_ep("fakesdk", f"{PLUGIN_MODULE}:SdkMissingBackend"))
    assert not any(str(d).startswith("fakesdk") for d in xp.all_devices())
    rows = {r["backend"]: r for r in _devices_table(capsys)}
    status = rows["fakesdk"]["status"]
    assert status.startswith("unavailable")
    assert "the fakesdk runtime library was not found" in status
    assert "pip install fakesdk-runtime" in status
    with pytest.raises(UnknownDeviceError, match="pip install fakesdk-runtime"):
        xp.zeros(2, device="fakesdk:0")
    assert main(["devices"]) == 0
    table = capsys.readouterr().out
    line = next(ln for ln in table.splitlines() if ln.startswith("fakesdk:*"))
    assert "pip install fakesdk-runtime" in line


def test_plugin_importing_a_missing_library_is_listed_unavailable(
    plugins, tmp_path, monkeypatch, capsys
) -> None:
    (tmp_path / "hpcai_test_sdk_plugin.py").write_text("import fakevendor_sdk_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins(_ep("sdkplugin", "hpcai_test_sdk_plugin:Backend"))
    names = [str(d) for d in xp.all_devices()]
    assert "numpy:cpu" in names
    rows = {r["backend"]: r for r in _devices_table(capsys)}
    assert "fakevendor_sdk_not_installed" in rows["sdkplugin"]["status"]
    with pytest.raises(BackendUnavailableError, match="fakevendor_sdk_not_installed"):
        backends.get_backend("sdkplugin")


def test_builtin_with_missing_library_shows_install_hint(capsys) -> None:
    rows = {r["backend"]: r for r in _devices_table(capsys)}
    assert set(rows) >= {"numpy", "emulated", "jax", "cupy"}
    cupy_available = any(d.backend == "cupy" for d in xp.all_devices())
    if cupy_available:
        pytest.skip("CuPy has a GPU here")
    assert rows["cupy"]["status"].startswith("unavailable")
    assert "pip install 'hpcai[cupy]'" in rows["cupy"]["status"]


# -- packaging ------------------------------------------------------------------------------
def test_pyproject_declares_every_builtin_as_an_entry_point() -> None:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("not run from a source checkout")
    declared = tomllib.loads(pyproject.read_text())["project"]["entry-points"][GROUP]
    builtins = {name: target for name, (target, _req, _hint) in backends._BUILTINS.items()}
    assert declared == builtins
