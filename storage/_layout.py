"""The layout of datasets saved by hpcai: the commit pointer, its versions and their stable names.

Pure functions over parsed ``zarr.json`` content, shared by the array writers
(:mod:`._arrays`, :mod:`._datasets`) and the ``hpcai://`` filesystem (:mod:`._filesystem`),
which maps a dataset's stable array paths onto its head version::

    t2m.zarr/zarr.json                 group: the commit pointer, with the head version's
                                       consolidated metadata under the stable names
    t2m.zarr/<version>/...             layout "array": the version is the array (``save``)
    t2m.zarr/<version>/<var>/...       layout "group": the version is a group (``save_dataset``)

    hpcai://ep/t2m.zarr/<name>/...  ->  t2m.zarr/<version>/...        (layout "array")
    hpcai://ep/t2m.zarr/<var>/...   ->  t2m.zarr/<version>/<var>/...  (layout "group")
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Pointers written before stable names existed (the head version is the array; no names).
FORMAT_V1 = "hpcai.dataset/1"
#: Pointers with a layout, stable names and consolidated metadata.
FORMAT = "hpcai.dataset/2"
FORMATS = frozenset({FORMAT_V1, FORMAT})
VERSION_RE = re.compile(r"^v(\d{8}T\d{9})Z-[0-9a-f]{8}$")
_META_NAMES = frozenset({"zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"})
#: The stable name of an array saved without ``name=`` at a path with no usable stem.
DEFAULT_NAME = "data"


def is_version(name: str) -> bool:
    """Whether *name* is a version directory name (``v<UTC time>Z-<8 hex>``)."""
    return VERSION_RE.match(name) is not None


def valid_name(name: Any) -> bool:
    """Whether *name* can be a stable array name: one path component, not hidden, not reserved."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= 255
        and not any(c in name for c in "/\\\x00")
        and not name.startswith(".")
        and name not in _META_NAMES
        and not is_version(name)
    )


def default_name(rel: str) -> str:
    """The stem of the dataset's last path component (``t2m`` for ``climate/t2m.zarr``), else ``data``."""
    last = rel.rstrip("/").rsplit("/", 1)[-1]
    stem = last[: -len(".zarr")] if last.endswith(".zarr") else last
    return stem if valid_name(stem) else DEFAULT_NAME


def dataset_info(meta: Any) -> Mapping[str, Any] | None:
    """The ``attributes.hpcai`` of a dataset pointer (a zarr group written by hpcai), else ``None``."""
    if not isinstance(meta, Mapping) or meta.get("node_type") != "group":
        return None
    attrs = meta.get("attributes")
    h = attrs.get("hpcai") if isinstance(attrs, Mapping) else None
    if isinstance(h, Mapping) and h.get("format") in FORMATS and isinstance(h.get("head"), str):
        return h
    return None


@dataclass(frozen=True)
class View:
    """A dataset's stable names: ``names[name]`` is the path, under the dataset, of the array it shows."""

    head: str
    layout: str
    names: Mapping[str, str]


def stable_view(meta: Any) -> View | None:
    """The stable names of a dataset pointer (``None``: not a pointer, or one without stable names)."""
    info = dataset_info(meta)
    if info is None:
        return None
    head = info["head"]
    if not is_version(head):
        return None
    layout = info.get("layout")
    if layout == "array":
        name = info.get("name")
        if not valid_name(name):
            return None
        return View(head, "array", {str(name): head})
    if layout == "group":
        names = info.get("variables")
        if not isinstance(names, list) or not all(valid_name(n) for n in names):
            return None
        return View(head, "group", {str(n): f"{head}/{n}" for n in names})
    return None


def public_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """An array's ``zarr.json`` content without hpcai's bookkeeping attribute (for consolidated metadata)."""
    out = dict(meta)
    attrs = dict(out.get("attributes") or {})
    attrs.pop("hpcai", None)
    out["attributes"] = attrs
    return out


def consolidated(metas: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """zarr v3 inline consolidated metadata for the arrays *metas* (name -> ``zarr.json`` content)."""
    return {"kind": "inline", "must_understand": False, "metadata": {k: public_meta(v) for k, v in sorted(metas.items())}}
