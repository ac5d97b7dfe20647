"""Regenerate the example notebooks from the cell sources below (kept in one place for review).

    python examples/_make_notebooks.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

HEAT = [
    new_markdown_cell(
        "# 2-D heat equation and a conjugate-gradient solve\n\n"
        "The same code runs on every device: the device comes from `$HPCAI_DEVICE` or "
        "`default_device` in `hpcai.toml`. Nothing in this notebook names a backend."
    ),
    new_code_cell(
        "import hpcai as xp\n\n"
        "device = xp.default_device()\n"
        "print('running on', device)"
    ),
    new_markdown_cell("## Explicit time stepping of u_t = alpha * (u_xx + u_yy) with a 5-point stencil"),
    new_code_cell(
        "n, steps, alpha = 64, 200, 0.2\n"
        "i = xp.arange(n, dtype=xp.float64)\n"
        "X, Y = xp.meshgrid(i / (n - 1), i / (n - 1), indexing='ij')\n"
        "u = xp.exp(-((X - 0.5) ** 2 + (Y - 0.5) ** 2) / 0.01)\n"
        "for _ in range(steps):\n"
        "    lap = (xp.roll(u, 1, axis=0) + xp.roll(u, -1, axis=0)\n"
        "           + xp.roll(u, 1, axis=1) + xp.roll(u, -1, axis=1) - 4 * u)\n"
        "    u = u + alpha * lap\n"
        "    u[0, :] = 0.0; u[-1, :] = 0.0; u[:, 0] = 0.0; u[:, -1] = 0.0\n"
        "heat_total = float(xp.sum(u))\n"
        "heat_peak = float(xp.max(u))\n"
        "print(f'total heat {heat_total:.6f}, peak {heat_peak:.6f}, on {u.device}')"
    ),
    new_markdown_cell("## Conjugate gradient on the 1-D Poisson matrix"),
    new_code_cell(
        "m = 200\n"
        "A = 2 * xp.eye(m) - xp.eye(m, k=1) - xp.eye(m, k=-1)\n"
        "b = xp.ones(m)\n"
        "x = xp.zeros(m)\n"
        "r = b - A @ x\n"
        "p = r\n"
        "rs = xp.vecdot(r, r)\n"
        "iterations = 0\n"
        "for iterations in range(1, 2 * m):\n"
        "    Ap = A @ p\n"
        "    step = rs / xp.vecdot(p, Ap)\n"
        "    x = x + step * p\n"
        "    r = r - step * Ap\n"
        "    rs_new = xp.vecdot(r, r)\n"
        "    if float(xp.sqrt(rs_new)) < 1e-10:\n"
        "        break\n"
        "    p = r + (rs_new / rs) * p\n"
        "    rs = rs_new\n"
        "residual = float(xp.linalg.vector_norm(b - A @ x))\n"
        "print(f'CG converged in {iterations} iterations, residual {residual:.2e}, on {x.device}')"
    ),
    new_code_cell(
        "results = {'heat_total': heat_total, 'heat_peak': heat_peak,\n"
        "           'cg_x_mid': float(x[m // 2]), 'cg_residual_small': residual < 1e-8}\n"
        "results"
    ),
]

SKLEARN = [
    new_markdown_cell(
        "# A scikit-learn pipeline on hpcai arrays\n\n"
        "scikit-learn's Array API dispatch accepts hpcai arrays; the estimators compute "
        "with the namespace of the data, on the data's device."
    ),
    new_code_cell(
        "import numpy as np\n"
        "import sklearn\n"
        "from sklearn.decomposition import PCA\n"
        "from sklearn.discriminant_analysis import LinearDiscriminantAnalysis\n"
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import StandardScaler\n"
        "import hpcai as xp\n\n"
        "sklearn.set_config(array_api_dispatch=True)\n"
        "print('running on', xp.default_device())"
    ),
    new_code_cell(
        "rng = np.random.default_rng(7)\n"
        "centers = rng.standard_normal((3, 6)) * 3\n"
        "labels = rng.integers(0, 3, 600)\n"
        "features = centers[labels] + rng.standard_normal((600, 6))\n"
        "X = xp.asarray(features)\n"
        "y = xp.asarray(labels)\n"
        "print(X.shape, X.dtype, X.device)"
    ),
    new_code_cell(
        "model = make_pipeline(StandardScaler(), PCA(n_components=4, svd_solver='full'),\n"
        "                      LinearDiscriminantAnalysis())\n"
        "model.fit(X[:400], y[:400])\n"
        "pred = model.predict(X[400:])\n"
        "accuracy = float(xp.mean(xp.astype(pred == y[400:], xp.float64)))\n"
        "print(f'accuracy {accuracy:.3f}; predictions live on {pred.device}')"
    ),
    new_code_cell(
        "explained = model[1].explained_variance_ratio_\n"
        "results = {'accuracy': accuracy, 'explained_variance_0': float(explained[0])}\n"
        "results"
    ),
]

LOCALITY = [
    new_markdown_cell(
        "# A tour of locality\n\n"
        "Every array has a device; data moves only when you say so, and every movement is "
        "measured and logged. The device list comes from the configuration."
    ),
    new_code_cell(
        "import hpcai as xp\n\n"
        "info = xp.__array_namespace_info__()\n"
        "home = xp.default_device()\n"
        "others = [d for d in info.devices() if d != home]\n"
        "away = others[0]\n"
        "print('home:', home, '| away:', away)\n"
        "print('all devices:', [str(d) for d in info.devices()])"
    ),
    new_code_cell(
        "x = xp.reshape(xp.arange(1_000_000, dtype=xp.float32), (1000, 1000)) / 1e6\n"
        "with xp.transfers() as log:\n"
        "    y = x.to_device(away)        # explicit move\n"
        "    z = xp.sum(y * y, axis=1)    # computed on the away device\n"
        "    back = z.to_device(home)     # explicit move back\n"
        "print(log.table())\n"
        "moved_bytes = log.total_bytes"
    ),
    new_code_cell(
        "try:\n"
        "    x + y\n"
        "except xp.errors.DeviceMismatchError as e:\n"
        "    refused = True\n"
        "    print('refused:', e)\n"
        "with xp.transfers(forbid=True):\n"
        "    w = y * 2                    # compute where the data lives: allowed\n"
        "print(w.device)"
    ),
    new_code_cell(
        "results = {'moved_bytes': moved_bytes, 'refused': refused,\n"
        "           'row_sum_last': float(back[-1])}\n"
        "results"
    ),
]

TWO_SITES = [
    new_markdown_cell(
        "# Climate anomalies on a two-site Dask cluster\n\n"
        "An xarray + Dask analysis of tagged data read from an `hpcai://` endpoint. The cluster, "
        "the endpoint and the residency rules all come from the configuration (`HPCAI_CONFIG`): "
        "run it against a cluster with an EU worker and a US worker and the covered data is read "
        "and computed only where the policy allows; run it with no `[dask] scheduler` and an "
        "embedded cluster does the same work. Nothing here names a site, a worker or a backend."
    ),
    new_code_cell(
        "import numpy as np\n"
        "import xarray as xr\n"
        "import hpcai as xp\n"
        "import hpcai.storage as st\n\n"
        "endpoint = sorted(st.endpoints())[0]\n"
        "client = xp.dask.client()\n"
        "workers = {a: w['name'] for a, w in client.scheduler_info()['workers'].items()}\n"
        "print('endpoint:', endpoint, '| workers:', sorted(map(str, workers.values())))"
    ),
    new_markdown_cell(
        "## Tagged data at the endpoint\n\n"
        "A synthetic daily temperature field (what a site would have ingested), tagged as personal "
        "data of EU origin and saved as a versioned dataset; the tags are stored with it."
    ),
    new_code_cell(
        "days, ny, nx = 60, 24, 36\n"
        "t = np.arange(days)[:, None, None]\n"
        "lat = np.linspace(-60.0, 60.0, ny)[None, :, None]\n"
        "lon = np.linspace(0.0, 350.0, nx)[None, None, :]\n"
        "field = 15 + 10 * np.cos(np.deg2rad(lat)) + 5 * np.sin(2 * np.pi * t / 30) + 0.1 * np.sin(np.deg2rad(lon))\n"
        "t2m = xp.tag(xp.asarray(field), classification='personal', origin='DE')\n"
        "ds = xr.Dataset({'t2m': (('time', 'lat', 'lon'), t2m)},\n"
        "                coords={'time': np.arange(days), 'lat': lat.ravel(), 'lon': lon.ravel()})\n"
        "url = f'hpcai://{endpoint}/examples/t2m.zarr'\n"
        "st.save_dataset(ds, url, encoding={'t2m': {'chunks': (10, ny, nx)}})\n"
        "print('saved', url)"
    ),
    new_markdown_cell(
        "## Open it as distributed, tagged arrays\n\n"
        "`chunked_array_type='hpcai'` makes the `dask` device xarray's chunk manager: each chunk is "
        "read by a task on a worker whose own site the policy allows, and carries the stored tags."
    ),
    new_code_cell(
        "obs = xr.open_zarr(url, chunks={'time': 10}, chunked_array_type='hpcai')\n"
        "print(obs.t2m.data.device, obs.t2m.chunks[0], dict(obs.t2m.data.tags))"
    ),
    new_markdown_cell("## Anomalies against the period mean, and the zonal mean of their spread"),
    new_code_cell(
        "from distributed import get_task_stream\n\n"
        "with get_task_stream(client=client) as stream:\n"
        "    clim = obs.t2m.mean('time')\n"
        "    anom = obs.t2m - clim\n"
        "    spread = (anom * anom).mean(('time', 'lon')).compute()\n"
        "profile = np.asarray(spread.data)\n"
        "print(spread.data.device, dict(spread.data.tags))\n"
        "print('spread by latitude:', np.round(profile[:4], 4), '...')"
    ),
    new_markdown_cell(
        "## Where the tasks ran\n\n"
        "The task stream of the computation, one row per worker: every task that touched the "
        "covered data ran on a worker whose site the policy allows."
    ),
    new_code_cell(
        "import matplotlib\n"
        "matplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt\n\n"
        "rows = sorted(map(str, workers.values()))\n"
        "used = {}\n"
        "fig, ax = plt.subplots(figsize=(8, 1 + 0.5 * len(rows)))\n"
        "t0 = min(ss['start'] for task in stream.data for ss in task['startstops'])\n"
        "for task in stream.data:\n"
        "    name = str(workers.get(task['worker'], task['worker']))\n"
        "    used[name] = used.get(name, 0) + 1\n"
        "    for ss in task['startstops']:\n"
        "        if ss['action'] == 'compute':\n"
        "            ax.barh(rows.index(name), ss['stop'] - ss['start'], left=ss['start'] - t0, height=0.6)\n"
        "ax.set_yticks(range(len(rows)), rows)\n"
        "ax.set_xlabel('seconds')\n"
        "ax.set_title('task stream')\n"
        "fig.tight_layout()\n"
        "fig.savefig('task_stream.png', dpi=80)\n"
        "print('tasks per worker:', used)"
    ),
    new_code_cell(
        "results = {'workers_used': sorted(used), 'tasks': sum(used.values()),\n"
        "           'tags': {k: sorted(v) for k, v in spread.data.tags.items()},\n"
        "           'spread_equator': float(profile[len(profile) // 2])}\n"
        "results"
    ),
]

#: Notebooks that need a Dask cluster and an endpoint from their configuration: run by
#: tests/distributed/test_notebook_two_sites.py, not by the device sweep of tests/test_notebooks.py.
CLUSTER_NOTEBOOKS = {
    "two_sites_dask.ipynb": TWO_SITES,
}

NOTEBOOKS = {
    "heat_equation.ipynb": HEAT,
    "sklearn_pipeline.ipynb": SKLEARN,
    "locality_tour.ipynb": LOCALITY,
}


def main() -> None:
    for name, cells in {**NOTEBOOKS, **CLUSTER_NOTEBOOKS}.items():
        nb = new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
