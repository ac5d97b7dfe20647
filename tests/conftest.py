"""Shared fixtures. Tests run against the *installed* hpcai (pytest --import-mode=importlib)."""

from __future__ import annotations

import os

# Four real JAX CPU devices, before anything imports JAX.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_ENABLE_X64", "1")
# scikit-learn's Array API dispatch needs SciPy's, which is read when SciPy is imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

from collections.abc import Iterator

import pytest
from hypothesis import settings

import hpcai as xp

# Property tests explore new random examples in every local run; CI (ci/test.sh sets
# HYPOTHESIS_PROFILE=ci) runs the same derandomized examples every time, so a run's result
# depends on the change alone. Loaded before any test module builds its own settings.
settings.register_profile("ci", derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _device_names() -> list[str]:
    # The dask device (lazy graphs on a cluster) has its own suite, tests/distributed/test_dask_device.py
    return [str(d) for d in xp.all_devices() if d.backend != "dask"]


@pytest.fixture(params=_device_names())
def device(request: pytest.FixtureRequest) -> str:
    """Every available device, by name: the device-parametrised suite runs on each."""
    return str(request.param)


@pytest.fixture
def config(tmp_path, monkeypatch) -> Iterator[object]:
    """Apply a TOML configuration for one test: ``config("[devices.\\"emulated:2\\"]\\npreset='gaudi3'")``."""

    def apply(text: str):
        path = tmp_path / "hpcai.toml"
        path.write_text(text)
        return xp.configure(path)

    monkeypatch.delenv("HPCAI_DEVICE", raising=False)
    yield apply
    xp.configure(data={})


def _drain_io_loops(timeout: float = 30.0) -> None:
    """Wait for the tasks still running on zarr's and fsspec's IO loops.

    When one read of an ``asyncio.gather`` is refused, zarr raises at once and the sibling
    reads run on in its IO thread: left alone, they finish during the next test, under its
    configuration (and a raw read of tagged data taints that test's writes). Each test's
    background reads end within it."""
    import asyncio
    import sys

    loops = []
    for mod in ("zarr.core.sync", "fsspec.asyn"):
        m = sys.modules.get(mod)
        lp = getattr(m, "loop", [None])[0] if m is not None else None
        if lp is not None and lp.is_running() and not lp.is_closed():
            loops.append(lp)

    async def wait_others() -> None:
        me = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not me]
        if others:
            await asyncio.wait(others, timeout=timeout)

    for lp in loops:
        asyncio.run_coroutine_threadsafe(wait_others(), lp).result(timeout + 5)


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch, tmp_path) -> Iterator[None]:
    """Each test starts from the embedded defaults, whatever hpcai.toml the cwd holds."""
    xp.configure(data={})
    yield
    _drain_io_loops()
    xp.configure(data={})
