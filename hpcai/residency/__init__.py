"""Residency: tags on data, policies over location attributes, and their enforcement.

One small engine decides, for data with some tags, whether an operation may happen at a
destination with some location attributes:

* ``compute`` — data may be moved onto (and computed on) a device;
* ``store`` — data may be written to a storage endpoint;
* ``export`` — data may be handed to a foreign library (``__array__``, ``__dlpack__``).

Rules come from the ``[[policy.rules]]`` tables of the configuration::

    [groups]
    eu = ["AT", "BE", "DE", "FR", "NL"]

    [[policy.rules]]
    name = "gdpr-personal"
    match = "classification=personal"        # over the data's tags
    compute = "country=@eu"                  # over the destination's attributes
    store = "country=@eu & provider!=hyperscaler"
    effect = "deny"                          # or "audit": allow but record

Expressions have ``key=value``, ``key!=value``, ``key=@group``, ``true``, ``false``,
``!``, ``&``, ``|`` and parentheses, with precedence ``!`` > ``&`` > ``|``, parsed by a
hand-written recursive-descent parser (never ``eval``). Data that some rule's ``match``
covers may go only where every covering rule that restricts the operation allows
(default-deny); a rule without ``compute``/``store``/``export`` does not restrict that
operation; data no rule covers is unaffected. Every decision on covered data is written to
the audit log (:mod:`hpcai.audit`). Device moves and exports are checked by guards this
module installs into :mod:`hpcai._transfer`; computing on data costs nothing.

One module per concern: ``_normalize`` (tag normalisation, :func:`fold`), ``_expressions``
(the expression language), ``_program`` (expressions compiled together as bit masks),
``_policy`` (rules, decisions, policies, the configuration sections, the policy hash),
``_guards`` (the active policy, ``decide``/``enforce``, the movement guards, policy
records) and ``_tagging`` (``tag``, ``untag``, ``check_placement``).

>>> import hpcai as xp
>>> x = xp.tag(xp.asarray([1.0, 2.0]), classification="personal")
>>> sorted(x.tags["classification"])
['personal']
"""

from __future__ import annotations

from ._expressions import (  # the expression language
    And,
    Compare,
    Const,
    Expr,
    Not,
    Or,
    parse_expression,
)
from ._guards import (  # the active policy, its enforcement, the record of its changes
    _export_guard,
    _move_guard,
    _note_policy,
    _settle,
    current_policy,
    decide,
    enforce,
)
from ._normalize import _as_tagset, fold, normalize_tags  # tag normalisation
from ._policy import (  # rules, decisions, policies, configuration sections, the policy hash
    OPERATIONS,
    Decision,
    Policy,
    Rule,
    RuleTrace,
    policy_from_config,
    policy_hash,
)
from ._program import _Program  # expressions compiled together
from ._tagging import check_placement, tag, untag  # the tag API

__all__ = [
    "OPERATIONS",
    "And",
    "Compare",
    "Const",
    "Decision",
    "Expr",
    "Not",
    "Or",
    "Policy",
    "Rule",
    "RuleTrace",
    "check_placement",
    "current_policy",
    "decide",
    "enforce",
    "fold",
    "normalize_tags",
    "parse_expression",
    "policy_from_config",
    "policy_hash",
    "tag",
    "untag",
]

#: Internal names that other hpcai modules, benchmarks and tests reach as ``hpcai.residency.X``.
_INTERNAL = (_Program, _as_tagset, _export_guard, _move_guard, _note_policy, _settle)
