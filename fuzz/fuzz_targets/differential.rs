//! Differential fuzzing against wasmi: the fuzzer's bytes make a wasm-smith module
//! (`quickbeam_tests::differential::smith_module`), which runs in Quickbeam and in
//! wasmi; any divergence (results, traps, final exports) or panic is a crash.

#![no_main]

use libfuzzer_sys::fuzz_target;
use quickbeam_tests::differential::{self, Verdict};
use std::sync::OnceLock;

fn engine() -> &'static differential::Engines {
    static ENGINES: OnceLock<differential::Engines> = OnceLock::new();
    ENGINES.get_or_init(differential::Engines::new)
}

fuzz_target!(|data: &[u8]| {
    let Some((wasm, arg_seed)) = differential::smith_module(data) else { return };
    // Quickbeam's Wasm stack needs a thread with room to spare.
    let verdict = std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(differential::THREAD_STACK)
            .spawn_scoped(s, || differential::check(engine(), &wasm, arg_seed))
            .expect("spawn")
            .join()
            .expect("check does not panic: it reports panics as divergences")
    });
    if let Verdict::Diverged(why) = verdict {
        panic!("divergence: {why}\n{}", differential::explain(engine(), &wasm, arg_seed));
    }
});
