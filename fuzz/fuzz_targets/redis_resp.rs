//! Bytes of a stream through the gateway's RESP decoders (see `corridor_fuzz::redis_resp`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corridor_fuzz::redis_resp(data));
