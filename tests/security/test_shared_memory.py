"""Class 1 attacks: covered values written into memory that untagged arrays share.

Each attack writes personal values into memory through one Array and then tries to take
them to a denied device (``emulated:1``, US hyperscaler) or out of hpcai through another
Array, or through the caller's own NumPy buffer. The test observes where the values ended
up: the denied device's memory, the caller's buffer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hpcai as xp
from hpcai import _memory
from hpcai.errors import ResidencyError
from hpcai.testing import ATTACK_POLICY, to_numpy

HOST_LIKE = ["numpy:cpu", "emulated:0"]  # devices whose arrays can share memory (views)


@pytest.fixture
def policy(config, tmp_path: Path) -> Path:
    config(ATTACK_POLICY)
    return tmp_path / "audit.jsonl"


def _denied_memory() -> int:
    dev = xp.resolve_device("emulated:1")
    return int(dev._backend.memory_used(dev))


def _personal(device: str) -> xp.Array:
    return xp.asarray([11.0, 22.0, 33.0], device=device, tags={"classification": "personal"})


def _refused_move(u: xp.Array) -> None:
    before = _denied_memory()
    with pytest.raises(ResidencyError):
        u.to_device("emulated:1")
    assert _denied_memory() == before  # nothing reached the denied device


@pytest.mark.parametrize("device", HOST_LIKE)
def test_write_through_a_view_tags_the_base(policy: Path, device: str) -> None:
    x = _personal(device)
    u = xp.zeros(3, device=device)
    v = u[:]
    v[...] = x
    assert to_numpy(xp.asarray(u, device=device, copy=True)).tolist() == [11.0, 22.0, 33.0]
    _refused_move(u)
    _refused_move(u * 2)  # derived from the now covered values


@pytest.mark.parametrize("device", HOST_LIKE)
def test_in_place_add_through_a_view_tags_the_base(policy: Path, device: str) -> None:
    x = _personal(device)
    u = xp.zeros(4, device=device)
    v = u[1:]
    v += x
    _refused_move(u)
    assert u[:1].tags == x.tags  # views taken afterwards derive from the covered array
    _refused_move(u[1:])


@pytest.mark.parametrize("device", HOST_LIKE)
def test_write_through_a_tagged_alias_tags_the_original(policy: Path, device: str) -> None:
    x = _personal(device)
    u = xp.zeros(3, device=device)
    t = xp.tag(u, project="p1")
    t[...] = x
    _refused_move(u)


def test_write_into_a_callers_buffer_is_an_export(policy: Path) -> None:
    internal = xp.asarray([1.0, 2.0, 3.0], tags={"handling": "internal"})
    buf = np.zeros(3)
    u = xp.asarray(buf)  # zero-copy: the caller keeps buf
    with pytest.raises(ResidencyError, match="caller's NumPy buffer"):
        u[...] = internal
    with pytest.raises(ResidencyError):
        u[1:] += internal[1:]
    buf3 = np.zeros(3)
    d = xp.from_dlpack(buf3)  # zero-copy import: the producer keeps the memory
    with pytest.raises(ResidencyError, match="caller's NumPy buffer"):
        d[...] = internal
    assert buf.tolist() == [0.0, 0.0, 0.0] and buf3.tolist() == [0.0, 0.0, 0.0]
    # export of personal data is not restricted: the write goes ahead, the buffer holds it
    buf2 = np.zeros(3)
    u2 = xp.asarray(buf2)
    u2[...] = _personal("numpy:cpu")
    assert buf2.tolist() == [11.0, 22.0, 33.0] and u2.tags == {"classification": frozenset({"personal"})}


def test_jax_slices_are_copies_so_nothing_leaks(policy: Path) -> None:
    pytest.importorskip("jax")
    x = _personal("jax:cpu:0")
    u = xp.zeros(3, device="jax:cpu:0")
    v = u[:]
    v[...] = x
    assert to_numpy(u).tolist() == [0.0, 0.0, 0.0]  # u never held the values
    assert u.to_device("jax:cpu:1").tags == {}


def test_unshared_writes_do_not_scan(policy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scans: list[object] = []
    monkeypatch.setattr(_memory, "_share", lambda r, t: scans.append(r))
    x = _personal("numpy:cpu")
    out = xp.zeros(3)
    for i in range(3):
        out[i] = x[i]
    assert scans == [] and out.tags == x.tags


def test_control_without_the_defence_the_attack_succeeds(policy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test above is not vacuous: with the write hook switched off, the values leave."""
    monkeypatch.setattr(_memory, "written", lambda target, tags, op: None)
    x = _personal("numpy:cpu")
    u = xp.zeros(3)
    v = u[:]
    v[...] = x
    moved = u.to_device("emulated:1")
    assert to_numpy(moved).tolist() == [11.0, 22.0, 33.0]  # personal values on the US device
