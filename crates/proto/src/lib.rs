//! Generated protobuf messages and gRPC services of bboard (`proto/bboard/v1`).
//!
//! This crate only holds generated code; the meaning of every message is documented in
//! the `.proto` files and in docs/PROTOCOL.md. Messages decoded from untrusted bytes must
//! be validated by `bboard-core` before use: prost accepts any well-formed protobuf.

#![forbid(unsafe_code)]

/// Version 1 of the bboard wire protocol.
pub mod v1 {
    #![allow(missing_docs)] // Generated code: documented in the .proto files.
    #![allow(clippy::all)]
    tonic::include_proto!("bboard.v1");
}

/// Encoded `FileDescriptorSet` of all bboard protos, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("bboard_descriptor");
