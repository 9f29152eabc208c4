#!/usr/bin/env bash
# Side-by-side benchmark of bboard against etcd (issue #19, point 2). One command:
#
#   bench/compare-etcd.sh
#
# installs etcd-server and protobuf-compiler (Debian) if missing, builds the etcd load
# client (bench/etcd-load) and bboard in release mode, starts a 3-member etcd cluster on
# loopback (fsync on: etcd's default), and for each value size and client count runs
# etcd-load against it, then `bboard bench` (which starts its own 3-node bboard cluster),
# then prints both sides with the ratios and checks them against the floors.
#
# Environment (all optional):
#   DURATION=20            measured seconds per row and side (at most 300)
#   SIZES="256 1024"       value sizes in bytes
#   CLIENTS="1 16 256"     concurrent closed-loop clients
#   WARMUP=1               etcd-load's unmeasured warm-up, seconds
#   RESULTS_DIR=...        default bench/results/<date>/ (a -HHMMSS suffix if taken)
#   BENCH_TMP=/var/tmp     where the etcd data dirs go (a disk, not tmpfs: fsync matters)
#   BUILD_BBOARD=1         0: do not build bboard; use $BBOARD as it is
#   BBOARD=target/release/bboard
#   BBOARD_BENCH_ARGS=     extra arguments appended to every `bboard bench` call
#   STRICT=0               1: exit 1 if any floor is NOT MET or could not be checked
#   KEEP_DATA=0            1: keep the etcd data dirs and print where they are
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo}"

DURATION="${DURATION:-20}"
SIZES="${SIZES:-256 1024}"
CLIENTS="${CLIENTS:-1 16 256}"
WARMUP="${WARMUP:-1}"
BENCH_TMP="${BENCH_TMP:-/var/tmp}"
BUILD_BBOARD="${BUILD_BBOARD:-1}"
BBOARD="${BBOARD:-${repo}/target/release/bboard}"
BBOARD_BENCH_ARGS="${BBOARD_BENCH_ARGS:-}"
STRICT="${STRICT:-0}"
KEEP_DATA="${KEEP_DATA:-0}"
ETCD_LOAD="${repo}/bench/etcd-load/target/release/etcd-load"
REPORT="${repo}/bench/compare_report.py"

die() {
    echo "compare-etcd: $*" >&2
    exit 1
}

# --- arguments -------------------------------------------------------------------
# in_range VALUE MIN MAX: VALUE is a whole number in MIN..MAX.
in_range() { [[ "$1" =~ ^[0-9]+$ ]] && (($1 >= $2 && $1 <= $3)); }
if ! in_range "${DURATION}" 1 300; then
    die "DURATION must be a whole number of seconds in 1..300 (got '${DURATION}')"
fi
if ! in_range "${WARMUP}" 0 10; then
    die "WARMUP must be a whole number of seconds in 0..10 (got '${WARMUP}')"
fi
for s in ${SIZES}; do
    in_range "${s}" 1 1048576 || die "SIZES: '${s}' is not in 1..1048576"
done
for c in ${CLIENTS}; do
    in_range "${c}" 1 4096 || die "CLIENTS: '${c}' is not in 1..4096"
done
[ -n "${SIZES// /}" ] || die "SIZES is empty"
[ -n "${CLIENTS// /}" ] || die "CLIENTS is empty"

# --- packages --------------------------------------------------------------------
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

installed_etcd_now=0
missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
    echo "== installing ${missing[*]} =="
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    [[ " ${missing[*]} " == *" etcd-server "* ]] && installed_etcd_now=1
fi
command -v cargo >/dev/null 2>&1 || die "cargo is not installed (install Rust with rustup; Debian's cargo is too old)"

# On a machine with systemd, installing etcd-server starts Debian's own etcd on
# 127.0.0.1:2379: stop the one this script just installed, so the ports are free.
if [ "${installed_etcd_now}" = 1 ] && command -v systemctl >/dev/null 2>&1 \
    && systemctl is-active --quiet etcd 2>/dev/null; then
    echo "== stopping the etcd service that installing etcd-server started =="
    as_root systemctl stop etcd
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in 2379 2380 22379 22380 32379 32380; do
    if port_in_use "${port}"; then
        die "port ${port} on 127.0.0.1 is in use (an etcd service? 'systemctl stop etcd'): the benchmark cluster needs it"
    fi
done

# --- results directory -----------------------------------------------------------
if [ -z "${RESULTS_DIR:-}" ]; then
    RESULTS_DIR="${repo}/bench/results/$(date +%Y-%m-%d)"
    [ -e "${RESULTS_DIR}" ] && RESULTS_DIR="${RESULTS_DIR}-$(date +%H%M%S)"
fi
mkdir -p "${RESULTS_DIR}"
RESULTS_DIR="$(cd "${RESULTS_DIR}" && pwd)"
: >"${RESULTS_DIR}/raw.jsonl"
printf 'system\tclients\tvalue_size\tstatus\n' >"${RESULTS_DIR}/rows.tsv"
commands="${RESULTS_DIR}/commands.log"
: >"${commands}"
echo "results: ${RESULTS_DIR}"

# Runs a command, after writing it (shell-quoted) to commands.log.
logged() {
    printf '%q ' "$@" >>"${commands}"
    echo >>"${commands}"
    "$@"
}

# --- builds ----------------------------------------------------------------------
echo "== building bench/etcd-load (release) =="
logged cargo build --release --locked --manifest-path bench/etcd-load/Cargo.toml
if [ "${BUILD_BBOARD}" = 1 ]; then
    echo "== building bboard (release) =="
    logged cargo build --release -p bboard-cli
fi

bboard_bench=0
bboard_warmup=()
if [ -x "${BBOARD}" ] && "${BBOARD}" bench --help >"${RESULTS_DIR}/bboard-bench-help.txt" 2>&1; then
    bboard_bench=1
    # Same warm-up on both sides (bboard bench's default is 1 s too).
    if grep -q -- '--warmup' "${RESULTS_DIR}/bboard-bench-help.txt"; then
        bboard_warmup=(--warmup "${WARMUP}")
    fi
else
    echo "bboard bench not available (${BBOARD} bench --help failed): bboard rows are skipped"
    rm -f "${RESULTS_DIR}/bboard-bench-help.txt"
fi

# --- etcd cluster ----------------------------------------------------------------
mkdir -p "${BENCH_TMP}"
work="$(mktemp -d "${BENCH_TMP%/}/bboard-etcd-bench.XXXXXX")"
etcd_pids=()
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    local pid
    for pid in "${etcd_pids[@]}"; do
        kill "${pid}" 2>/dev/null || true
    done
    for pid in "${etcd_pids[@]}"; do
        wait "${pid}" 2>/dev/null || true
    done
    if [ -d "${work}" ]; then
        cp "${work}"/m*.log "${RESULTS_DIR}/" 2>/dev/null || true
        if [ "${KEEP_DATA}" = 1 ]; then
            echo "etcd data kept in ${work}"
        else
            rm -rf "${work}"
        fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# etcd 3.4 refuses to start on architectures other than amd64 unless told.
arch="$(dpkg --print-architecture 2>/dev/null || uname -m)"
if [ "${arch}" != amd64 ] && [ "${arch}" != x86_64 ]; then
    export ETCD_UNSUPPORTED_ARCH="${arch}"
fi

members=(m1 m2 m3)
client_ports=(2379 22379 32379)
peer_ports=(2380 22380 32380)
initial_cluster="m1=http://127.0.0.1:2380,m2=http://127.0.0.1:22380,m3=http://127.0.0.1:32380"
token="bboard-bench-$$"
echo "== starting a 3-member etcd cluster in ${work} =="
for i in 0 1 2; do
    name="${members[$i]}"
    cp="${client_ports[$i]}"
    pp="${peer_ports[$i]}"
    etcd_cmd=(etcd --name "${name}" --data-dir "${work}/${name}"
        --listen-client-urls "http://127.0.0.1:${cp}" --advertise-client-urls "http://127.0.0.1:${cp}"
        --listen-peer-urls "http://127.0.0.1:${pp}" --initial-advertise-peer-urls "http://127.0.0.1:${pp}"
        --initial-cluster "${initial_cluster}" --initial-cluster-token "${token}"
        --initial-cluster-state new --logger zap)
    printf '%q ' "${etcd_cmd[@]}" >>"${commands}"
    echo "  >${work}/${name}.log 2>&1 &" >>"${commands}"
    "${etcd_cmd[@]}" >"${work}/${name}.log" 2>&1 &
    etcd_pids+=("$!")
done
endpoints="127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379"
if ! python3 "${REPORT}" health http://127.0.0.1:2379 http://127.0.0.1:22379 http://127.0.0.1:32379 --timeout 60; then
    tail -n 20 "${work}"/m*.log >&2 || true
    die "the etcd cluster did not become healthy"
fi
for pid in "${etcd_pids[@]}"; do
    kill -0 "${pid}" 2>/dev/null || die "an etcd member exited (logs in ${RESULTS_DIR})"
done
echo "etcd cluster healthy: ${endpoints}"

# --- how each side is driven ------------------------------------------------------
{
    echo "# How this run was driven"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- host: $(uname -srm); nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')"
    echo "- memory: $(free -h 2>/dev/null | awk '/^Mem:/{print $2}')"
    echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- etcd data dirs: ${work} (filesystem $(df -T "${work}" | awk 'NR==2{print $2}'))"
    echo "- matrix: SIZES='${SIZES}' CLIENTS='${CLIENTS}' DURATION=${DURATION} s per row and side"
    echo "- repo commit: $(git -C "${repo}" rev-parse HEAD 2>/dev/null || echo unknown)$( [ -n "$(git -C "${repo}" status --porcelain 2>/dev/null | head -1)" ] && echo ' (work tree has uncommitted changes)')"
    echo "- rustc: $(rustc --version 2>/dev/null || echo unknown); cargo: $(cargo --version 2>/dev/null || echo unknown)"
    echo
    echo "## etcd"
    echo
    echo '```'
    etcd --version 2>&1 || true
    echo '```'
    echo
    echo "- Debian package: $(dpkg-query -W -f='${Package} ${Version}' etcd-server 2>/dev/null || echo 'not from a Debian package')"
    echo "- 3 members, one process each, on loopback; client ports 2379/22379/32379, peer ports"
    echo "  2380/22380/32380; every flag not on the command lines below is etcd's default"
    echo "  (fsync of the WAL on every commit, heartbeat 100 ms, election 1000 ms, snapshot"
    echo "  count 100000, no auto-compaction, quota 2 GiB). One cluster serves every row."
    echo "- member command lines: see commands.log."
    echo "- load: bench/etcd-load (etcd-client $(awk '/^name = "etcd-client"/{getline; print $3}' bench/etcd-load/Cargo.lock | tr -d '"'), protoc: $(protoc --version 2>/dev/null || echo unknown))"
    echo "  N clients, each its own etcd Client (one gRPC connection) to one endpoint taken"
    echo "  round-robin (client i -> endpoint i mod 3, as etcd's own benchmark tool does; a"
    echo "  follower forwards the put to the leader); each client puts a fresh key"
    echo "  bench/<run>/<client>/<seq> with a fresh random value of B bytes, one after the"
    echo "  other; latency from just before the put is sent to its response (committed by a"
    echo "  majority and applied). Warm-up ${WARMUP} s not counted, then ${DURATION} s measured."
    echo
    echo "## bboard"
    echo
    if [ "${bboard_bench}" = 1 ]; then
        echo "- binary: ${BBOARD} ($("${BBOARD}" --version 2>/dev/null || echo 'version unknown'))"
        if [ "${BUILD_BBOARD}" = 1 ]; then
            echo "- built by this run with: cargo build --release -p bboard-cli"
        else
            echo "- not built by this run (BUILD_BBOARD=0): taken as it was, modified $(date -u -r "${BBOARD}" +%Y-%m-%dT%H:%M:%SZ)"
        fi
        case "${BBOARD}" in
            */debug/*) echo "- WARNING: a debug build; its figures are not benchmark figures" ;;
        esac
        echo "- command: bboard bench --clients N --value-size B --duration ${DURATION} ${bboard_warmup[*]} --data-dir ${BENCH_TMP} --json ${BBOARD_BENCH_ARGS}"
        echo "  (it starts its own 3-node cluster of separate processes on loopback, fsync on; latency"
        echo "  is to a receipt verified against 2-of-3 node signatures). Its --help is in"
        echo "  bboard-bench-help.txt. The etcd cluster stays up, idle, while bboard runs."
    else
        echo "- bboard bench was not available (${BBOARD} bench --help failed): no bboard rows."
    fi
    echo
    echo "## Order"
    echo
    echo "For each value size, for each client count: etcd-load, then bboard bench. Every"
    echo "command, exactly as run, is in commands.log; the raw result objects in raw.jsonl."
} >"${RESULTS_DIR}/DRIVEN.md"

# --- the matrix ------------------------------------------------------------------
row_timeout=$((DURATION + WARMUP + 180))
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"${RESULTS_DIR}/rows.tsv"; }

for size in ${SIZES}; do
    for n in ${CLIENTS}; do
        echo "== etcd: ${n} client(s), ${size} B, ${DURATION} s =="
        rc=0
        out="$(logged timeout "${row_timeout}" "${ETCD_LOAD}" --endpoints "${endpoints}" --clients "${n}" \
            --value-size "${size}" --duration "${DURATION}" --warmup "${WARMUP}" --json \
            2>>"${RESULTS_DIR}/etcd-load.stderr")" || rc=$?
        if [ "${rc}" = 0 ] && line="$(python3 "${REPORT}" check-json etcd <<<"${out}")"; then
            echo "${line}" | tee -a "${RESULTS_DIR}/raw.jsonl"
            record etcd "${n}" "${size}" ok
        else
            echo "etcd-load failed (exit ${rc}); see etcd-load.stderr"
            record etcd "${n}" "${size}" "etcd-load failed (exit ${rc})"
        fi

        echo "== bboard: ${n} client(s), ${size} B, ${DURATION} s =="
        if [ "${bboard_bench}" = 0 ]; then
            echo "bboard bench not available"
            record bboard "${n}" "${size}" "bboard bench not available"
            continue
        fi
        rc=0
        # shellcheck disable=SC2086 # BBOARD_BENCH_ARGS is a list of words on purpose
        out="$(logged timeout "${row_timeout}" "${BBOARD}" bench --clients "${n}" --value-size "${size}" \
            --duration "${DURATION}" "${bboard_warmup[@]}" --data-dir "${BENCH_TMP}" --json ${BBOARD_BENCH_ARGS} \
            2>>"${RESULTS_DIR}/bboard-bench.stderr")" || rc=$?
        if [ "${rc}" = 0 ] && line="$(python3 "${REPORT}" check-json bboard <<<"${out}")"; then
            echo "${line}" | tee -a "${RESULTS_DIR}/raw.jsonl"
            record bboard "${n}" "${size}" ok
        else
            echo "bboard bench failed (exit ${rc}); see bboard-bench.stderr"
            record bboard "${n}" "${size}" "bboard bench failed (exit ${rc})"
        fi
    done
done

member_urls=(http://127.0.0.1:2379 http://127.0.0.1:22379 http://127.0.0.1:32379)
{
    echo
    echo "## fsync check"
    echo
    echo "WAL fsyncs each etcd member did (etcd_disk_wal_fsync_duration_seconds, from its"
    echo "/metrics after the last row):"
    echo
    echo '```'
    python3 "${REPORT}" fsyncs "${member_urls[@]}"
    echo '```'
} >>"${RESULTS_DIR}/DRIVEN.md"

echo "== side by side =="
strict_flag=()
[ "${STRICT}" = 1 ] && strict_flag=(--strict)
rc=0
python3 "${REPORT}" report "${RESULTS_DIR}" --sizes "${SIZES}" --clients "${CLIENTS}" "${strict_flag[@]}" || rc=$?
echo "results in ${RESULTS_DIR}: raw.jsonl, table.md, summary.json, DRIVEN.md, commands.log"
exit "${rc}"
