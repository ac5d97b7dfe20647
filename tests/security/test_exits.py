"""Class 4 and 5 attacks: ways out of hpcai beside the movement path, and exports.

Class 4: JAX's own ``device_put`` and pytree rebuilding, and pickling, must not put covered
data on a denied device (the device of the result is observed). Class 5: with an
``export = "false"`` rule, no conversion hands values out: Python scalars, text, pickle
bytes, pytree leaves, writes into a caller's buffer, NumPy conversion inside a client
library.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

import hpcai as xp
from hpcai import _transfer
from hpcai.errors import ResidencyError
from hpcai.testing import ATTACK_POLICY, to_numpy


@pytest.fixture
def policy(config, tmp_path: Path) -> Path:
    config(ATTACK_POLICY)
    return tmp_path / "audit.jsonl"


def _records(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _internal(device: str = "numpy:cpu") -> xp.Array:
    return xp.asarray([1.5, 2.5, 3.5], device=device, tags={"handling": "internal"})


# ---------------------------------------------------------------------------- class 4
def test_jax_device_put_is_a_placement_decision(policy: Path) -> None:
    jax = pytest.importorskip("jax")
    x = xp.asarray([1.0, 2.0], device="jax:cpu:0", tags={"classification": "personal"})
    with pytest.raises(ResidencyError):
        jax.device_put(x, jax.devices("cpu")[1])  # jax:cpu:1 is a US device
    ok = jax.device_put(x, jax.devices("cpu")[2])  # an EU device: allowed, and the wrapper says so
    assert str(ok.device) == "jax:cpu:2" and list(ok._data.devices())[0].id == 2
    assert ok.tags == x.tags


def test_pytree_rebuild_takes_the_device_of_the_leaf(policy: Path) -> None:
    jax = pytest.importorskip("jax")
    u = xp.asarray([0.0, 0.0], device="jax:cpu:1")  # untagged, on the US device
    x = xp.asarray([1.0, 2.0], device="jax:cpu:0", tags={"classification": "personal"})
    leaves = jax.tree_util.tree_leaves(x)
    rebuilt = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(u), leaves)
    assert str(rebuilt.device) == "jax:cpu:0"  # where the values are, not what the treedef said


def test_unpickling_is_decided_by_the_receiving_process(policy: Path, config) -> None:
    config("")  # the sending process has no policy
    x = xp.asarray([1.0, 2.0], device="emulated:1", tags={"classification": "personal"})
    blob = pickle.dumps(x)
    config(ATTACK_POLICY)  # the receiving process denies personal data on emulated:1
    dev = xp.resolve_device("emulated:1")
    before = dev._backend.memory_used(dev)
    with pytest.raises(ResidencyError, match="unpickle"):
        pickle.loads(blob)
    assert dev._backend.memory_used(dev) == before
    assert any('"operation":"unpickle"' in r and '"deny"' in r for r in _records(policy))


def test_control_unpickle_without_the_decision(policy: Path, config, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not vacuous: without the placement decision the personal data lands on emulated:1."""
    from hpcai.residency import _carried

    config("")
    blob = pickle.dumps(xp.asarray([1.0, 2.0], device="emulated:1", tags={"classification": "personal"}))
    config(ATTACK_POLICY)
    monkeypatch.setattr(_carried, "check_arrival", lambda *a, **k: None)
    assert str(pickle.loads(blob).device) == "emulated:1"


# ---------------------------------------------------------------------------- class 5
@pytest.mark.parametrize("device", ["numpy:cpu", "emulated:0", "jax:cpu:0"])
def test_scalar_conversions_are_exports(policy: Path, device: str) -> None:
    if device not in {str(d) for d in xp.all_devices()}:
        pytest.skip(f"{device} is not available")
    x = _internal(device)
    i = xp.asarray(3, device=device, tags={"handling": "internal"})
    for convert, value in ((float, x[0]), (int, x[0]), (bool, x[0]), (complex, x[0])):
        with pytest.raises(ResidencyError):
            convert(value)
    with pytest.raises(ResidencyError):
        [0, 1, 2, 3][i]  # __index__
    with pytest.raises(ResidencyError):
        xp.eye(4, k=i)
    personal = xp.asarray(2.5, device=device, tags={"classification": "personal"})
    assert float(personal) == 2.5  # export of personal data is not restricted


def test_text_is_redacted_under_export_false(policy: Path) -> None:
    x = xp.asarray([1234.5678, 2.0], tags={"handling": "internal"})
    for text in (repr(x), str(x), f"{x}", repr([x])):
        assert "1234" not in text and "redacted" in text
    assert "1234" in repr(xp.asarray([1234.5678], tags={"classification": "personal"}))


@pytest.mark.parametrize("device", ["numpy:cpu", "emulated:0"])
def test_pickle_bytes_are_an_export(policy: Path, device: str) -> None:
    with pytest.raises(ResidencyError):
        pickle.dumps(_internal(device))
    assert any('"operation":"pickle"' in r and '"deny"' in r for r in _records(policy))


def test_pytree_leaves_are_an_export(policy: Path) -> None:
    jax = pytest.importorskip("jax")
    x = _internal("jax:cpu:0")
    with pytest.raises(ResidencyError):
        jax.tree_util.tree_leaves(x)
    with pytest.raises(ResidencyError):
        jax.jit(lambda a: a * 2)(x)  # jax.jit flattens its arguments
    y = xp.jit(lambda a: a * 2)(x)  # xp.jit computes on the device without an export
    assert y.tags == x.tags and str(y.device) == "jax:cpu:0"


def test_numpy_round_trips_in_client_libraries_are_exports(policy: Path) -> None:
    if os.environ.get("SCIPY_ARRAY_API") != "1":
        pytest.skip("needs SCIPY_ARRAY_API=1 before SciPy is imported (tests/conftest.py sets it)")
    import scipy.signal

    x = _internal()
    with pytest.raises(ResidencyError):
        scipy.signal.convolve(x, xp.asarray([1.0, 1.0]))
    with pytest.raises(ResidencyError):
        np.asarray(x)
    with pytest.raises(ResidencyError):
        np.from_dlpack(x)


def test_control_without_the_export_gate_values_leave(policy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not vacuous: with the export gate off, scalars, text and pickles carry the values."""
    monkeypatch.setattr(_transfer, "check_export", lambda x, op, dl_device=None: None)
    monkeypatch.setattr(_transfer, "export_refused", lambda x: False)
    x = _internal()
    assert float(x[0]) == 1.5 and "1.5" in repr(x)
    assert to_numpy(pickle.loads(pickle.dumps(x))).tolist() == [1.5, 2.5, 3.5]


def test_allowed_exports_are_recorded_under_an_audit_rule(config, tmp_path: Path) -> None:
    """``effect = "audit"`` on an export rule: conversions go ahead and each one is recorded."""
    config(
        '[[policy.rules]]\nname = "exports-recorded"\nmatch = "classification=personal"\n'
        'export = "false"\neffect = "audit"\n\n[audit]\npath = "audit.jsonl"\n'
    )
    x = xp.asarray([1.5, 2.5], tags={"classification": "personal"})
    assert float(x[0]) == 1.5
    assert pickle.loads(pickle.dumps(x)).tags == x.tags
    assert np.asarray(x).tolist() == [1.5, 2.5]
    records = [r for r in _records(tmp_path / "audit.jsonl") if '"op":"export"' in r]
    assert [r.split('"operation":"')[1].split('"')[0] for r in records] == ["__float__", "pickle", "__array__"]
    assert all('"effect":"audit"' in r and '"decision":"allow"' in r for r in records)
