"""Every module under hpcai/, backends/ and storage/ is importable from the installed package."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"hpcai": "hpcai", "backends": "hpcai.backends", "storage": "hpcai.storage"}


def _modules() -> list[str]:
    return list(_module_files())


def _module_files() -> dict[str, str]:
    """Module name -> its path inside the installed distribution."""
    out = {}
    for folder, package in FOLDERS.items():
        base = package.replace(".", "/")
        for path in sorted((ROOT / folder).rglob("*.py")):  # subpackages too (hpcai.residency)
            rel = path.relative_to(ROOT / folder)
            parts = [p for p in rel.with_suffix("").parts if p != "__init__"]
            out[".".join([package, *parts])] = f"{base}/{rel.as_posix()}"
    return out


def _editable() -> bool:
    dist = importlib.metadata.distribution("hpcai")
    text = dist.read_text("direct_url.json")
    return bool(text and json.loads(text).get("dir_info", {}).get("editable"))


@pytest.mark.parametrize("name", _modules())
def test_module_imports_from_install(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__name__ == name
    if not _editable():
        # A non-editable install must carry the file itself: a subpackage left out of
        # [tool.setuptools] packages would be missing here.
        files = {str(f) for f in importlib.metadata.files("hpcai") or []}
        rel = _module_files()[name]
        assert rel in files, f"{rel} is not in the installed distribution"
        assert str(ROOT) not in str(module.__file__), f"{name} was imported from the source tree"


def test_py_typed_shipped() -> None:
    import hpcai

    assert (Path(hpcai.__file__).parent / "py.typed").exists()
