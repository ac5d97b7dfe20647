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

NOTEBOOKS = {
    "heat_equation.ipynb": HEAT,
    "sklearn_pipeline.ipynb": SKLEARN,
    "locality_tour.ipynb": LOCALITY,
}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
