"""examples/two_sites_dask.ipynb on a two-site cluster (issue 13, item 5): a scheduler, an EU
worker, a US worker and an unconfigured worker as subprocesses (tests/distributed/conftest.py),
every configured process knowing the same POSIX endpoint; the notebook's kernel is an EU
client configured only through ``HPCAI_CONFIG``. The xarray + Dask analysis of the tagged data
it saves and reopens runs unchanged, every task runs on the EU worker, no covered value ever
reaches another worker, the result keeps its tags, and the task stream is plotted. The same
notebook then runs on an embedded cluster (no ``[dask] scheduler``) with the same result."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")
nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("xarray")
pytest.importorskip("matplotlib")

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "two_sites_dask.ipynb"
PERSONAL = {"classification": ["personal"], "origin": ["DE"]}


@pytest.fixture(scope="module")
def cluster_extra(onprem_endpoint: str) -> str:
    """Every configured worker also knows the endpoint."""
    return onprem_endpoint


def _run(config: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], Any]:
    cfg = tmp_path / "hpcai.toml"
    cfg.write_text(config)
    monkeypatch.setenv("HPCAI_CONFIG", str(cfg))
    monkeypatch.delenv("HPCAI_DEVICE", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    text = next(o["data"]["text/plain"] for o in last.outputs if o.get("output_type") == "execute_result")
    return ast.literal_eval(text), nb


def test_notebook_on_two_sites(cluster: Any, onprem_endpoint: str, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    address = json.loads(cluster.sched.read_text())["address"]
    config = (cluster.sites["eu"] + cluster.rules + onprem_endpoint
              + f'[audit]\npath = "{tmp_path / "audit.jsonl"}"\n[dask]\nscheduler = "{address}"\ntimeout = 10\n')
    res, nb = _run(config, tmp_path, monkeypatch)
    assert res["workers_used"] == ["eu"], res  # every task of the analysis ran on the EU worker
    assert res["tasks"] >= 6
    assert res["tags"] == PERSONAL
    assert res["spread_equator"] == pytest.approx(12.5, rel=0.05)  # the seasonal term's variance (5**2 / 2)
    seen = cluster.seen()
    assert {k: v for k, v in seen.items() if k != "eu" and v} == {}, seen
    assert any(t.get("classification") == ["personal"] for _, t in seen["eu"])
    png = tmp_path / "task_stream.png"
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 2000
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "tasks per worker" in printed


def test_same_notebook_on_an_embedded_cluster(onprem_endpoint: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    config = ('[site]\ncountry = "DE"\njurisdiction = "EU"\n'
              '[[policy.rules]]\nname = "gdpr-personal"\nmatch = "classification=personal"\ncompute = "jurisdiction=EU"\n'
              + onprem_endpoint + f'[audit]\npath = "{tmp_path / "audit.jsonl"}"\n'
              '[dask]\nn_workers = 1\nthreads_per_worker = 2\n')
    res, _ = _run(config, tmp_path, monkeypatch)
    assert len(res["workers_used"]) == 1 and res["tags"] == PERSONAL
    assert res["spread_equator"] == pytest.approx(12.5, rel=0.05)
