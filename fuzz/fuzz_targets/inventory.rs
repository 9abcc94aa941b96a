//! Fuzzes the inventory loader end to end: YAML parse, validation, task resolution and
//! template rendering of a valid result, and the diagnostic of an invalid one. A finding is
//! a panic, a hang or a runaway allocation; an error is the expected outcome.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        common::load_and_render(text, None);
    }
});
