//! Keeps the test vectors in docs/PROTOCOL.md true: they are generated here, from fixed
//! keys and inputs, and compared with the block between the markers in the document.
//! Run with `BBOARD_BLESS=1` to rewrite the block after an intentional format change.

#![allow(clippy::unwrap_used)] // Test code: any failure should abort the test loudly.

use bboard_core::checkpoint::{Checkpoint, CosignaturePolicy, NoteSigner, SignedCheckpoint};
use bboard_core::envelope::{signed_message, SignedEnvelope};
use bboard_core::leaf::{decode_leaf, encode_leaf, leaf_hash};
use bboard_core::pb;
use bboard_merkle::{
    verify_consistency, verify_inclusion, Blake3Hasher, LeafIndex, MemoryNodeStore, MerkleTree,
    TreeHasher, TreeSize,
};
use ed25519_dalek::SigningKey;
use std::fmt::Write as _;

const BEGIN: &str = "<!-- BEGIN GENERATED VECTORS (crates/core/tests/protocol_vectors.rs) -->";
const END: &str = "<!-- END GENERATED VECTORS -->";
const ORIGIN: &str = "vectors.bboard.example/v1";
const LEAVES: u64 = 5;

fn generate() -> String {
    let author = SigningKey::from_bytes(&[0x01; 32]);
    let nodes: Vec<NoteSigner> = [
        ("cec-node", 0x11u8),
        ("observers-node", 0x22),
        ("party-node", 0x33),
    ]
    .iter()
    .map(|(name, seed)| NoteSigner::new(name, SigningKey::from_bytes(&[*seed; 32])).unwrap())
    .collect();

    let mut out = String::new();
    writeln!(out, "All values are hex unless noted. Ed25519 signatures are deterministic (RFC 8032), so these vectors are exact.\n").unwrap();
    writeln!(out, "### Keys\n").unwrap();
    writeln!(
        out,
        "- entry signer: seed `{}`, public key `{}`",
        hex::encode([0x01; 32]),
        hex::encode(author.verifying_key().as_bytes())
    )
    .unwrap();
    for (node, seed) in nodes.iter().zip([0x11u8, 0x22, 0x33]) {
        writeln!(
            out,
            "- node `{}`: seed `{}`, verifier key `{}`",
            node.name(),
            hex::encode([seed; 32]),
            node.verifier()
        )
        .unwrap();
    }

    writeln!(out, "\n### Entries and leaves\n").unwrap();
    writeln!(out, "Entry `i` (0 ≤ i < {LEAVES}) is `EntryBody {{ election_id: \"vectors\", created_unix_ms: 1000 + i, note: {{ text: \"entry i\" }} }}` signed by the entry signer; its leaf has `timestamp_unix_ms = 1767225600000 + i`.\n").unwrap();
    let mut tree = MerkleTree::new(Blake3Hasher, MemoryNodeStore::new());
    let mut roots = vec![tree.root().unwrap()];
    let mut ids = Vec::new();
    for i in 0..LEAVES {
        let body = pb::EntryBody {
            election_id: "vectors".into(),
            created_unix_ms: 1000 + i,
            kind: Some(pb::entry_body::Kind::Note(pb::Note {
                text: format!("entry {i}"),
            })),
        };
        let envelope = SignedEnvelope::sign_body(&body, &author);
        let leaf_data = encode_leaf(1_767_225_600_000 + i, &envelope);
        assert_eq!(decode_leaf(&leaf_data).unwrap().envelope, envelope);
        assert!(signed_message(envelope.body_bytes()).starts_with(b"bboard/v1/entry\n"));
        let hash = leaf_hash(&leaf_data);
        tree.append(hash).unwrap();
        roots.push(tree.root().unwrap());
        writeln!(out, "entry {i}:").unwrap();
        writeln!(out, "```").unwrap();
        writeln!(out, "body        {}", hex::encode(envelope.body_bytes())).unwrap();
        writeln!(
            out,
            "signature   {}",
            hex::encode(envelope.signature().to_bytes())
        )
        .unwrap();
        writeln!(out, "envelope_id {}", envelope.id()).unwrap();
        ids.push(envelope.id());
        writeln!(out, "leaf_data   {}", hex::encode(&leaf_data)).unwrap();
        writeln!(out, "leaf_hash   {hash}").unwrap();
        writeln!(out, "```").unwrap();
    }

    writeln!(out, "\n### Tracking codes\n").unwrap();
    writeln!(out, "A chain over the envelope ids of entries 0, 1, 2 (as if they were one terminal's ballots), starting from 32 zero bytes (§7.3):\n").unwrap();
    writeln!(out, "```").unwrap();
    let mut previous = [0u8; 32];
    for (i, id) in ids.iter().enumerate().take(3) {
        let code = bboard_core::election::tracking_code(&previous, id);
        writeln!(
            out,
            "code {i}: {} {}",
            hex::encode(code),
            bboard_core::election::short_tracking_code(&code)
        )
        .unwrap();
        previous = code;
    }
    writeln!(out, "```").unwrap();

    writeln!(out, "\n### Roots\n").unwrap();
    writeln!(out, "```").unwrap();
    for (size, root) in roots.iter().enumerate() {
        writeln!(out, "size {size}: {root}").unwrap();
    }
    writeln!(out, "```").unwrap();

    let size = TreeSize(LEAVES);
    let root = tree.root().unwrap();
    let index = LeafIndex(2);
    let inclusion = tree.inclusion_proof(index, size).unwrap();
    verify_inclusion(
        &Blake3Hasher,
        &tree.leaf_hash(index).unwrap(),
        index,
        size,
        &inclusion,
        &root,
    )
    .unwrap();
    writeln!(
        out,
        "\n### Inclusion proof of leaf 2 in the tree of size {LEAVES}\n"
    )
    .unwrap();
    writeln!(out, "```").unwrap();
    for h in &inclusion {
        writeln!(out, "{h}").unwrap();
    }
    writeln!(out, "```").unwrap();

    let old = TreeSize(3);
    let consistency = tree.consistency_proof(old, size).unwrap();
    verify_consistency(&Blake3Hasher, old, size, &roots[3], &root, &consistency).unwrap();
    writeln!(
        out,
        "\n### Consistency proof from size 3 to size {LEAVES}\n"
    )
    .unwrap();
    writeln!(out, "```").unwrap();
    for h in &consistency {
        writeln!(out, "{h}").unwrap();
    }
    writeln!(out, "```").unwrap();

    let checkpoint = Checkpoint {
        origin: ORIGIN.into(),
        size,
        root,
    };
    let mut signed = SignedCheckpoint::sign(checkpoint, &nodes[0]).unwrap();
    for node in &nodes[1..] {
        signed.add_signature(node).unwrap();
    }
    let policy =
        CosignaturePolicy::majority(ORIGIN, nodes.iter().map(NoteSigner::verifier).collect())
            .unwrap();
    assert_eq!(policy.verify(&signed).unwrap().signers.len(), 3);
    writeln!(
        out,
        "\n### Signed checkpoint of size {LEAVES}, cosigned by the three nodes\n"
    )
    .unwrap();
    writeln!(out, "```").unwrap();
    write!(out, "{}", signed.to_note()).unwrap();
    writeln!(out, "```").unwrap();
    writeln!(
        out,
        "\nEmpty-tree root (BLAKE3 of the empty string): `{}`",
        Blake3Hasher.empty_root()
    )
    .unwrap();
    out
}

#[test]
fn protocol_doc_vectors_match_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md");
    let doc = std::fs::read_to_string(path).expect("docs/PROTOCOL.md exists");
    let start = doc.find(BEGIN).expect("begin marker in PROTOCOL.md") + BEGIN.len();
    let end = doc.find(END).expect("end marker in PROTOCOL.md");
    let generated = format!("\n{}", generate());
    if std::env::var_os("BBOARD_BLESS").is_some() {
        let updated = format!("{}{}{}", &doc[..start], generated, &doc[end..]);
        std::fs::write(path, updated).unwrap();
        return;
    }
    assert!(
        doc[start..end] == generated,
        "docs/PROTOCOL.md vectors differ from the code; if the format change is intended, run \
         BBOARD_BLESS=1 cargo test -p bboard-core --test protocol_vectors and review the diff"
    );
}
