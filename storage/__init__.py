"""hpcai.storage: one fsspec-based storage API over POSIX, S3 and on-prem object stores.

Endpoints are declared in configuration (``[endpoints.<name>]``: url, options, credentials
by reference, location attributes). Everything written carries its residency tags
(S3 object tags, POSIX xattrs or a hidden sidecar, zarr attributes), every write and copy
is a ``store`` decision on the destination, every load a ``compute`` decision on the
device, and covered decisions are audited. Stored tags only grow (``untag`` is the audited
way to drop one), and tagged data read raw taints the process's later writes (``taint``,
``untaint``).

>>> import hpcai as xp, hpcai.storage as st, tempfile
>>> _ = xp.configure(data={"endpoints": {"scratch": {"url": "file://" + tempfile.mkdtemp()}}})
>>> x = xp.tag(xp.arange(6.0), origin="DE")
>>> version = st.save(x, "hpcai://scratch/run1/x.zarr")
>>> y = st.load("hpcai://scratch/run1/x.zarr")
>>> bool(xp.all(y == x)), sorted(y.tags["origin"])
(True, ['DE'])
"""

from hpcai import _config
from hpcai.errors import BackendUnavailableError

try:
    import fsspec as _fsspec  # noqa: F401
except ImportError:  # pragma: no cover - exercised only without the extra
    raise BackendUnavailableError(
        "hpcai.storage needs fsspec, s3fs and zarr: pip install 'hpcai[s3]'"
    ) from None

from ._arrays import StoredArray, load, open, save
from ._datasets import open_dataset, save_dataset
from ._demo import DemoEnvironment, S3Server, demo_environment, start_s3_server
from ._endpoints import (
    Endpoint,
    RetryPolicy,
    endpoints,
    get_endpoint,
    parse_url,
    validate_endpoints,
)
from ._filesystem import EndpointFileSystem, HpcaiFileSystem, filesystem
from ._ops import Entry, copy, ls, rm, tags, untag
from ._taint import taint, untaint

_config.register_section("endpoints", validate_endpoints)

__all__ = [
    "DemoEnvironment",
    "Endpoint",
    "EndpointFileSystem",
    "Entry",
    "HpcaiFileSystem",
    "RetryPolicy",
    "S3Server",
    "StoredArray",
    "copy",
    "demo_environment",
    "endpoints",
    "filesystem",
    "get_endpoint",
    "load",
    "ls",
    "open",
    "open_dataset",
    "parse_url",
    "rm",
    "save",
    "save_dataset",
    "start_s3_server",
    "tags",
    "taint",
    "untag",
    "untaint",
]
