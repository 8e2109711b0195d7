#![no_main]
// Placeholder: the wire-format work fills this target in.
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
