#!/usr/bin/env bash
# The project's test command: a fresh venv, a non-editable install, ruff, mypy, pytest, and
# the official Array API conformance suite on four devices (when ../shared/array-api-tests
# is present). Arguments go to pytest. HPCAI_CONFORMANCE=0 leaves the suite out.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
venv="${HPCAI_CI_VENV:-$work/venv}"
python3 -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install -q --upgrade pip
# Non-editable on purpose: a subpackage missing from the wheel must fail the tests.
"$py" -m pip install -q "$root[test,jax,s3,dask]"
suite="${ARRAY_API_TESTS_DIR:-$root/../shared/array-api-tests}"
conformance="${HPCAI_CONFORMANCE:-1}"
if [[ "$conformance" != 0 && -d "$suite/array_api_tests" ]]; then
    "$py" -m pip install -q -r "$suite/requirements.txt"
fi

cd "$root"
echo "== ruff"
"$venv/bin/ruff" check hpcai backends storage tests benchmarks
echo "== mypy (against the installed package)"
(cd "$work" && "$venv/bin/mypy" --config-file "$root/pyproject.toml" -p hpcai)
echo "== pytest"
export XLA_FLAGS="--xla_force_host_platform_device_count=4"
"$venv/bin/pytest" -q -p no:cacheprovider "$@"

if [[ "$conformance" == 0 ]]; then
    echo "== Array API conformance: skipped (HPCAI_CONFORMANCE=0)"
elif [[ ! -d "$suite/array_api_tests" ]]; then
    echo "== Array API conformance: skipped (no data-apis/array-api-tests at $suite; see ci/conformance.sh)"
else
    echo "== Array API conformance (data-apis/array-api-tests, 2024.12, 20 examples per test)"
    PYTHON="$py" CONFORMANCE_OUT="$work/conformance" "$root/ci/conformance.sh" --examples 20 "$suite"
fi
