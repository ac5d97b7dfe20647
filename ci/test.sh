#!/usr/bin/env bash
# The project's test command: a fresh venv, a non-editable install, ruff, mypy, pytest.
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

cd "$root"
echo "== ruff"
"$venv/bin/ruff" check hpcai backends storage tests benchmarks
echo "== mypy (against the installed package)"
(cd "$work" && "$venv/bin/mypy" --config-file "$root/pyproject.toml" -p hpcai)
echo "== pytest"
export XLA_FLAGS="--xla_force_host_platform_device_count=4"
"$venv/bin/pytest" -q -p no:cacheprovider "$@"
