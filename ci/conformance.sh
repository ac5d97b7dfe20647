#!/usr/bin/env bash
# Python Array API 2024.12 conformance: runs the official suite (data-apis/array-api-tests)
# against hpcai on each target device and fails if any test fails.
#
#   ci/conformance.sh [--examples N] [--targets "T1 T2 ..."] [SUITE_DIR] [-- EXTRA_PYTEST_ARGS...]
#
#   SUITE_DIR       an array-api-tests checkout with its array-api submodule (default:
#                   $ARRAY_API_TESTS_DIR, else ../shared/array-api-tests beside the repository).
#                   It is never written to: the suite runs from a temporary copy (hypothesis
#                   and pytest write caches beside it, and shared/ is read-only in CI).
#   --examples N    hypothesis examples per test (default 20; e.g. 200 for a deeper run).
#                   Examples are derandomized, so a run is repeatable.
#   --targets ...   space-separated targets, each MODULE@DEVICE or MODULE@DEVICE=PRESET
#                   (default: "hpcai@numpy:cpu hpcai@emulated:0 hpcai@emulated:2=gaudi3
#                   hpcai@jax:cpu:0", the JAX target only where JAX imports). DEVICE=PRESET
#                   configures that emulated device with the preset for the run
#                   ([devices."DEVICE"] preset = "PRESET"). A plain MODULE (e.g.
#                   array_api_strict) runs the suite on another library for comparison.
#
# Environment: PYTHON (interpreter with hpcai and the suite's requirements.txt installed;
# default python3), CONFORMANCE_OUT (folder for JUnit XML, logs and summary; default
# ./conformance-out), CONFORMANCE_SKIPS (default ci/conformance-skips.txt).
#
# Dtypes a device does not have (float64/complex128 on an FP64-less accelerator) are left
# out with the suite's own switch, ARRAY_API_TESTS_SKIP_DTYPES, read from the device's
# inspection namespace. Skips: ci/conformance-skips.txt, one test per line with the device
# pattern it applies to and the reason; see that file.
#
# Exit status: 0 when every target ran with no failure or error, 1 otherwise, 2 on bad usage.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
examples=20
targets="${CONFORMANCE_TARGETS:-}"
suite="${ARRAY_API_TESTS_DIR:-}"
extra=()
usage() { sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --examples) examples="${2:?--examples needs a number}"; shift 2 ;;
        --examples=*) examples="${1#*=}"; shift ;;
        --targets) targets="${2:?--targets needs a list}"; shift 2 ;;
        --targets=*) targets="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        -*) echo "conformance.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) suite="$1"; shift ;;
    esac
done
if ! [[ "$examples" =~ ^[1-9][0-9]*$ ]]; then
    echo "conformance.sh: --examples needs a positive integer, got '$examples'" >&2
    exit 2
fi
if [[ -z "$suite" ]]; then
    suite="$here/../../shared/array-api-tests"
fi
if [[ ! -d "$suite/array_api_tests" ]]; then
    echo "conformance.sh: no array-api-tests checkout at '$suite'; pass its path or set ARRAY_API_TESTS_DIR" \
         "(git clone --recurse-submodules https://github.com/data-apis/array-api-tests)" >&2
    exit 2
fi
if [[ ! -d "$suite/array-api/src/array_api_stubs" ]]; then
    echo "conformance.sh: $suite/array-api is empty; run 'git submodule update --init' in the checkout" >&2
    exit 2
fi
suite="$(cd "$suite" && pwd)"
py="${PYTHON:-python3}"
export XLA_FLAGS="${XLA_FLAGS:---xla_force_host_platform_device_count=4}"
if [[ -z "$targets" ]]; then
    targets="hpcai@numpy:cpu hpcai@emulated:0 hpcai@emulated:2=gaudi3"
    if "$py" -c "import jax" 2>/dev/null; then
        targets="$targets hpcai@jax:cpu:0"
    else
        echo "conformance.sh: JAX is not installed; the jax:cpu:0 target is left out"
    fi
fi
out="$(mkdir -p "${CONFORMANCE_OUT:-conformance-out}" && cd "${CONFORMANCE_OUT:-conformance-out}" && pwd)"
skips="${CONFORMANCE_SKIPS:-$here/conformance-skips.txt}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -R "$suite" "$work/suite"
chmod -R u+w "$work/suite"

status=0
for target in $targets; do
    module="${target%%@*}"
    spec=""
    [[ "$target" == *@* ]] && spec="${target#*@}"
    device="${spec%%=*}"
    preset=""
    [[ "$spec" == *=* ]] && preset="${spec#*=}"
    tag="${target//[^A-Za-z0-9_.-]/_}"
    config="$work/$tag.toml"
    : >"$config"  # an explicit (empty) config: no hpcai.toml of the caller's leaks in
    if [[ -n "$preset" ]]; then
        printf '[devices."%s"]\npreset = "%s"\n' "$device" "$preset" >"$config"
    fi
    # The suite's skip lines that apply to this target (see conformance-skips.txt).
    "$py" - "$skips" "$spec" >"$work/$tag.skips" <<'PY'
import fnmatch
import sys

path, device = sys.argv[1], sys.argv[2]
for n, line in enumerate(open(path), 1):
    text = line.split("#", 1)[0].strip()
    if not text:
        continue
    pattern, _, node = text.partition(" ")
    node = node.strip()
    if not node.startswith("array_api_tests/"):
        sys.exit(f"{path}:{n}: expected 'DEVICE-PATTERN array_api_tests/...  # reason', got {line!r}")
    if "#" not in line or not line.split("#", 1)[1].strip():
        sys.exit(f"{path}:{n}: every skip needs its reason after '#'")
    if fnmatch.fnmatchcase(device, pattern):
        print(node)
PY
    skip_dtypes=""
    if [[ "$module" == "hpcai" && -n "$device" ]]; then
        # (from the work folder: in the repository root, `import hpcai` would find the
        # source folder instead of the installed package)
        skip_dtypes="$(cd "$work" && HPCAI_CONFIG="$config" "$py" -c '
import sys, hpcai as xp
have = xp.__array_namespace_info__().dtypes(device=sys.argv[1])
std = ("bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 float32 float64 complex64 complex128").split()
print(",".join(d for d in std if d not in have))' "$device")"
    fi
    echo "== $target: $examples examples per test${skip_dtypes:+; without $skip_dtypes (the device lacks them)}"
    set +e
    (
        cd "$work/suite"
        export ARRAY_API_TESTS_MODULE="$module" ARRAY_API_TESTS_VERSION=2024.12 HPCAI_CONFIG="$config"
        if [[ -n "$device" ]]; then export HPCAI_DEVICE="$device"; else unset HPCAI_DEVICE; fi
        if [[ -n "$skip_dtypes" ]]; then
            export ARRAY_API_TESTS_SKIP_DTYPES="$skip_dtypes"
        else
            unset ARRAY_API_TESTS_SKIP_DTYPES
        fi
        "$py" -m pytest array_api_tests -q -p no:cacheprovider --rootdir="$work/suite" \
            --max-examples="$examples" --derandomize --disable-deadline \
            --skips-file "$work/$tag.skips" --junitxml="$out/$tag.xml" \
            ${extra[@]+"${extra[@]}"}
    ) >"$out/$tag.log" 2>&1
    rc=$?
    set -e
    grep -E '^(FAILED|ERROR) ' "$out/$tag.log" | cut -c1-200 || true
    tail -n 1 "$out/$tag.log"
    if [[ ! -f "$out/$tag.xml" ]]; then
        echo "conformance.sh: pytest exited $rc for $target without a report; see $out/$tag.log" >&2
        status=1
    elif [[ $rc -ne 0 ]]; then
        status=1
    fi
done

"$py" - "$out" $targets <<'PY' || status=1
"""One table: passed / failed / skipped per target, from the JUnit files."""
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

out, targets = Path(sys.argv[1]), sys.argv[2:]
rows = [("target", "passed", "failed", "skipped")]
for t in targets:
    xml = out / (re.sub(r"[^A-Za-z0-9_.-]", "_", t) + ".xml")
    if not xml.exists():
        rows.append((t, "-", "no report", "-"))
        continue
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for case in ET.parse(xml).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    rows.append((t, str(counts["passed"]), str(counts["failed"]), str(counts["skipped"])))
widths = [max(len(r[i]) for r in rows) for i in range(4)]
text = "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows)
print(text)
(out / "summary.txt").write_text(text + "\n")
PY
exit $status
