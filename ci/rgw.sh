#!/usr/bin/env bash
# A throw-away one-node Ceph RGW (S3) for tests: 1 monitor + 1 OSD (bluestore on a sparse
# file, or memstore) + radosgw, all state under one directory, bound to 127.0.0.1 on free
# ports, `auth none`.
#
#   ci/rgw.sh install        apt-get install radosgw ceph-mon ceph-osd (when missing)
#   ci/rgw.sh start DIR      start a cluster in DIR (created; must be empty or absent) and write
#                            DIR/env: `export HPCAI_RGW_*=...` lines (endpoint URL, keys, region,
#                            PIDs); prints the endpoint URL
#   ci/rgw.sh stop DIR       stop the daemons started in DIR (only the PIDs recorded there)
#
# Tests use it with `HPCAI_TEST_RGW=DIR pytest tests/storage -m rgw` (see docs/rgw.md).
# Environment: RGW_REGION (default us-east-1: the region S3 clients send as LocationConstraint),
# RGW_ACCESS_KEY / RGW_SECRET_KEY (default: random), RGW_START_TIMEOUT (seconds, default 90),
# RGW_OSD_STORE (bluestore: ~8 s to start, OSD memory bounded; memstore: ~1.5 s, every object
# held in the OSD's memory), RGW_OSD_BYTES (the OSD's capacity; default 20 GiB / 4 GiB).
set -euo pipefail

PACKAGES=(radosgw ceph-mon ceph-osd)
BINARIES=(radosgw radosgw-admin ceph-mon ceph-osd ceph monmaptool)

die() { echo "ci/rgw.sh: $*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

have_binaries() {
    local b
    for b in "${BINARIES[@]}"; do
        command -v "$b" >/dev/null 2>&1 || return 1
    done
}

cmd_install() {
    if have_binaries; then
        echo "ci/rgw.sh: Ceph RGW is installed ($(radosgw --version 2>/dev/null | awk '{print $3}'))"
        return 0
    fi
    [[ "$(id -u)" == 0 ]] || die "cannot install ${PACKAGES[*]}: not root (run as root, or install them yourself)"
    command -v apt-get >/dev/null 2>&1 || die "cannot install ${PACKAGES[*]}: no apt-get on this machine"
    local log
    log="$(mktemp)"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >"$log" 2>&1 ||
           { apt-get update -q >>"$log" 2>&1 &&
             DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >>"$log" 2>&1; }; }; then
        tail -n 5 "$log" >&2
        rm -f "$log"
        die "cannot install ${PACKAGES[*]}: apt-get failed (its last lines are above)"
    fi
    rm -f "$log"
    have_binaries || die "installed ${PACKAGES[*]} but some of ${BINARIES[*]} are still missing"
    echo "ci/rgw.sh: installed ${PACKAGES[*]} ($(radosgw --version 2>/dev/null | awk '{print $3}'))"
}

# A free TCP port on 127.0.0.1 (the kernel picks one; another process could take it before we
# bind it, which start() reports as a failed start).
free_port() {
    local py
    py="$(command -v /usr/bin/python3 || command -v python3)" || die "python3 is needed to pick free ports"
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

random_string() {  # $1 characters from [A-Z0-9] (or [A-Za-z0-9] with $2 = mixed)
    local set='A-Z0-9'
    [[ "${2:-}" == mixed ]] && set='A-Za-z0-9'
    LC_ALL=C tr -dc "$set" </dev/urandom | head -c "$1" || true
}

elapsed() { echo "$(( $(date +%s%N) / 1000000 - t0 ))"; }

tail_logs() {
    local f
    for f in "$dir"/log/*.log "$dir"/log/*.out; do
        [[ -s "$f" ]] || continue
        echo "---- last lines of $f" >&2
        tail -n 25 "$f" >&2
    done
}

fail_start() {
    echo "ci/rgw.sh: start failed after $(elapsed) ms: $*" >&2
    tail_logs
    cmd_stop "$dir" >/dev/null 2>&1 || true
    exit 1
}

alive() {  # a running process (not a zombie waiting for its parent to collect it)
    kill -0 "$1" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]]
}

record_pid() {  # name pid
    echo "$1 $2" >>"$dir/pids"
}

# Wait until "$@" succeeds, at most until the start deadline; $what names it in the error.
wait_for() {
    local what="$1"
    shift
    while ! "$@" >/dev/null 2>&1; do
        (( $(date +%s) < deadline )) || fail_start "timed out waiting for $what"
        check_alive
        sleep 0.1
    done
}

check_alive() {
    local name pid
    [[ -f "$dir/pids" ]] || return 0
    while read -r name pid; do
        alive "$pid" || fail_start "$name (pid $pid) exited"
    done <"$dir/pids"
}

cmd_start() {
    [[ $# == 1 ]] || usage
    have_binaries || die "Ceph RGW is not installed (run: ci/rgw.sh install)"
    mkdir -p "$1"
    dir="$(cd "$1" && pwd)"
    [[ -z "$(ls -A "$dir")" ]] || die "$dir is not empty (start needs a fresh directory)"
    t0=$(( $(date +%s%N) / 1000000 ))
    deadline=$(( $(date +%s) + ${RGW_START_TIMEOUT:-90} ))
    local region="${RGW_REGION:-us-east-1}"
    local key="${RGW_ACCESS_KEY:-$(random_string 20)}"
    local secret="${RGW_SECRET_KEY:-$(random_string 40 mixed)}"
    local fsid osd_uuid mon_port rgw_port store_conf
    case "${RGW_OSD_STORE:-bluestore}" in
        # bluestore on a sparse file: objects on disk, the OSD's memory bounded by a fixed cache
        bluestore) store_conf="osd objectstore = bluestore
bluestore block path = $dir/osd/block
bluestore block create = true
bluestore block size = ${RGW_OSD_BYTES:-21474836480}
bluestore fsck on mkfs = false
bluestore fsck on mount = false
bluestore cache autotune = false
bluestore cache size = 134217728" ;;
        # memstore: every object in the OSD's memory (RSS grows with what the tests store)
        memstore) store_conf="osd objectstore = memstore
memstore device bytes = ${RGW_OSD_BYTES:-4294967296}" ;;
        *) die "RGW_OSD_STORE must be bluestore or memstore, got ${RGW_OSD_STORE}" ;;
    esac
    fsid="$(cat /proc/sys/kernel/random/uuid)"
    osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
    mon_port="$(free_port)"
    rgw_port="$(free_port)"
    while [[ "$rgw_port" == "$mon_port" ]]; do rgw_port="$(free_port)"; done
    mkdir -p "$dir"/{mon,osd,rgw,run,log,crash}
    export CEPH_CONF="$dir/ceph.conf"
    cat >"$CEPH_CONF" <<EOF
# Written by ci/rgw.sh: a throw-away one-node cluster; nothing here is for production.
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_port]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
# with auth off, the v2 messenger's "secure" mode cannot be negotiated: radosgw would hang
# 300 s fetching its config from the monitor
ms mode = crc
ms client mode = crc
ms cluster mode = crc
ms service mode = crc
ms mon client mode = crc
ms mon cluster mode = crc
ms mon service mode = crc
keyring = /dev/null
run dir = $dir/run
crash dir = $dir/crash
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
log to stderr = false
err to stderr = true
mon cluster log file = $dir/log/cluster.log
pid file =
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd crush chooseleaf type = 0
# start-up 11.6 s -> 1.5 s: radosgw creates its pools one proposal after another
paxos propose interval = 0.05
mon data = $dir/mon/\$cluster-\$id
osd data = $dir/osd/\$cluster-\$id
$store_conf
osd max object name len = 460
osd max object namespace len = 64
rados mon op timeout = 30
rados osd op timeout = 30
client mount timeout = 30

[mon]
# the monitor binds where the monmap says (a bare public addr would mean the default ports)
public addrv = [v2:127.0.0.1:$mon_port]

[client.rgw]
rgw data = $dir/rgw
# tcp_nodelay: small GETs 46 ms -> 3 ms
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw init timeout = 60
rgw thread pool size = 64
rgw dns name = 127.0.0.1
EOF
    # monitor
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >"$dir/log/mkfs.out" 2>&1 ||
        fail_start "monmaptool failed"
    ceph-mon --mkfs -i a --monmap "$dir/monmap" >>"$dir/log/mkfs.out" 2>&1 || fail_start "ceph-mon --mkfs failed"
    ceph-mon -f -i a >"$dir/log/mon.a.out" 2>&1 &
    record_pid mon.a $!
    wait_for "the monitor" timeout 10 ceph --connect-timeout 5 mon stat
    # OSD
    local osd_id
    osd_id="$(timeout 30 ceph osd new "$osd_uuid" 2>>"$dir/log/mkfs.out")" || fail_start "ceph osd new failed"
    mkdir -p "$dir/osd/ceph-$osd_id"
    ceph-osd -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >>"$dir/log/mkfs.out" 2>&1 || fail_start "ceph-osd --mkfs failed"
    ceph-osd -f -i "$osd_id" >"$dir/log/osd.$osd_id.out" 2>&1 &
    record_pid "osd.$osd_id" $!
    # the S3 user (this also creates the default zone and zonegroup), then the zonegroup's
    # api_name: the region S3 clients send as LocationConstraint (s3fs mkdir sends its
    # region_name); both before radosgw starts, which reads them once
    timeout 30 radosgw-admin -n client.rgw user create --uid=hpcai --display-name="hpcai tests" \
        --access-key="$key" --secret-key="$secret" >>"$dir/log/mkfs.out" 2>&1 || fail_start "radosgw-admin user create failed"
    local zg
    zg="$(timeout 30 radosgw-admin -n client.rgw zonegroup get --rgw-zonegroup=default 2>>"$dir/log/mkfs.out")" ||
        fail_start "radosgw-admin zonegroup get failed"
    printf '%s' "$zg" | sed -E "s/\"api_name\": *\"[^\"]*\"/\"api_name\": \"$region\"/" >"$dir/zonegroup.json"
    grep -q "\"api_name\": \"$region\"" "$dir/zonegroup.json" || fail_start "no api_name in the default zonegroup"
    timeout 30 radosgw-admin -n client.rgw zonegroup set --rgw-zonegroup=default --infile "$dir/zonegroup.json" \
        >>"$dir/log/mkfs.out" 2>&1 || fail_start "radosgw-admin zonegroup set failed"
    radosgw -f -n client.rgw >"$dir/log/rgw.out" 2>&1 &
    record_pid radosgw $!
    local url="http://127.0.0.1:$rgw_port"
    wait_for "radosgw to answer on $url" curl -sf -o /dev/null --max-time 2 "$url/"
    {
        echo "# Ceph RGW started by ci/rgw.sh in $dir; stop it with: ci/rgw.sh stop $dir"
        echo "export HPCAI_RGW_DIR='$dir'"
        echo "export HPCAI_RGW_ENDPOINT='$url'"
        echo "export HPCAI_RGW_REGION='$region'"
        echo "export HPCAI_RGW_ACCESS_KEY='$key'"
        echo "export HPCAI_RGW_SECRET_KEY='$secret'"
        echo "export HPCAI_RGW_PIDS='$(awk '{print $2}' "$dir/pids" | xargs)'"
        echo "export HPCAI_RGW_VERSION='$(radosgw --version 2>/dev/null | awk '{print $3}')'"
    } >"$dir/env"
    chmod 600 "$dir/env"
    echo "ci/rgw.sh: Ceph RGW at $url (started in $(elapsed) ms; settings in $dir/env)"
}

cmd_stop() {
    [[ $# == 1 ]] || usage
    local d name pid pids=() n
    d="$(cd "$1" 2>/dev/null && pwd)" || die "no directory $1"
    [[ -f "$d/pids" ]] || { echo "ci/rgw.sh: nothing to stop in $d (no $d/pids)"; return 0; }
    # reverse order (radosgw, OSD, monitor), each given a second to exit on SIGTERM (radosgw
    # takes 10 s to drain; nothing here is worth keeping), and only processes whose environment
    # names this directory's config (a recorded PID could have been reused by another process)
    while read -r name pid; do
        if [[ -r "/proc/$pid/environ" ]] && tr '\0' '\n' <"/proc/$pid/environ" | grep -qxF "CEPH_CONF=$d/ceph.conf"; then
            pids=("$pid" "${pids[@]}")
        fi
    done <"$d/pids"
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        for n in $(seq 1 20); do
            alive "$pid" || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -f "$d/pids"
    echo "ci/rgw.sh: stopped ${#pids[@]} process(es) started in $d"
}

case "${1:-}" in
    install) shift; [[ $# == 0 ]] || usage; cmd_install ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    *) usage ;;
esac
