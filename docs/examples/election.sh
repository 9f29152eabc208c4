#!/usr/bin/env bash
# A whole small election on a local development cluster, typed the way an operator
# types it: the commands of README.md ("Running an election by hand") and those of
# docs/OPERATIONS.md that can run on one machine.
#
#   BBOARD     the bboard binary                   (default: bboard, from $PATH)
#   WORK       an empty or missing work directory  (default: a fresh mktemp -d)
#   BASE_PORT  public port of node 1               (default: 7101)
#
#   BBOARD=target/debug/bboard BASE_PORT=7401 bash docs/examples/election.sh
#
# Ports used: BASE_PORT..+2 (the nodes' public ports), BASE_PORT+100..+102 (their peer
# ports), BASE_PORT+279 (a witness) and BASE_PORT+289 (a simulated dead node).
#
# Every command that talks to the board names an --endpoint. Every command that posts
# or verifies also names the board's --trusted-keys and --origin, so each receipt and
# checkpoint it gets is checked against 2 of the 3 node signatures, as a real operator
# must run it. The script prints each step and each command, stops at the first
# failure (set -e), stops the cluster on any exit, and ends with "election recipe: OK".
# Everything it makes (keys, manifest, receipts, logs) stays in $WORK.
set -euo pipefail

BBOARD="${BBOARD:-bboard}"
WORK="${WORK:-$(mktemp -d)}"
BASE_PORT="${BASE_PORT:-7101}"

# The script works inside $WORK, so a relative BBOARD path is made absolute first.
case "${BBOARD}" in
*/*) BBOARD="$(cd "$(dirname "${BBOARD}")" && pwd)/$(basename "${BBOARD}")" ;;
esac
command -v "${BBOARD}" >/dev/null || { echo "no bboard binary at BBOARD=${BBOARD}" >&2; exit 1; }
mkdir -p "${WORK}"
WORK="$(cd "${WORK}" && pwd)"
if [ -n "$(ls -A "${WORK}")" ]; then
    echo "WORK=${WORK} is not empty: give an empty or missing directory" >&2
    exit 1
fi
cd "${WORK}"

# The three nodes' public (gRPC) endpoints.
N1="127.0.0.1:${BASE_PORT}"
N2="127.0.0.1:$((BASE_PORT + 1))"
N3="127.0.0.1:$((BASE_PORT + 2))"
ALL=(--endpoint "${N1}" --endpoint "${N2}" --endpoint "${N3}")
WITNESS_LISTEN="127.0.0.1:$((BASE_PORT + 279))"
DEAD_NODE="127.0.0.1:$((BASE_PORT + 289))"

CLUSTER="cluster"                      # i.e. $WORK/cluster
AUTHORITY="${CLUSTER}/authority.key"   # written by bboard devcluster
KEYS="${CLUSTER}/trusted-keys.txt"     # the nodes' verifier keys, ditto
ORIGIN="dev.bboard.local/election"     # the devcluster's board origin
ELECTION="e1"
# What every posting or verifying command adds: the board's node keys and its origin.
TRUST=(--trusted-keys "${KEYS}" --origin "${ORIGIN}")

step=0
step() {
    step=$((step + 1))
    echo
    echo "== ${step}. $*"
}
# Prints a command (with "bboard" for the binary), then runs it.
run() {
    local shown=("$@") i
    if [ "${shown[0]}" = "${BBOARD}" ]; then shown[0]="bboard"; fi
    for i in "${!shown[@]}"; do
        if [[ "${shown[i]}" == *" "* ]]; then shown[i]="\"${shown[i]}\""; fi
    done
    echo "\$ ${shown[*]}"
    "$@"
}
fail() {
    echo "election recipe: FAILED: $*" >&2
    exit 1
}
# expect_exit CODE COMMAND…: runs the command and checks its exit code.
expect_exit() {
    local want="$1" got=0
    shift
    run "$@" || got=$?
    [ "${got}" -eq "${want}" ] || fail "exit code ${got} (expected ${want}) from: $*"
    echo "(exit ${got}, as expected)"
}

# Background processes, stopped on any exit (also a failure or Ctrl-C).
background=()
stop_all() {
    local rc=$? pid
    for pid in "${background[@]}"; do
        kill -TERM "${pid}" 2>/dev/null || true
        wait "${pid}" 2>/dev/null || true
    done
    if [ "${rc}" -ne 0 ]; then
        echo "(exit ${rc}; the cluster's log is ${WORK}/devcluster.log; its last lines:)" >&2
        tail -n 20 "${WORK}/devcluster.log" >&2 || true
    fi
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------
step "start a local 3-node cluster (stopped again when this script exits)"
echo "\$ bboard devcluster --nodes 3 --dir ${CLUSTER} --base-port ${BASE_PORT} &"
"${BBOARD}" devcluster --nodes 3 --dir "${CLUSTER}" --base-port "${BASE_PORT}" \
    >devcluster.log 2>&1 &
cluster_pid=$!
background+=("${cluster_pid}")

# Wait (at most 60 s) until the nodes name a leader and the genesis is on the board.
deadline=$((SECONDS + 60))
until [ -s "${KEYS}" ] \
    && status="$("${BBOARD}" status "${ALL[@]}" --request-timeout 1 --timeout 2 2>/dev/null)" \
    && grep -Eq '^ +leader: +[0-9]' <<<"${status}" \
    && grep -Eq '^ +tree size: +[1-9]' <<<"${status}"; do
    kill -0 "${cluster_pid}" 2>/dev/null || fail "bboard devcluster exited (see ${WORK}/devcluster.log)"
    [ "${SECONDS}" -lt "${deadline}" ] || fail "no leader and no genesis on the board after 60 s"
    sleep 1
done
grep -v ' INFO ' devcluster.log || true
run "${BBOARD}" status "${ALL[@]}"

# ---------------------------------------------------------------------------------
step "keys: a terminal and a precinct commission for each of the two precincts"
# A board admits one registration per key: every election needs its own keys.
for name in term1 term2 commission1 commission2; do
    run "${BBOARD}" keygen --name "${name}" --out "${name}.key"
done
run "${BBOARD}" key-info --name term1 --key term1.key

step "the manifest: one contest, two precincts, 3 trustees of whom any 2 can decrypt"
cat >manifest.toml <<'EOF'
title = "Municipal election 2026"
threshold = 2                      # k of the n trustees
[[contests]]
id = "mayor"
title = "Mayor"
options = ["Ann", "Bob", "Cyd"]
min_selections = 1
max_selections = 1
[[precincts]]
id = "p1"
name = "Town hall"
[[precincts]]
id = "p2"
name = "School"
EOF
# Each trustee makes its own keys (on its own machine, in its own directory) and
# hands over the [[trustees]] table `bboard trustee keygen` prints on stdout; here it
# goes straight into the manifest.
TRUSTEES=(cec observers party)
declare -A TRUSTEE_NAME=([cec]=CEC [observers]=Observers [party]=PartyA)
for t in "${TRUSTEES[@]}"; do
    echo "\$ bboard trustee keygen --name ${TRUSTEE_NAME[${t}]} --dir ${t}/ >> manifest.toml"
    "${BBOARD}" trustee keygen --name "${TRUSTEE_NAME[${t}]}" --dir "${t}/" >>manifest.toml
done
cat manifest.toml
[ "$(grep -c '^\[\[trustees\]\]' manifest.toml)" -eq 3 ] || fail "the manifest does not list 3 trustees"

# ---------------------------------------------------------------------------------
step "the authority creates the election and registers every key"
run "${BBOARD}" election create --endpoint "${N1}" "${TRUST[@]}" --election "${ELECTION}" \
    --key "${AUTHORITY}" --manifest manifest.toml
for t in "${TRUSTEES[@]}"; do
    run "${BBOARD}" election register --endpoint "${N1}" "${TRUST[@]}" --election "${ELECTION}" \
        --key "${AUTHORITY}" --role trustee --subject-key "${t}/signing.key" \
        --label "${TRUSTEE_NAME[${t}]}"
done
for p in 1 2; do
    run "${BBOARD}" election register --endpoint "${N1}" "${TRUST[@]}" --election "${ELECTION}" \
        --key "${AUTHORITY}" --role terminal --subject-key "term${p}.key" \
        --precinct "p${p}" --label "T-00${p}"
    run "${BBOARD}" election register --endpoint "${N1}" "${TRUST[@]}" --election "${ELECTION}" \
        --key "${AUTHORITY}" --role commission --subject-key "commission${p}.key" \
        --precinct "p${p}" --label "commission-p${p}"
done
# One registration per key: a registered key is refused for any other role or election.
expect_exit 1 "${BBOARD}" election register --endpoint "${N1}" "${TRUST[@]}" --election "${ELECTION}" \
    --key "${AUTHORITY}" --role commission --subject-key term1.key --precinct p1

# ---------------------------------------------------------------------------------
step "key ceremony: every trustee runs each round before anyone starts the next"
run "${BBOARD}" election phase --endpoint "${N1}" "${TRUST[@]}" --election "${ELECTION}" \
    --key "${AUTHORITY}" key-ceremony
for round in commit reveal share finish; do
    for t in "${TRUSTEES[@]}"; do
        run "${BBOARD}" trustee "${round}" --endpoint "${N1}" "${TRUST[@]}" \
            --election "${ELECTION}" --dir "${t}/"
    done
done
# The authority posts the joint key; the board re-derives it before admitting it.
run "${BBOARD}" election joint-key --endpoint "${N1}" "${TRUST[@]}" --election "${ELECTION}" \
    --key "${AUTHORITY}"
run "${BBOARD}" election phase --endpoint "${N1}" "${TRUST[@]}" --election "${ELECTION}" \
    --key "${AUTHORITY}" open

# ---------------------------------------------------------------------------------
step "voting: ballots from both terminals (through nodes 2 and 3) and one spoiled ballot"
# Each precinct's count, kept as the ballots are cast (options in manifest order: Ann,
# Bob, Cyd), to write the paper protocols with. A spoiled ballot is never counted.
declare -A COUNT=([p1]="0 0 0" [p2]="0 0 0")
declare -A CAST=([p1]=0 [p2]=0)
vote() { # vote PRECINCT ENDPOINT OPTION-INDEX OPTION
    local p="$1" endpoint="$2" i="$3" option="$4" counts
    run "${BBOARD}" terminal vote --endpoint "${endpoint}" "${TRUST[@]}" --election "${ELECTION}" \
        --key "term${p#p}.key" --choice "mayor=${option}"
    read -r -a counts <<<"${COUNT[${p}]}"
    counts[i]=$((counts[i] + 1))
    COUNT[${p}]="${counts[*]}"
    CAST[${p}]=$((CAST[${p}] + 1))
}
vote p1 "${N2}" 0 Ann
vote p1 "${N2}" 1 Bob
vote p1 "${N2}" 0 Ann
vote p2 "${N3}" 2 Cyd
vote p2 "${N3}" 0 Ann
# A voter challenges terminal 1 (Benaloh): that ballot is published opened and never
# counted; the voter then votes for real.
run "${BBOARD}" terminal spoil --endpoint "${N2}" "${TRUST[@]}" --election "${ELECTION}" \
    --key term1.key --choice mayor=Cyd
vote p1 "${N2}" 2 Cyd
run "${BBOARD}" election phase --endpoint "${N1}" "${TRUST[@]}" --election "${ELECTION}" \
    --key "${AUTHORITY}" closed

# ---------------------------------------------------------------------------------
step "the precinct commissions post their paper protocols"
# Here the paper agrees with the terminals: as many paper ballots issued and found in
# the box as ballots were cast electronically (the spoiled one is not among them).
for p in p1 p2; do
    run "${BBOARD}" protocol post --endpoint "${N1}" "${TRUST[@]}" --election "${ELECTION}" \
        --key "commission${p#p}.key" --count "mayor=${COUNT[${p}]// /,}" \
        --ballots-issued "${CAST[${p}]}" --ballots-cast "${CAST[${p}]}"
done

# ---------------------------------------------------------------------------------
step "tally: 2 of the 3 trustees decrypt (the third, PartyA, may stay offline); results"
run "${BBOARD}" election phase --endpoint "${N1}" "${TRUST[@]}" --election "${ELECTION}" \
    --key "${AUTHORITY}" tallying
for t in cec observers; do
    run "${BBOARD}" trustee decrypt --endpoint "${N1}" "${TRUST[@]}" --election "${ELECTION}" \
        --dir "${t}/"
done
run "${BBOARD}" results publish --endpoint "${N1}" "${TRUST[@]}" --election "${ELECTION}" \
    --key "${AUTHORITY}"
run "${BBOARD}" election phase --endpoint "${N1}" "${TRUST[@]}" --election "${ELECTION}" \
    --key "${AUTHORITY}" published

# ---------------------------------------------------------------------------------
step "anyone reads and re-checks the election (here through node 3)"
run "${BBOARD}" tally --endpoint "${N3}" "${TRUST[@]}" --election "${ELECTION}"
run "${BBOARD}" results --endpoint "${N3}" "${TRUST[@]}" --election "${ELECTION}"
# Exit 0: verified; 2: NOT verified (or, with --strict, paper and electronic counts
# differ); 1: the command's own error, e.g. an --origin that is not the board's.
verify_rc=0
run "${BBOARD}" verify-election --endpoint "${N3}" "${TRUST[@]}" --election "${ELECTION}" --strict \
    >verify-election.txt || verify_rc=$?
cat verify-election.txt
[ "${verify_rc}" -eq 0 ] || fail "verify-election --strict exited ${verify_rc}"
grep -q '^VERIFIED' verify-election.txt || fail "verify-election did not say VERIFIED"
# (A paper/electronic difference prints FINDING and WARNING lines, below VERIFIED.)
if grep -Eq '^(FINDING|WARNING)|NOT VERIFIED' verify-election.txt; then
    fail "verify-election reported a finding"
fi
expect_exit 1 "${BBOARD}" verify-election --endpoint "${N3}" --trusted-keys "${KEYS}" \
    --origin wrong.example/election --election "${ELECTION}" --strict

# ---------------------------------------------------------------------------------
step "a note on the board, its receipt and proofs (README 'Running a cluster')"
run "${BBOARD}" append --endpoint "${N2}" --key "${AUTHORITY}" --note "election ${ELECTION} published" \
    "${TRUST[@]}" --receipt-out receipt.json | tee append.txt
note_index="$(sed -n 's/^appended: entry \([0-9]*\) .*/\1/p' append.txt)"
[ -n "${note_index}" ] || fail "append did not print the entry's index"
# Offline, by anyone with the node keys. Exit 0: valid; 2: NOT valid; 1: own error.
expect_exit 0 "${BBOARD}" verify-receipt --receipt receipt.json "${TRUST[@]}"
sed -E 's/("leaf_hash": *")0/\11/;t;s/("leaf_hash": *")[1-9a-f]/\10/' receipt.json >receipt-altered.json
expect_exit 2 "${BBOARD}" verify-receipt --receipt receipt-altered.json "${TRUST[@]}"
expect_exit 1 "${BBOARD}" verify-receipt --receipt receipt.json --trusted-keys "${KEYS}" \
    --origin wrong.example/election
run "${BBOARD}" get --endpoint "${N1}" --index "${note_index}"
expect_exit 0 "${BBOARD}" prove --endpoint "${N1}" --index "${note_index}" "${TRUST[@]}"
expect_exit 0 "${BBOARD}" prove --endpoint "${N3}" --consistency 1 0 "${TRUST[@]}"

# ---------------------------------------------------------------------------------
step "audits and alarms (docs/OPERATIONS.md)"
mkdir -p evidence
# Exit 0: OK; 2: findings; 3: incomplete; 1: the tool's own error or configuration.
expect_exit 0 "${BBOARD}" audit "${ALL[@]}" "${TRUST[@]}" --state audit-state.json --evidence-dir evidence/
expect_exit 0 "${BBOARD}" audit "${ALL[@]}" "${TRUST[@]}" --state audit-state.json --evidence-dir evidence/ --full
[ -z "$(ls -A evidence)" ] || fail "the audit of an honest cluster wrote evidence files"
expect_exit 1 "${BBOARD}" audit "${ALL[@]}" --trusted-keys "${KEYS}" --origin wrong.example/election \
    --state audit-state-wrong.json --evidence-dir evidence/
# Exit 0: no active censorship alarm; 2: active alarms; 3: something not checked.
expect_exit 0 "${BBOARD}" alarms "${ALL[@]}" "${TRUST[@]}"
expect_exit 0 "${BBOARD}" alarms "${ALL[@]}" "${TRUST[@]}" --all

# ---------------------------------------------------------------------------------
step "a witness (docs/OPERATIONS.md): its key, the service, feeding it checkpoints"
run "${BBOARD}" keygen --name observer-witness --out witness.key
echo "\$ bboard witness serve --listen ${WITNESS_LISTEN} --key witness.key --name observer-witness" \
    "--state witness-state.json --log-keys ${KEYS} --origin ${ORIGIN} &"
"${BBOARD}" witness serve --listen "${WITNESS_LISTEN}" --key witness.key --name observer-witness \
    --state witness-state.json --log-keys "${KEYS}" --origin "${ORIGIN}" >witness.log 2>&1 &
witness_pid=$!
background+=("${witness_pid}")
deadline=$((SECONDS + 30))
until grep -q 'serving' witness.log; do
    kill -0 "${witness_pid}" 2>/dev/null || { cat witness.log; fail "bboard witness serve exited"; }
    [ "${SECONDS}" -lt "${deadline}" ] || fail "the witness did not start within 30 s"
    sleep 0.5
done
cat witness.log
run "${BBOARD}" witness feed --witness "http://${WITNESS_LISTEN}" --endpoint "${N1}" "${TRUST[@]}" \
    | tee feed.txt
grep -q '^— observer-witness ' feed.txt || fail "the witness did not cosign"
# The board grows; the next feed extends what the witness cosigned (consistency proof).
run "${BBOARD}" append --endpoint "${N3}" --key "${AUTHORITY}" --note "witnessed" "${TRUST[@]}"
run "${BBOARD}" witness feed --witness "http://${WITNESS_LISTEN}" --endpoint "${N2}" "${TRUST[@]}" \
    | tee feed.txt
grep -q '^— observer-witness ' feed.txt || fail "the witness did not cosign the larger checkpoint"

# ---------------------------------------------------------------------------------
step "an unknown outcome (docs/OPERATIONS.md): no node confirms, the envelope is kept"
# Simulated: the only endpoint given is a "node" that accepts connections and never
# answers. The post fails with exit 1, and its signed envelope is kept in
# bboard-unsent/ (BBOARD_UNSENT_DIR overrides it). Re-send exactly that file; never
# run the original command again.
if command -v python3 >/dev/null; then
    python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64); time.sleep(300)' "${DEAD_NODE##*:}" &
    background+=("$!")
    sleep 0.5
    lost_rc=0
    run "${BBOARD}" append --endpoint "${DEAD_NODE}" --key "${AUTHORITY}" --note "answer lost" \
        "${TRUST[@]}" --request-timeout 1 --timeout 3 2>lost.txt || lost_rc=$?
    cat lost.txt
    [ "${lost_rc}" -eq 1 ] || fail "a post nobody confirmed exited ${lost_rc} (expected 1)"
    grep -q 'bboard append --envelope' lost.txt || fail "no re-send advice"
    kept=(bboard-unsent/*.envelope)
    if [ "${#kept[@]}" -ne 1 ] || [ ! -f "${kept[0]}" ]; then fail "no envelope kept in bboard-unsent/"; fi
    run "${BBOARD}" append --envelope "${kept[0]}" --endpoint "${N1}" "${TRUST[@]}" | tee resend.txt
    grep -q '^duplicate: *false' resend.txt || fail "the re-sent envelope did not land"
    # Re-sending again is harmless: the board answers with the original entry.
    run "${BBOARD}" append --envelope "${kept[0]}" --endpoint "${N2}" "${TRUST[@]}" | tee resend.txt
    grep -q '^duplicate: *true' resend.txt || fail "a second re-send was not a duplicate"
else
    echo "(python3 not found: skipping the simulated dead node)"
fi

# ---------------------------------------------------------------------------------
step "forcing a leader election (docs/OPERATIONS.md), with node 1's admin key"
# (--depose --leader ID would also make node 1 refuse to follow that leader; that takes
# a majority of organisations doing it on their own nodes, so it is not run here.)
run "${BBOARD}" node campaign --endpoint "${N1}" --admin-key "${CLUSTER}/node1/admin.key"
deadline=$((SECONDS + 30))
until status="$("${BBOARD}" status "${ALL[@]}" --request-timeout 1 --timeout 2 2>/dev/null)" \
    && grep -Eq '^ +role: +leader' <<<"${status}"; do
    [ "${SECONDS}" -lt "${deadline}" ] || fail "no leader 30 s after the campaign"
    sleep 1
done
run "${BBOARD}" status "${ALL[@]}"
# The board still takes posts, with receipts checked as before.
run "${BBOARD}" append --endpoint "${N3}" --key "${AUTHORITY}" --note "after the campaign" "${TRUST[@]}"
expect_exit 0 "${BBOARD}" audit "${ALL[@]}" "${TRUST[@]}" --state audit-state.json --evidence-dir evidence/

echo
echo "work directory (keys, manifest, receipts, logs): ${WORK}"
echo "election recipe: OK (${SECONDS} s)"
