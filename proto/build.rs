//! Compiles the project's own protos with protox (no system `protoc`), and writes one
//! descriptor set holding both ours and Envoy's so `/config_dump` can render any xDS
//! resource as Envoy-shaped JSON.

use std::{env, fs, path::PathBuf};

use prost::Message;

/// Domain of every type URL the project's messages travel under in `Any`, as Envoy's.
const TYPE_URL_DOMAIN: &str = "type.googleapis.com";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let protos = [
        "corridor/dns/v1/name_table.proto",
        "aeraki/meta_protocol_proxy/config/route/v1alpha/route.proto",
        "aeraki/meta_protocol_proxy/v1alpha/meta_protocol_proxy.proto",
        "aeraki/meta_protocol_proxy/filters/local_ratelimit/v1alpha/local_ratelimit.proto",
        "aeraki/meta_protocol_proxy/filters/global_ratelimit/v1alpha/global_ratelimit.proto",
        "corridor/workload/v1/workload.proto",
        // OTLP trace export (the gateway's spans); `common/v1` comes from envoy-types.
        "opentelemetry/proto/resource/v1/resource.proto",
        "opentelemetry/proto/trace/v1/trace.proto",
        "opentelemetry/proto/collector/trace/v1/trace_service.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    // Envoy's descriptors ship inside the envoy-types crate: our protos import Envoy's
    // messages (HeaderMatcher, WeightedCluster, ...) from them, and the generated code
    // refers to envoy-types' Rust types instead of generating its own copies.
    let envoy = envoy_descriptor_set()?;
    let mut resolver = protox::file::ChainFileResolver::new();
    resolver.add(protox::file::IncludeFileResolver::new(PathBuf::from(".")));
    resolver.add(protox::file::DescriptorSetFileResolver::new(envoy.clone()));
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    // prost-build needs every imported message (it inspects their fields to pick derives),
    // so the set carries Envoy's files too; extern paths keep it from generating them.
    compiler.include_imports(true);
    compiler.open_files(protos)?;
    let with_imports = compiler.file_descriptor_set();
    let ours = prost_types::FileDescriptorSet {
        file: with_imports
            .file
            .iter()
            .filter(|f| protos.contains(&f.name()))
            .cloned()
            .collect(),
    };
    // Type names let `prost::Name::type_url()` give the full xDS type URL
    // (`type.googleapis.com/corridor.dns.v1.NameTable`), which packing into `Any` needs.
    let mut config = tonic_prost_build::Config::new();
    config
        .enable_type_names()
        .type_name_domain(["."], TYPE_URL_DOMAIN)
        // Well-known types from envoy-types too (not prost-types), so that a Duration in
        // our messages is the same Rust type as in Envoy's.
        .compile_well_known_types()
        .extern_path(".envoy", "::envoy_types::pb::envoy")
        .extern_path(".xds", "::envoy_types::pb::xds")
        .extern_path(".udpa", "::envoy_types::pb::udpa")
        .extern_path(".validate", "::envoy_types::pb::validate")
        .extern_path(
            ".opentelemetry.proto.common",
            "::envoy_types::pb::opentelemetry::proto::common",
        )
        .extern_path(".google.protobuf", "::envoy_types::pb::google::protobuf");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds_with_config(with_imports, config)?;

    // Envoy's descriptors ship inside the envoy-types crate; merge them with ours.
    let mut all = ours;
    let known: std::collections::HashSet<String> =
        all.file.iter().filter_map(|f| f.name.clone()).collect();
    all.file
        .extend(envoy.file.into_iter().filter(|f| !known.contains(f.name())));
    fs::write(out.join("descriptors.bin"), all.encode_to_vec())?;
    Ok(())
}

/// Finds `envoy-types`' bundled `types.bin` next to its sources in the Cargo registry, at
/// the version the workspace lock file names.
fn envoy_descriptor_set() -> Result<prost_types::FileDescriptorSet, Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let lock = fs::read_to_string(manifest.join("../Cargo.lock"))?;
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"envoy-types\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .ok_or("envoy-types not found in Cargo.lock")?;
    let cargo_home = env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| env::var("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    for index in fs::read_dir(cargo_home.join("registry/src"))? {
        let candidate = index?
            .path()
            .join(format!("envoy-types-{version}/src/generated/types.bin"));
        if candidate.exists() {
            println!("cargo:rerun-if-changed={}", candidate.display());
            let bytes = fs::read(&candidate)?;
            return Ok(prost_types::FileDescriptorSet::decode(bytes.as_slice())?);
        }
    }
    Err(format!("envoy-types-{version}/src/generated/types.bin not found under {}", cargo_home.display()).into())
}
