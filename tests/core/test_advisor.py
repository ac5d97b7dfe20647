"""The placement advisor (issue 14): history, advice within the policy, xp.run(device="auto")."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import hpcai as xp
from hpcai import _history
from hpcai._history import Entry, HistoryStore, HistoryWarning
from hpcai.errors import ConfigError, InvalidArgumentError, ResidencyError


@pytest.fixture(autouse=True)
def _history_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """History and audit records of each test go to its own directory."""
    d = tmp_path / "history"
    monkeypatch.setenv("HPCAI_HISTORY_DIR", str(d))
    monkeypatch.setenv("HPCAI_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    return d


POLICY = """
[site]
country = "DE"

[devices."jax:cpu:1"]
attributes = { country = "US" }

[devices."emulated:1"]
attributes = { country = "US" }

[groups]
eu = ["DE", "FR"]

[[policy.rules]]
name = "gdpr-personal"
match = "classification=personal"
compute = "country=@eu"
effect = "deny"
"""


def _fast_history(device: str, fn, *args, seconds: float, n: int = 8) -> None:
    """Make *device* look very fast for fn(*args) in the history."""
    fp = xp._record.footprint(fn, args, {})
    st = _history.store()
    for _ in range(n):
        st.add_kernel(device, fp.key, seconds, fp.flops, fp.nbytes)


# ============================================================================================
# statistics
# ============================================================================================
def test_ten_fast_samples_and_one_slow_predict_the_fast_time() -> None:
    e = Entry()
    for _ in range(10):
        e.add(1e-3)
    assert e.add(100e-3) is True  # counted as an outlier ...
    assert e.outliers == 1
    assert e.median == pytest.approx(1e-3, rel=0.05)  # ... not averaged in
    assert not e.remeasure


def test_a_run_of_slow_samples_triggers_remeasurement() -> None:
    e = Entry()
    for _ in range(10):
        e.add(1e-3)
    for _ in range(_history.STREAK):
        e.add(50e-3)
    assert e.remeasure and e.remeasures == 1  # it keeps disagreeing: re-measure it
    assert e.median == pytest.approx(1e-3)  # the old regime predicts until the new is confirmed
    for _ in range(_history.CONFIRMED - _history.STREAK - 1):
        e.add(50e-3)
    assert e.remeasure and e.median == pytest.approx(1e-3)
    e.add(50e-3)  # CONFIRMED slow samples in a row: the old regime is no longer trusted
    assert not e.remeasure and e.remeasures == 1
    assert e.samples == [50e-3] * _history.CONFIRMED and e.median == pytest.approx(50e-3)


def test_a_slow_spell_flags_the_entry_but_keeps_its_history() -> None:
    """A spell of the host's noise (a few slow samples in a row, then normal again) asks for
    re-measurement, and the next agreeing sample clears that; the window is kept, so the
    prediction never jumps to the spell's time (it did: 3 slow samples replaced 32 good ones,
    and the placement benchmark then moved a 384x384 matmul off the device holding its data)."""
    e = Entry()
    for _ in range(32):
        e.add(1e-3)
    for _ in range(_history.CONFIRMED - 1):
        e.add(3e-3)
        assert e.median == pytest.approx(1e-3)
    assert e.remeasure
    e.add(1.05e-3)  # agrees again
    assert not e.remeasure and e.median == pytest.approx(1e-3) and len(e.samples) == _history.WINDOW
    assert e.outliers == _history.CONFIRMED - 1 and e.remeasures == 1


def test_a_slowed_down_entry_is_remeasured_after_a_while_so_a_device_is_never_starved() -> None:
    e = Entry()
    for _ in range(8):
        e.add(1e-3, when=0.0)
    for _ in range(8):  # a slow spell, long enough to become the trusted median
        e.add(10e-3, when=0.0)
    assert not e.stale(now=1.0, stale_after=600)
    assert e.stale(now=1000.0, stale_after=600)  # not sampled for a while and 10x its best


def test_run_auto_remeasures_a_flagged_device(tmp_path: Path) -> None:
    a = xp.ones((32, 32))
    _fast_history("numpy:cpu", xp.matmul, a, a, seconds=1e-6)
    _fast_history("jax:cpu:0", xp.matmul, a, a, seconds=1.0)
    fp = xp._record.footprint(xp.matmul, (a, a), {})
    st = _history.store()
    st.device("jax:cpu:0").entries[fp.key].remeasure = True
    st.version += 1
    devs = ["numpy:cpu", "jax:cpu:0"]
    adv = xp.advise(xp.matmul, a, a, devices=devs)
    assert adv.choice == "numpy:cpu" and adv.row("jax:cpu:0").remeasure
    with xp.record() as rec:
        xp.run(xp.matmul, a, a, device="auto", devices=devs)
    assert rec.samples[0].device == "jax:cpu:0"  # re-measured rather than trusted forever


def test_regression_is_used_only_inside_its_fitted_range() -> None:
    st = _history.store()
    for n in (64, 128, 256):
        a = xp.ones((n, n))
        fp = xp._record.footprint(xp.matmul, (a, a), {})
        for _ in range(3):
            st.add_kernel("numpy:cpu", fp.key, 1e-9 * n**3, fp.flops, fp.nbytes)
    inside = xp.ones((100, 100))
    r = xp.advise(xp.matmul, inside, inside, devices=["numpy:cpu"]).rows[0]
    assert r.compute_basis.startswith("regression")
    assert r.compute_seconds == pytest.approx(1e-9 * 100**3, rel=0.05)
    outside = xp.ones((512, 512))
    r = xp.advise(xp.matmul, outside, outside, devices=["numpy:cpu"]).rows[0]
    assert r.compute_basis.startswith("roofline")


def test_a_small_size_s_moves_are_not_forgotten_after_many_large_moves() -> None:
    """Moves are kept per size: many moves of other sizes never push a size's moves out."""
    t = _history._Transfers()
    for _ in range(5):
        t.add(8_192, 20e-6)
    for i in range(1000):  # 1000 moves of 20 other sizes, far more than one window
        nb = 1_000_000 + 100_000 * (i % 20)
        t.add(nb, 1e-3 + nb * 1e-10)
    seconds, basis = t.predict(8_192)
    assert seconds == pytest.approx(20e-6)
    assert basis == "history (5 moves of this size, median)"
    assert len(t.sizes) == 21 and all(len(v) <= _history.TRANSFER_WINDOW for v in t.sizes.values())


def test_moves_of_an_unmeasured_size_are_interpolated_between_its_neighbours() -> None:
    t = _history._Transfers()
    for nb, sec in ((1_000, 10e-6), (10_000, 20e-6), (1_000_000, 1e-3), (8_000_000, 9e-3)):
        for _ in range(3):
            t.add(nb, sec)
    seconds, basis = t.predict(5_500)
    # the straight line between 1,000 and 10,000 bytes, not a fit over every size (whose
    # intercept the large sizes dominate: it would predict -0.027 ms, clipped to 0, here)
    assert seconds == pytest.approx(15e-6)
    assert basis == "interpolated between moves of 1,000 and 10,000 bytes (3 and 3 moves, medians)"
    assert t.predict(1_050)[1] == "interpolated between moves of 1,000 and 10,000 bytes (3 and 3 moves, medians)"
    assert t.predict(950) == (pytest.approx(10e-6), "history (3 moves of 1,000 bytes, within 10 % of this size, median)")
    assert t.predict(500) is None and t.predict(9_000_000) is None  # outside: the link model answers


def test_transfer_sizes_are_bounded_and_the_least_recently_measured_goes_first(monkeypatch) -> None:
    monkeypatch.setattr(_history, "TRANSFER_SIZES", 3)
    t = _history._Transfers()
    for nb in (100, 200, 300):
        t.add(nb, 1e-6)
    t.add(100, 1e-6)  # measured again: now the most recent
    t.add(400, 1e-6)  # a fourth size: 200, the least recently measured, is dropped
    assert list(t.sizes) == [300, 100, 400]
    fresh = _history._Transfers()
    for nb, sec in t.samples:  # how a file is read back: the same state
        fresh.add(nb, sec)
    assert fresh.sizes == t.sizes and list(fresh.sizes) == list(t.sizes)


def test_later_moves_of_a_call_are_kept_apart_from_the_first(_history_in_tmp: Path) -> None:
    """A call's first move pays its fixed cost of moving; the advisor predicts the first
    argument's move from first moves and the next ones from later moves."""
    st = _history.store()
    for _ in range(5):
        st.add_transfer("jax:cpu:1", "numpy:cpu", 8_192, 20e-6, first=True)
        st.add_transfer("jax:cpu:1", "numpy:cpu", 8_192, 10e-6, first=False)
    a = xp.ones((32, 32), device="jax:cpu:1")
    r = xp.advise(xp.matmul, a, a, devices=["numpy:cpu"]).rows[0]
    assert r.transfer_seconds == pytest.approx(30e-6)
    assert r.transfer_basis == (
        "jax:cpu:1: history (5 moves of this size, median); "
        "jax:cpu:1, a later move in the call: history (5 moves of this size, median)"
    )
    r = xp.advise(xp.negative, a, devices=["numpy:cpu"]).rows[0]  # one argument: a first move
    assert r.transfer_seconds == pytest.approx(20e-6)
    st.flush()
    doc = json.loads(st.path("numpy:cpu").read_text())
    assert doc["transfers"] == {"jax:cpu:1": [[8192, 20e-6]] * 5}
    assert doc["later_transfers"] == {"jax:cpu:1": [[8192, 10e-6]] * 5}
    with xp.record():  # recording tells them apart too
        xp.run(xp.matmul, a, a, device="numpy:cpu")
    h = _history.store().device("numpy:cpu")
    assert len(h.transfers["jax:cpu:1"].sizes[8_192]) == 6 and len(h.later["jax:cpu:1"].sizes[8_192]) == 6


def test_runs_on_arguments_just_moved_in_are_predicted_apart(_history_in_tmp: Path) -> None:
    """A kernel on arguments just moved onto a device is measured apart from one on
    arguments already there (on JAX CPU devices the first is several times slower for small
    arrays): each case is predicted from its own history, the other's when it has none."""
    a = xp.ones(1000, device="jax:cpu:1")
    fp = xp._record.footprint(xp.negative, (a,), {})
    st = _history.store()
    for _ in range(5):
        st.add_kernel("jax:cpu:1", fp.key, 30e-6, fp.flops, fp.nbytes)
        st.add_kernel("jax:cpu:1", _history.MOVED_IN + fp.key, 100e-6, fp.flops, fp.nbytes)
    r = xp.advise(xp.negative, a, devices=["jax:cpu:1"]).rows[0]
    assert r.compute_seconds == pytest.approx(30e-6) and r.compute_basis.startswith("history (5 recent")
    b = xp.ones(1000)  # on numpy:cpu: it would be moved in
    r = xp.advise(xp.negative, b, devices=["jax:cpu:1"]).rows[0]
    assert r.compute_seconds == pytest.approx(100e-6)
    assert r.compute_basis.startswith("on arguments just moved in: history (5 recent")
    with xp.record():
        xp.run(xp.negative, b, device="jax:cpu:0")  # moved in: recorded as such
        xp.run(xp.negative, a, device="jax:cpu:1")
    e0 = _history.store().device("jax:cpu:0").entries
    assert list(e0) == [_history.MOVED_IN + fp.key]
    r = xp.advise(xp.negative, a.to_device("jax:cpu:0"), devices=["jax:cpu:0"]).rows[0]
    assert r.compute_basis.startswith("on arguments just moved in: history (1 recent")  # the other case's
    assert _history.store().device("jax:cpu:1").entries[fp.key].n == 6


def test_a_history_file_from_before_moves_were_kept_per_size_still_loads(tmp_path: Path) -> None:
    st = HistoryStore(tmp_path, host="h")
    p = st.path("numpy:cpu")
    p.parent.mkdir(parents=True)
    old = [[8192, 2e-5], [800000, 1e-4], [8192, 3e-5], [800000, 2e-4], [8192, 2.5e-5]]
    p.write_text(json.dumps({"format": "hpcai-history", "version": 1, "kernels": {}, "transfers": {"jax:cpu:1": old}}))
    t = st.device("numpy:cpu").transfers["jax:cpu:1"]
    assert t.predict(8192) == (pytest.approx(2.5e-5), "history (3 moves of this size, median)")
    assert st.device("numpy:cpu").later == {}


# ============================================================================================
# history files
# ============================================================================================
_WRITER = """
import sys
from pathlib import Path
from hpcai._history import HistoryStore
st = HistoryStore(Path(sys.argv[1]), host="h")
for i in range(int(sys.argv[2])):
    st.add_kernel("numpy:cpu", "k|float64|8|", 1e-3, 1.0, 8.0)
    if i % 5 == 4:
        st.flush()
st.flush()
"""


def test_history_survives_across_processes_and_concurrent_writers_lose_nothing(
    tmp_path: Path,
) -> None:
    d = tmp_path / "h"
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(d), "20"], cwd=tmp_path)
        for _ in range(4)
    ]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    st = HistoryStore(d, host="h")  # a new reader: what the other processes wrote
    e = st.device("numpy:cpu").entries["k|float64|8|"]
    assert e.n == 80 and e.median == pytest.approx(1e-3)
    doc = json.loads(st.path("numpy:cpu").read_text())
    assert (
        doc["format"] == "hpcai-history"
        and doc["version"] == _history.VERSION
        and doc["host"] == "h"
    )
    assert not list(st.path("numpy:cpu").parent.glob("*.tmp"))  # atomic: no leftovers


def test_a_corrupt_history_file_is_set_aside_with_a_warning(tmp_path: Path) -> None:
    st = HistoryStore(tmp_path, host="h")
    p = st.path("numpy:cpu")
    p.parent.mkdir(parents=True)
    p.write_text('{"format": "hpcai-history", "version": 1, "kernels": {"k": {"samp')
    with pytest.warns(HistoryWarning, match="corrupt"):
        h = st.device("numpy:cpu")
    assert h.entries == {}
    assert list(p.parent.glob("numpy_cpu.json.corrupt-*"))
    st.add_kernel("numpy:cpu", "k|float64||", 2e-3, 0.0, 8.0)
    st.flush()
    assert json.loads(p.read_text())["kernels"]["k|float64||"]["samples"] == [2e-3]


def test_a_history_file_of_another_version_is_left_alone(tmp_path: Path) -> None:
    st = HistoryStore(tmp_path, host="h")
    p = st.path("numpy:cpu")
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps({"format": "hpcai-history", "version": 99, "kernels": {}}))
    with pytest.warns(HistoryWarning, match="version 99"):
        assert st.device("numpy:cpu").entries == {}
    assert json.loads(p.read_text())["version"] == 99


def test_history_dir_from_config_and_environment(tmp_path: Path, config, monkeypatch) -> None:
    monkeypatch.delenv("HPCAI_HISTORY_DIR")
    config(f'[advisor]\nhistory_dir = "{tmp_path / "cfg"}"\n')
    assert _history.history_dir() == tmp_path / "cfg"
    monkeypatch.setenv("HPCAI_HISTORY_DIR", str(tmp_path / "env"))
    assert _history.history_dir() == tmp_path / "env"
    with pytest.raises(ConfigError, match="advisor.stale_after"):
        config("[advisor]\nstale_after = -1\n")


def test_recording_feeds_history_and_emulated_devices_are_modelled(_history_in_tmp: Path) -> None:
    a = xp.ones((64, 64))
    with xp.record() as rec:
        xp.run(xp.matmul, a, a, device="numpy:cpu")
        xp.run(xp.matmul, a, a, device="emulated:0")
        xp.run(xp.matmul, a, a, device="jax:cpu:0")
    s_np, s_em, s_jax = rec.samples
    assert (s_np.basis, s_em.basis, s_jax.basis) == ("measured", "modelled", "measured")
    assert s_np.flops == 2 * 64**3 and s_jax.moved_bytes == 2 * a.size * 8
    assert s_em.seconds < 1e-4  # the H100's roofline, not the host's wall time
    assert rec.context["cpus"] >= 1 and "blas_threads" in rec.context
    files = {Path(f).name for f in rec.files}
    assert files == {"numpy_cpu.json", "jax_cpu_0.json"}  # no history for the emulated device
    r = xp.advise(xp.matmul, a, a, devices=["numpy:cpu"]).rows[0]
    assert r.compute_basis.startswith("history (1 recent")


# ============================================================================================
# advice within the policy
# ============================================================================================
def test_a_denied_device_is_never_chosen_and_is_listed_with_its_rule(config) -> None:
    config(POLICY)
    x = xp.tag(xp.ones((64, 64)), classification="personal")
    _fast_history("jax:cpu:1", xp.matmul, x, x, seconds=1e-9)  # denied yet "fastest"
    for objective in ("time", "energy", "co2"):
        adv = xp.advise(xp.matmul, x, x, objective=objective)
        denied = {r.device: r for r in adv.excluded if r.rule}
        assert set(denied) == {"jax:cpu:1", "emulated:1"}
        assert all(
            r.rule == "gdpr-personal" and "gdpr-personal" in (r.excluded or "")
            for r in denied.values()
        )
        assert adv.choice not in ("jax:cpu:1", "emulated:1")
    for _ in range(5):
        out = xp.run(xp.matmul, x, x, device="auto")
        assert str(out.device) not in ("jax:cpu:1", "emulated:1")
    with pytest.raises(ResidencyError, match="gdpr-personal"):
        _ = xp.advise(xp.matmul, x, x, devices=["jax:cpu:1", "emulated:1"]).choice


def test_precision_error_excludes_an_fp64_less_device_and_emulate_costs_ozaki(config) -> None:
    a = xp.ones((512, 512))
    config('[devices."emulated:2"]\npreset = "gaudi3"\nprecision = "error"\n')
    adv = xp.advise(xp.matmul, a, a, devices=["emulated:2", "numpy:cpu"])
    r = adv.row("emulated:2")
    assert (
        not r.allowed
        and "no native float64" in (r.excluded or "")
        and "emulate" in (r.excluded or "")
    )
    assert adv.choice == "numpy:cpu"
    config(
        '[devices."emulated:2"]\npreset = "gaudi3"\nprecision = "emulate"\n'
        '[devices."emulated:3"]\npreset = "gaudi3"\n'
    )
    r = xp.advise(xp.matmul, a, a, devices=["emulated:2"]).rows[0]
    assert r.allowed and "Ozaki" in r.compute_basis
    f32 = xp.ones((512, 512), dtype=xp.float32, device="emulated:3")
    r32 = xp.advise(xp.matmul, f32, f32, devices=["emulated:3"]).rows[0]
    n = int(r.compute_basis.split(": ")[1].split()[0])  # products it will run
    assert n >= 8 and r.compute_seconds > 0.5 * n * r32.compute_seconds


def test_an_fr_device_half_as_fast_wins_on_co2_against_pl(config) -> None:
    config(
        """
[devices."emulated:2"]
preset = "h100"
flops = { float32 = 33.5e12, float64 = 33.5e12 }
memory_bandwidth = 1.675e12
attributes = { country = "FR" }

[devices."emulated:3"]
preset = "h100"
attributes = { country = "PL" }

[energy.carbon]
country = { FR = 56, PL = 662 }
"""
    )
    a = xp.ones((2048, 2048), dtype=xp.float32)
    devs = ["emulated:2", "emulated:3"]
    fr = xp.advise(xp.matmul, a, a, devices=devs).row("emulated:2")
    pl = xp.advise(xp.matmul, a, a, devices=devs).row("emulated:3")
    assert fr.compute_seconds == pytest.approx(2 * pl.compute_seconds, rel=0.05)  # half as fast
    assert xp.advise(xp.matmul, a, a, devices=devs, objective="time").choice == "emulated:3"
    co2 = xp.advise(xp.matmul, a, a, devices=devs, objective="co2")
    assert co2.choice == "emulated:2"
    assert co2.rows[0].grams == pytest.approx(co2.rows[0].joules / 3.6e6 * 56)
    assert '[energy.carbon.country] "FR"' in co2.rows[0].grams_basis


def test_co2_without_a_configured_intensity_has_no_grams_and_says_so() -> None:
    a = xp.ones((8, 8))
    r = xp.advise(xp.matmul, a, a, devices=["numpy:cpu"], objective="co2").rows[0]
    assert r.grams is None and "no world average" in r.grams_basis


def test_ties_go_to_the_device_holding_the_data() -> None:
    x = xp.ones((64, 64), device="jax:cpu:2")
    devs = ["jax:cpu:0", "jax:cpu:1", "jax:cpu:2", "jax:cpu:3"]
    for d in devs:  # identical compute times everywhere
        _fast_history(d, xp.matmul, x, x, seconds=1e-3)
    adv = xp.advise(xp.matmul, x, x, devices=devs)
    assert (
        adv.choice == "jax:cpu:2" and adv.rows[0].holds_data and adv.rows[0].transfer_seconds == 0
    )


def test_capacity_is_respected(config) -> None:
    config('[devices."emulated:2"]\npreset = "h100"\nmemory = "1 MiB"\n')
    big = xp.ones((512, 512))  # 2 MiB
    r = xp.advise(xp.add, big, big, devices=["emulated:2", "numpy:cpu"]).row("emulated:2")
    assert not r.allowed and (r.excluded or "").startswith("capacity")


def test_run_moves_explicitly_and_logs_them() -> None:
    a = xp.ones((16, 16))
    with xp.transfers() as log:
        out = xp.run(xp.matmul, a, a, device="jax:cpu:3")
    assert str(out.device) == "jax:cpu:3" and len(log) == 2 and log[0].op == "to_device"
    assert float(out[0, 0]) == 16.0


def test_bad_input_is_named() -> None:
    a = xp.ones(3)
    with pytest.raises(InvalidArgumentError, match="objective"):
        xp.advise(xp.sum, a, objective="speed")
    with pytest.raises(InvalidArgumentError, match="callable"):
        xp.advise(42, a)
    with pytest.raises(InvalidArgumentError, match="single device"):
        xp.advise(xp.sum, a, devices="numpy:cpu")


def test_advice_table_dict_and_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    a = xp.ones((128, 128))
    adv = xp.advise(xp.matmul, a, a, devices=["numpy:cpu", "jax:cpu:0", "emulated:0"])
    text = adv.table()
    assert "basis:" in text and "roofline" in text and "energy figures are modelled" in text
    d = adv.to_dict()
    assert d["choice"] == adv.rows[0].device and len(d["rows"]) == 3
    fig = adv.plot(tmp_path / "advice.png")
    assert (tmp_path / "advice.png").stat().st_size > 0
    bars = [p for p in fig.axes[0].patches]
    assert len(bars) == 6  # compute and transfer bars for three devices
    assert math.isclose(
        sum(p.get_width() for p in fig.axes[1].patches), sum(r.joules for r in adv.rows)
    )


# ============================================================================================
# memoised advice follows everything it was derived from
# ============================================================================================
def _memoised(fn, *args, **kw) -> None:
    """Ask twice: the second answer comes from the memo (asserted), so later calls test it."""
    xp.advise(fn, *args, **kw)
    n = len(xp._advisor._current_state.memo)
    xp.advise(fn, *args, **kw)
    assert n and len(xp._advisor._current_state.memo) == n


def test_memoised_advice_follows_a_policy_change(config) -> None:
    x = xp.tag(xp.ones((64, 64)), classification="personal")
    devs = ["numpy:cpu", "jax:cpu:1"]
    _fast_history("jax:cpu:1", xp.matmul, x, x, seconds=1e-9)
    _fast_history("numpy:cpu", xp.matmul, x, x, seconds=1.0)  # moving there pays
    _history.store().flush()  # the store of the next configuration reads it back
    _memoised(xp.matmul, x, x, devices=devs)
    assert xp.advise(xp.matmul, x, x, devices=devs).choice == "jax:cpu:1"
    config(POLICY)  # jax:cpu:1 is in the US: personal data may not be computed there
    adv = xp.advise(xp.matmul, x, x, devices=devs)
    assert adv.choice == "numpy:cpu" and adv.row("jax:cpu:1").rule == "gdpr-personal"
    assert adv.row("numpy:cpu").compute_basis.startswith("history")  # not for want of history
    _memoised(xp.matmul, x, x, devices=devs)
    config("")  # the rule is gone again
    assert xp.advise(xp.matmul, x, x, devices=devs).choice == "jax:cpu:1"


def test_memoised_advice_tells_tagged_from_untagged_data(config) -> None:
    config(POLICY)
    plain = xp.ones((64, 64))
    personal = xp.tag(xp.ones((64, 64)), classification="personal")
    devs = ["numpy:cpu", "jax:cpu:1"]
    _fast_history("jax:cpu:1", xp.matmul, plain, plain, seconds=1e-9)
    _fast_history("numpy:cpu", xp.matmul, plain, plain, seconds=1.0)
    _memoised(xp.matmul, plain, plain, devices=devs)
    assert xp.advise(xp.matmul, plain, plain, devices=devs).choice == "jax:cpu:1"
    adv = xp.advise(xp.matmul, personal, personal, devices=devs)
    assert adv.choice == "numpy:cpu" and not adv.row("jax:cpu:1").allowed


def test_memoised_advice_follows_the_history_and_its_directory(tmp_path: Path, monkeypatch) -> None:
    a = xp.ones((64, 64))
    devs = ["numpy:cpu", "jax:cpu:0"]
    _memoised(xp.matmul, a, a, devices=devs)
    assert (
        xp.advise(xp.matmul, a, a, devices=devs)
        .row("jax:cpu:0")
        .compute_basis.startswith("roofline")
    )
    _fast_history("jax:cpu:0", xp.matmul, a, a, seconds=1e-9)
    adv = xp.advise(xp.matmul, a, a, devices=devs)
    assert adv.row("jax:cpu:0").compute_basis.startswith("history (8 recent")
    assert adv.row("jax:cpu:0").compute_seconds == 1e-9
    monkeypatch.setenv("HPCAI_HISTORY_DIR", str(tmp_path / "elsewhere"))  # another, empty history
    assert (
        xp.advise(xp.matmul, a, a, devices=devs)
        .row("jax:cpu:0")
        .compute_basis.startswith("roofline")
    )


def test_memoised_advice_follows_the_advisor_configuration(config) -> None:
    a = xp.ones((256, 256))
    _memoised(xp.matmul, a, a, devices=["numpy:cpu"])
    before = xp.advise(xp.matmul, a, a, devices=["numpy:cpu"]).rows[0]
    config("[advisor]\nhost_flops = 1e9\n")  # a much slower host
    after = xp.advise(xp.matmul, a, a, devices=["numpy:cpu"]).rows[0]
    assert after.compute_seconds > 10 * before.compute_seconds
    assert "1 GFLOP/s" in after.compute_basis and "[advisor]" in after.compute_basis


def test_memoised_advice_rechecks_free_memory(config) -> None:
    config('[devices."emulated:2"]\npreset = "h100"\nmemory = "2 MiB"\n')
    a = xp.ones((256, 256))  # 512 KiB: the sum needs 1.5 MiB there
    devs = ["emulated:2", "numpy:cpu"]
    _memoised(xp.add, a, a, devices=devs)
    assert xp.advise(xp.add, a, a, devices=devs).row("emulated:2").allowed
    held = xp.ones((256, 512), device="emulated:2")  # 1 MiB in use: 1 MiB free
    r = xp.advise(xp.add, a, a, devices=devs).row("emulated:2")
    assert not r.allowed and (r.excluded or "").startswith("capacity")
    del held
    assert xp.advise(xp.add, a, a, devices=devs).row("emulated:2").allowed


def test_memoised_advice_rechecks_remeasure_flags_that_depend_on_the_time(monkeypatch) -> None:
    import time

    a = xp.ones((32, 32))
    fp = xp._record.footprint(xp.matmul, (a, a), {})
    st = _history.store()
    e = st.device("numpy:cpu").entry(fp.key, fp.group, fp.flops, fp.nbytes)
    now = time.time()
    for s in [1e-3] * 8 + [10e-3] * 8:  # a slow spell, long enough to become the trusted median
        e.add(s, when=now)
    st.version += 1
    assert e.stale_regardless_of_time() is None  # slower than twice its best: a matter of time
    _memoised(xp.matmul, a, a, devices=["numpy:cpu"])
    assert not xp.advise(xp.matmul, a, a, devices=["numpy:cpu"]).rows[0].remeasure
    monkeypatch.setattr(time, "time", lambda: now + 3600.0)  # not sampled for an hour
    assert xp.advise(xp.matmul, a, a, devices=["numpy:cpu"]).rows[0].remeasure


def test_memoised_advice_tells_keywords_and_functions_apart() -> None:
    a = xp.ones((8, 16))
    _memoised(xp.sum, a, axis=0, devices=["numpy:cpu"])
    k0 = xp.advise(xp.sum, a, axis=0, devices=["numpy:cpu"]).footprint.key
    k1 = xp.advise(xp.sum, a, axis=1, devices=["numpy:cpu"]).footprint.key
    assert k0 != k1 and k0.endswith("axis=0") and k1.endswith("axis=1")
    assert xp.advise(xp.prod, a, axis=0, devices=["numpy:cpu"]).footprint.op == "prod"
    b = xp.ones((8, 16), dtype=xp.float32)
    assert xp.advise(xp.sum, b, axis=0, devices=["numpy:cpu"]).footprint.dtypes == ("float32",)
    on_jax = xp.ones((8, 16), device="jax:cpu:0")
    r = xp.advise(xp.sum, on_jax, axis=0, devices=["numpy:cpu"]).rows[0]
    assert r.transfer_seconds > 0 and not r.holds_data


def test_advice_is_fast_enough() -> None:
    """100 advise calls over 6 devices: the issue asks <= 1 ms (benchmarks/placement.py
    measures it); asserted here with headroom for a loaded CI machine."""
    import time

    devs = ["numpy:cpu", "jax:cpu:0", "jax:cpu:1", "jax:cpu:2", "jax:cpu:3", "emulated:0"]
    calls = []
    for n in (16, 32, 64, 128, 256):
        a = xp.ones((n, n))
        calls += [(xp.matmul, (a, a)), (xp.add, (a, a)), (xp.sum, (a,)), (xp.multiply, (a, a))]
    calls = (calls * 5)[:100]
    for f, args in calls:
        xp.advise(f, *args, devices=devs)
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        for f, args in calls:
            xp.advise(f, *args, devices=devs)
        best = min(best, time.perf_counter() - t0)
    assert best < 5e-3, best
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xp.advise(xp.matmul, xp.ones((3, 3)), xp.ones((3, 3)))  # no "not calibrated" warnings


def test_recorded_runs_hold_only_atoms_so_the_collector_untracks_them() -> None:
    """A long recording must not grow the heap the garbage collector scans: each pending run
    is a flat tuple of names and numbers (no function, Device, list or dtype/shape nesting),
    which one young-generation pass stops tracking, before any could reach an older one."""
    import gc

    a = xp.ones(8)
    b = xp.ones(8, device="emulated:0")
    c = xp.ones((2, 4))
    with xp.record(history=False) as rec:
        gc.disable()  # every run's tuples stay in the young generation until the one pass
        try:
            for _ in range(50):
                xp.run(xp.negative, a, device="numpy:cpu")
                xp.run(xp.add, a, b, device="emulated:0")  # a move, logged with the run
                xp.run(xp.sum, c, axis=1, device="numpy:cpu")  # a keyword
            pending = list(rec._raw)
            gc.collect(0)
        finally:
            gc.enable()
        assert len(pending) == 150
        assert not any(gc.is_tracked(r) for r in pending)
    assert {s.device for s in rec.samples} == {"numpy:cpu", "emulated:0"}
    assert sum(s.moved_bytes for s in rec.samples) == 50 * 64
    assert {s.op for s in rec.samples} == {"negative", "add", "sum"}
    sums = [s for s in rec.samples if s.op == "sum"]
    assert len(sums) == 50 and all("axis=1" in s.key for s in sums)


def test_reconfiguring_writes_the_history_recorded_so_far(_history_in_tmp: Path) -> None:
    """``xp.configure`` rebuilds the history store; what was recorded under the old
    configuration and not yet written is written first, not dropped."""
    a = xp.ones(16)
    with xp.record() as rec:
        for _ in range(3):
            xp.run(xp.negative, a, device="numpy:cpu")
        assert len(rec.samples) == 3  # (settled into the store: what advice would count)
        st = _history.store()
        assert st._pending  # recorded, not yet written
        path = st.path("numpy:cpu")
        xp.configure(data={})  # while the block is still open
        assert path.exists()
    fresh = HistoryStore(st.directory, host=st.host)
    assert sum(e.n for e in fresh.device("numpy:cpu").entries.values()) >= 3


def test_the_placement_benchmark_runs_and_reports_every_figure(tmp_path: Path) -> None:
    """``benchmarks/placement.py`` end to end with few rounds (its figures are then noisy and
    only their presence is checked; the targets are judged from full runs)."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "placement.py"
    env = {
        **os.environ,
        "HPCAI_HISTORY_DIR": str(tmp_path / "history"),
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
    }
    p = subprocess.run(
        [sys.executable, str(script), "--calibrate", "2", "--repeat", "3"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode in (0, 1), p.stderr
    out = p.stdout
    rows = [ln for ln in out.splitlines() if ln.endswith(" %") and ("numpy:cpu" in ln or "jax:cpu" in ln)]
    assert len(rows) == 20, out  # 10 kernels x 2 starting devices
    for needle in (
        "calibration: ",
        "regret: geometric mean",
        "the measurement's own disagreement",
        "advice, 100 calls x 6 devices:",
        "recording costs",
    ):
        assert needle in out, out
    assert out.rstrip().endswith("every target met" if p.returncode == 0 else "a target was missed")
    assert any((tmp_path / "history").rglob("*.json"))  # the calibration wrote its history


def test_run_keys_are_interned_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ``RUN_KEYS`` distinct footprints a recorded run keeps its key itself: memory stays
    bounded and nothing recorded is lost."""
    from hpcai import _record

    monkeypatch.setattr(_record, "RUN_KEYS", len(_record._run_keys))  # the table is full
    with xp.record(history=False) as rec:
        for n in (3, 5, 7):
            xp.run(xp.negative, xp.ones(n * 1001), device="numpy:cpu")
        assert all(type(r[0]) is tuple for r in rec._raw)
    assert [s.key for s in rec.samples] == [
        _record.footprint(xp.negative, (xp.ones(n * 1001),), {}).key for n in (3, 5, 7)
    ]
    assert len(_record._run_keys) == _record.RUN_KEYS
