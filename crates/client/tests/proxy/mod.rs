//! A misbehaving node for the client's tests: a gRPC proxy in front of a real node.
//!
//! It forwards every call to the node and hands back what the node answered, except
//! when told to misbehave: answer `UNAVAILABLE` a number of times, censor (never
//! forward an append, answer after a long delay), or tamper with the node's answer
//! (flip a proof hash, drop all but one checkpoint signature, hand back the receipt of
//! the previous entry). It counts and records the appends it receives. It never
//! computes a receipt, a proof or a checkpoint itself: the board is the real node's.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bboard_core::pb;
use bboard_proto::v1::board_client::BoardClient as Grpc;
use bboard_proto::v1::board_server::{Board, BoardServer};
use tokio_stream::Stream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// How the proxy tampers with the node's answers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Forgery {
    /// Answers as the node did.
    #[default]
    None,
    /// The first hash of every inclusion proof (in receipts too) is flipped.
    WrongProof,
    /// Every checkpoint (in receipts and proofs too) keeps only its first signature.
    OneSignature,
    /// An append is forwarded, but answered with the receipt of the previous one.
    OtherEntry,
}

/// What the proxy is told to do.
#[derive(Debug, Default)]
pub struct Knobs {
    /// Append calls left to answer `UNAVAILABLE` without forwarding them.
    pub unavailable: usize,
    /// Censor: forward no append, answer `UNAVAILABLE` after this delay (longer than
    /// the client's per-request timeout: no answer in time at all).
    pub censor: Option<Duration>,
    /// Tampering with answers.
    pub forgery: Forgery,
    /// Serve `GetEntries` pages of at most this many entries, so the client has to page.
    pub page_limit: Option<u32>,
}

#[derive(Default)]
struct State {
    knobs: Knobs,
    /// Every envelope `Append` received, in order (forwarded or not).
    received: Vec<pb::Envelope>,
    /// The receipt of the last append forwarded, for [`Forgery::OtherEntry`].
    previous_receipt: Option<pb::Receipt>,
}

/// A proxy in front of one node; clones share its state.
#[derive(Clone)]
pub struct Proxy {
    node: Grpc<Channel>,
    state: Arc<Mutex<State>>,
}

impl Proxy {
    /// Serves a proxy of the node at `node` on 127.0.0.1 (any free port); the proxy and
    /// its `host:port`.
    pub async fn serve(node: &str) -> (Proxy, String) {
        let channel = Channel::from_shared(format!("http://{node}"))
            .unwrap()
            .connect_lazy();
        let proxy = Proxy {
            node: Grpc::new(channel),
            state: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(BoardServer::new(proxy.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (proxy, address)
    }

    /// Changes what the proxy does from now on.
    pub fn set(&self, change: impl FnOnce(&mut Knobs)) {
        change(&mut self.state.lock().unwrap().knobs);
    }

    /// The envelopes `Append` received, in order.
    pub fn received(&self) -> Vec<pb::Envelope> {
        self.state.lock().unwrap().received.clone()
    }

    /// How many `Append` calls it received.
    pub fn append_calls(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }

    fn forgery(&self) -> Forgery {
        self.state.lock().unwrap().knobs.forgery
    }

    /// The node's checkpoint note as the proxy serves it.
    fn note(&self, note: String) -> String {
        match (self.forgery(), note.rsplit_once("\n\n")) {
            (Forgery::OneSignature, Some((text, signatures))) => {
                let first = signatures.lines().next().unwrap_or_default();
                format!("{text}\n\n{first}\n")
            }
            _ => note,
        }
    }

    /// The node's inclusion proof as the proxy serves it.
    fn proof(&self, mut proof: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        if self.forgery() == Forgery::WrongProof {
            match proof.first_mut() {
                Some(first) => first[0] ^= 1,
                None => proof.push(vec![0; 32]),
            }
        }
        proof
    }

    /// The node's receipt as the proxy serves it.
    fn receipt(&self, mut receipt: pb::Receipt) -> pb::Receipt {
        let previous = {
            let mut state = self.state.lock().unwrap();
            state.previous_receipt.replace(receipt.clone())
        };
        if let (Forgery::OtherEntry, Some(previous)) = (self.forgery(), previous) {
            return previous;
        }
        receipt.checkpoint = self.note(receipt.checkpoint);
        receipt.inclusion_proof = self.proof(receipt.inclusion_proof);
        receipt
    }
}

/// The message of the node's answer to a forwarded call.
fn answer<T>(response: Result<Response<T>, Status>) -> Result<T, Status> {
    response.map(Response::into_inner)
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Board for Proxy {
    async fn append(
        &self,
        request: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        let request = request.into_inner();
        let censor = {
            let mut state = self.state.lock().unwrap();
            state.received.extend(request.envelope.clone());
            if state.knobs.unavailable > 0 {
                state.knobs.unavailable -= 1;
                return Err(Status::unavailable("no leader yet"));
            }
            state.knobs.censor
        };
        if let Some(delay) = censor {
            tokio::time::sleep(delay).await;
            return Err(Status::unavailable("no receipt yet; retry"));
        }
        let mut response = answer(self.node.clone().append(request).await)?;
        response.receipt = response.receipt.map(|r| self.receipt(r));
        Ok(Response::new(response))
    }

    async fn append_many(
        &self,
        request: Request<pb::AppendManyRequest>,
    ) -> Result<Response<pb::AppendManyResponse>, Status> {
        self.node.clone().append_many(request.into_inner()).await
    }

    async fn get_entry(
        &self,
        request: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::EntryResponse>, Status> {
        self.node.clone().get_entry(request.into_inner()).await
    }

    async fn get_entries(
        &self,
        request: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        let mut request = request.into_inner();
        if let Some(limit) = self.state.lock().unwrap().knobs.page_limit {
            request.limit = request.limit.min(limit);
        }
        self.node.clone().get_entries(request).await
    }

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        let mut response = answer(self.node.clone().get_checkpoint(request.into_inner()).await)?;
        response.signed_checkpoint = self.note(response.signed_checkpoint);
        Ok(Response::new(response))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProofResponse>, Status> {
        let mut response = answer(
            self.node
                .clone()
                .get_inclusion_proof(request.into_inner())
                .await,
        )?;
        response.proof = self.proof(response.proof);
        response.signed_checkpoint = self.note(response.signed_checkpoint);
        Ok(Response::new(response))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProofResponse>, Status> {
        self.node
            .clone()
            .get_consistency_proof(request.into_inner())
            .await
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let events = answer(self.node.clone().watch(request.into_inner()).await)?;
        Ok(Response::new(Box::pin(events)))
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.node.clone().status(request.into_inner()).await
    }

    async fn list_alarms(
        &self,
        request: Request<pb::ListAlarmsRequest>,
    ) -> Result<Response<pb::ListAlarmsResponse>, Status> {
        self.node.clone().list_alarms(request.into_inner()).await
    }
}
