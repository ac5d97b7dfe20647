"""Energy and CO2 (issue 14): meters, the modelled fallback and its labels, budgets, the CLI."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import hpcai as xp
from hpcai.cli import main
from hpcai.energy import RaplMeter, rapl_delta
from hpcai.errors import ConfigError, EnergyBudgetError, InvalidArgumentError, MeterError

MAX = 262_143_328_850  # a usual max_energy_range_uj


@pytest.fixture(autouse=True)
def _tmp_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPCAI_HISTORY_DIR", str(tmp_path / "history"))
    monkeypatch.delenv("HPCAI_POWERCAP", raising=False)


def _powercap(root: Path, uj: int, name: str = "package-0") -> Path:
    z = root / "intel-rapl:0"
    z.mkdir(parents=True, exist_ok=True)
    (z / "name").write_text(name + "\n")
    (z / "max_energy_range_uj").write_text(f"{MAX}\n")
    (z / "energy_uj").write_text(f"{uj}\n")
    sub = root / "intel-rapl:0:0"  # a subzone (core): not counted twice
    sub.mkdir(exist_ok=True)
    (sub / "energy_uj").write_text("5\n")
    return z / "energy_uj"


def test_rapl_delta_across_a_wraparound() -> None:
    assert rapl_delta(10, 30, MAX) == 20
    assert rapl_delta(MAX - 1_000_000, 2_000_000, MAX) == 3_000_000


def test_a_fake_powercap_tree_gives_the_right_joules_across_a_wraparound(tmp_path: Path) -> None:
    counter = _powercap(tmp_path, MAX - 1_500_000)  # 1.5 J before the wrap
    with xp.energy.track(powercap=tmp_path) as e:
        counter.write_text("2500000\n")  # 2.5 J after it
    (host,) = e.measured
    assert host["basis"] == "measured" and host["joules"] == pytest.approx(4.0)
    assert host["source"] == "rapl counter package-0:0"
    assert all(m["device"] != "host" for m in e.modelled)  # measured host energy is not also modelled
    assert e.to_dict()["totals"] == {"measured_joules": pytest.approx(4.0), "modelled_joules": 0.0}


def test_rapl_permission_error_is_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = _powercap(tmp_path, 100)
    real = Path.read_text

    def deny(self: Path, *a, **k):
        if self == counter:
            raise PermissionError(13, "Permission denied")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", deny)
    with pytest.raises(MeterError, match="CVE-2020-8694"):
        RaplMeter(tmp_path)
    with xp.energy.track(powercap=tmp_path) as e:
        pass
    assert "CVE-2020-8694" in e.reasons["rapl"] and e.measured == []
    assert "CVE-2020-8694" in e.modelled[0]["reason"]


def test_every_figure_here_is_modelled_and_says_why(tmp_path: Path) -> None:
    a = xp.ones((128, 128))
    with xp.energy.track(powercap=tmp_path / "none") as e:
        xp.run(xp.matmul, a, a, device="emulated:0")
        xp.run(xp.matmul, a, a, device="numpy:cpu")
    assert e.measured == []
    assert [m["device"] for m in e.modelled] == ["host", "emulated:0"]
    for m in e.modelled:
        assert m["basis"] == "modelled" and m["reason"] and m["joules"] > 0
    assert "no powercap tree" in e.modelled[0]["reason"]
    assert "emulated device" in e.modelled[1]["reason"] and "700 W" in e.modelled[1]["source"]
    doc = json.loads(e.to_json())
    assert doc["kind"] == "hpcai-energy-report" and set(doc["totals"]) == {"measured_joules", "modelled_joules"}
    assert "MEASURED (0 entries" in e.table() and "MODELLED (2 entries" in e.table()


def test_carbon_intensity_order_pue_and_no_world_average(config) -> None:
    config(
        """
[site]
country = "FR"
site = "campus"

[devices."emulated:1"]
attributes = { country = "PL" }

[energy]
pue = 1.5

[energy.carbon]
country = { FR = 56, PL = 662 }
site = { campus = 40 }
device = { "jax:cpu:0" = 10 }
"""
    )
    ci = xp.energy.carbon_intensity
    assert ci("jax:cpu:0").g_per_kwh == 10  # device entry first
    assert ci("numpy:cpu").g_per_kwh == 40  # then site
    assert ci("emulated:1").g_per_kwh == 40  # emulated:1 inherits site=campus
    assert ci("numpy:cpu").grams(3.6e6) == pytest.approx(40 * 1.5)
    config('[devices."emulated:1"]\nattributes = { country = "PL" }\n[energy.carbon]\ncountry = { PL = 662 }\n')
    assert ci("emulated:1").g_per_kwh == 662
    none = ci("numpy:cpu")
    assert none.g_per_kwh is None and none.grams(1.0) is None and "no world average" in none.basis


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[energy]\npue = 0.9\n", "pue"),
        ("[energy]\nwatts = 3\n", "unknown key energy.watts"),
        ("[energy.carbon]\ncountry = { FR = -1 }\n", "FR"),
        ("[energy.carbon]\ncontinent = { EU = 1 }\n", "continent"),
        ("[energy.budget]\naction = \"ignore\"\n", "action"),
        ("[energy.power]\n\"emulated:0\" = \"lots\"\n", "emulated:0"),
    ],
)
def test_bad_energy_config_is_named(config, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        config(text)


def test_budget_refuses_a_predicted_excess_before_any_byte_moves() -> None:
    a = xp.ones((256, 256))
    with xp.transfers() as log, xp.energy.budget(joules=1e-6):
        with pytest.raises(EnergyBudgetError, match="basis: modelled: 700 W") as exc:
            xp.run(xp.matmul, a, a, device="emulated:0")
    assert len(log) == 0  # nothing moved
    assert "nothing was moved" in str(exc.value)


def test_budget_warn_warns_once_and_counts_what_was_spent() -> None:
    a = xp.ones((64, 64))
    with warnings.catch_warnings(record=True) as w, xp.energy.budget(joules=1e-9, action="warn") as b:
        warnings.simplefilter("always")
        for _ in range(3):
            xp.run(xp.matmul, a, a, device="emulated:0")
    assert len([x for x in w if issubclass(x.category, xp.energy.EnergyWarning)]) == 1
    assert b.spent_joules > 0


def test_co2_budget_needs_an_intensity() -> None:
    with xp.energy.budget(co2_g=1.0), pytest.raises(EnergyBudgetError, match="no carbon intensity"):
        xp.run(xp.sum, xp.ones(4), device="emulated:0")


def test_budget_from_config(config) -> None:
    config("[energy.budget]\njoules = 1e-9\naction = \"raise\"\n")
    with pytest.raises(EnergyBudgetError, match=r"\[energy.budget\]"):
        xp.run(xp.matmul, xp.ones((32, 32)), xp.ones((32, 32)), device="emulated:0")


def test_budget_arguments_are_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="joules"):
        with xp.energy.budget(joules=-1):
            pass
    with pytest.raises(InvalidArgumentError, match="action"):
        with xp.energy.budget(joules=1, action="ignore"):
            pass


def test_cli_energy_report_and_meters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with xp.energy.track(powercap=tmp_path / "none") as e:
        xp.run(xp.sum, xp.ones(100), device="emulated:0")
    path = e.save(tmp_path / "run.json")
    assert main(["energy", "report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "MODELLED (2 entries" in out and "no powercap tree" in out
    assert main(["energy", "report", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and doc["measured"] == [] and doc["modelled"][1]["device"] == "emulated:0"
    assert main(["energy", "report", str(tmp_path / "missing.json"), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False
    (tmp_path / "other.json").write_text("{}")
    assert main(["energy", "report", str(tmp_path / "other.json")]) == 1
    assert "not an hpcai energy report" in capsys.readouterr().err
    _powercap(tmp_path / "pc", 7)
    assert main(["energy", "meters", "--powercap", str(tmp_path / "pc"), "--json"]) == 0
    rows = {r["meter"]: r for r in json.loads(capsys.readouterr().out)["meters"]}
    assert rows["rapl"]["available"] and "package-0:0" in rows["rapl"]["detail"]
    assert not rows["nvml"]["available"] or rows["nvml"]["detail"]
