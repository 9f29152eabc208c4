//! The peer port with real `bboard node run` processes, tried as an outsider and as a
//! dishonest member would:
//!
//! - Raft and cosigning asked on the public port are `UNIMPLEMENTED`;
//! - on the peer port, plain gRPC and a TLS client without a certificate never get a
//!   gRPC answer, and neither does one with a certificate nobody pinned;
//! - a process holding org 3's identity that claims to be node 1 in a vote or an append
//!   is refused with `PERMISSION_DENIED`, counted in `/metrics`, and the cluster's term
//!   does not move.

#![allow(clippy::unwrap_used)] // Test code: failures should abort loudly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bboard_node::network::MAX_MESSAGE_BYTES;
use bboard_node::peer::{PeerChannels, PeerEndpoint, TlsIdentity};
use bboard_node::types::{NodeId, TypeConfig};
use bboard_proto::v1::raft_client::RaftClient;
use bboard_proto::v1::{CosignOffer, CosignRequest, RaftPayload};
use bboard_testkit::process::*;
use bboard_testkit::tls_identity;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::Vote;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

/// The `bboard` binary the nodes run.
const BIN: &str = env!("CARGO_BIN_EXE_bboard");

fn plain_client(address: &str) -> RaftClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    RaftClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES)
}

fn payload<T: serde::Serialize>(request: &T) -> tonic::Request<RaftPayload> {
    tonic::Request::new(RaftPayload {
        data: rmp_serde::to_vec_named(request).unwrap(),
    })
}

fn vote_as(term: u64, candidate: NodeId) -> tonic::Request<RaftPayload> {
    payload(&VoteRequest::<NodeId>::new(
        Vote::new(term, candidate),
        None,
    ))
}

fn append_as(term: u64, leader: NodeId) -> tonic::Request<RaftPayload> {
    payload(&AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(term, leader),
        prev_log_id: None,
        leader_commit: None,
        entries: Vec::new(),
    })
}

/// The peer ports of `cluster`'s nodes, as every node pins them.
fn endpoints(cluster: &mut Cluster) -> BTreeMap<NodeId, PeerEndpoint> {
    (1..=3)
        .map(|id| {
            let address = cluster.node(id).peer_address.clone();
            let fingerprint = tls_identity(id).fingerprint();
            (
                id,
                PeerEndpoint {
                    address,
                    fingerprint,
                },
            )
        })
        .collect()
}

async fn terms(endpoints: &[String]) -> Vec<u64> {
    let mut terms = Vec::new();
    for endpoint in endpoints {
        terms.push(status(endpoint).await.expect("node answers").term);
    }
    terms
}

/// Sends the HTTP/2 preface over TLS without a client certificate and returns what the
/// server sent back before closing (an alert ends the handshake: nothing, or an error).
async fn answer_without_certificate(address: &str) -> std::io::Result<Vec<u8>> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AcceptAnyServer))
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let name = rustls::pki_types::ServerName::try_from("node-1.peer.bboard").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await?;
    tls.flush().await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer))
        .await
        .map_err(|_| std::io::Error::other("the server kept the connection open"))??;
    Ok(answer)
}

/// A client-side verifier that accepts any server: the test is about what the
/// server does with a client that has no certificate.
#[derive(Debug)]
struct AcceptAnyServer;

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.verify_tls13_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[test]
fn the_peer_port_admits_only_pinned_peers_and_only_as_themselves() {
    serially(async {
        let mut cluster = Cluster::configure(BIN, 3, &[1, 2, 3], fast_raft());
        for id in 1..=3 {
            cluster.node(id).start();
        }
        let public = cluster.endpoints(&[1, 2, 3]);
        find_leader(&public, Duration::from_secs(30)).await;
        let peers = endpoints(&mut cluster);
        let before = terms(&public).await;

        // The public port serves no Raft and no cosigning.
        let mut on_public = plain_client(&public[0]);
        let status = on_public.vote(vote_as(1000, 1)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{status}");
        let status = on_public
            .append_entries(append_as(1000, 1))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{status}");
        let status = on_public
            .cosign_checkpoint(CosignRequest { size: 1 })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{status}");
        let status = on_public
            .offer_cosignature(CosignOffer {
                signed_checkpoint: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{status}");

        // On the peer port, nobody without a pinned certificate gets a gRPC answer.
        let mut plain = plain_client(&peers[&2].address);
        assert!(plain.vote(vote_as(1000, 1)).await.is_err());
        match answer_without_certificate(&peers[&2].address).await {
            Ok(answer) => assert!(
                answer.is_empty(),
                "a client without a certificate got {} bytes of answer",
                answer.len()
            ),
            Err(refused) => println!("no certificate: {refused}"),
        }
        let stranger = PeerChannels::new(TlsIdentity::generate(1).unwrap(), peers.clone());
        let mut as_stranger = RaftClient::new(stranger.channel(2).unwrap());
        assert!(as_stranger.vote(vote_as(1000, 1)).await.is_err());

        // Org 3's node, authenticated, claiming to be node 1: refused.
        let org3 = PeerChannels::new(tls_identity(3), peers.clone());
        let mut as_node_3 = RaftClient::new(org3.channel(2).unwrap());
        let status = as_node_3.vote(vote_as(1000, 1)).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status}");
        let status = as_node_3
            .append_entries(append_as(1000, 1))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status}");
        // A stranger cannot push cosignatures; a peer's malformed push, or one for
        // another board, is refused as such.
        let status = as_stranger
            .offer_cosignature(CosignOffer {
                signed_checkpoint: String::new(),
            })
            .await
            .unwrap_err();
        assert_ne!(status.code(), Code::Ok, "{status}");
        let status = as_node_3
            .offer_cosignature(CosignOffer {
                signed_checkpoint: "not a note".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status}");
        let elsewhere = bboard_core::checkpoint::SignedCheckpoint::sign(
            bboard_core::checkpoint::Checkpoint {
                origin: "rehearsal.example/board".into(),
                size: bboard_merkle::TreeSize(1),
                root: bboard_merkle::Hash([7; 32]),
            },
            &bboard_core::checkpoint::NoteSigner::new(
                "node-3",
                ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
            )
            .unwrap(),
        )
        .unwrap()
        .to_note();
        let status = as_node_3
            .offer_cosignature(CosignOffer {
                signed_checkpoint: elsewhere,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status}");
        assert!(status.message().contains("origin"), "{status}");
        let metrics = bboard_util::http::request(
            tonic::codegen::http::Method::GET,
            &format!("http://{}/metrics", public[1]),
            String::new(),
        )
        .await
        .unwrap();
        assert!(
            metrics
                .body
                .lines()
                .any(|line| line == "bboard_peer_impersonations_refused_total 2"),
            "{}",
            metrics.body
        );

        // No node's term jumped to the claimed 1000 (a forced election would have).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = terms(&public).await;
        assert!(
            after.iter().all(|&term| term < 1000),
            "terms went from {before:?} to {after:?}"
        );
        cluster.assert_alive();
    });
}

#[test]
fn a_deposed_leader_stays_refused_after_the_deposing_nodes_restart() {
    serially(async {
        let mut cluster = Cluster::configure(BIN, 3, &[1, 2, 3], fast_raft());
        for id in 1..=3 {
            cluster.node(id).start();
        }
        let public = cluster.endpoints(&[1, 2, 3]);
        let deposed = find_leader(&public, Duration::from_secs(30)).await as u64 + 1;
        let others: Vec<u64> = (1..=3).filter(|id| *id != deposed).collect();
        let admin_key = cluster.admin_key_file.display().to_string();
        for id in &others {
            let endpoint = cluster.endpoints(&[*id])[0].clone();
            let args = [
                "node",
                "campaign",
                "--endpoint",
                &endpoint,
                "--admin-key",
                &admin_key,
                "--depose",
                "--leader",
                &deposed.to_string(),
            ];
            let (ok, output) = cluster
                .run_cli(
                    args.iter().map(|a| a.to_string()).collect(),
                    Duration::from_secs(30),
                )
                .await;
            assert!(ok, "campaign on node {id}: {output}");
        }
        // The deposing nodes restart; they still refuse the deposed node.
        for id in &others {
            cluster.node(*id).kill();
            cluster.node(*id).start();
        }
        let remaining = cluster.endpoints(&others);
        let leader = others[find_leader(&remaining, Duration::from_secs(30)).await];
        assert_ne!(leader, deposed);
        let peers = endpoints(&mut cluster);
        let as_deposed = PeerChannels::new(tls_identity(deposed), peers);
        for id in &others {
            let mut client = RaftClient::new(as_deposed.channel(*id).unwrap());
            let status = client.vote(vote_as(1000, deposed)).await.unwrap_err();
            assert_eq!(status.code(), Code::Unavailable, "node {id}: {status}");
            assert!(status.message().contains("no longer follows"), "{status}");
            // Claiming another node's id does not get it in either.
            let status = client.vote(vote_as(1000, leader)).await.unwrap_err();
            assert_eq!(status.code(), Code::PermissionDenied, "node {id}: {status}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = terms(&remaining).await;
        assert!(after.iter().all(|&term| term < 1000), "terms: {after:?}");
        assert_ne!(
            others[find_leader(&remaining, Duration::from_secs(30)).await],
            deposed
        );
    });
}
