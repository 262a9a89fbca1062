//! Interruption checks and fuel metering (`CodegenSettings`): one check per function
//! entry and per loop header when on, not one byte when off, only `r11` and the header
//! fields of `abi.rs`, and stencils that still name no module (the same function in two
//! modules compiles to one stencil with the checks in).

use quickbeam_codegen::disasm::disassemble;
use quickbeam_codegen::*;
use quickbeam_environ::*;

const MODULE: &str = r#"(module
    (memory 1)
    (func $leaf (result i32) i32.const 1)
    (func $two_loops (param i32) (result i32) (local i32)
        loop $a
            local.get 1 i32.const 1 i32.add local.set 1
            local.get 1 local.get 0 i32.lt_u br_if $a
        end
        block $out
            loop $b
                local.get 1 i32.eqz br_if $out
                local.get 1 i32.const 1 i32.sub local.set 1
                br $b
            end
        end
        local.get 1)
    (func $grow (param i32) (result i32) local.get 0 memory.grow))"#;

fn compile(wat: &str, settings: CodegenSettings) -> Vec<Stencil> {
    let bytes = wat::parse_str(wat).unwrap();
    let (env, inputs) = ModuleEnv::parse(&bytes, supported_features()).unwrap();
    let mut c = FunctionCompiler::with_settings(settings);
    inputs.into_iter().map(|i| c.compile(&env, i).unwrap().stencil).collect()
}

fn traps(s: &Stencil, code: TrapCode) -> usize {
    s.trap_sites.iter().filter(|t| t.code == code).count()
}

const EPOCHS: CodegenSettings = CodegenSettings { epoch_interruption: true, consume_fuel: false };
const FUEL: CodegenSettings = CodegenSettings { epoch_interruption: false, consume_fuel: true };
const BOTH: CodegenSettings = CodegenSettings { epoch_interruption: true, consume_fuel: true };

#[test]
fn one_check_per_function_entry_and_loop_header() {
    let off = compile(MODULE, CodegenSettings::default());
    for (settings, epoch, fuel) in [(EPOCHS, 1, 0), (FUEL, 0, 1), (BOTH, 1, 1)] {
        let on = compile(MODULE, settings);
        // Entry only, entry and two loops, entry only.
        for (f, loops) in [(0, 0), (1, 2), (2, 0)] {
            assert_eq!(traps(&on[f], TrapCode::Interrupt), epoch * (1 + loops), "{settings:?} func {f}");
            assert_eq!(traps(&on[f], TrapCode::OutOfFuel), fuel * (1 + loops), "{settings:?} func {f}");
            assert_eq!(traps(&off[f], TrapCode::Interrupt) + traps(&off[f], TrapCode::OutOfFuel), 0);
            assert!(on[f].code.len() > off[f].code.len());
        }
    }
}

#[test]
fn the_checks_read_the_vmcontext_header_through_r11() {
    let on = compile(MODULE, BOTH);
    let text = disassemble(&on[0]);
    let epoch =
        format!("mov r11,[r14+{:#x}]\nmov r11,[r11]\ncmp r11,[r14+{:#x}]\njae ", VMCTX_EPOCH_PTR, VMCTX_EPOCH_DEADLINE);
    let fuel = format!("mov r11,[r14+{:#x}]\nsub qword ptr [r11],1\njs ", VMCTX_FUEL_PTR);
    // The instructions alone, one per line, without offsets and annotations.
    let ins: Vec<&str> =
        text.lines().map(|l| l.split_once(": ").map_or(l, |(_, rest)| rest).split("  ;").next().unwrap_or(l)).collect();
    let joined = ins.join("\n");
    assert!(joined.contains(&epoch), "no epoch check in:\n{text}");
    assert!(joined.contains(&fuel), "no fuel check in:\n{text}");
    // Short encodings: 4 + 3 + 4 + 6 bytes for the epoch check, 4 + 5 + 6 for fuel.
    let at = |s: &str| {
        text.lines()
            .find(|l| l.contains(s))
            .map(|l| u32::from_str_radix(l.trim().split(':').next().unwrap(), 16).unwrap())
    };
    let (e0, f0) = (at("mov r11,[r14+0x20]").unwrap(), at("mov r11,[r14+0x30]").unwrap());
    assert_eq!(f0 - e0, 17, "{text}");
    // The stubs are out of line: after the function's `ret`.
    let ret = ins.iter().position(|l| *l == "ret").expect("a ret");
    let ud2s: Vec<usize> = ins.iter().enumerate().filter(|(_, l)| **l == "ud2").map(|(i, _)| i).collect();
    assert!(ud2s.iter().all(|&i| i > ret), "a trap stub inline:\n{text}");
}

#[test]
fn stencils_with_checks_still_name_no_module() {
    let a = r#"(module (func $x) (func $f (export "f") (param i32) (result i32)
        loop $l local.get 0 i32.const 1 i32.sub local.tee 0 br_if $l end local.get 0))"#;
    let b = r#"(module (import "m" "h" (func)) (func $y) (func $z) (func $f (export "f") (param i32) (result i32)
        loop $l local.get 0 i32.const 1 i32.sub local.tee 0 br_if $l end local.get 0))"#;
    for settings in [EPOCHS, FUEL, BOTH] {
        let (sa, sb) = (compile(a, settings), compile(b, settings));
        assert_eq!(sa.last(), sb.last(), "{settings:?}");
    }
}

#[test]
fn settings_are_in_the_fingerprint_text() {
    let texts: Vec<String> =
        [CodegenSettings::default(), EPOCHS, FUEL, BOTH].iter().map(|s| s.fingerprint_text()).collect();
    for i in 0..texts.len() {
        for j in 0..i {
            assert_ne!(texts[i], texts[j]);
        }
    }
}

/// `memory.grow` tests the high half of the builtin's result (a failed limiter).
#[test]
fn grow_checks_for_a_failed_limiter() {
    let s = compile(MODULE, CodegenSettings::default());
    assert_eq!(traps(&s[2], TrapCode::HostError), 1, "{}", disassemble(&s[2]));
    assert!(disassemble(&s[2]).contains("shr r11,0x20"), "{}", disassemble(&s[2]));
}
