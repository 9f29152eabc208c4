#!/usr/bin/env bash
# Writes the directories of a 3-organisation cluster for compose.yaml: one per node
# (node key, admin key, peer TLS certificate and key, config.toml listing every
# peer), the authority key, the trusted node keys and organisations.txt (each
# organisation's admin public key, for `bboard genesis --organisation`). Each node container mounts only
# its own directory, so no container holds another organisation's keys.
# Usage: deploy/make-cluster.sh [DIR] (default deploy/cluster).
# BBOARD names the bboard binary to run (default: `bboard` on PATH). Containers run as
# NODE_UID:NODE_GID (default 10001:10001); run as root, this script hands each node
# directory to that user, otherwise start compose with BBOARD_UID=$(id -u)
# BBOARD_GID=$(id -g) so the containers can read the files you own.
set -euo pipefail
bboard="${BBOARD:-bboard}"
out="${1:-$(dirname "$0")/cluster}"
origin="${ORIGIN:-compose.bboard.local/election}"
node_uid="${NODE_UID:-10001}"
node_gid="${NODE_GID:-10001}"
orgs=(CEC Observers PartyA)
if [ -e "${out}" ]; then
    echo "${out} exists; remove it first" >&2
    exit 1
fi
for i in 1 2 3; do
    org="${orgs[$((i - 1))]}"
    "${bboard}" node init --dir "${out}/node${i}" --name "$(echo "${org}" | tr 'A-Z' 'a-z')-node-${i}" \
        --org "${org}" --node-id "${i}" --listen 0.0.0.0:7101 --advertise "node${i}:7101" \
        --peer-listen 0.0.0.0:7201 --peer-advertise "node${i}:7201" \
        --origin "${origin}" >/dev/null
done
"${bboard}" keygen --name authority --out "${out}/authority.key" >/dev/null
# Every node lists every peer (public address, peer address, TLS fingerprint, verifier
# key) and the same initial voters. What organisations exchange here is public.
python3 - "${out}" <<'PY'
import sys, tomllib, pathlib
out = pathlib.Path(sys.argv[1])
configs = [out / f"node{i}" / "config.toml" for i in (1, 2, 3)]
peers = [tomllib.loads(c.read_text())["peers"][0] for c in configs]
def toml_value(value):
    return str(value) if isinstance(value, int) else '"' + str(value).replace('"', '\\"') + '"'
for config in configs:
    text = config.read_text()
    own = tomllib.loads(text)["node_id"]
    text = text.replace(f"initial_voters = [{own}]", "initial_voters = [1, 2, 3]")
    for peer in peers:
        if peer["id"] != own:
            text += "\n[[peers]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in peer.items())
    config.write_text(text)
(out / "trusted-keys.txt").write_text("".join(p["verifier_key"] + "\n" for p in peers))
# Each organisation's admin key: named in the genesis (a membership change needs a
# majority of them) and trusted by every node for Admin calls.
admins = [(tomllib.loads(c.read_text())["organisation"], tomllib.loads(c.read_text())["admin_keys"][0]) for c in configs]
(out / "organisations.txt").write_text("".join(f"{org}={key}\n" for org, key in admins))
all_admins = "admin_keys = [" + ", ".join(f'"{key}"' for _, key in admins) + "]"
for config in configs:
    text = config.read_text()
    own = tomllib.loads(text)["admin_keys"][0]
    config.write_text(text.replace(f'admin_keys = ["{own}"]', all_admins))
PY
if [ "$(id -u)" = 0 ]; then
    for i in 1 2 3; do chown -R "${node_uid}:${node_gid}" "${out}/node${i}"; done
fi
echo "cluster written to ${out} (origin ${origin}); start it with: docker compose -f deploy/compose.yaml up -d"
