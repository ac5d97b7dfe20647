"""Local S3 servers and a ready-made set of endpoints, for the demo, tests and benchmarks.

:func:`start_s3_server` runs a moto S3 server in this process (a real HTTP server on
127.0.0.1); :func:`demo_environment` starts two of them (an EU on-prem store and a US
cloud store) plus a POSIX scratch directory and yields the ``[endpoints]`` configuration
that reaches them. Moto servers started in one process share their storage, so each
endpoint uses its own bucket.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpcai.errors import BackendUnavailableError

__all__ = ["DemoEnvironment", "S3Server", "demo_environment", "start_s3_server"]

#: Environment variables the demo endpoints take their (dummy) credentials from.
DEMO_KEY_ENV = "HPCAI_DEMO_S3_KEY"
DEMO_SECRET_ENV = "HPCAI_DEMO_S3_SECRET"


@dataclass
class S3Server:
    """A running moto S3 server: ``url`` is its endpoint URL. ``stop()``/``start()`` keep the port and data."""

    server: Any
    host: str
    port: int
    buckets: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop serving (the stored objects stay in this process)."""
        self.server.stop()

    def start(self) -> None:
        """Serve again on the same port."""
        self.server = _server_class()(ip_address=self.host, port=self.port, verbose=False)
        self.server.start()


_server_cls: type | None = None


def _server_class() -> type:
    """``ThreadedMotoServer`` whose ``stop()`` also closes the listening socket and live connections.

    Moto's own ``stop()`` leaves both open, so clients with pooled keep-alive connections
    would keep being served; a stopped server here behaves like a crashed one.
    """
    global _server_cls
    if _server_cls is not None:
        return _server_cls
    import socket

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from moto.server import ThreadedMotoServer
    from werkzeug.serving import make_server

    class _Handler(MotoRequestHandler):
        def setup(self) -> None:
            super().setup()
            self.server._hpcai_conns.add(self.connection)  # type: ignore[attr-defined]

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                self.server._hpcai_conns.discard(self.connection)  # type: ignore[attr-defined]

    class StoppableMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=_Handler)
            self._server._hpcai_conns = set()  # type: ignore[attr-defined]
            self._server_ready_event.set()
            self._server.serve_forever()

        def stop(self) -> None:
            srv = self._server
            super().stop()
            if srv is not None:
                srv.server_close()
                for conn in list(srv._hpcai_conns):  # type: ignore[attr-defined]
                    try:
                        conn.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    conn.close()

    _server_cls = StoppableMotoServer
    return _server_cls


def _quiet() -> None:
    for name in ("werkzeug", "moto"):
        logging.getLogger(name).setLevel(logging.ERROR)


def start_s3_server(buckets: Iterable[str] = (), *, port: int = 0, region: str = "us-east-1") -> S3Server:
    """Start a moto S3 server on 127.0.0.1 (port 0: any free port) and create *buckets*.

    >>> srv = start_s3_server(["research-eu"])  # doctest: +SKIP
    >>> srv.url  # doctest: +SKIP
    'http://127.0.0.1:40123'
    """
    try:
        server_cls = _server_class()
    except ImportError:
        raise BackendUnavailableError(
            "start_s3_server: moto's server is not installed; pip install 'moto[server]' (or 'hpcai[demo]')"
        ) from None
    _quiet()
    srv = server_cls(ip_address="127.0.0.1", port=port, verbose=False)
    srv.start()
    host, real_port = srv.get_host_and_port()
    out = S3Server(srv, host, int(real_port), tuple(buckets))
    if out.buckets:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=out.url,
            region_name=region,
            aws_access_key_id="moto",
            aws_secret_access_key="moto",  # any value works with moto
        )
        for b in out.buckets:
            client.create_bucket(Bucket=b)
    return out


@dataclass
class DemoEnvironment:
    """The endpoints of :func:`demo_environment`: ``config()`` is an ``{"endpoints": ...}`` table."""

    endpoints: dict[str, dict[str, Any]]
    directory: Path
    servers: dict[str, S3Server] = field(default_factory=dict)

    def config(self) -> dict[str, Any]:
        """``{"endpoints": {...}}``, to merge into the data given to ``hpcai.configure``."""
        return {"endpoints": {k: dict(v) for k, v in self.endpoints.items()}}


def _s3_endpoint(server: S3Server, bucket: str, attributes: dict[str, str]) -> dict[str, Any]:
    return {
        "url": f"s3://{bucket}",
        "options": {"endpoint_url": server.url, "client_kwargs": {"region_name": "us-east-1"}},
        "credentials": {"key_env": DEMO_KEY_ENV, "secret_env": DEMO_SECRET_ENV},
        "attributes": attributes,
        "retry": {"attempts": 3, "initial_delay": 0.05, "max_delay": 0.5},
    }


@contextmanager
def demo_environment(directory: str | os.PathLike[str] | None = None) -> Iterator[DemoEnvironment]:
    """Start an EU on-prem S3 store, a US cloud S3 store and a POSIX scratch directory.

    Yields a :class:`DemoEnvironment` whose ``config()`` declares the endpoints ``onprem``
    (s3, DE/EU/onprem), ``cloud`` (s3, US/US/hyperscaler) and ``scratch`` (POSIX,
    DE/EU/onprem). The dummy credentials are set in the environment for the duration;
    everything is stopped and removed afterwards.

    >>> import hpcai
    >>> with demo_environment() as env:  # doctest: +SKIP
    ...     hpcai.configure(data=env.config())
    """
    saved = {k: os.environ.get(k) for k in (DEMO_KEY_ENV, DEMO_SECRET_ENV)}
    os.environ[DEMO_KEY_ENV] = saved[DEMO_KEY_ENV] or "demo-access-key"
    os.environ[DEMO_SECRET_ENV] = saved[DEMO_SECRET_ENV] or "demo-secret-key"
    own_dir = directory is None
    root = Path(tempfile.mkdtemp(prefix="hpcai-demo-")) if own_dir else Path(directory)  # type: ignore[arg-type]
    servers: dict[str, S3Server] = {}
    try:
        servers["onprem"] = start_s3_server(["research-eu"])
        servers["cloud"] = start_s3_server(["cloud-us"])
        scratch = root / "scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        eps = {
            "onprem": _s3_endpoint(servers["onprem"], "research-eu", {"country": "DE", "jurisdiction": "EU", "provider": "onprem"}),
            "cloud": _s3_endpoint(servers["cloud"], "cloud-us", {"country": "US", "jurisdiction": "US", "provider": "hyperscaler"}),
            "scratch": {"url": "file://" + str(scratch), "attributes": {"country": "DE", "jurisdiction": "EU", "provider": "onprem"}},
        }
        yield DemoEnvironment(eps, root, servers)
    finally:
        for s in servers.values():
            try:
                s.stop()
            except Exception:
                pass
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
