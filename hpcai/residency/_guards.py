"""The active policy and its enforcement: decide, enforce, the movement guards, policy records."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _config, _transfer, audit
from .._tags import to_json as tags_to_json
from .._tags import to_text
from ..errors import AuditError, ResidencyError
from ._normalize import _as_tagset
from ._policy import (
    Decision,
    Policy,
    _absolute_source,
    _check_op,
    _data_hash,
    policy_from_config,
)

if TYPE_CHECKING:
    from .._array import Array
    from .._device import Device


# -- policy changes are recorded ---------------------------------------------------------------
_logger = logging.getLogger("hpcai.residency")
_record_lock = threading.RLock()
#: (audit log, policy hash) pairs this process has written a policy record for.
_recorded: set[tuple[str, str]] = set()


def _log_of(cfg: _config.Config) -> Path:
    """The audit log of *cfg* (the rule of :func:`hpcai.audit.log_path`, for any configuration)."""
    configured = cfg.section("audit").get("path")
    if isinstance(configured, str) and configured:
        return Path(configured)
    env = os.environ.get("HPCAI_AUDIT_LOG")
    if env:
        return Path(env).expanduser().absolute()
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "hpcai" / "audit.jsonl"


def _rule_names(cfg: _config.Config | None) -> list[str]:
    if cfg is None:
        return []
    return [r["name"] for r in (cfg.data.get("policy") or {}).get("rules", [])]


def _policy_record(
    cfg: _config.Config, digest: str, previous: str | None, *, event: str, via: str, dropped: list[str]
) -> dict[str, Any]:
    names = _rule_names(cfg)
    sources = [_absolute_source(s) for s in cfg.sources]
    reason = f"policy {digest[:12]} in force: {len(names)} rule(s) from {' + '.join(sources)}"
    if cfg.site:
        reason += f" (site configuration {cfg.site}: its rules and location attributes always apply)"
    if dropped:
        reason += f"; rules no longer in force: {', '.join(dropped)}"
    if cfg.ignored:
        reason += f"; {len(cfg.ignored)} user setting(s) ignored"
    return {
        "operation": "policy",
        "op": event,
        "tags": {},
        "bytes": 0,
        "source": None,
        "destination": None,
        "dataset": None,
        "decision": "in-force",
        "effect": None,
        "rule": None,
        "policy_hash": digest,
        "previous_policy_hash": previous,
        "rules": names,
        "dropped": dropped,
        "site_config": cfg.site,
        "sources": sources,
        "ignored": list(cfg.ignored),
        "via": via,
        "reason": reason,
        "policy": _absolute_source(cfg.source),
    }


def _on_config_change(old: _config.Config | None, new: _config.Config, via: str) -> None:
    """Run by ``xp.configure`` before *new* applies: record a change of the effective policy.

    The record goes to the new configuration's audit log when it has rules, and to the old
    one's when that had rules (the trail of the policy being replaced shows who replaced it
    and which rules stopped applying). A change between two rule-less configurations
    records nothing. If the first of these records cannot be written the change is refused
    (so dropping every rule is never unrecorded); a failure of the second (the old log, when
    the new policy's log already holds the record) is logged as a warning.
    """
    new_hash = _data_hash(new.data)
    old_hash = _data_hash(old.data) if old is not None else None
    new_rules, old_rules = _rule_names(new), _rule_names(old)
    if new_hash == old_hash or not (new_rules or old_rules):
        return
    dropped = [n for n in old_rules if n not in new_rules]
    record = _policy_record(new, new_hash, old_hash, event="configure", via=via, dropped=dropped)
    targets: list[Path] = []
    if new_rules:
        targets.append(_log_of(new))
    if old is not None and old_rules and _log_of(old) not in targets:
        targets.append(_log_of(old))
    with _record_lock:
        for i, log in enumerate(targets):
            try:
                audit.append(record, path=log)
            except AuditError as exc:
                if i == 0:  # the one record the change needs: without it, no change
                    raise AuditError(
                        f"{via}: the residency policy change could not be recorded, so the configuration was "
                        f"not changed: {exc}"
                    ) from None
                # the replaced policy's own log is broken; the change is recorded in the new one
                _logger.warning("%s: the policy change could not also be recorded in %s: %s", via, log, exc)
                continue
            _recorded.add((str(log), new_hash))
    if dropped:
        _logger.warning(
            "%s: residency rules no longer in force: %s (recorded in the audit log %s)",
            via,
            ", ".join(dropped),
            ", ".join(map(str, targets)),
        )


def _note_policy(digest: str | None) -> None:
    """Before the first audited event under a policy in this process, record that policy.

    Covers the first load (discovery: no ``configure`` call): a process that never decides
    on covered data writes nothing; one that does pays one extra audit append, once.
    """
    if digest is None:
        return
    log = str(audit.log_path())
    if (log, digest) in _recorded:
        return
    with _record_lock:
        if (log, digest) in _recorded:
            return
        cfg = _config.get_config()
        audit.append(
            _policy_record(cfg, digest, None, event="load", via="first audited event in this process", dropped=[]),
            path=log,
        )
        _recorded.add((log, digest))


_config.on_change(_on_config_change)


# ============================================================================================
# the active policy and its enforcement
# ============================================================================================
def _build_policy() -> Policy:
    cfg = _config.get_config()
    return policy_from_config(cfg.data, cfg.source)


_policy: _config.Derived[Policy] = _config.Derived(_build_policy)


def current_policy() -> Policy:
    """The policy of the active configuration (built on first use, rebuilt on ``configure``)."""
    return _policy.get()


def decide(op: str, tags: Any, attributes: Mapping[str, str], *, destination: str) -> Decision:
    """Decide whether *op* of data with *tags* may happen at a destination with *attributes*.

    Pure: nothing is recorded. *tags* is a mapping ``key -> value(s)``, a frozenset of
    ``(key, value)`` pairs, or ``None``.

    >>> import hpcai as xp
    >>> xp.residency.decide("compute", {"classification": "personal"}, {"country": "US"},
    ...                     destination="emulated:1").allowed
    True
    """
    _check_op("decide", op)
    return current_policy().decide(op, _as_tagset("decide", tags), attributes, destination)


def _record(d: Decision, *, operation: str, source: str | None, nbytes: int, dataset: str | None) -> None:
    audit.append(
        {
            "operation": operation,
            "op": d.op,
            "tags": tags_to_json(d.tags),
            "bytes": int(nbytes),
            "source": source,
            "destination": d.destination,
            "dataset": dataset,
            "decision": "allow" if d.allowed else "deny",
            "effect": d.effect,
            "rule": d.rule,
            "reason": d.reason,
            "policy": d.source_file,
            "policy_hash": d.policy_hash,
        }
    )


_DONE = {"compute": "moved", "store": "stored", "export": "exported"}


def _refusal(d: Decision, operation: str, audit_note: str) -> ResidencyError:
    tags = to_text(d.tags) or "(untagged)"
    return ResidencyError(
        f"{operation}: residency policy forbids {d.op} of data tagged {{{tags}}} on {d.destination}: "
        f"{d.reason} (policy file {d.source_file}). Nothing was {_DONE[d.op]}; {audit_note}. "
        f"Fix: choose a destination that satisfies rule '{d.rule}', change the policy, or, if the "
        "data is no longer covered, drop the tag with xp.untag(x, key, reason=...)",
        decision=d,
    )


def _settle(d: Decision, *, operation: str, source: str | None, nbytes: int, dataset: str | None) -> None:
    """Audit a covered decision and raise if it denies."""
    if d.allowed:
        _note_policy(d.policy_hash)
        _record(d, operation=operation, source=source, nbytes=nbytes, dataset=dataset)
        return
    try:
        _note_policy(d.policy_hash)
        _record(d, operation=operation, source=source, nbytes=nbytes, dataset=dataset)
        note = f"the attempt is recorded in the audit log {audit.log_path()}"
    except AuditError as exc:
        note = f"recording the attempt in the audit log failed too: {exc}"
    raise _refusal(d, operation, note)


def enforce(
    op: str,
    tags: Any,
    attributes: Mapping[str, str],
    *,
    destination: str,
    source: str | None = None,
    nbytes: int = 0,
    dataset: str | None = None,
    operation: str | None = None,
) -> Decision:
    """Decide, record covered decisions in the audit log, and raise ResidencyError on denial.

    The enforcement point for storage writes, copies, loads and worker placement: call it
    before any byte moves. An audit-log failure on an allowed decision raises
    :class:`~hpcai.errors.AuditError` (the operation must not go ahead unrecorded).

    >>> import hpcai as xp
    >>> xp.residency.enforce("store", None, {"country": "DE"}, destination="s3://bucket").allowed
    True
    """
    _check_op("enforce", op)
    d = current_policy().decide(op, _as_tagset("enforce", tags), attributes, destination)
    if d.effect is not None:
        _settle(d, operation=operation or op, source=source, nbytes=nbytes, dataset=dataset)
    return d


def settle_move(x: Array, src: Device, dst: Device, op: str) -> None:
    """Decide, then settle, a move of *x* to *dst*: a compute decision on the destination.

    Called explicitly by the one movement path (``hpcai._transfer.check_move``) before any
    byte moves; free when no rule can cover the data.
    """
    t = x._tags
    pol = _policy.get()
    if not pol.rules or (t is None and not pol.untagged_covered):
        return
    d = pol.decide_device("compute", t, dst)
    if d.effect is not None:
        _settle(d, operation=op, source=src.spec.name, nbytes=_transfer._nbytes(x._data), dataset=None)


def settle_export(x: Array, op: str, dl_device: Any) -> None:
    """Decide, then settle, an export of *x*'s values (``hpcai._transfer.check_export``).

    Every way values leave hpcai calls it; free when no rule can cover the data.
    """
    t = x._tags
    pol = _policy.get()
    if not pol.rules or (t is None and not pol.untagged_covered):
        return
    dev = x._device
    target = dev
    if dl_device is not None and tuple(dl_device) == (1, 0) and not dev.is_host:
        from .._device import resolve_device

        target = resolve_device("numpy:cpu")
    d = pol.decide_device("export", t, target)
    if d.effect is not None:
        _settle(d, operation=op, source=dev.spec.name, nbytes=_transfer._nbytes(x._data), dataset=None)


#: The names these had when they were installed into hpcai._transfer (kept for callers).
_move_guard = settle_move
_export_guard = settle_export
