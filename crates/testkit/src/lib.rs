//! Test-only support shared by bboard's test suites (a dev-dependency only, never
//! published): deterministic fixtures (keys, genesis and registration envelopes,
//! notes, signed checkpoints, free ports, temporary directories), an in-process
//! cluster harness ([`cluster`]) and a harness of real `bboard` processes
//! ([`process`]).
//!
//! Failures abort loudly: this is test code, so `expect` with a message is the rule.

#![allow(clippy::unwrap_used)] // Test support: a failure must abort the test loudly.

pub mod cluster;
pub mod process;

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bboard_core::checkpoint::{Checkpoint, CosignaturePolicy, NoteSigner, SignedCheckpoint};
use bboard_core::envelope::SignedEnvelope;
use bboard_core::pb;
use bboard_merkle::{Blake3Hasher, MemoryNodeStore, MerkleTree, TreeHasher, TreeSize};
use bboard_node::config::{Limits, NodeConfig, PeerConfig, RaftTuning};
use bboard_node::peer::TlsIdentity;
use ed25519_dalek::SigningKey;

/// The origin (log name) of the boards the harnesses start.
pub const ORIGIN: &str = "testkit.test/board";

/// A deterministic Ed25519 key: 32 bytes of `seed`.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A checkpoint signer named `name` with the key [`key`]`(seed)`.
pub fn note_signer(name: &str, seed: u8) -> NoteSigner {
    NoteSigner::new(name, key(seed)).expect("valid note signer name")
}

/// A free TCP port on 127.0.0.1 (free when asked; tests bind it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local address")
        .port()
}

/// A fresh temporary directory, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// An entry body of `kind` outside any election, stamped `seq` (distinct `seq`s give
/// distinct envelopes).
pub fn body(kind: pb::entry_body::Kind, seq: u64) -> pb::EntryBody {
    pb::EntryBody {
        election_id: String::new(),
        created_unix_ms: seq,
        kind: Some(kind),
    }
}

/// A `Note` entry signed by `key`; its text names `seq`.
pub fn note(key: &SigningKey, seq: u64) -> SignedEnvelope {
    SignedEnvelope::sign_body(
        &body(
            pb::entry_body::Kind::Note(pb::Note {
                text: format!("note {seq}"),
            }),
            seq,
        ),
        key,
    )
}

/// The genesis of a board named `origin` with `authority` as its only authority key.
pub fn genesis(origin: &str, authority: &SigningKey) -> SignedEnvelope {
    SignedEnvelope::sign_body(
        &body(
            pb::entry_body::Kind::Genesis(pb::BoardGenesis {
                origin: origin.into(),
                authority_keys: vec![authority.verifying_key().as_bytes().to_vec()],
                description: "test board".into(),
                organisations: Vec::new(),
            }),
            0,
        ),
        authority,
    )
}

/// The genesis of the harnesses' board: `authority` as its authority, and organisations
/// `org-1` … `org-{n}`, each with its admin key ([`process::org_admin_key`]).
pub fn genesis_of_organisations(authority: &SigningKey, n: u64) -> SignedEnvelope {
    SignedEnvelope::sign_body(
        &body(
            pb::entry_body::Kind::Genesis(pb::BoardGenesis {
                origin: ORIGIN.into(),
                authority_keys: vec![authority.verifying_key().as_bytes().to_vec()],
                description: "test board".into(),
                organisations: (1..=n)
                    .map(|id| pb::Organisation {
                        name: format!("org-{id}"),
                        admin_keys: vec![process::org_admin_key(id)
                            .verifying_key()
                            .as_bytes()
                            .to_vec()],
                    })
                    .collect(),
            }),
            0,
        ),
        authority,
    )
}

/// `authority` registers `key` with `role` (in `precinct`, empty for none), stamped
/// `seq`.
pub fn register(
    authority: &SigningKey,
    key: &SigningKey,
    role: pb::Role,
    precinct: &str,
    seq: u64,
) -> SignedEnvelope {
    SignedEnvelope::sign_body(
        &body(
            pb::entry_body::Kind::RegisterKey(pb::RegisterKey {
                public_key: key.verifying_key().as_bytes().to_vec(),
                role: role as i32,
                precinct_id: precinct.into(),
                label: format!("{role:?} {seq}"),
            }),
            seq,
        ),
        authority,
    )
}

/// `authority` registers `key` as a terminal of precinct `p1`, stamped `seq`.
pub fn register_terminal(authority: &SigningKey, key: &SigningKey, seq: u64) -> SignedEnvelope {
    register(authority, key, pb::Role::Terminal, "p1", seq)
}

/// An in-memory BLAKE3 Merkle tree.
pub type Tree = MerkleTree<Blake3Hasher, MemoryNodeStore>;

/// A tree of `n` leaves `entry {i}`; from `fork_at` on, the leaves are `forged entry
/// {i}` instead (a fork of the honest tree).
pub fn tree(n: u64, fork_at: u64) -> Tree {
    let mut tree = MerkleTree::new(Blake3Hasher, MemoryNodeStore::new());
    for i in 0..n {
        let data = if i < fork_at {
            format!("entry {i}")
        } else {
            format!("forged entry {i}")
        };
        tree.append(Blake3Hasher.hash_leaf(data.as_bytes()))
            .expect("append to an in-memory tree");
    }
    tree
}

/// The honest tree of `n` leaves (never forked).
pub fn honest_tree(n: u64) -> Tree {
    tree(n, u64::MAX)
}

/// `checkpoint` signed by every one of `signers` (at least one).
pub fn cosigned(checkpoint: Checkpoint, signers: &[NoteSigner]) -> SignedCheckpoint {
    let (first, rest) = signers.split_first().expect("at least one signer");
    let mut signed = SignedCheckpoint::sign(checkpoint, first).expect("sign checkpoint");
    for signer in rest {
        signed.add_signature(signer).expect("add signature");
    }
    signed
}

/// The note of `origin`'s checkpoint of `tree` at `size`, signed by `signers`.
pub fn signed_note(origin: &str, tree: &Tree, size: u64, signers: &[NoteSigner]) -> String {
    let checkpoint = Checkpoint {
        origin: origin.into(),
        size: TreeSize(size),
        root: tree.root_at(TreeSize(size)).expect("size within the tree"),
    };
    cosigned(checkpoint, signers).to_note()
}

/// Checkpoint signer `node-{i}` with the key [`key`]`(i)`: node `i` of a fixture board
/// that exists only as a [`Tree`] in the test (no node runs).
pub fn fixture_node(i: u8) -> NoteSigner {
    note_signer(&format!("node-{i}"), i)
}

/// The policy of a fixture board named `origin`: [`fixture_node`]s 1 to 3, 2 signatures
/// required.
pub fn fixture_policy(origin: &str) -> CosignaturePolicy {
    let verifiers = (1..=3).map(|i| fixture_node(i).verifier()).collect();
    CosignaturePolicy::new(origin, verifiers, 2).expect("a 2-of-3 policy")
}

/// [`signed_note`] of `tree` at `size`, signed by the [`fixture_node`]s `nodes`.
pub fn fixture_note(origin: &str, tree: &Tree, size: u64, nodes: &[u8]) -> String {
    let signers: Vec<NoteSigner> = nodes.iter().map(|&i| fixture_node(i)).collect();
    signed_note(origin, tree, size, &signers)
}

/// Node `id`'s peer-port TLS identity: made once per test process and then reused,
/// so every configuration written in the process pins the same certificate.
pub fn tls_identity(id: u64) -> TlsIdentity {
    static IDENTITIES: OnceLock<Mutex<BTreeMap<u64, TlsIdentity>>> = OnceLock::new();
    let mut identities = IDENTITIES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    identities
        .entry(id)
        .or_insert_with(|| TlsIdentity::generate(id).expect("generate a TLS identity"))
        .clone()
}

/// The peer list of an `n`-node cluster on free 127.0.0.1 ports (a public and a peer
/// port each): node `id` has the checkpoint key [`process::node_signer`]`(id)`, the
/// TLS identity [`tls_identity`]`(id)` and organisation `org-{id}`.
pub fn peers(n: u64) -> Vec<PeerConfig> {
    // All ports are held until every one is chosen, so no two nodes (or a node's two
    // ports) are given the same one.
    let held: Vec<std::net::TcpListener> = (0..2 * n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    let ports: Vec<u16> = held
        .iter()
        .map(|l| l.local_addr().expect("local address").port())
        .collect();
    drop(held);
    (1..=n)
        .map(|id| PeerConfig {
            id,
            address: format!("127.0.0.1:{}", ports[2 * (id as usize - 1)]),
            peer_address: format!("127.0.0.1:{}", ports[2 * (id as usize - 1) + 1]),
            tls_fingerprint: tls_identity(id).fingerprint().to_string(),
            verifier_key: process::node_signer(id).verifier().to_string(),
            organisation: format!("org-{id}"),
        })
        .collect()
}

/// The configuration of `peer` of `peers` with its key file and data under
/// `node_dir` (created); it trusts every organisation's admin key
/// ([`process::org_admin_key`]) for Admin calls.
pub fn node_config(
    node_dir: &std::path::Path,
    peer: &PeerConfig,
    peers: &[PeerConfig],
    initial_voters: Vec<u64>,
    raft: RaftTuning,
    limits: Limits,
) -> NodeConfig {
    let id = peer.id;
    std::fs::create_dir_all(node_dir).expect("node directory");
    let key_file = node_dir.join("node.key");
    let key = key(process::node_seed(id));
    std::fs::write(&key_file, hex::encode(key.to_bytes())).expect("key file");
    let (tls_certificate_file, tls_key_file) = (node_dir.join("tls.crt"), node_dir.join("tls.key"));
    if !tls_certificate_file.exists() {
        tls_identity(id)
            .write(&tls_certificate_file, &tls_key_file)
            .expect("write the TLS identity");
    }
    let config = NodeConfig {
        node_id: id,
        name: format!("node-{id}"),
        organisation: peer.organisation.clone(),
        origin: ORIGIN.into(),
        data_dir: node_dir.join("data"),
        key_file,
        listen: peer.address.parse().expect("socket address"),
        peer_listen: peer.peer_address.parse().expect("peer socket address"),
        tls_certificate_file,
        tls_key_file,
        admin_keys: peers
            .iter()
            .map(|p| hex::encode(process::org_admin_key(p.id).verifying_key().as_bytes()))
            .collect(),
        cosign_threshold: None,
        initial_voters,
        peers: peers.to_vec(),
        raft,
        limits,
        witnesses: Vec::new(),
        witness_threshold: None,
    };
    config.validate().expect("valid configuration");
    config
}

/// Flips the last byte of leaf `index` in the board tree of the (stopped) node whose
/// data directory is `data_dir`, waiting briefly for the store's lock to be released.
pub fn edit_leaf(data_dir: &std::path::Path, index: u64) {
    let path = data_dir.join("db");
    let mut db = sled::open(&path);
    for _ in 0..100 {
        if db.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        db = sled::open(&path);
    }
    let db = db.expect("open the stopped node's sled store");
    // The live board generation (`board`, or `board-<n>` after a snapshot install).
    let store = bboard_node::board_store::BoardStore::open(&db, ORIGIN).expect("open the board");
    store.with_tree(|tree| {
        let mut key = vec![b'l'];
        key.extend_from_slice(&index.to_be_bytes());
        let mut leaf = tree
            .get(&key)
            .expect("read leaf")
            .expect("leaf is stored")
            .to_vec();
        let last = leaf.len() - 1;
        leaf[last] ^= 1;
        tree.insert(key, leaf).expect("write leaf");
    });
    db.flush().expect("flush");
}
