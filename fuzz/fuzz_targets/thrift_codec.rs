//! Bytes of a stream through the gateway's thrift codec (see `corridor_fuzz::codec_stream`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corridor_fuzz::thrift_codec(data));
