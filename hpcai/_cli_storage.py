"""``hpcai ls|cp|tags|untag|rm``: storage endpoints from the command line, policy-checked and audited."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ._config import format_size
from ._tags import to_text
from .errors import InvalidArgumentError


def _fmt_tags(tags: Any) -> str:
    if not tags:
        return "-"
    return to_text(tags)


def _parse_tags(items: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise InvalidArgumentError(f"hpcai cp: --tag expects KEY=VALUE, got {item!r}")
        out.setdefault(key, []).append(value)
    return out


class _Bar:
    """A one-line progress bar on stderr, ``[#####-----]  52.0%  12.0/23.1 MiB  8.4 MiB/s``: the
    fallback when tqdm is not installed. An ``fsspec.callbacks.Callback`` (set_size, relative_update)."""

    def __init__(self, stream: Any, unit: str = "B", width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.unit = unit
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.size: int | None = None
        self.value = 0
        self.shown = False

    def set_size(self, size: int) -> None:
        self.size = size
        self._draw()

    def relative_update(self, inc: int = 1) -> None:
        self.value += inc
        self._draw()

    def _fmt(self, n: int) -> str:
        return format_size(n) if self.unit == "B" else f"{n} {self.unit}"

    def _draw(self) -> None:
        total = self.size or 0
        now = time.perf_counter()
        if self.value < total and now - self.last < 0.1:
            return
        self.last = now
        frac = self.value / total if total else 1.0
        filled = int(frac * self.width)
        rate = self.value / max(now - self.t0, 1e-9)
        rate_text = f"{format_size(int(rate))}/s" if self.unit == "B" else f"{rate:.0f} {self.unit}/s"
        self.stream.write(
            f"\r[{'#' * filled}{'-' * (self.width - filled)}] {frac * 100:5.1f}%  "
            f"{self._fmt(self.value)}/{self._fmt(total)}  {rate_text}"
        )
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def progress_callback(enabled: bool | None, unit: str = "B", desc: str | None = None) -> Any:
    """The CLI's progress display: tqdm's bar where tqdm is installed, else :class:`_Bar`; ``None``
    when disabled (``enabled=None``: on when stderr is a terminal, so piped runs stay silent)."""
    show = enabled if enabled is not None else sys.stderr.isatty()
    if not show:
        return None
    try:
        import tqdm  # noqa: F401
        from fsspec.callbacks import TqdmCallback
    except ImportError:
        return _Bar(sys.stderr, unit=unit)
    kw: dict[str, Any] = {"file": sys.stderr, "desc": desc, "leave": True}
    if unit == "B":
        kw.update(unit="B", unit_scale=True, unit_divisor=1024)
    else:
        kw.update(unit=f" {unit}")
    return TqdmCallback(tqdm_kwargs=kw)


def _close(cb: Any) -> None:
    if cb is not None:
        close = getattr(cb, "close", None)
        if callable(close):
            close()


def _json_tags(tags: Any) -> dict[str, list[str]]:
    from hpcai._tags import to_json

    return to_json(tags)


def run_ls(args: argparse.Namespace) -> int:
    from hpcai.storage import ls

    cb = progress_callback(args.progress, unit="entries", desc="listing") if args.tags else None
    try:
        entries = ls(args.url, with_tags=args.tags, callback=cb)
    finally:
        _close(cb)
    if args.json:
        print(json.dumps([
            {"url": e.url, "kind": e.kind, "size": e.size,
             **({"tags": _json_tags(e.tags)} if e.tags is not None else {})}
            for e in entries
        ], indent=2))
        return 0
    rows = [("kind", "size", "url") + (("tags",) if args.tags else ())]
    for e in entries:
        rows.append((e.kind, format_size(e.size), e.url) + ((_fmt_tags(e.tags),) if args.tags else ()))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def run_cp(args: argparse.Namespace) -> int:
    from hpcai.storage import copy

    cb = progress_callback(False if args.json and args.progress is None else args.progress, desc="copying")
    try:
        result = copy(args.src, args.dst, tags=_parse_tags(args.tag) or None, overwrite=args.overwrite, callback=cb)
    finally:
        _close(cb)
    rate = result.nbytes / max(result.seconds, 1e-9)
    if args.json:
        print(json.dumps({
            "ok": True, "source": args.src, "destination": result.destination, "files": result.files,
            "bytes": result.nbytes, "seconds": round(result.seconds, 6),
            "tag_sets": [_json_tags(t) for t in result.tag_sets],
        }, indent=2))
        return 0
    print(f"copied {result.files} file(s), {format_size(result.nbytes)} in {result.seconds:.2f} s "
          f"({format_size(int(rate))}/s) from {args.src} to {result.destination}")
    return 0


def run_tags(args: argparse.Namespace) -> int:
    from hpcai.storage import tags

    t = tags(args.url)
    if args.json:
        print(json.dumps(_json_tags(t), indent=2))
    elif not t:
        print(f"{args.url}: untagged")
    else:
        for k, v in t.items():
            print(f"{k} = {', '.join(sorted(v))}")
    return 0


def run_untag(args: argparse.Namespace) -> int:
    from hpcai import audit
    from hpcai.storage import untag

    left = untag(args.url, args.key, reason=args.reason)
    if args.json:
        print(json.dumps({"ok": True, "url": args.url, "removed": args.key, "tags": _json_tags(left),
                          "audit_log": str(audit.log_path())}, indent=2))
        return 0
    rest = _fmt_tags(left)
    print(f"untagged {args.key} from {args.url} (remaining tags: {rest}); recorded in the audit log {audit.log_path()}")
    return 0


def run_rm(args: argparse.Namespace) -> int:
    from hpcai.storage import rm

    cb = progress_callback(False if args.json and args.progress is None else args.progress, unit="files",
                           desc="removing")
    try:
        n = rm(args.url, recursive=args.recursive, callback=cb)
    finally:
        _close(cb)
    if args.json:
        print(json.dumps({"ok": True, "url": args.url, "files": n}, indent=2))
        return 0
    print(f"removed {args.url} ({n} file(s))")
    return 0


def _guard(fn: Any) -> Any:
    """Turn storage errors that are builtin OSErrors (from fsspec) into the CLI's error exit."""
    from .cli import CommandError

    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            if type(exc).__module__.startswith("hpcai"):
                raise
            raise CommandError(str(exc)) from None

    return run


def _progress_flags(p: Any, what: str) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help=f"always show {what} (default: on a terminal only; tqdm's bar where installed)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help=f"never show {what}")


def register(sub: Any) -> None:
    p = sub.add_parser("ls", help="list a storage path: hpcai ls hpcai://onprem/data")
    p.add_argument("url", help="hpcai://<endpoint>[/<path>]")
    p.add_argument("--tags", action="store_true", help="show the residency tags of each entry")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _progress_flags(p, "progress while reading tags")
    p.set_defaults(func=_guard(run_ls))

    p = sub.add_parser(
        "cp", help="copy between endpoints (residency-checked; non-zero exit on refusal)",
        description="Copy a file, directory or dataset. As with POSIX cp, an existing directory destination "
        "(or one ending in '/') receives the source inside it; existing files are replaced only with --overwrite. "
        "Memory stays bounded (large objects are streamed); an interrupted copy leaves no partial file.",
    )
    p.add_argument("src", help="hpcai://<endpoint>/<path> or a local path")
    p.add_argument("dst", help="hpcai://<endpoint>/<path> or a local path")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                   help="tag the copied data (repeatable), on top of the tags the data carries "
                        "(uploads: zarr attributes, and the xattrs/sidecars that downloads leave)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace destination files that exist (without it, any existing one stops the copy "
                        "before anything is written)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _progress_flags(p, "a byte-level progress bar")
    p.set_defaults(func=_guard(run_cp))

    p = sub.add_parser("tags", help="show the residency tags stored with a file or dataset")
    p.add_argument("url", help="hpcai://<endpoint>/<path>")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_guard(run_tags))

    p = sub.add_parser("untag", help="drop a residency tag from stored data (audited, with a reason)")
    p.add_argument("url", help="hpcai://<endpoint>/<path> (a file, directory, zarr node or dataset)")
    p.add_argument("key", help="the tag key to drop, e.g. classification")
    p.add_argument("--reason", required=True, help="why the data is no longer covered (recorded in the audit log)")
    p.set_defaults(func=_guard(run_untag))

    p = sub.add_parser("rm", help="remove a file, or a directory or dataset with -r")
    p.add_argument("url", help="hpcai://<endpoint>/<path>")
    p.add_argument("-r", "--recursive", action="store_true", help="remove directories and datasets")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _progress_flags(p, "progress (files removed)")
    p.set_defaults(func=_guard(run_rm))
