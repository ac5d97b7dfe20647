"""Class 2 and 3 attacks: creation paths that drop tags, and memory handed out stale.

Class 2: covered values passed to a creation function as data (elements of a sequence, a
fill value, an offset) must give a covered result, which then cannot reach a denied device.
Class 3: after covered data is freed, ``empty`` on a denied device must not hand its
values out again.
"""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

import hpcai as xp
from hpcai.errors import ResidencyError
from hpcai.testing import ATTACK_POLICY, to_numpy

DEVICES = ["numpy:cpu", "emulated:0", "jax:cpu:0"]


@pytest.fixture
def policy(config, tmp_path: Path) -> Path:
    config(ATTACK_POLICY)
    return tmp_path / "audit.jsonl"


def _available(device: str) -> None:
    if device not in {str(d) for d in xp.all_devices()}:
        pytest.skip(f"{device} is not available here")


def _personal(device: str) -> xp.Array:
    return xp.asarray([11.0, 22.0, 33.0], device=device, tags={"classification": "personal"})


def _denied_memory() -> int:
    dev = xp.resolve_device("emulated:1")
    return int(dev._backend.memory_used(dev))


@pytest.mark.parametrize("device", DEVICES)
def test_sequence_of_covered_elements_cannot_reach_a_denied_device(policy: Path, device: str) -> None:
    _available(device)
    x = _personal(device)
    before = _denied_memory()
    with pytest.raises(ResidencyError):
        xp.asarray([x[0], x[1], x[2]], device="emulated:1")
    assert _denied_memory() == before
    y = xp.asarray([x[0], x[1], x[2]])
    assert y.tags == x.tags
    with pytest.raises(ResidencyError):
        y.to_device("emulated:1")


@pytest.mark.parametrize("device", DEVICES)
def test_fill_values_carry_their_tags(policy: Path, device: str) -> None:
    _available(device)
    x = _personal(device)
    u = xp.zeros(3, device=device)
    for made in (xp.full((4,), x[0], device=device), xp.full_like(u, x[1])):
        assert made.tags == x.tags
        with pytest.raises(ResidencyError):
            made.to_device("emulated:1")
    before = _denied_memory()
    with pytest.raises(ResidencyError):  # reading the fill value onto a denied device is a move
        xp.full((4,), x[0], device="emulated:1")
    assert _denied_memory() == before


@pytest.mark.parametrize("device", DEVICES)
def test_structure_from_covered_scalars_is_covered(policy: Path, device: str) -> None:
    _available(device)
    k = xp.asarray(2, device=device, tags={"classification": "personal"})
    e = xp.eye(4, k=k, device=device)  # the position of the ones encodes k
    t = xp.tril(xp.ones((3, 3), device=device), k=k)
    assert e.tags == k.tags and t.tags == k.tags
    with pytest.raises(ResidencyError):
        e.to_device("emulated:1")


def test_control_dropping_fill_tags_lets_values_through(policy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not vacuous: with the fill-value tags switched off, personal values reach emulated:1."""
    from hpcai import _creation_functions

    monkeypatch.setattr(_creation_functions, "_fill_tags", lambda fname, v, dev: None)
    x = _personal("numpy:cpu")
    moved = xp.full((2,), x[0]).to_device("emulated:1")
    assert to_numpy(moved).tolist() == [11.0, 11.0]


@pytest.mark.parametrize("device", ["numpy:cpu", "emulated:0", "emulated:1", "jax:cpu:0"])
def test_empty_never_hands_out_freed_values(policy: Path, device: str) -> None:
    _available(device)
    src = "emulated:0" if device == "emulated:1" else device
    marker = 1234.5
    for _ in range(5):
        x = xp.asarray(np.full(64, marker), device=src, tags={"classification": "personal"})
        del x
        gc.collect()
        fresh = [xp.empty((64,), device=device), xp.empty_like(xp.zeros(64, device=device))]
        for f in fresh:
            assert f.tags == {}
            assert not np.any(to_numpy(f) == marker)  # no personal value came back
            assert np.all(to_numpy(f) == 0)


@pytest.mark.parametrize("device", ["numpy:cpu", "emulated:0"])
def test_control_uninitialised_memory_does_hold_freed_values(device: str) -> None:
    """Not vacuous: the backends' own uninitialised allocation hands freed values back, which
    is what xp.empty would return without the zero fill."""
    dev = xp.resolve_device(device)
    hits = 0
    for _ in range(5):
        x = xp.asarray(np.full(64, 1234.5), device=device)
        del x
        gc.collect()
        raw = dev._backend.create(dev, "empty", (64,), dtype=np.dtype("float64"))
        hits += bool(np.any(np.asarray(raw) == 1234.5))
    assert hits >= 1  # measured here: 5 of 5
