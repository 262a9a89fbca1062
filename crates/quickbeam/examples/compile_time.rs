//! Prints `Module::new`'s compile report for each file given: `cargo run --release
//! -p quickbeam --example compile_time -- FILE...`.
fn main() -> quickbeam::Result<()> {
    let engine = quickbeam::Engine::default();
    for path in std::env::args().skip(1) {
        let module = quickbeam::Module::from_file(&engine, &path)?;
        let r = module.compile_report();
        println!(
            "{path}: {} functions, {} bytes in {:.1} ms ({:.1} MB/s)",
            r.functions,
            r.bytes,
            r.seconds * 1e3,
            r.bytes as f64 / r.seconds / 1e6
        );
    }
    Ok(())
}
