#!/usr/bin/env bash
# Writes the directories of a 3-organisation cluster for compose.yaml: one per node
# (node key, admin key, config.toml listing every peer), the authority key and the
# trusted node keys. Usage: deploy/make-cluster.sh [DIR] (default deploy/cluster).
# BBOARD names the bboard binary to run (default: `bboard` on PATH).
set -euo pipefail
bboard="${BBOARD:-bboard}"
out="${1:-$(dirname "$0")/cluster}"
origin="${ORIGIN:-compose.bboard.local/election}"
orgs=(CEC Observers PartyA)
if [ -e "${out}" ]; then
    echo "${out} exists; remove it first" >&2
    exit 1
fi
for i in 1 2 3; do
    org="${orgs[$((i - 1))]}"
    "${bboard}" node init --dir "${out}/node${i}" --name "$(echo "${org}" | tr 'A-Z' 'a-z')-node-${i}" \
        --org "${org}" --node-id "${i}" --listen 0.0.0.0:7101 --advertise "node${i}:7101" \
        --origin "${origin}" >/dev/null
done
"${bboard}" keygen --name authority --out "${out}/authority.key" >/dev/null
# Every node lists every peer and the same initial voters.
python3 - "${out}" <<'PY'
import sys, tomllib, pathlib
out = pathlib.Path(sys.argv[1])
configs = [out / f"node{i}" / "config.toml" for i in (1, 2, 3)]
peers = [tomllib.loads(c.read_text())["peers"][0] for c in configs]
for config in configs:
    text = config.read_text()
    own = tomllib.loads(text)["node_id"]
    text = text.replace(f"initial_voters = [{own}]", "initial_voters = [1, 2, 3]")
    for peer in peers:
        if peer["id"] != own:
            text += (
                f'\n[[peers]]\nid = {peer["id"]}\naddress = "{peer["address"]}"\n'
                f'verifier_key = "{peer["verifier_key"]}"\norganisation = "{peer["organisation"]}"\n'
            )
    config.write_text(text)
(out / "trusted-keys.txt").write_text("".join(p["verifier_key"] + "\n" for p in peers))
PY
echo "cluster written to ${out} (origin ${origin}); start it with: docker compose -f deploy/compose.yaml up -d"
