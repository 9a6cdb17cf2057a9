//! Fuzz target `oracle_file`: its body is `rws_fuzz::TARGETS`'s entry of that name.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rws_fuzz::run("oracle_file", data);
});
