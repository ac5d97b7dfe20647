"""Every Python snippet in README.md runs (with the README's policy file in the working directory)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, re.S)
POLICY = next(t for t in re.findall(r"```toml\n(.*?)```", README, re.S) if "[[policy.rules]]" in t)


def test_readme_has_the_two_commands() -> None:
    assert "hpcai demo" in README and "ci/test.sh" in README


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index: int, tmp_path: Path) -> None:
    (tmp_path / "hpcai.toml").write_text(POLICY)
    env = {k: v for k, v in os.environ.items() if k not in ("HPCAI_CONFIG", "HPCAI_DEVICE", "SCIPY_ARRAY_API")}
    out = subprocess.run([sys.executable, "-c", SNIPPETS[index]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"README snippet {index} failed:\n{SNIPPETS[index]}\n{out.stderr[-2000:]}"
