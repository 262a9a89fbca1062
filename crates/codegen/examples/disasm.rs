//! Prints the Microwasm and x86-64 of one function: `cargo run -p quickbeam-codegen
//! --example disasm -- FILE.wasm FUNC_INDEX`.

use quickbeam_codegen::{disasm::disassemble, FunctionCompiler};
use quickbeam_environ::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bytes = wat::parse_file(&args[1]).expect("readable module");
    let index: u32 = args[2].parse().expect("function index");
    let pick = || {
        let (env, inputs) = ModuleEnv::parse(&bytes, supported_features()).expect("valid module");
        let input = inputs.into_iter().find(|i| i.index == index).expect("a defined function");
        (env, input)
    };
    let (env, input) = pick();
    let mut rec = quickbeam_microwasm::Recorder::default();
    quickbeam_microwasm::Translator::new().translate(&env, input, &mut rec).expect("translates");
    let (env, input) = pick();
    println!("{}", quickbeam_microwasm::print_ops(&rec.ops));
    let f = FunctionCompiler::new().compile(&env, input).expect("compiles");
    println!("{}", disassemble(&f.stencil));
    println!("consts: {:?}\nguards: {:?}", f.consts, f.stencil.guards);
}
