"""The backend contract: a third-party backend plugs in without any edit to hpcai's core.

``ToyBackend`` below is what a vendor package would ship: a subclass of
:class:`hpcai.backends.Backend` that implements only the abstract members (NumPy arrays
in a memory space of its own, copied in and out) and states its capabilities. It is
registered at run time through :func:`hpcai.backends.register_backend` and, as an
installed package would declare it, through an ``hpcai.backends`` entry point in a
temporary ``.dist-info``. The shipped device suite (:class:`hpcai.testing.DeviceTests`)
then runs on it, and the tests below check what the core derives from its capabilities:
moves through the host (policy-checked, recorded), ``__array__`` refused, DLPack exports
as recorded copies, linear algebra errors, ``xp.special`` through SciPy, ``xp.jit``
running the function unchanged.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import array_api_compat.numpy as compat_np
import numpy as np
import pytest
from hpcai.backends import Backend, DeviceSpec, location_attributes, unwrap, wrap

import hpcai as xp
from hpcai import backends
from hpcai.errors import (
    DeviceMismatchError,
    LinAlgError,
    PluginError,
    ResidencyError,
    TransferForbiddenError,
)
from hpcai.testing import DeviceTests, to_numpy


class ToyBackend(Backend):
    """Two NumPy-backed "toy" accelerators with memory of their own (never shared with NumPy)."""

    name: ClassVar[str] = "toy"
    install_hint: ClassVar[str] = "pip install hpcai-toy"
    native_type: type = np.ndarray
    # host_memory, zero_copy_export, supports_jit, ... left at the contract's defaults
    # except these two: its memory is never handed out, and NumPy's linalg raises.
    zero_copy_export: ClassVar[bool] = False
    linalg_raises: ClassVar[bool] = True

    def device_specs(self, config: Mapping[str, Any]) -> list[DeviceSpec]:
        return [
            DeviceSpec(
                name=f"toy:{i}",
                backend="toy",
                kind="toy",
                index=i,
                memory=2**30,
                attributes=location_attributes(config, f"toy:{i}"),
            )
            for i in range(2)
        ]

    def namespace(self, device: Any) -> Any:
        return compat_np

    def from_host(self, host: np.ndarray, device: Any, *, copy: bool | None) -> Any:
        return np.array(host, copy=True)

    def to_host(self, native: Any, device: Any) -> np.ndarray:
        return np.array(native, copy=True)

    def dlpack_device(self, device: Any) -> tuple[int, int]:
        return (1, 0)  # host memory behind the scenes, exported only as copies


POLICY = """
[site]
country = "DE"
jurisdiction = "EU"
provider = "onprem"

[devices."toy:1"]
attributes = { country = "US", jurisdiction = "US", provider = "hyperscaler" }

[groups]
eu = ["AT", "BE", "DE", "FR", "NL"]

[[policy.rules]]
name = "gdpr-personal"
match = "classification=personal"
compute = "country=@eu"
effect = "deny"
"""


@pytest.fixture
def toy() -> Iterator[None]:
    """The toy backend registered through the registry API for one test."""
    backends.register_backend("toy", ToyBackend)
    xp.configure(data={})
    try:
        yield
    finally:
        backends.unregister_backend("toy")
        xp.configure(data={})


@pytest.fixture(autouse=True)
def _audit_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPCAI_AUDIT_LOG", str(tmp_path / "audit.jsonl"))


# -- the shipped device suite, on the toy devices ---------------------------------------------
class TestToyDevice(DeviceTests):
    @pytest.fixture(params=["toy:0", "toy:1"])
    def device(self, request: pytest.FixtureRequest, toy: None) -> str:
        return str(request.param)


# -- discovery --------------------------------------------------------------------------------
def test_registered_backend_devices_join_the_table(toy) -> None:
    names = [str(d) for d in xp.all_devices()]
    assert "toy:0" in names and "toy:1" in names and "numpy:cpu" in names
    dev = xp.resolve_device("toy:1")
    assert dev.backend == "toy" and dev.kind == "toy" and not dev.is_host
    assert isinstance(backends.get_backend("toy"), ToyBackend)
    assert backends.backend_infos()["toy"].installed


def test_entry_point_in_an_installed_dist_info(tmp_path, monkeypatch) -> None:
    """Declared as a package would: ``[project.entry-points."hpcai.backends"]``."""
    site = tmp_path / "site"
    dist = site / "hpcai_toy-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hpcai-toy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[hpcai.backends]\ntoy = hpcai_toy_plugin:ToyBackend\n")
    # The plugin module: this test module's class, so that there is one definition of it.
    (site / "hpcai_toy_plugin.py").write_text(
        f"import sys\nToyBackend = sys.modules[{__name__!r}].ToyBackend\n"
    )
    monkeypatch.syspath_prepend(str(site))
    xp.configure(data={})
    try:
        info = backends.backend_infos()["toy"]
        assert info.target == "hpcai_toy_plugin:ToyBackend" and info.installed
        x = xp.asarray([1.0, 2.0, 3.0], device="toy:0")
        assert float(xp.sum(x * 2)) == 12.0
        assert isinstance(backends.get_backend("toy"), ToyBackend)
    finally:
        monkeypatch.undo()
        sys.modules.pop("hpcai_toy_plugin", None)
        backends._set_entry_points_for_testing(None)  # forget the loaded plugin
        xp.configure(data={})
    assert "toy" not in backends.backend_infos()


def test_register_by_dotted_path_and_clashes(tmp_path, monkeypatch) -> None:
    (tmp_path / "hpcai_toy_dotted.py").write_text(
        f"import sys\nToyBackend = sys.modules[{__name__!r}].ToyBackend\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    backends.register_backend("toy", "hpcai_toy_dotted:ToyBackend")
    try:
        xp.configure(data={})
        assert str(xp.ones(2, device="toy:1").device) == "toy:1"
        with pytest.raises(PluginError, match="exists; pass clobber=True"):
            backends.register_backend("toy", ToyBackend)
        with pytest.raises(PluginError, match="exists"):
            backends.register_backend("numpy", ToyBackend)
    finally:
        backends.unregister_backend("toy")
        sys.modules.pop("hpcai_toy_dotted", None)
        xp.configure(data={})


def test_incomplete_backends_are_refused_naming_what_is_missing() -> None:
    class NoMovement(Backend):
        name: ClassVar[str] = "nomove"
        install_hint: ClassVar[str] = "-"

        def device_specs(self, config: Mapping[str, Any]) -> list[DeviceSpec]:
            return []

        def namespace(self, device: Any) -> Any:
            return compat_np

    backends.register_backend("nomove", NoMovement)
    try:
        with pytest.raises(PluginError, match=r"'nomove'.*missing: dlpack_device, from_host, to_host"):
            backends.get_backend("nomove")
    finally:
        backends.unregister_backend("nomove")
    with pytest.raises(PluginError, match="does not implement"):
        backends.register_backend("junk", int)


# -- computing ------------------------------------------------------------------------------
def test_elementwise_reductions_linalg_on_the_toy_device(toy) -> None:
    a = np.array([[4.0, 1.0], [1.0, 3.0]])
    x = xp.asarray(a, device="toy:0")
    y = xp.sin(x) * 2 + x
    assert str(y.device) == "toy:0"
    np.testing.assert_allclose(to_numpy(y), np.sin(a) * 2 + a)
    np.testing.assert_allclose(to_numpy(xp.sum(x, axis=0)), a.sum(axis=0))
    np.testing.assert_allclose(to_numpy(xp.mean(x)), a.mean())
    assert float(xp.max(x)) == 4.0
    np.testing.assert_allclose(to_numpy(xp.linalg.inv(x)), np.linalg.inv(a))
    np.testing.assert_allclose(to_numpy(xp.linalg.solve(x, xp.ones(2, device="toy:0"))), np.linalg.solve(a, np.ones(2)))
    np.testing.assert_allclose(to_numpy(x @ x), a @ a)
    with pytest.raises(LinAlgError, match="singular"):
        xp.linalg.inv(xp.zeros((2, 2), device="toy:0"))
    with pytest.raises(DeviceMismatchError):
        x + xp.asarray(a, device="toy:1")
    # special functions: NumPy data on a backend that names no module of its own -> SciPy
    pytest.importorskip("scipy")
    np.testing.assert_allclose(to_numpy(xp.special.erf(x)), __import__("scipy.special").special.erf(a))


def test_memory_is_the_backends_own(toy) -> None:
    host = np.arange(4.0)
    x = xp.asarray(host, device="toy:0")
    host[0] = 99.0  # the toy device holds a copy
    assert float(x[0]) == 0.0
    with pytest.raises(TypeError, match="does not live in host memory"):
        np.asarray(x)
    # DLPack: a copy made by the movement path, recorded
    with xp.transfers() as log:
        out = np.from_dlpack(x)
    np.testing.assert_array_equal(out, np.arange(4.0))
    assert [(r.source, r.destination, r.op) for r in log] == [("toy:0", "numpy:cpu", "__dlpack__")]
    with pytest.raises(BufferError, match="only as a copy"):
        x.__dlpack__(copy=False)
    y = pickle.loads(pickle.dumps(x))
    assert str(y.device) == "toy:0"


def test_moves_to_and_from_numpy_are_checked_and_recorded(toy, config, tmp_path) -> None:
    config(POLICY)
    personal = xp.tag(xp.asarray([1.0, 2.0, 3.0]), classification="personal")
    plain = xp.asarray([1.0, 2.0, 3.0])
    with xp.transfers() as log:
        on0 = personal.to_device("toy:0")  # toy:0 is at the site (DE): allowed
        back = (on0 * 2).to_device("numpy:cpu")
        with pytest.raises(ResidencyError, match="gdpr-personal"):
            personal.to_device("toy:1")  # US: refused before anything moves
        with pytest.raises(ResidencyError, match="gdpr-personal"):
            on0.to_device("toy:1")
        free = plain.to_device("toy:1").to_device("toy:0")
    assert [(r.source, r.destination, r.path, r.nbytes) for r in log] == [
        ("numpy:cpu", "toy:0", "host", 24),
        ("toy:0", "numpy:cpu", "host", 24),
        ("numpy:cpu", "toy:1", "host", 24),
        ("toy:1", "toy:0", "host", 24),  # transfer() left at NotImplemented: through the host
    ]
    assert dict(back.tags) == {"classification": frozenset({"personal"})}
    np.testing.assert_array_equal(np.asarray(back), [2.0, 4.0, 6.0])
    assert str(free.device) == "toy:0"
    with xp.transfers(forbid=True), pytest.raises(TransferForbiddenError):
        on0.to_device("numpy:cpu")
    with pytest.raises(xp.errors.InvalidArgumentError, match="neither device has streams"):
        plain.to_device("toy:0", stream=1)


def test_jit_runs_the_function_unchanged(toy) -> None:
    calls = []

    @xp.jit
    def axpy(a: float, x: xp.Array, y: xp.Array) -> xp.Array:
        calls.append(1)
        return a * x + y

    x = xp.ones(3, device="toy:1")
    r = axpy(2.0, x, x)
    r = axpy(2.0, x, x)
    assert str(r.device) == "toy:1" and len(calls) == 2  # not compiled: run each time
    np.testing.assert_array_equal(to_numpy(r), [3.0, 3.0, 3.0])


def test_wrap_and_unwrap_are_the_way_in_and_out(toy) -> None:
    dev = xp.resolve_device("toy:0")
    tags = unwrap(xp.tag(xp.asarray([1.0]), origin="DE"))[2]
    a = wrap(np.arange(3.0), dev, tags)
    assert isinstance(a, xp.Array) and a.device is dev and dict(a.tags) == {"origin": frozenset({"DE"})}
    native, d, t = unwrap(a)
    assert d is dev and t == tags and isinstance(native, np.ndarray)
    # adopt=True (the default) passes results through the backend's adopt: a NumPy scalar
    # becomes a 0-d array, as every computed result would
    s = wrap(np.float64(2.0), dev)
    assert s.shape == () and isinstance(unwrap(s)[0], np.ndarray)
    with pytest.raises(TypeError, match="asarray"):
        xp.Array()


def test_capability_defaults_are_those_of_an_eager_library_with_its_own_memory() -> None:
    b = ToyBackend()
    assert not b.host_memory and not b.supports_stream and not b.supports_jit
    assert b.special_functions is None and b.cache_blocking and b.available()
    assert b.unavailable_reason() is None and b.device_of(np.zeros(1)) is None
    assert b.transfer(np.zeros(1), None, None) is NotImplemented  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError, match="no jit"):
        b.jit(lambda: None)
    assert "toy" in repr(b)


def test_builtin_backends_state_their_capabilities() -> None:
    numpy_b = backends.get_backend("numpy")
    emulated = backends.get_backend("emulated")
    assert isinstance(numpy_b, Backend) and isinstance(emulated, Backend)
    assert numpy_b.host_memory and not emulated.host_memory
    assert numpy_b.zero_copy_export and not emulated.zero_copy_export
    assert numpy_b.linalg_raises and emulated.linalg_raises
    jax = pytest.importorskip("jax")
    jb = backends.get_backend("jax")
    assert jb.supports_jit and not jb.cache_blocking and not jb.linalg_raises
    assert jb.special_functions is not None and jb.special_functions[0] == "jax.scipy.special"
    assert jax is not None


def test_the_walk_through_in_docs_runs(tmp_path, monkeypatch) -> None:
    """The Python blocks of docs/backends.md, in order, in one namespace."""
    import re

    doc = Path(__file__).resolve().parents[2] / "docs" / "backends.md"
    if not doc.exists():
        pytest.skip("not run from a source checkout")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HPCAI_CONFIG", raising=False)
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
    assert len(blocks) == 3
    scope: dict[str, Any] = {"__name__": "docs_backends"}
    try:
        for block in blocks:
            exec(compile(block, str(doc), "exec"), scope)
        assert "toy" not in backends.backend_infos()  # the walk-through unregisters it
        assert scope["x"].shape == (3,)
    finally:
        if "toy" in backends._extra:
            backends.unregister_backend("toy")
        xp.configure(data={})


def test_protocol_style_plugins_get_the_contracts_defaults() -> None:
    """A plugin written against the earlier Protocol form (no base class) still loads."""

    class OldStyle:
        name: ClassVar[str] = "oldstyle"
        install_hint: ClassVar[str] = "-"
        native_type: type = np.ndarray
        supports_stream: ClassVar[bool] = True

        def available(self) -> bool:
            return True

        def device_specs(self, config: Mapping[str, Any]) -> list[DeviceSpec]:
            return []

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
            return NotImplemented

        def setitem(self, device: Any, native: Any, key: Any, value: Any) -> Any:
            native[key] = value
            return native

        def dlpack_device(self, device: Any) -> tuple[int, int]:
            return (1, 0)

        def is_native(self, obj: Any) -> bool:
            return False

    backends.register_backend("oldstyle", OldStyle)
    try:
        b = backends.get_backend("oldstyle")
        assert isinstance(b, OldStyle) and isinstance(b, Backend)
        assert b.supports_stream  # its own members come first
        assert not b.host_memory and not b.supports_jit and b.device_of(np.zeros(1)) is None
    finally:
        backends.unregister_backend("oldstyle")
