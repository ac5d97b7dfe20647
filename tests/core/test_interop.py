"""scikit-learn and SciPy accept hpcai arrays (Array API dispatch) and give NumPy's values."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import hpcai as xp

sklearn = pytest.importorskip("sklearn")


@pytest.fixture
def dispatch():
    with sklearn.config_context(array_api_dispatch=True):
        yield


def _data(n: int = 120, d: int = 5):
    rng = np.random.default_rng(42)
    X = rng.standard_normal((n, d))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    return X, y


def _check(result, expected, rtol=1e-7, atol=1e-9):
    assert isinstance(result, xp.Array), f"expected an hpcai Array, got {type(result).__name__}"
    np.testing.assert_allclose(np.asarray(result.to_device("numpy:cpu")), expected, rtol=rtol, atol=atol)


def test_pca(dispatch) -> None:
    from sklearn.decomposition import PCA

    X, _ = _data()
    ref = PCA(n_components=3, svd_solver="full").fit(X)
    Xh = xp.asarray(X)
    est = PCA(n_components=3, svd_solver="full").fit(Xh)
    # component signs are arbitrary; compare absolute values
    comp = est.components_
    assert isinstance(comp, xp.Array)
    np.testing.assert_allclose(np.abs(np.asarray(comp)), np.abs(ref.components_), rtol=1e-6, atol=1e-9)
    _check(est.explained_variance_, ref.explained_variance_, rtol=1e-6)
    out = est.transform(Xh)
    np.testing.assert_allclose(np.abs(np.asarray(out)), np.abs(ref.transform(X)), rtol=1e-6, atol=1e-9)


def test_lda(dispatch) -> None:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    X, y = _data()
    ref = LinearDiscriminantAnalysis().fit(X, y)
    est = LinearDiscriminantAnalysis().fit(xp.asarray(X), xp.asarray(y))
    _check(est.predict(xp.asarray(X)), ref.predict(X))
    _check(est.predict_proba(xp.asarray(X)), ref.predict_proba(X), rtol=1e-6)


def test_scalers_and_ridge(dispatch) -> None:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    X, y = _data()
    yf = y.astype(np.float64) + 0.1 * X[:, 2]
    _check(StandardScaler().fit_transform(xp.asarray(X)), StandardScaler().fit_transform(X))
    _check(MinMaxScaler().fit_transform(xp.asarray(X)), MinMaxScaler().fit_transform(X))
    ref = make_pipeline(StandardScaler(), Ridge(alpha=1.0, solver="svd")).fit(X, yf)
    est = make_pipeline(StandardScaler(), Ridge(alpha=1.0, solver="svd")).fit(xp.asarray(X), xp.asarray(yf))
    _check(est.predict(xp.asarray(X)), ref.predict(X), rtol=1e-6)


SCIPY_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import scipy
    import scipy.fft, scipy.special, scipy.stats
    import hpcai as xp

    rng = np.random.default_rng(0)
    a = rng.standard_normal(64)
    x = xp.asarray(a)
    checks = {
        "fft": (scipy.fft.fft(x), scipy.fft.fft(a)),
        "rfft": (scipy.fft.rfft(x), scipy.fft.rfft(a)),
        "erf": (scipy.special.erf(x), scipy.special.erf(a)),
        "logsumexp": (scipy.special.logsumexp(x), scipy.special.logsumexp(a)),
        "zscore": (scipy.stats.zscore(x), scipy.stats.zscore(a)),
        "moment": (scipy.stats.moment(x, order=3), scipy.stats.moment(a, order=3)),
    }
    for name, (got, want) in checks.items():
        assert isinstance(got, xp.Array), (name, type(got))
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-12, err_msg=name)
        print("ok", name)
    """
)


def test_scipy_accepts_hpcai_arrays(tmp_path) -> None:
    pytest.importorskip("scipy")
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    out = subprocess.run([sys.executable, "-c", SCIPY_SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("ok ") == 6
