//! Compiles `proto/vigie/v1/*.proto` with `protox` (pure Rust: no `protoc` needed) and generates the
//! tonic/prost code. The encoded descriptor set is kept for gRPC server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/vigie/v1/types.proto",
        "proto/vigie/v1/screening.proto",
        "proto/vigie/v1/banks.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("vigie_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        // Prost's codec behind a count of each request's repeated fields (src/service/codec.rs).
        .codec_path("crate::service::codec::CappedCodec")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
