//! Manifest bytes through the controller's file-source pipeline.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corridor_fuzz::manifests(data));
