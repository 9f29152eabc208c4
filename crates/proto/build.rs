//! Compiles `proto/bboard/v1/*.proto` without a system `protoc`: `protox` parses the
//! files into a descriptor set, `tonic-prost-build` generates messages and services from
//! it. The descriptor set is also written to OUT_DIR for gRPC reflection. Service stubs
//! are generated only with the crate's `grpc` feature.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a path baked in at compile time would point a build script
    // compiled for one checkout at another checkout sharing the target directory.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = ["entry.proto", "board.proto", "raft.proto", "admin.proto"]
        .map(|f| root.join("bboard/v1").join(f));
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let descriptors = protox::compile(&files, [&root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("bboard_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;

    // Without `grpc` only the prost messages are generated (by prost-build alone), so
    // a crate using them builds no tonic; with it, tonic-prost-build adds the client
    // and server stubs to the same file.
    #[cfg(feature = "grpc")]
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    #[cfg(not(feature = "grpc"))]
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
