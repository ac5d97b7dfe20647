"""`hpcai demo` runs end to end on embedded defaults and shows each feature."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_runs(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HPCAI_CONFIG", "HPCAI_DEVICE")}
    out = subprocess.run(
        [sys.executable, "-m", "hpcai.cli", "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    for expected in (
        "transfer log",
        "refused: __add__: operands live on different devices",
        "default float on emulated:2 (gaudi3): float32",
        "allowed: moved onto emulated:0",
        "residency policy forbids compute",
        "saved tagged data on onprem",
        "refused copy to the cloud",
        "cloud endpoint after the refusal: empty",
        "loaded onto emulated:0",
        "chain intact: True",
        "conjugate gradient in float64 on emulated:3",
        "emulated-fp64",
        "demo finished.",
    ):
        assert expected in text, f"demo output lacks {expected!r}:\n{text}"
    assert "skipped" not in text
    assert not list(tmp_path.iterdir()), "the demo must leave nothing behind in the working directory"
