"""Storage endpoints: named places where data lives, declared in configuration.

An endpoint names a root on some fsspec protocol, the options to reach it, its
credentials *by reference* (environment variable names, never values) and its location
attributes, which residency rules match against::

    [endpoints.onprem]
    url = "s3://research-eu"
    options = { endpoint_url = "http://s3.example.internal:9000" }
    credentials = { key_env = "ONPREM_KEY", secret_env = "ONPREM_SECRET" }
    attributes = { country = "DE", jurisdiction = "EU", provider = "onprem" }

Optional keys: ``tag_store`` (where per-object tags go: ``"auto"``, ``"object-tags"``,
``"metadata"``, ``"xattr"`` or ``"sidecar"``) and ``retry`` (``{ attempts = 5,
initial_delay = 0.1, max_delay = 5.0 }``, the backoff on transient errors).
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from hpcai import _config
from hpcai.errors import (
    ConfigError,
    CredentialsError,
    InvalidArgumentError,
    PathEscapeError,
    UnknownEndpointError,
)

__all__ = [
    "Endpoint",
    "RetryPolicy",
    "endpoints",
    "get_endpoint",
    "parse_url",
    "redact",
    "redact_url",
    "validate_endpoints",
]

SCHEME = "hpcai://"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OPTION_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: fsspec options that hold secrets: they belong in ``credentials`` as ``<name>_env``.
_SECRET_OPTIONS = frozenset(
    {
        "key",
        "secret",
        "token",
        "password",
        "passphrase",
        "access_key",
        "secret_key",
        "session_token",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "account_key",
        "sas_token",
        "client_secret",
        "connection_string",
        "credential",
        "credentials",
    }
)

#: Option names that hold secrets at any depth of the ``options`` table (``client_kwargs``,
#: ``config_kwargs``, ...), besides :data:`_SECRET_OPTIONS`. Names ending in ``_file``, ``_path``,
#: ``_env`` or ``_profile`` are references, not secrets.
_SECRET_WORDS = re.compile(
    r"secret|passw|passphrase|token|credential|api_?key|access_?key|private_?key|session_?key|"
    r"client_?key|auth_?key|signature|sas_?token|connection_?string",
    re.IGNORECASE,
)
_REFERENCE_SUFFIXES = ("_file", "_path", "_env", "_profile", "_filename", "file")
#: ``scheme://userinfo@host``: user information in a URL (a password, often).
_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#@]*)@")
_SECRET_QUERY = re.compile(
    r"(?:^|[?&;])(?:[^=&;]*(?:secret|passw|token|signature|credential|sig|sas|key)[^=&;]*)=", re.IGNORECASE
)

TAG_STORES = ("auto", "object-tags", "metadata", "xattr", "sidecar")

_ENDPOINT_KEYS = {
    "url": "the root of the endpoint, e.g. 's3://bucket/prefix' or 'file:///scratch/project'",
    "options": "a table of fsspec options, e.g. { endpoint_url = 'http://host:9000' }",
    "credentials": "a table of references, e.g. { key_env = 'ONPREM_KEY', secret_env = 'ONPREM_SECRET' }",
    "attributes": "a table of location attributes, e.g. { country = 'DE', jurisdiction = 'EU' }",
    "tag_store": "one of " + ", ".join(repr(t) for t in TAG_STORES),
    "retry": "a table { attempts = 5, initial_delay = 0.1, max_delay = 5.0 }",
}


def redact_url(url: str) -> str:
    """*url* with any user information (``user:password@``) replaced by ``***@``."""
    return _USERINFO.sub(lambda m: m.group(0).replace(m.group(1), "***"), url) if isinstance(url, str) else url


def _hint(url: str) -> str:
    scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
    return f"the {scheme}:// filesystem"


def _secret_name(name: str) -> bool:
    low = name.lower()
    if low in _SECRET_OPTIONS:
        return True
    if low.endswith(_REFERENCE_SUFFIXES):
        return False
    return bool(_SECRET_WORDS.search(low))


def _check_url_secrets(text: str, where: str, label: str, protocol_hint: str) -> None:
    """Refuse user information and secret-looking query parameters in a URL (never echoing them)."""
    if _USERINFO.match(text):
        raise ConfigError(
            f"{where}: {label} = {redact_url(text)!r} carries user information (user:password@) in the URL, "
            "which would be printed wherever the URL is (reprs, errors, describe(), logs). Configuration holds "
            "credentials by reference only: remove it from the URL, give the user name as an option "
            f"(e.g. options = {{ username = \"svc\" }} for {protocol_hint}) and the password as "
            "credentials = { password_env = \"ENV_VAR_NAME\" } (or profile = \"name\"), then export ENV_VAR_NAME"
        )
    if "?" in text and _SECRET_QUERY.search("?" + text.split("?", 1)[1]):
        raise ConfigError(
            f"{where}: {label} = {text.split('?', 1)[0]!r}?... carries a secret-looking query parameter "
            "(a token, signature or key). Configuration holds credentials by reference only: remove it from "
            "the URL and pass it as credentials = { <option>_env = \"ENV_VAR_NAME\" } (or a profile)"
        )


def _check_option_secrets(value: Any, where: str, label: str, protocol_hint: str) -> None:
    """Refuse secrets anywhere in an option table: by key name at any depth, and URLs with user info."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{where}: {label}: option names must be strings, got {type(k).__name__}")
            sub = f"{label}.{k}"
            if _secret_name(k):
                raise ConfigError(
                    f"{where}: {sub} looks like a secret; configuration holds references only. Pass it as a "
                    f"top-level fsspec option by reference: credentials = {{ <option>_env = \"ENV_VAR_NAME\" }} "
                    f"(for S3: key_env, secret_env, token_env) or credentials = {{ profile = \"name\" }}, and export "
                    "ENV_VAR_NAME; its value is then never stored in configuration, logs, errors or the audit log"
                )
            _check_option_secrets(v, where, sub, protocol_hint)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_option_secrets(v, where, f"{label}[{i}]", protocol_hint)
    elif isinstance(value, str) and "://" in value:
        _check_url_secrets(value, where, label, protocol_hint)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for transient errors (connection refused, 5xx, throttling)."""

    attempts: int = 5
    initial_delay: float = 0.1
    max_delay: float = 5.0

    def delays(self) -> Iterator[float]:
        """The sleep before each retry: ``attempts - 1`` values, doubling, capped, jittered."""
        d = self.initial_delay
        for _ in range(self.attempts - 1):
            yield min(self.max_delay, d) * (0.5 + random.random() / 2)
            d *= 2


@dataclass(frozen=True, repr=False)
class Endpoint:
    """One configured endpoint. Holds credential *references* only; :meth:`credentials_options` reads them.

    >>> ep = Endpoint.from_table("scratch", {"url": "file:///tmp", "attributes": {"country": "DE"}})
    >>> ep
    Endpoint('scratch', 'file:///tmp', attributes={'country': 'DE'})
    """

    name: str
    url: str
    protocol: str
    root: str
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    credentials: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    tag_store: str = "auto"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    source: str = "<configure(data=...)>"

    @classmethod
    def from_table(cls, name: str, table: Mapping[str, Any], source: str = "<configure(data=...)>") -> Endpoint:
        """Build an endpoint from its (validated or raw) configuration table."""
        t = _validate_one(name, table, source)
        protocol, root = _split_url(name, t["url"], source)
        r = t.get("retry", {})
        return cls(
            name=name,
            url=t["url"],
            protocol=protocol,
            root=root,
            options=MappingProxyType(dict(t.get("options", {}))),
            credentials=MappingProxyType(dict(t.get("credentials", {}))),
            attributes=MappingProxyType(dict(t.get("attributes", {}))),
            tag_store=t.get("tag_store", "auto"),
            retry=RetryPolicy(
                attempts=int(r.get("attempts", 5)),
                initial_delay=float(r.get("initial_delay", 0.1)),
                max_delay=float(r.get("max_delay", 5.0)),
            ),
            source=source,
        )

    # -- describing -----------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Endpoint({self.name!r}, {self.display_url!r}, attributes={dict(self.attributes)!r})"

    @property
    def display_url(self) -> str:
        """The URL as shown in messages (user information, which configuration refuses anyway, masked)."""
        return redact_url(self.url)

    def describe(self) -> str:
        """``'onprem' (s3://research-eu at http://host:9000)``: for error messages; no secrets."""
        where = self.options.get("endpoint_url") or (self.options.get("client_kwargs") or {}).get("endpoint_url")
        at = f" at {redact_url(where)}" if isinstance(where, str) else ""
        return f"endpoint {self.name!r} ({self.display_url}{at})"

    @property
    def is_local(self) -> bool:
        """Whether the endpoint is a POSIX directory on this machine."""
        return self.protocol in ("file", "local")

    @property
    def is_s3(self) -> bool:
        """Whether the endpoint speaks S3 (AWS, MinIO, Ceph RGW, ...)."""
        return self.protocol in ("s3", "s3a")

    def url_for(self, rel: str) -> str:
        """The ``hpcai://`` URL of a path relative to this endpoint's root."""
        return f"{SCHEME}{self.name}/{rel}" if rel else f"{SCHEME}{self.name}"

    def credentials_options(self) -> dict[str, Any]:
        """Resolve credential references into fsspec options (``key_env = "X"`` -> ``key = $X``).

        Raises :class:`~hpcai.errors.CredentialsError` naming the variable (never a value)
        when one is unset.
        """
        out: dict[str, Any] = {}
        for ref, value in self.credentials.items():
            if ref.endswith("_env"):
                secret = os.environ.get(value)
                if not secret:
                    raise CredentialsError(
                        f"{self.describe()}: credentials.{ref} names the environment variable {value}, "
                        f"which is not set. Export it before using the endpoint (its value is never "
                        f"stored in configuration, logs, errors or the audit log), or change "
                        f"[endpoints.{self.name}].credentials in {self.source}"
                    )
                out[ref[: -len("_env")]] = secret
            else:
                out[ref] = value
        return out

    def secrets(self) -> tuple[str, ...]:
        """The current values of the referenced secrets (for scrubbing messages); empty if unset."""
        vals = []
        for ref, value in self.credentials.items():
            if ref.endswith("_env"):
                v = os.environ.get(value)
                if v and len(v) >= 4:
                    vals.append(v)
        return tuple(vals)


# --------------------------------------------------------------------------------------------
# keeping resolved secrets out of every log record
# --------------------------------------------------------------------------------------------
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
#: Loggers whose records may carry request details (botocore logs the access key id at DEBUG).
_REDACTED_LOGGERS = ("botocore", "aiobotocore", "boto3", "s3transfer", "s3fs", "fsspec", "urllib3", "aiohttp", "hpcai")
_factory_installed = False


def redact(text: str) -> str:
    """*text* with every credential value hpcai has resolved replaced by ``***``."""
    for s in tuple(_secrets):
        if s in text:
            text = text.replace(s, "***")
    return text


def _install_record_factory() -> None:
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _secrets and record.name.startswith(_REDACTED_LOGGERS):
            try:
                msg = record.getMessage()
            except Exception:
                return record
            clean = redact(msg)
            if clean != msg:
                record.msg, record.args = clean, None
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


def register_secrets(values: Iterator[str] | tuple[str, ...]) -> None:
    """Remember resolved credential values so that log records from storage libraries are redacted."""
    with _secrets_lock:
        _secrets.update(v for v in values if v and len(v) >= 4)
        _install_record_factory()


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
def _split_url(name: str, url: str, source: str) -> tuple[str, str]:
    """``(protocol, root)`` of an endpoint URL; the root has no trailing slash."""
    _check_url_secrets(url, source, f"endpoints.{name}.url", _hint(url))
    if url.startswith(SCHEME) or url.startswith("hpcai:"):
        raise ConfigError(f"{source}: endpoints.{name}.url = {url!r}: an endpoint cannot point at another hpcai:// URL")
    if "://" in url:
        protocol, rest = url.split("://", 1)
    elif url.startswith("/"):
        protocol, rest = "file", url
    else:
        raise ConfigError(
            f"{source}: endpoints.{name}.url = {url!r}: expected a URL such as 's3://bucket/prefix', "
            "'file:///absolute/dir' or an absolute directory path"
        )
    protocol = protocol.lower()
    from fsspec.registry import known_implementations, registry

    if protocol not in known_implementations and protocol not in registry:
        raise ConfigError(
            f"{source}: endpoints.{name}.url = {url!r}: unknown protocol {protocol!r}; "
            "fsspec knows e.g. s3, gs, az, file, memory, sftp, http"
        )
    if protocol in ("file", "local"):
        root = rest if rest.startswith("/") else "/" + rest
        root = os.path.normpath(root)
        if ".." in root.split("/"):
            raise ConfigError(f"{source}: endpoints.{name}.url = {url!r}: the directory must not contain '..'")
        return "file", root.rstrip("/") or "/"
    root = rest.strip("/")
    if protocol in ("s3", "s3a", "gs", "gcs", "az", "abfs") and not root:
        raise ConfigError(f"{source}: endpoints.{name}.url = {url!r}: name the bucket, e.g. '{protocol}://my-bucket'")
    if ".." in root.split("/"):
        raise ConfigError(f"{source}: endpoints.{name}.url = {url!r}: the root must not contain '..'")
    return protocol, root


def _validate_one(name: str, table: Any, where: str) -> dict[str, Any]:
    label = f"endpoints.{name}"
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(
            f"{where}: [endpoints.{name}]: an endpoint name is letters, digits, '_' and '-' "
            "(it is the host part of hpcai://<name>/<path>)"
        )
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: [{label}] must be a table with at least url = '...', got {table!r}")
    for k in table:
        if k not in _ENDPOINT_KEYS:
            known = "; ".join(f"{n}: {d}" for n, d in _ENDPOINT_KEYS.items())
            raise ConfigError(f"{where}: unknown key {label}.{k}; expected {known}")
    url = table.get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where}: {label}.url must be {_ENDPOINT_KEYS['url']}, got {url!r}")
    out: dict[str, Any] = {"url": url}
    options = table.get("options", {})
    if not isinstance(options, Mapping):
        raise ConfigError(f"{where}: {label}.options must be {_ENDPOINT_KEYS['options']}, got {options!r}")
    for k in options:
        if not isinstance(k, str) or not _OPTION_RE.match(k):
            raise ConfigError(f"{where}: {label}.options: invalid option name {k!r}")
        if _secret_name(k):
            raise ConfigError(
                f"{where}: {label}.options.{k} looks like a secret; configuration holds references only: "
                f"write credentials = {{ {k}_env = \"ENV_VAR_NAME\" }} and export ENV_VAR_NAME"
            )
    _check_url_secrets(url, where, f"{label}.url", _hint(url))
    _check_option_secrets(options, where, f"{label}.options", _hint(url))
    out["options"] = dict(options)
    creds = table.get("credentials", {})
    if not isinstance(creds, Mapping):
        raise ConfigError(f"{where}: {label}.credentials must be {_ENDPOINT_KEYS['credentials']}, got {creds!r}")
    for k, v in creds.items():
        if not isinstance(k, str) or not _OPTION_RE.match(k):
            raise ConfigError(f"{where}: {label}.credentials: invalid key {k!r}")
        if k.endswith("_env"):
            if not isinstance(v, str) or not _ENV_RE.match(v):
                raise ConfigError(
                    f"{where}: {label}.credentials.{k} must name an environment variable "
                    f"(letters, digits, '_'), got {type(v).__name__}"
                )
        elif k == "profile":
            if not isinstance(v, str) or not v:
                raise ConfigError(f"{where}: {label}.credentials.profile must be a profile name (string)")
        else:
            raise ConfigError(
                f"{where}: {label}.credentials.{k}: credentials hold references only: '<option>_env' "
                "(an environment variable name, e.g. key_env = \"ONPREM_KEY\") or 'profile'"
            )
    out["credentials"] = dict(creds)
    attrs = table.get("attributes", {})
    if not isinstance(attrs, Mapping) or not all(isinstance(v, str) for v in attrs.values()):
        raise ConfigError(f"{where}: {label}.attributes must be {_ENDPOINT_KEYS['attributes']}, got {attrs!r}")
    out["attributes"] = dict(attrs)
    if "tag_store" in table:
        ts = table["tag_store"]
        if ts not in TAG_STORES:
            raise ConfigError(f"{where}: {label}.tag_store must be {_ENDPOINT_KEYS['tag_store']}, got {ts!r}")
        out["tag_store"] = ts
    if "retry" in table:
        r = table["retry"]
        if not isinstance(r, Mapping):
            raise ConfigError(f"{where}: {label}.retry must be {_ENDPOINT_KEYS['retry']}, got {r!r}")
        for k, v in r.items():
            if k == "attempts":
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise ConfigError(f"{where}: {label}.retry.attempts must be an integer >= 1, got {v!r}")
            elif k in ("initial_delay", "max_delay"):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                    raise ConfigError(f"{where}: {label}.retry.{k} must be a number of seconds >= 0, got {v!r}")
            else:
                raise ConfigError(f"{where}: unknown key {label}.retry.{k}; expected attempts, initial_delay, max_delay")
        out["retry"] = dict(r)
    _split_url(name, url, where)
    return out


def validate_endpoints(value: Any, where: str, key: str) -> dict[str, dict[str, Any]]:
    """Validator of the ``[endpoints]`` configuration section (registered with the config loader)."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: [endpoints] must be a table of [endpoints.<name>] tables, got {value!r}")
    return {name: _validate_one(name, table, where) for name, table in value.items()}


def _build_endpoints() -> dict[str, Endpoint]:
    cfg = _config.get_config()
    return {name: Endpoint.from_table(name, tbl, cfg.source) for name, tbl in cfg.section("endpoints").items()}


_table: _config.Derived[dict[str, Endpoint]] = _config.Derived(_build_endpoints)


def endpoints() -> dict[str, Endpoint]:
    """Every configured endpoint, by name.

    >>> import hpcai
    >>> _ = hpcai.configure(data={"endpoints": {"scratch": {"url": "file:///tmp"}}})
    >>> list(endpoints())
    ['scratch']
    """
    return _table.get()


def get_endpoint(name: str) -> Endpoint:
    """The endpoint called *name*; :class:`~hpcai.errors.UnknownEndpointError` lists the known ones."""
    table = endpoints()
    ep = table.get(name)
    if ep is None:
        known = ", ".join(sorted(table)) or "none"
        src = _config.get_config().source
        raise UnknownEndpointError(
            f"unknown storage endpoint {name!r}; configured endpoints: {known} (configuration: {src}). "
            f"Define it as [endpoints.{name}] with url = '...' and attributes = {{...}}"
        )
    return ep


def check_relpath(fname: str, path: str, endpoint: str) -> str:
    """Normalise a path relative to an endpoint root, rejecting anything that could escape it."""
    if not isinstance(path, str):
        raise InvalidArgumentError(f"{fname}: expected a path string, got {type(path).__name__}")
    if "\x00" in path or "\\" in path:
        raise PathEscapeError(f"{fname}: path {path!r} on endpoint {endpoint!r} contains a NUL or backslash")
    if path.startswith("/"):
        raise PathEscapeError(
            f"{fname}: absolute path {path!r} on endpoint {endpoint!r}; paths are relative to the endpoint root"
        )
    if "://" in path:
        raise InvalidArgumentError(
            f"{fname}: {path!r} is a URL; the filesystem of endpoint {endpoint!r} takes paths relative to its root "
            f"(use fsspec.open('hpcai://{endpoint}/...') for URLs)"
        )
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise PathEscapeError(f"{fname}: path {path!r} on endpoint {endpoint!r} contains '..'; it could leave the endpoint root")
    for p in parts:
        if p.startswith(".hpcai-"):
            raise PathEscapeError(f"{fname}: {path!r}: names starting with '.hpcai-' are reserved for tag sidecars and temporary files")
    return "/".join(parts)


def parse_url(url: str, *, fname: str = "hpcai.storage") -> tuple[Endpoint, str]:
    """Split ``hpcai://<endpoint>/<path>`` into the endpoint and the checked relative path.

    >>> import hpcai
    >>> _ = hpcai.configure(data={"endpoints": {"scratch": {"url": "file:///tmp"}}})
    >>> ep, rel = parse_url("hpcai://scratch/a/b.zarr")
    >>> ep.name, rel
    ('scratch', 'a/b.zarr')
    """
    if not isinstance(url, str):
        raise InvalidArgumentError(f"{fname}: expected a URL string such as 'hpcai://onprem/data/x.zarr', got {type(url).__name__}")
    if not url.startswith(SCHEME):
        if "://" in url:
            scheme = url.split("://", 1)[0]
            raise InvalidArgumentError(
                f"{fname}: {url!r} is a {scheme}:// URL; hpcai reaches storage through configured endpoints "
                f"so that residency is checked: declare [endpoints.<name>] url = '{scheme}://...' and use "
                "hpcai://<name>/<path>"
            )
        raise InvalidArgumentError(
            f"{fname}: {url!r} is not a storage URL; expected hpcai://<endpoint>/<path>, e.g. 'hpcai://onprem/data/x.zarr'"
        )
    rest = url[len(SCHEME):]
    name, _, path = rest.partition("/")
    if not name:
        raise InvalidArgumentError(f"{fname}: {url!r} names no endpoint; expected hpcai://<endpoint>/<path>")
    ep = get_endpoint(name)
    return ep, check_relpath(fname, path, name)
