#!/usr/bin/env bash
# Python Array API 2024.12 conformance: runs the official suite
# (data-apis/array-api-tests) against hpcai on numpy:cpu, emulated:0 and jax:cpu:0, and
# against array_api_strict (the reference implementation) for comparison, then
# prints the failures per test module for each target.
#
# This is a developer tool, not part of CI: the suite is not published on PyPI
# and needs a git checkout together with its `array-api` spec submodule:
#
#   git clone --recurse-submodules https://github.com/data-apis/array-api-tests
#   pip install -r array-api-tests/requirements.txt   # hypothesis, ndindex, pytest-json-report, ...
#
# Usage:
#   ci/conformance.sh [SUITE_DIR] [-- EXTRA_PYTEST_ARGS...]
#
#   SUITE_DIR              the checkout (default: $ARRAY_API_TESTS_DIR)
#   PYTHON                 interpreter with hpcai, array_api_strict and the suite's
#                          requirements installed (default: python3)
#   MAX_EXAMPLES           hypothesis examples per test (default: 50)
#   HYPOTHESIS_SEED        seed shared by every target so all see the same examples (default: 0)
#   CONFORMANCE_TARGETS    space-separated targets (default:
#                          "array_api_strict hpcai@numpy:cpu hpcai@emulated:0 hpcai@jax:cpu:0";
#                          the JAX target only where JAX imports);
#                          a target is MODULE or MODULE@HPCAI_DEVICE
#   CONFORMANCE_OUT        folder for the JUnit XML, logs and report
#                          (default: ./conformance-out)
#   CONFORMANCE_SKIPS      skip file (default: ci/conformance-skips.txt next to this script)
#
# Outputs, under CONFORMANCE_OUT: <target>.xml (JUnit), <target>.log (pytest output),
# summary.txt (the table printed at the end) and report.md (every failing hpcai test
# with its error on one line, grouped by function).
#
# The skip file lists only tests that are genuinely out of scope for hpcai, one
# node-id prefix per line (the suite's own --skips-file format: only lines that
# start with "array_api_tests" count; put the reason on the comment line above).
# It is applied to every target, array_api_strict included, so counts stay comparable.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
suite="${ARRAY_API_TESTS_DIR:-}"
if [[ $# -gt 0 && "$1" != "--" ]]; then
    suite="$1"
    shift
fi
if [[ $# -gt 0 && "$1" == "--" ]]; then
    shift
fi
extra=("$@")

if [[ -z "$suite" ]]; then
    echo "conformance.sh: no suite given; pass the path of an array-api-tests checkout" \
         "or set ARRAY_API_TESTS_DIR (see the top of this script)" >&2
    exit 2
fi
suite="$(cd "$suite" && pwd)"
if [[ ! -d "$suite/array_api_tests" ]]; then
    echo "conformance.sh: $suite has no array_api_tests/ folder; is it an array-api-tests checkout?" >&2
    exit 2
fi
if [[ ! -d "$suite/array-api/src/array_api_stubs" ]]; then
    echo "conformance.sh: $suite/array-api is empty; run 'git submodule update --init' in the checkout" >&2
    exit 2
fi

py="${PYTHON:-python3}"
max_examples="${MAX_EXAMPLES:-50}"
seed="${HYPOTHESIS_SEED:-0}"
default_targets="array_api_strict hpcai@numpy:cpu hpcai@emulated:0"
if "$py" -c "import jax" 2>/dev/null; then
    default_targets="$default_targets hpcai@jax:cpu:0"
fi
targets="${CONFORMANCE_TARGETS:-$default_targets}"
out="$(mkdir -p "${CONFORMANCE_OUT:-conformance-out}" && cd "${CONFORMANCE_OUT:-conformance-out}" && pwd)"
skips="${CONFORMANCE_SKIPS:-$here/conformance-skips.txt}"

skip_args=()
if [[ -f "$skips" ]]; then
    if grep -q -- "--skips-file" "$suite/conftest.py" 2>/dev/null; then
        skip_args=(--skips-file "$skips")
    else
        echo "conformance.sh: this suite version has no --skips-file option; $skips is not applied" >&2
    fi
fi

for target in $targets; do
    module="${target%%@*}"
    device=""
    if [[ "$target" == *@* ]]; then
        device="${target#*@}"
    fi
    tag="${target//[^A-Za-z0-9_.-]/_}"
    echo "== $target"
    set +e
    (
        cd "$suite"
        export ARRAY_API_TESTS_MODULE="$module"
        export ARRAY_API_TESTS_VERSION=2024.12
        if [[ -n "$device" ]]; then
            export HPCAI_DEVICE="$device"
        else
            unset HPCAI_DEVICE
        fi
        "$py" -m pytest array_api_tests -q -p no:cacheprovider --rootdir="$suite" \
            --max-examples="$max_examples" --disable-deadline \
            --hypothesis-seed="$seed" \
            --junitxml="$out/$tag.xml" \
            ${skip_args[@]+"${skip_args[@]}"} ${extra[@]+"${extra[@]}"}
    ) >"$out/$tag.log" 2>&1
    rc=$?
    set -e
    tail -n 1 "$out/$tag.log"
    if [[ ! -f "$out/$tag.xml" ]]; then
        echo "conformance.sh: pytest exited $rc for $target without a report; see $out/$tag.log" >&2
        exit 1
    fi
done

"$py" - "$out" $targets <<'PY'
"""Summarise the JUnit files: failures per test module, then a report of hpcai failures."""
import collections
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

out = Path(sys.argv[1])
targets = sys.argv[2:]


def tag(target: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", target)


def load(target):
    """Return {(module, test_id): (status, one-line message)} for one target."""
    root = ET.parse(out / f"{tag(target)}.xml").getroot()
    cases = {}
    for case in root.iter("testcase"):
        parts = case.get("classname", "").split(".")
        if "array_api_tests" in parts:  # the prefix depends on how pytest found the rootdir
            parts = parts[parts.index("array_api_tests") + 1:]
        module, cls = parts[0], ".".join(parts[1:])
        name = case.get("name", "")
        if cls:
            name = f"{cls}::{name}"  # tests grouped in a class
        status, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            node = case.find(kind)
            if node is not None:
                status = {"failure": "failed", "error": "error", "skipped": "skipped"}[kind]
                text = (node.get("message") or node.text or "").strip()
                message = " ".join(text.split("\n")[0].split())[:240]
                break
        cases[(module, name)] = (status, message)
    return cases


results = {t: load(t) for t in targets}
modules = sorted({m for cases in results.values() for (m, _) in cases})
width = max([len(m) for m in modules] + [len("module")])
cols = [max(len(t), 16) for t in targets]

lines = []
header = f"{'module':<{width}}  " + "  ".join(f"{t:>{c}}" for t, c in zip(targets, cols))
lines.append("failed+errors / run (skipped not counted)")
lines.append(header)
lines.append("-" * len(header))
totals = collections.defaultdict(lambda: [0, 0])
for m in modules:
    row = []
    for t, c in zip(targets, cols):
        bad = sum(1 for (mm, _), (s, _) in results[t].items() if mm == m and s in ("failed", "error"))
        run = sum(1 for (mm, _), (s, _) in results[t].items() if mm == m and s != "skipped")
        totals[t][0] += bad
        totals[t][1] += run
        row.append(f"{f'{bad} / {run}':>{c}}")
    lines.append(f"{m:<{width}}  " + "  ".join(row))
lines.append("-" * len(header))
lines.append(f"{'TOTAL':<{width}}  " + "  ".join(
    f"{f'{totals[t][0]} / {totals[t][1]}':>{c}}" for t, c in zip(targets, cols)))
summary = "\n".join(lines)
print(summary)
(out / "summary.txt").write_text(summary + "\n")


def function_of(name: str) -> str:
    """The spec function a test is about: test_add[add(x1, x2)] -> add."""
    base = name.split("::")[-1].split("[", 1)[0]
    base = re.sub(r"^test_", "", base)
    if "[" in name and base in {"has_names", "func_signature", "array_method_signature",
                                "extension_func_signature", "info_func_signature"}:
        inner = name.split("[", 1)[1].rstrip("]")
        return inner.split("-")[-1].split("(")[0]
    return base


report = ["# Array API conformance: failing tests", "",
          "Suite: data-apis/array-api-tests, ARRAY_API_TESTS_VERSION=2024.12.", "",
          "```", summary, "```", ""]
for t in targets:
    if not t.startswith("hpcai"):
        continue
    fails = [(m, n, msg) for (m, n), (s, msg) in results[t].items() if s in ("failed", "error")]
    report.append(f"## {t}: {len(fails)} failing")
    report.append("")
    by_func = collections.defaultdict(list)
    for m, n, msg in fails:
        by_func[function_of(n)].append((m, n, msg))
    for func in sorted(by_func):
        report.append(f"### {func}")
        for m, n, msg in sorted(by_func[func]):
            report.append(f"- `{m}::{n}`: {msg}")
        report.append("")
(out / "report.md").write_text("\n".join(report) + "\n")
print(f"\nreport: {out / 'report.md'}")
PY
