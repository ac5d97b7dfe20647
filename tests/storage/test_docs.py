"""Every TOML block in docs/storage.md is a valid configuration."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from hpcai.storage import endpoints

import hpcai as xp

DOC = Path(__file__).resolve().parents[2] / "docs" / "storage.md"


def test_toml_blocks_in_the_storage_docs_are_valid() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        data = tomllib.loads(block)
        xp.configure(data=data)
        assert sorted(endpoints()) == sorted(data["endpoints"])
    assert endpoints()["onprem"].credentials == {"key_env": "ONPREM_KEY", "secret_env": "ONPREM_SECRET"}
