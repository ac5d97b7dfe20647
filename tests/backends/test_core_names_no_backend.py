"""The core never branches on a backend's name: it asks the backend (its capabilities).

Every module of the ``hpcai`` package except the backends themselves (``hpcai.backends``)
and storage (``hpcai.storage``) is parsed, and each of these is reported:

* a comparison (``==``, ``!=``, ``in``, ``not in``) with a backend's name, or with a
  tuple/list/set of them (``backend == "jax"``, ``name in ("numpy", "emulated")``);
* a comparison involving a ``.backend`` attribute (``dev.backend == other.backend``):
  "same backend" is ``a._backend is b._backend``, anything else is a capability;
* ``.startswith`` / ``.endswith`` / ``in`` with a backend name or ``"<name>:"`` prefix;
* a dict literal keyed by backend names (a table that grows with every backend).

What must remain is allow-listed below, each with its reason. Device *names* such as
``"numpy:cpu"`` (the host device, documented as such) are not backend branches.
"""

from __future__ import annotations

import ast
from pathlib import Path

import hpcai
from hpcai import backends

#: Backend names: the built-ins plus the ones on their way (dask).
NAMES = frozenset(backends._BUILTINS) | {"dask"}

#: (module path relative to the hpcai package, source text of the node) -> why it stays.
ALLOWED: dict[tuple[str, str], str] = {
    ("_ozaki.py", 'module == "numpy"'): (
        "FP64Guard.__array_function__ compares the module of the NumPy function being called "
        "('numpy' vs 'numpy.linalg'), not a backend"
    ),
    ("_config.py", '"dask": _validate_any_table'): (
        "the registry of configuration sections: [dask] is a table of the file, not a backend"
    ),
}

#: Modules of work in progress elsewhere (issue 14: advisor, recording, energy) that still
#: compare backend names, with the capabilities that replace those comparisons. Their
#: branches are tolerated while this lists them (and the modules need not exist): remove
#: an entry when its module asks the backend instead.
PENDING: dict[str, str] = {}


def _core_files() -> list[Path]:
    root = Path(hpcai.__file__).resolve().parent
    skip = {root / "backends", root / "storage"}
    out = []
    for p in sorted(root.rglob("*.py")):
        if any(s in p.parents for s in skip):
            continue
        out.append(p)
    return out


def _is_name(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        v = node.value
        return v in NAMES or any(v.startswith(n + ":") and v.count(":") == 1 and not v.split(":")[1] for n in NAMES)
    return False


def _holds_names(node: ast.AST) -> bool:
    if _is_name(node):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_is_name(e) for e in node.elts)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("frozenset", "set", "tuple"):
        return any(_holds_names(a) for a in node.args)
    return False


def _is_backend_attr(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "backend"


def _findings(path: Path, root: Path) -> list[tuple[str, int, str]]:
    src = path.read_text()
    tree = ast.parse(src)
    rel = path.relative_to(root).as_posix()
    found: list[tuple[str, int, str]] = []
    for node in ast.walk(tree):
        hit = False
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            hit = any(_holds_names(o) or _is_backend_attr(o) for o in operands)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("startswith", "endswith") and any(_holds_names(a) for a in node.args):
                hit = True
        elif isinstance(node, ast.Dict):
            hit = any(k is not None and _is_name(k) for k in node.keys)
        if hit:
            found.append((rel, node.lineno, ast.get_source_segment(src, node) or ""))
    return found


def test_no_core_module_branches_on_backend_names() -> None:
    root = Path(hpcai.__file__).resolve().parent
    files = _core_files()
    assert any(f.name == "_transfer.py" for f in files)
    assert not any((root / "backends") in f.parents for f in files)
    unexplained = []
    used = set()
    for f in files:
        for rel, line, text in _findings(f, root):
            key = next((k for k in ALLOWED if k[0] == rel and k[1] in text), None)
            if key is not None:
                used.add(key)
            elif rel not in PENDING:
                unexplained.append(f"hpcai/{rel}:{line}: {text}")
    assert not unexplained, (
        "core code compares backend names; add a capability to hpcai.backends.Backend and ask "
        "the device's backend instead:\n  " + "\n  ".join(unexplained)
    )
    # an allow-list entry that no longer matches anything is stale
    assert used == set(ALLOWED), f"stale allow-list entries: {set(ALLOWED) - used}"


def test_the_check_finds_what_it_is_meant_to_find(tmp_path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(dev, name, mod):\n"
        "    if dev.spec.backend == 'jax':\n"
        "        pass\n"
        "    if name in ('numpy', 'emulated'):\n"
        "        pass\n"
        "    if dev.backend != other.backend:\n"
        "        pass\n"
        "    table = {'cupy': 1}\n"
        "    return str(dev).startswith('dask:') or 'jax' in mod.__name__\n"
        "ok = resolve_device('numpy:cpu')\n"
    )
    lines = {line for _, line, _ in _findings(bad, tmp_path)}
    assert sorted(lines) == [2, 4, 6, 8, 9]
