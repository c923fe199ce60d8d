//! Bytes of a stream through the gateway's dubbo codec (see `corridor_fuzz::codec_stream`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corridor_fuzz::dubbo_codec(data));
