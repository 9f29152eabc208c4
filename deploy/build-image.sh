#!/usr/bin/env bash
# Builds the static bboard binary (musl) and the `bboard:local` image around it.
# Usage: deploy/build-image.sh [TAG]
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-bboard:local}"
rustup target list --installed | grep -q x86_64-unknown-linux-musl ||
    rustup target add x86_64-unknown-linux-musl
# ring (TLS on the peer port) compiles C for the target: it needs musl's gcc wrapper.
if ! command -v musl-gcc >/dev/null; then
    apt-get install -y -q musl-tools >/dev/null || {
        apt-get update -q >/dev/null && apt-get install -y -q musl-tools >/dev/null
    }
fi
export CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}"
cargo build --release --locked --target x86_64-unknown-linux-musl -p bboard-cli
target_dir="${CARGO_TARGET_DIR:-target}"
context="$(mktemp -d)"
trap 'rm -rf "${context}"' EXIT
cp "${target_dir}/x86_64-unknown-linux-musl/release/bboard" deploy/Dockerfile "${context}/"
# The release profile keeps debug info for backtraces; the image does not need it.
strip "${context}/bboard"
docker build --quiet -t "${tag}" "${context}"
echo "built ${tag}"
