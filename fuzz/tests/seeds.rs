//! Replays every committed seed through its target's body, so that the targets keep
//! building and the seeds keep passing without libFuzzer (stable toolchain, plain
//! `cargo test`).

use std::{fs, path::Path};

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    let mut count = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("seed directory entry").path();
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("{target}: {}", path.display());
        run(&bytes);
        count += 1;
    }
    assert!(count > 0, "no seeds in {}", dir.display());
}

#[test]
fn manifests_seeds() {
    replay("manifests", corridor_fuzz::manifests);
}

#[test]
fn xds_resources_seeds() {
    replay("xds_resources", corridor_fuzz::xds_resources);
}

/// The controller's own output for the example manifests must be accepted by the gateway.
#[test]
fn xds_seeds_from_the_translator_are_accepted() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/xds_resources");
    for entry in fs::read_dir(&dir).expect("seed directory") {
        let path = entry.expect("seed directory entry").path();
        let bytes = fs::read(&path).expect("seed file");
        if let Err(e) = corridor_fuzz::convert_xds(&bytes) {
            panic!("{}: rejected: {e}", path.display());
        }
    }
}

#[test]
fn dns_request_seeds() {
    replay("dns_request", corridor_fuzz::dns_request);
}

#[test]
fn dubbo_codec_seeds() {
    replay("dubbo_codec", corridor_fuzz::dubbo_codec);
}

#[test]
fn thrift_codec_seeds() {
    replay("thrift_codec", corridor_fuzz::thrift_codec);
}

#[test]
fn redis_resp_seeds() {
    replay("redis_resp", corridor_fuzz::redis_resp);
}

#[test]
fn corefile_seeds() {
    replay("corefile", corridor_fuzz::corefile);
}
