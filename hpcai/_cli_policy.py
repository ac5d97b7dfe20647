"""``hpcai policy check|explain``: validate and summarise a policy; explain one decision."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from ._tags import to_text
from .errors import InvalidArgumentError


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _attrs(attributes: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(attributes.items())) or "-"


def _summary() -> dict[str, Any]:
    from . import _config, audit
    from ._device import all_devices
    from .residency import OPERATIONS, current_policy, policy_hash

    cfg = _config.get_config()
    pol = current_policy()
    devices = all_devices()
    rules = []
    for r in pol.rules:
        ops: dict[str, Any] = {}
        for op in OPERATIONS:
            e = r.expression(op)
            if e is None:
                ops[op] = None
                continue
            entry: dict[str, Any] = {"expression": str(e)}
            if op in ("compute", "export"):
                allowed = [str(d) for d in devices if e.evaluate(d.attributes, pol.groups)]
                entry["devices_allowed"] = allowed
                entry["devices_denied"] = [str(d) for d in devices if str(d) not in allowed]
            ops[op] = entry
        rules.append(
            {"name": r.name, "effect": r.effect, "match": str(r.match), "description": r.description, **ops}
        )
    return {
        "source": cfg.source,
        "site_config": cfg.site,
        "sources": list(cfg.sources),
        "ignored": list(cfg.ignored),
        "policy_hash": policy_hash(),
        "site": dict(cfg.section("site")),
        "groups": {k: sorted(v) for k, v in pol.groups.items()},
        "devices": {str(d): dict(d.attributes) for d in devices},
        "rules": rules,
        "covers_untagged_data": pol.untagged_covered,
        "audit_log": str(audit.log_path()),
    }


def run_check(args: argparse.Namespace) -> int:
    from . import _config

    if args.file:
        _config.configure(args.file)
    s = _summary()
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"policy OK: {s['source']}")
    if s["site_config"]:
        print(f"site configuration: {s['site_config']} (its rules, groups, location attributes and audit path")
        print("  apply whatever user or project configuration says)")
    else:
        print("site configuration: none ($HPCAI_SITE_CONFIG unset, no /etc/hpcai/hpcai.toml)")
    for note in s["ignored"]:
        print(f"ignored: {note}")
    print(f"policy hash: {s['policy_hash']}")
    print(f"site: {_attrs(s['site'])}")
    if s["groups"]:
        print("groups:")
        for name, members in s["groups"].items():
            print(f"  @{name} = {', '.join(members)}")
    print("devices:")
    print(_table([("  device", "attributes")] + [(f"  {d}", _attrs(a)) for d, a in s["devices"].items()]))
    print(f"rules ({len(s['rules'])}):" if s["rules"] else "rules: none (no data is restricted)")
    for r in s["rules"]:
        print(f"  {r['name']} [{r['effect']}]  match: {r['match']}")
        if r["description"]:
            print(f"      {r['description']}")
        for op in ("compute", "store", "export"):
            e = r[op]
            if e is None:
                print(f"      {op + ':':9} (not restricted by this rule)")
                continue
            line = f"      {op + ':':9} {e['expression']}"
            if "devices_allowed" in e:
                line += f"   -> devices allowed: {', '.join(e['devices_allowed']) or 'none'}"
                line += f"; denied: {', '.join(e['devices_denied']) or 'none'}"
            print(line)
    if s["covers_untagged_data"]:
        print("note: some rule covers untagged data, so every movement is checked and audited")
    print(f"audit log: {s['audit_log']}")
    return 0


def _pairs(items: list[str] | None, flag: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items or []:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep or not key or not value:
                raise InvalidArgumentError(f"hpcai policy explain: {flag} takes key=value pairs, got {part!r}")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def run_explain(args: argparse.Namespace) -> int:
    from ._device import resolve_device
    from .errors import UnknownDeviceError
    from .residency import current_policy

    tags = _pairs(args.tags, "--tags")
    attr_pairs = _pairs(args.attr, "--attr")
    if args.to is None and args.endpoint is None and not attr_pairs:
        raise InvalidArgumentError(
            "hpcai policy explain: give a destination: --to DEVICE, --endpoint NAME or --attr key=value ..."
        )
    if args.to is not None and args.endpoint is not None:
        raise InvalidArgumentError("hpcai policy explain: --to names a device and --endpoint a storage endpoint; give one")
    attributes: dict[str, str] = {}
    destination = "(attributes given)"
    if args.op is None:
        args.op = "store" if args.endpoint is not None else "compute"
    if args.to is not None:
        try:
            dev = resolve_device(args.to)
        except UnknownDeviceError as exc:
            from . import _config

            if args.to in (_config.get_config().section("endpoints") or {}):
                raise InvalidArgumentError(
                    f"hpcai policy explain: {args.to!r} is a storage endpoint, not a device: "
                    f"use --endpoint {args.to} (the decision is then a 'store' on it)"
                ) from None
            raise exc from None
        attributes.update(dev.attributes)
        destination = str(dev)
    if args.endpoint is not None:
        from .storage import get_endpoint

        ep = get_endpoint(args.endpoint)
        attributes.update(ep.attributes)
        destination = f"endpoint {ep.name}"
    for k, vs in attr_pairs.items():
        attributes[k] = vs[-1]
    pol = current_policy()
    from ._tags import to_json
    from .residency import _as_tagset

    tagset = _as_tagset("hpcai policy explain", tags)
    d = pol.decide(args.op, tagset, attributes, destination)
    trace = pol.trace(args.op, tagset, attributes)
    if args.json:
        print(
            json.dumps(
                {
                    "allowed": d.allowed,
                    "op": d.op,
                    "effect": d.effect,
                    "rule": d.rule,
                    "tags": to_json(d.tags),
                    "destination": d.destination,
                    "attributes": dict(attributes),
                    "reason": d.reason,
                    "policy": d.source_file,
                    "policy_hash": d.policy_hash,
                    "rules": [
                        {"name": t.rule.name, "covers": t.covers, "restricts": t.restricts, "allows": t.allows}
                        for t in trace
                    ],
                },
                indent=2,
            )
        )
    else:
        verdict = "ALLOW" if d.allowed else "DENY"
        if d.effect == "audit":
            verdict = "ALLOW (recorded: audit rule)"
        tag_text = to_text(d.tags) or "(untagged)"
        print(f"decision: {verdict}")
        print(f"  {d.op} of data tagged {tag_text} on {d.destination}")
        print(f"  destination attributes: {_attrs(attributes)}")
        print(f"  deciding rule: {d.rule or 'none (no rule restricts this)'}")
        print(f"  reason: {d.reason}")
        print(f"  policy: {d.source_file} (hash {d.policy_hash})")
        if trace:
            rows: list[tuple[str, ...]] = [("  rule", "effect", "covers", args.op, "verdict")]
            for t in trace:
                e = t.rule.expression(args.op)
                verdict_r = "-" if t.allows is None else ("allows" if t.allows else "refuses")
                rows.append(
                    (
                        f"  {t.rule.name}",
                        t.rule.effect,
                        "yes" if t.covers else "no",
                        str(e) if e is not None else "(not restricted)",
                        verdict_r,
                    )
                )
            print("rules:")
            print(_table(rows))
    return 0 if d.allowed else 3


def register(sub: Any) -> None:
    p = sub.add_parser("policy", help="validate and explain residency policies")
    psub = p.add_subparsers(dest="policy_command", metavar="SUBCOMMAND", required=True)
    c = psub.add_parser("check", help="validate a policy file and summarise it")
    c.add_argument("file", nargs="?", help="configuration file (default: the active configuration)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=run_check)
    e = psub.add_parser(
        "explain",
        help="show the decision for tagged data and a destination (exit 0 allowed, 3 denied)",
    )
    e.add_argument("--tags", action="append", metavar="KEY=VALUE[,...]", help="data tags (repeatable)")
    e.add_argument("--to", metavar="DEVICE", help="destination device, e.g. emulated:1")
    e.add_argument("--endpoint", metavar="NAME", help="destination storage endpoint, e.g. onprem (--op defaults to store)")
    e.add_argument(
        "--attr", action="append", metavar="KEY=VALUE[,...]", help="destination attributes (added to / instead of --to)"
    )
    e.add_argument("--op", choices=("compute", "store", "export"), default=None,
                   help="operation (default: compute; store with --endpoint)")
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.set_defaults(func=run_explain)
