//! Compiles every function of the real programs and the shared corpus: no internal error,
//! and (in debug builds) the register-count invariant holds after every operator.

use quickbeam_codegen::FunctionCompiler;
use quickbeam_environ::*;
use std::path::PathBuf;

fn modules() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut v: Vec<PathBuf> = ["sqlite", "lua", "zstd", "bzip2"]
        .iter()
        .map(|n| root.join("target/fixtures").join(format!("{n}.wasm")))
        .collect();
    v.extend(["coremark", "bz2", "pulldown-cmark"].iter().map(|n| root.join("../shared/corpus").join(format!("{n}.wasm"))));
    v.into_iter().filter(|p| p.exists()).collect()
}

#[test]
fn every_function_of_the_corpus_compiles() {
    let mut total = 0;
    for path in modules() {
        let bytes = std::fs::read(&path).unwrap();
        let (env, inputs) = ModuleEnv::parse(&bytes, supported_features()).unwrap();
        let mut c = FunctionCompiler::new();
        for input in inputs {
            let index = input.index;
            if let Err(e) = c.compile(&env, input) {
                panic!("{}: function {index} ({:?}): {e}", path.display(), env.func_name(index));
            }
            total += 1;
        }
    }
    assert!(total > 0, "no module found");
}
