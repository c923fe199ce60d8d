//! A hand-edited Corefile through the CoreDNS hook's edit (see `corridor_fuzz::corefile`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corridor_fuzz::corefile(data));
