//! Forwarding writes to the leader: a follower hands an append to the current leader's
//! Board service in ONE hop (the request is marked with
//! [`crate::service::FORWARDED`] so the leader never forwards it again), over one
//! lazily connected channel per peer address ([`Channels`]).
//!
//! Transport failures come back as UNAVAILABLE, so the submitter retries the same
//! envelope (appends are idempotent); the leader's own answers pass through unchanged.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::node::Shared;

/// Why no channel to a peer could be made.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The channel map's lock was poisoned by a panicking thread.
    #[error("the peer channel map is poisoned")]
    Poisoned,
    /// The peer's address is not a valid endpoint.
    #[error("invalid address {address}: {source}")]
    InvalidAddress {
        /// The address as configured or announced in the membership.
        address: String,
        /// What tonic objects to.
        #[source]
        source: tonic::transport::Error,
    },
}

impl Shared {
    /// Forwards an envelope to the current leader's Board service (one hop, marked so
    /// the leader never forwards again). Returns the answer, the leader and its address.
    pub async fn forward_to_leader(
        &self,
        envelope: bboard_core::pb::Envelope,
    ) -> Result<(bboard_core::pb::AppendResponse, u64, String), tonic::Status> {
        let leader = self
            .raft
            .current_leader()
            .await
            .ok_or_else(|| tonic::Status::unavailable("no leader elected; retry"))?;
        let address = self.address_of(leader).ok_or_else(|| {
            tonic::Status::unavailable(format!("leader {leader} has no known address"))
        })?;
        let channel = self
            .channels
            .get(&address)
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let limit = self.config.limits.max_message_bytes.max(8 * 1024 * 1024);
        let mut client = bboard_proto::v1::board_client::BoardClient::new(channel)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let mut request = tonic::Request::new(bboard_core::pb::AppendRequest {
            envelope: Some(envelope),
        });
        request.metadata_mut().insert(
            crate::service::FORWARDED,
            tonic::metadata::MetadataValue::from_static("1"),
        );
        let response = client.append(request).await.map_err(|status| {
            if status.code() == tonic::Code::Unavailable || status.code() == tonic::Code::Unknown {
                tonic::Status::unavailable(format!(
                    "forwarding to leader {leader} at {address}: {}",
                    status.message()
                ))
            } else {
                status
            }
        })?;
        Ok((response.into_inner(), leader, address))
    }
}

/// Keeps one lazily connected channel per peer address.
#[derive(Default)]
pub struct Channels {
    channels: Mutex<HashMap<String, tonic::transport::Channel>>,
}

impl Channels {
    /// The channel to `address`.
    pub fn get(&self, address: &str) -> Result<tonic::transport::Channel, ChannelError> {
        let mut channels = self.channels.lock().map_err(|_| ChannelError::Poisoned)?;
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|source| ChannelError::InvalidAddress {
                address: address.to_string(),
                source,
            })?
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }
}
