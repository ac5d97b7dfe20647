"""``hpcai ls|cp|tags|untag|rm``: storage endpoints from the command line, policy-checked and audited."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ._config import format_size
from .errors import InvalidArgumentError


def _fmt_tags(tags: Any) -> str:
    if not tags:
        return "-"
    return ", ".join(f"{k}={'|'.join(sorted(v))}" for k, v in tags.items())


def _parse_tags(items: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise InvalidArgumentError(f"hpcai cp: --tag expects KEY=VALUE, got {item!r}")
        out.setdefault(key, []).append(value)
    return out


class _Bar:
    """A one-line progress bar on stderr: ``[#####-----]  52%  12.0/23.1 MiB  8.4 MiB/s``."""

    def __init__(self, stream: Any, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        self.total = total
        now = time.perf_counter()
        if done < total and now - self.last < 0.1:
            return
        self.last = now
        frac = done / total if total else 1.0
        filled = int(frac * self.width)
        rate = done / max(now - self.t0, 1e-9)
        self.stream.write(
            f"\r[{'#' * filled}{'-' * (self.width - filled)}] {frac * 100:5.1f}%  "
            f"{format_size(done)}/{format_size(total)}  {format_size(int(rate))}/s"
        )
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def run_ls(args: argparse.Namespace) -> int:
    from hpcai.storage import ls

    entries = ls(args.url, with_tags=args.tags)
    if args.json:
        print(json.dumps([
            {"url": e.url, "kind": e.kind, "size": e.size,
             **({"tags": {k: sorted(v) for k, v in e.tags.items()}} if e.tags is not None else {})}
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

    show = args.progress if args.progress is not None else sys.stderr.isatty()
    bar = _Bar(sys.stderr) if show else None
    try:
        result = copy(args.src, args.dst, tags=_parse_tags(args.tag) or None, overwrite=args.overwrite, progress=bar)
    finally:
        if bar is not None and bar.total:
            bar.finish()
    rate = result.nbytes / max(result.seconds, 1e-9)
    print(f"copied {result.files} file(s), {format_size(result.nbytes)} in {result.seconds:.2f} s "
          f"({format_size(int(rate))}/s) from {args.src} to {args.dst}")
    return 0


def run_tags(args: argparse.Namespace) -> int:
    from hpcai.storage import tags

    t = tags(args.url)
    if args.json:
        print(json.dumps({k: sorted(v) for k, v in t.items()}, indent=2))
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
    rest = _fmt_tags(left)
    print(f"untagged {args.key} from {args.url} (remaining tags: {rest}); recorded in the audit log {audit.log_path()}")
    return 0


def run_rm(args: argparse.Namespace) -> int:
    from hpcai.storage import rm

    n = rm(args.url, recursive=args.recursive)
    print(f"removed {args.url} ({n} file(s))")
    return 0


def _guard(fn: Any) -> Any:
    """Turn storage errors that are builtin OSErrors (from fsspec) into the CLI's error exit."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            if type(exc).__module__.startswith("hpcai"):
                raise
            print(f"hpcai: error: {exc}", file=sys.stderr)
            return 1

    return run


def register(sub: Any) -> None:
    p = sub.add_parser("ls", help="list a storage path: hpcai ls hpcai://onprem/data")
    p.add_argument("url", help="hpcai://<endpoint>[/<path>]")
    p.add_argument("--tags", action="store_true", help="show the residency tags of each entry")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_guard(run_ls))

    p = sub.add_parser("cp", help="copy between endpoints (residency-checked; non-zero exit on refusal)")
    p.add_argument("src", help="hpcai://<endpoint>/<path> or a local path")
    p.add_argument("dst", help="hpcai://<endpoint>/<path> or a local path")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                   help="tag the copied data (repeatable), on top of the tags the data carries "
                        "(uploads: zarr attributes, and the xattrs/sidecars that downloads leave)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing destination")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show the progress bar")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="never show the progress bar")
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
    p.set_defaults(func=_guard(run_rm))
