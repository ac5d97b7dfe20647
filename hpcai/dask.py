"""The ``dask`` device: hpcai arrays split into chunks on a Dask distributed cluster.

``x.to_device("dask")`` distributes *x* as chunks that are hpcai Arrays (so tags travel with
every chunk), scattered only to workers whose own ``[site]`` allows the data; the namespace
works on it lazily; ``y.to_device("numpy:cpu")`` (or :func:`persist`) computes with a
``resources=`` restriction per covering rule, so tasks run only on allowed workers, and every
chunk is checked again where it arrives (:mod:`hpcai.distributed`). See ``docs/dask.md``.

Configuration, ``[dask]`` (every key optional)::

    [dask]
    scheduler = "tcp://10.0.0.5:8786"  # a running cluster; absent: an embedded LocalCluster
    chunk_size = "64 MiB"              # target chunk size of to_device("dask")
    n_workers = 1                      # embedded cluster only
    threads_per_worker = 2             # embedded cluster only
    timeout = 30                       # seconds to connect / to wait for an allowed worker
    chunk_device = "numpy:cpu"         # where chunks live in THIS process (each worker's own)

The embedded default is an in-process ``LocalCluster(processes=False)``: its workers are
threads of this process, share its configuration (so they advertise the rules this
process's ``[site]`` satisfies) and exchange chunks without serialization.

This module imports neither dask nor distributed until a function is called.

>>> import hpcai as xp
>>> x = xp.asarray([[1.0, 2.0], [3.0, 4.0]])
>>> d = xp.dask.from_array(x, chunks=(1, 2))          # doctest: +SKIP
>>> float(xp.sum(d * 2).to_device("numpy:cpu"))       # doctest: +SKIP
20.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _config
from .errors import ConfigError

if TYPE_CHECKING:
    from ._array import Array

__all__ = ["allowed_workers", "client", "close", "from_array", "persist", "rechunk", "retire_workers"]

_KEYS = {
    "scheduler": "a scheduler address such as 'tcp://10.0.0.5:8786'",
    "chunk_size": "a size such as '64 MiB'",
    "n_workers": "a positive integer (embedded cluster)",
    "threads_per_worker": "a positive integer (embedded cluster)",
    "timeout": "a positive number of seconds",
    "chunk_device": "a device name such as 'jax:cpu:1' (not 'dask'): where chunks live in this process",
}


def _validate_dask(value: Any, where: str, key: str) -> dict[str, Any]:
    """``[dask]``: every key known and of its type (an unknown key is an error, never ignored)."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table, got {type(value).__name__} {value!r}")
    for k, v in value.items():
        dk = f"{key}.{k}"
        if k not in _KEYS:
            raise ConfigError(f"{where}: unknown key {dk}; expected one of: {', '.join(sorted(_KEYS))}")
        if k in ("scheduler", "chunk_device"):  # (a chunk device is resolved where it is used)
            if not isinstance(v, str) or not v.strip():
                raise ConfigError(f"{where}: {dk} must be {_KEYS[k]}, got {v!r}")
        elif k == "chunk_size":
            if _config.parse_size(v, where=where, key=dk) <= 0:
                raise ConfigError(f"{where}: {dk} must be a positive size, got {v!r}")
        elif k in ("n_workers", "threads_per_worker"):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ConfigError(f"{where}: {dk} must be {_KEYS[k]}, got {v!r}")
        elif k == "timeout":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ConfigError(f"{where}: {dk} must be {_KEYS[k]}, got {v!r}")
    return dict(value)


_config.register_section("dask", _validate_dask)


def _backend() -> Any:
    from hpcai.backends import get_backend

    return get_backend("dask")


def client() -> Any:
    """The ``distributed.Client`` of the dask device (connected, or the embedded cluster
    started, on first use; rebuilt when ``[dask]`` or the policy changes). It is not made
    the default client, so other dask code is not routed through it."""
    return _backend().client()


def close() -> None:
    """Close the client (and the embedded cluster, if one was started)."""
    from hpcai.backends import get_backend

    try:
        b = get_backend("dask")
    except Exception:  # nothing was started if the backend cannot load
        return
    b.close()  # type: ignore[attr-defined]


def from_array(x: Array, chunks: Any = None) -> Array:
    """*x* on the ``dask`` device split into *chunks* (dask's chunk forms: ``(1000, 1000)``,
    ``"auto"``, ``{0: 100}``; default: ``[dask] chunk_size``). The move is the one
    ``x.to_device("dask")`` makes: policy-checked, refused before any byte moves when no
    worker's own site allows the data's tags, recorded and audited.

    >>> import hpcai as xp
    >>> xp.dask.from_array(xp.ones((4, 4)), chunks=(2, 2)).device  # doctest: +SKIP
    Device('dask')
    """
    from ._device import resolve_device
    from ._transfer import move

    b = _backend()
    with b.chunking(chunks):
        return move(x, resolve_device("dask"), op="to_device")


def rechunk(x: Array, chunks: Any) -> Array:
    """A ``dask``-device array with new chunks (lazy; dask's ``rechunk`` with hpcai chunks)."""
    from ._array import _wrap
    from ._helpers import as_array

    a = as_array("dask.rechunk", x)
    _backend().check_native("dask.rechunk", a)
    return _wrap(a._data.rechunk(chunks), a._device, a._tags)


def persist(x: Array) -> Array:
    """Compute *x*'s chunks on the cluster and keep them there (on allowed workers only),
    returning a ``dask``-device array of the results, with *x*'s tags."""
    from ._array import _wrap
    from ._helpers import as_array

    a = as_array("dask.persist", x)
    b = _backend()
    b.check_native("dask.persist", a)
    return _wrap(b.persist(a._data, a._tags), a._device, a._tags)


def allowed_workers(tags: Any = None) -> list[str]:
    """Addresses of the workers that advertise every rule resource data with *tags* needs
    (an Array, a tag mapping or ``None``: untagged data, every worker)."""
    from ._array import Array

    t = tags._tags if isinstance(tags, Array) else tags
    return list(_backend().allowed_workers(t, "dask.allowed_workers", wait=False))


def retire_workers(workers: list[str], **kwargs: Any) -> dict[str, Any]:
    """``client.retire_workers(workers=...)`` that says why a worker stays: one that holds
    covered data no other running worker's site may hold is not retired (hpcai's placement
    plugin gives the data nowhere to go), and this raises
    :class:`~hpcai.errors.ResidencyError` naming the rules and an example key, after the
    others were retired. Returns what ``retire_workers`` returns (the retired workers).

    >>> import hpcai as xp
    >>> xp.dask.retire_workers([])  # doctest: +SKIP
    {}
    """
    import hpcai.distributed as hd

    from .errors import ResidencyError

    c = client()
    out = c.retire_workers(workers=list(workers), **kwargs)
    kept = {w: c.run_on_scheduler(hd.unplaceable, w) for w in workers if w not in out}
    kept = {w: why for w, why in kept.items() if why}
    if kept:
        # a retirement that gives up restores the worker's status in a round trip; a second
        # retire_workers before that would take "closing" for the status to restore
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            info = c.scheduler_info()["workers"]
            if all(info.get(w, {}).get("status", "running") == "running" for w in kept):
                break
            time.sleep(0.05)
        parts = [
            f"{w} holds data that only workers satisfying rule {rules} may hold ({len(keys)} key(s), e.g. {keys[0]!r})"
            for w, why in sorted(kept.items()) for rules, keys in sorted(why.items())
        ]
        raise ResidencyError(
            "dask.retire_workers: not retired: " + "; ".join(parts) + ". No other running worker's site satisfies "
            "the rule, so the data has nowhere to go; start a worker at an allowed site first (it advertises "
            "the rule with `dask worker --preload hpcai.distributed`), or release the data"
        )
    return dict(out)
