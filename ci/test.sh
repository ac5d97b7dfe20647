#!/usr/bin/env bash
# The project's test command: a fresh venv, a non-editable install, ruff, mypy, pytest, the
# storage tests again against a throw-away Ceph RGW (ci/rgw.sh; when it can be installed and
# started), and the official Array API conformance suite on four devices, beside pytest (when
# ../shared/array-api-tests is present). Arguments go to the first pytest run.
# HPCAI_CONFORMANCE=0 leaves the Array API suite out; HPCAI_RGW=0 leaves the RGW pass out,
# HPCAI_RGW=require makes it an error when RGW cannot be installed or started.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
rgw_dir=""
conf_pid=""
cleanup() {
    if [[ -n "$conf_pid" ]]; then
        kill -- "-$conf_pid" 2>/dev/null || true  # its own process group: the suite's pytest too
    fi
    if [[ -n "$rgw_dir" ]]; then
        "$root/ci/rgw.sh" stop "$rgw_dir" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
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
"$venv/bin/ruff" check hpcai backends storage tests benchmarks ci
echo "== mypy (against the installed package)"
(cd "$work" && "$venv/bin/mypy" --config-file "$root/pyproject.toml" -p hpcai)
export XLA_FLAGS="--xla_force_host_platform_device_count=4"
export HYPOTHESIS_PROFILE=ci  # derandomized property tests (tests/conftest.py)
# The conformance suite runs beside pytest (its output is printed, and its status counted, at the
# end): pytest keeps one core busy about half the time (subprocess clusters, servers, I/O),
# and the suite is single-threaded. The suite disables hypothesis deadlines, so sharing the
# cores changes its timing, never its result.
conf_pid=""
conf_log="$work/conformance.log"
if [[ "$conformance" != 0 && -d "$suite/array_api_tests" ]]; then
    PYTHON="$py" CONFORMANCE_OUT="$work/conformance" setsid "$root/ci/conformance.sh" --examples 20 \
        "$suite" >"$conf_log" 2>&1 &
    conf_pid=$!
fi
echo "== pytest"
HPCAI_TEST_ENDPOINT_COUNTS="$work/endpoints-main.json" "$venv/bin/pytest" -q -p no:cacheprovider "$@"

# The storage tests that reach the EU on-prem store again, with a real Ceph RGW playing it
# (moto still plays the US cloud): the endpoint conformance suite and the storage tests.
rgw_mode="${HPCAI_RGW:-1}"
rgw_skip=""
rgw_skipped() {
    rgw_skip="$1"
    if [[ "$rgw_mode" == require ]]; then
        echo "== Ceph RGW: cannot run ($1) and HPCAI_RGW=require" >&2
        exit 1
    fi
    echo "== Ceph RGW: skipped ($1)"
}
if [[ "$rgw_mode" == 0 ]]; then
    rgw_skipped "HPCAI_RGW=0"
elif ! install_out="$("$root/ci/rgw.sh" install 2>&1)"; then
    rgw_skipped "$(tail -n 1 <<<"$install_out" | sed 's|^ci/rgw.sh: ||')"
else
    echo "== Ceph RGW: $(tail -n 1 <<<"$install_out" | sed 's|^ci/rgw.sh: ||')"
    # the S3 user gets the suite's dummy credentials: tests that use them directly reach RGW too
    # (imported from $work: from the root, python would find the source tree's hpcai/ first)
    rgw_creds="$(cd "$work" && "$py" -c 'from hpcai.storage.testing import KEY, SECRET; print(KEY, SECRET)')"
    read -r rgw_key rgw_secret <<<"$rgw_creds"
    rgw_dir="$work/rgw"
    if RGW_ACCESS_KEY="$rgw_key" RGW_SECRET_KEY="$rgw_secret" "$root/ci/rgw.sh" start "$rgw_dir"; then
        echo "== pytest tests/storage -m rgw (the EU on-prem store played by Ceph RGW)"
        HPCAI_TEST_RGW="$rgw_dir" HPCAI_TEST_ENDPOINT_COUNTS="$work/endpoints-rgw.json" \
            "$venv/bin/pytest" -q -p no:cacheprovider tests/storage -m rgw
        "$root/ci/rgw.sh" stop "$rgw_dir"
        rgw_dir=""
    else
        rgw_dir=""  # start stopped what it had started
        rgw_skipped "ci/rgw.sh start failed; the daemons' last log lines are above"
    fi
fi
"$py" "$root/ci/endpoint_counts.py" "$work/endpoints-main.json" "$work/endpoints-rgw.json" "$rgw_skip"

if [[ "$conformance" == 0 ]]; then
    echo "== Array API conformance: skipped (HPCAI_CONFORMANCE=0)"
elif [[ ! -d "$suite/array_api_tests" ]]; then
    echo "== Array API conformance: skipped (no data-apis/array-api-tests at $suite; see ci/conformance.sh)"
else
    echo "== Array API conformance (data-apis/array-api-tests, 2024.12, 20 examples per test; ran beside pytest)"
    conf_rc=0
    wait "$conf_pid" || conf_rc=$?
    conf_pid=""
    cat "$conf_log"
    exit "$conf_rc"
fi
