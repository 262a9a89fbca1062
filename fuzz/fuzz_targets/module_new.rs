//! Malformed input: the fuzzer's bytes go to `Module::new` (with the in-process cache
//! on, and off), which must return `Ok` or `Err` and never panic; a module it accepts
//! must pass wasmparser's validator (`quickbeam_tests::malformed::check_module_new`).
//! Start from real modules (see README.md) to get past the first sections.

#![no_main]

use libfuzzer_sys::fuzz_target;
use quickbeam_tests::malformed::{self, Verdict};
use std::sync::OnceLock;

fn engines() -> &'static [quickbeam::Engine; 2] {
    static ENGINES: OnceLock<[quickbeam::Engine; 2]> = OnceLock::new();
    ENGINES.get_or_init(|| {
        [
            quickbeam::Engine::new(&quickbeam::Config::new()).expect("engine"),
            quickbeam::Engine::new(quickbeam::Config::new().cache(false)).expect("engine"),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let engine = &engines()[data.len() % 2];
    if let Verdict::Failed(why) = malformed::check_module_new(engine, data) {
        panic!("{why}");
    }
});
