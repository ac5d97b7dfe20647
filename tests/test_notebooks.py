"""Every notebook in examples/ runs unchanged on numpy:cpu, emulated:0 and jax:cpu:0, with matching results."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest

import hpcai as xp

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ALL_NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
#: Notebooks that need a Dask cluster and an endpoint from their configuration (run by
#: tests/distributed/test_notebook_two_sites.py on a two-site cluster).
CLUSTER_NOTEBOOKS = {"two_sites_dask.ipynb"}
NOTEBOOKS = [p for p in ALL_NOTEBOOKS if p.name not in CLUSTER_NOTEBOOKS]
BACKEND_WORDS = ("numpy:cpu", "emulated:", "jax:", "cupy:", "import jax", "import cupy")


def _devices() -> list[str]:
    names = {str(d) for d in xp.all_devices()}
    return [d for d in ("numpy:cpu", "emulated:0", "jax:cpu:0") if d in names]


def _run(path: Path, device: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict:
    monkeypatch.setenv("HPCAI_DEVICE", device)
    monkeypatch.delenv("HPCAI_CONFIG", raising=False)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    text = next(o["data"]["text/plain"] for o in last.outputs if o.get("output_type") == "execute_result")
    return ast.literal_eval(text)


def test_notebooks_exist() -> None:
    assert {p.name for p in ALL_NOTEBOOKS} >= {"heat_equation.ipynb", "sklearn_pipeline.ipynb", "locality_tour.ipynb",
                                               *CLUSTER_NOTEBOOKS}


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=[p.stem for p in ALL_NOTEBOOKS])
def test_notebook_names_no_backend(path: Path) -> None:
    cells = json.loads(path.read_text())["cells"]
    sources = "\n".join(
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells if c["cell_type"] == "code"
    )
    for word in BACKEND_WORDS:
        assert word not in sources, f"{path.name} names a backend ({word!r}); devices must come from config"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_results_agree_across_devices(path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    devices = _devices()
    assert len(devices) >= 2
    results = {d: _run(path, d, monkeypatch, tmp_path) for d in devices}
    ref_dev = devices[0]
    ref = results[ref_dev]
    for dev, res in results.items():
        assert res.keys() == ref.keys(), (dev, res, ref)
        for key, want in ref.items():
            got = res[key]
            if isinstance(want, float):
                assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9), f"{path.name}:{key} on {dev}: {got} != {want} on {ref_dev}"
            else:
                assert got == want, f"{path.name}:{key} on {dev}: {got!r} != {want!r} on {ref_dev}"
