//! xDS resource bytes through the gateway's protobuf decoding and model conversion.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corridor_fuzz::xds_resources(data));
