//! Fuzz target `frame_image`: its body is `rws_fuzz::TARGETS`'s entry of that name.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rws_fuzz::run("frame_image", data);
});
