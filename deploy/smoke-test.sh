#!/usr/bin/env bash
# End-to-end check of the container deployment: builds the image, writes a fresh
# 3-organisation cluster, starts it with compose, posts the genesis and a note through
# the CLI container with a verified 2-of-3 receipt, stops one node and appends again,
# then tears everything down. Usage: deploy/smoke-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export BBOARD_IMAGE="${BBOARD_IMAGE:-bboard:smoke}"
deploy/build-image.sh "${BBOARD_IMAGE}"
work="$(mktemp -d)"
export CLUSTER_DIR="${work}/cluster"
project="bboard-smoke-$$"
# Docker's compose plugin, or the standalone docker-compose.
if docker compose version >/dev/null 2>&1; then
    compose() { docker compose -p "${project}" -f deploy/compose.yaml "$@"; }
else
    compose() { docker-compose -p "${project}" -f deploy/compose.yaml "$@"; }
fi
cleanup() { compose down --volumes --timeout 5 >/dev/null 2>&1 || true; rm -rf "${work}"; }
trap cleanup EXIT
bin="$(mktemp -d)/bboard"
docker create --name "${project}-extract" "${BBOARD_IMAGE}" >/dev/null
docker cp "${project}-extract:/bboard" "${bin}"
docker rm "${project}-extract" >/dev/null
BBOARD="${bin}" deploy/make-cluster.sh "${CLUSTER_DIR}"
export CLI_UID="$(id -u)" CLI_GID="$(id -g)"
if [ "$(id -u)" != 0 ]; then
    # make-cluster.sh could not hand the node directories to the image's user.
    export BBOARD_UID="$(id -u)" BBOARD_GID="$(id -g)"
fi
compose up -d node1 node2 node3
cli() { compose run --rm -T cli "$@"; }
trust=(--trusted-keys /cluster/trusted-keys.txt --origin compose.bboard.local/election)
organisations=()
while read -r organisation; do organisations+=(--organisation "${organisation}"); done \
    < "${CLUSTER_DIR}/organisations.txt"
for attempt in $(seq 1 30); do
    if cli genesis --endpoint node1:7101 --authority-key /cluster/authority.key \
        --origin compose.bboard.local/election "${organisations[@]}"; then
        break
    fi
    [ "${attempt}" -lt 30 ] || { echo "genesis failed" >&2; exit 1; }
    sleep 1
done
cli append --endpoint node2:7101 --key /cluster/authority.key --note "hello from compose" "${trust[@]}"
cli status --endpoint node1:7101 --endpoint node2:7101 --endpoint node3:7101
# A node's peer port refuses anyone without a pinned certificate: plain gRPC from the
# CLI container cannot even complete a handshake there.
if cli status --endpoint node1:7201 >/dev/null 2>&1; then
    echo "the peer port answered a client without a certificate" >&2
    exit 1
fi
compose stop node3
cli append --endpoint node1:7101 --endpoint node2:7101 --key /cluster/authority.key \
    --note "one node down" "${trust[@]}"
cli audit --endpoint node1:7101 --endpoint node2:7101 "${trust[@]}" --state /cluster/audit.json
echo "deploy smoke test passed"
