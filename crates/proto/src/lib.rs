//! Generated protobuf messages of bboard (`proto/bboard/v1`) and, with the `grpc`
//! feature, the tonic client and server stubs of its services.
//!
//! This crate only holds generated code; the meaning of every message is documented in
//! the `.proto` files and in docs/PROTOCOL.md. Messages decoded from untrusted bytes must
//! be validated by `bboard-core` before use: prost accepts any well-formed protobuf.
//!
//! Without `grpc` the crate depends on `prost` alone: the pure crates (`bboard-core`,
//! `bboard-ballot`) use it that way and so build no tokio, hyper or tonic.

#![forbid(unsafe_code)]

/// Version 1 of the bboard wire protocol.
pub mod v1 {
    #![allow(missing_docs)] // Generated code: documented in the .proto files.
    #![allow(clippy::all)]
    // build.rs writes messages only, or messages and service stubs with `grpc`, to the
    // same file; `tonic::include_proto!` is this same `include!`, without needing tonic.
    include!(concat!(env!("OUT_DIR"), "/bboard.v1.rs"));
}

/// Encoded `FileDescriptorSet` of all bboard protos, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/bboard_descriptor.bin"));
