//! Raw DNS queries through corridor-dns's request path (decode, zone, encode).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corridor_fuzz::dns_request(data));
