//! Runs compiled code without the runtime: a minimal executor (executable buffer, an
//! entry trampoline that follows `quickbeam_environ::abi`, a VMContext with memory and
//! globals) checks operators against Rust reference semantics. Only non-trapping inputs:
//! traps need the runtime's signal handlers.

mod common;

use common::Jit;

const I32S: [u32; 10] = [0, 1, 2, 3, 31, 32, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x1234_5678];
const I64S: [u64; 10] = [0, 1, 2, 63, 64, 0x7fff_ffff_ffff_ffff, 0x8000_0000_0000_0000, u64::MAX, 0x1234_5678_9abc_def0, 0xffff_ffff];

fn i32_ref(op: &str, a: u32, b: u32) -> Option<u32> {
    let (sa, sb) = (a as i32, b as i32);
    Some(match op {
        "add" => a.wrapping_add(b),
        "sub" => a.wrapping_sub(b),
        "mul" => a.wrapping_mul(b),
        "div_s" => sa.checked_div(sb)? as u32,
        "div_u" => a.checked_div(b)?,
        "rem_s" => if b == 0 { return None } else { sa.wrapping_rem(sb) as u32 },
        "rem_u" => a.checked_rem(b)?,
        "and" => a & b,
        "or" => a | b,
        "xor" => a ^ b,
        "shl" => a.wrapping_shl(b),
        "shr_s" => sa.wrapping_shr(b) as u32,
        "shr_u" => a.wrapping_shr(b),
        "rotl" => a.rotate_left(b % 32),
        "rotr" => a.rotate_right(b % 32),
        "eq" => (a == b) as u32,
        "ne" => (a != b) as u32,
        "lt_s" => (sa < sb) as u32,
        "lt_u" => (a < b) as u32,
        "gt_s" => (sa > sb) as u32,
        "gt_u" => (a > b) as u32,
        "le_s" => (sa <= sb) as u32,
        "le_u" => (a <= b) as u32,
        "ge_s" => (sa >= sb) as u32,
        "ge_u" => (a >= b) as u32,
        _ => unreachable!(),
    })
}

fn i64_ref(op: &str, a: u64, b: u64) -> Option<u64> {
    let (sa, sb) = (a as i64, b as i64);
    Some(match op {
        "add" => a.wrapping_add(b),
        "sub" => a.wrapping_sub(b),
        "mul" => a.wrapping_mul(b),
        "div_s" => sa.checked_div(sb)? as u64,
        "div_u" => a.checked_div(b)?,
        "rem_s" => if b == 0 { return None } else { sa.wrapping_rem(sb) as u64 },
        "rem_u" => a.checked_rem(b)?,
        "and" => a & b,
        "or" => a | b,
        "xor" => a ^ b,
        "shl" => a.wrapping_shl(b as u32),
        "shr_s" => sa.wrapping_shr(b as u32) as u64,
        "shr_u" => a.wrapping_shr(b as u32),
        "rotl" => a.rotate_left((b % 64) as u32),
        "rotr" => a.rotate_right((b % 64) as u32),
        "eq" => (a == b) as u64,
        "ne" => (a != b) as u64,
        "lt_s" => (sa < sb) as u64,
        "lt_u" => (a < b) as u64,
        "gt_s" => (sa > sb) as u64,
        "gt_u" => (a > b) as u64,
        "le_s" => (sa <= sb) as u64,
        "le_u" => (a <= b) as u64,
        "ge_s" => (sa >= sb) as u64,
        "ge_u" => (a >= b) as u64,
        _ => unreachable!(),
    })
}

const INT_OPS: [&str; 25] = [
    "add", "sub", "mul", "div_s", "div_u", "rem_s", "rem_u", "and", "or", "xor", "shl", "shr_s", "shr_u", "rotl",
    "rotr", "eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u",
];

fn is_cmp(op: &str) -> bool {
    matches!(op, "eq" | "ne" | "lt_s" | "lt_u" | "gt_s" | "gt_u" | "le_s" | "le_u" | "ge_s" | "ge_u")
}

/// Each integer binop in three placements: both registers, constant rhs, constant lhs.
#[test]
fn integer_binops_match_rust() {
    for (ty, vals) in [("i32", I32S.iter().map(|&v| v as u64).collect::<Vec<_>>()), ("i64", I64S.to_vec())] {
        let mut wat = String::from("(module\n");
        for op in INT_OPS {
            let res = if is_cmp(op) { "i32" } else { ty };
            wat += &format!("(func (export \"{op}\") (param {ty} {ty}) (result {res}) local.get 0 local.get 1 {ty}.{op})\n");
            for (ci, &c) in vals.iter().enumerate() {
                let lit = if ty == "i32" { (c as u32 as i32).to_string() } else { (c as i64).to_string() };
                wat += &format!("(func (export \"{op}_k{ci}\") (param {ty}) (result {res}) local.get 0 {ty}.const {lit} {ty}.{op})\n");
                wat += &format!("(func (export \"k{ci}_{op}\") (param {ty}) (result {res}) {ty}.const {lit} local.get 0 {ty}.{op})\n");
            }
        }
        wat += ")";
        let mut jit = Jit::from_wat(&wat);
        for op in INT_OPS {
            for &a in &vals {
                for (ci, &b) in vals.iter().enumerate() {
                    let want = if ty == "i32" { i32_ref(op, a as u32, b as u32).map(|v| v as u64) } else { i64_ref(op, a, b) };
                    let Some(want) = want else { continue };
                    let mask = if ty == "i32" || is_cmp(op) { 0xffff_ffff } else { u64::MAX };
                    let got = jit.call_export(op, &[a, b])[0] & mask;
                    assert_eq!(got, want, "{ty}.{op}({a:#x}, {b:#x}) in registers");
                    let got = jit.call_export(&format!("{op}_k{ci}"), &[a])[0] & mask;
                    assert_eq!(got, want, "{ty}.{op}({a:#x}, const {b:#x})");
                    let want_rev = if ty == "i32" { i32_ref(op, b as u32, a as u32).map(|v| v as u64) } else { i64_ref(op, b, a) };
                    if let Some(w) = want_rev {
                        let got = jit.call_export(&format!("k{ci}_{op}"), &[a])[0] & mask;
                        assert_eq!(got, w, "{ty}.{op}(const {b:#x}, {a:#x})");
                    }
                }
            }
        }
    }
}

#[test]
fn control_flow_and_calls() {
    let mut jit = Jit::from_wat(
        r#"(module
        (memory 1)
        (global $g (mut i32) (i32.const 10))
        (func $fib (export "fib") (param i32) (result i32)
          local.get 0 i32.const 2 i32.lt_u
          if (result i32) local.get 0
          else local.get 0 i32.const 1 i32.sub call $fib local.get 0 i32.const 2 i32.sub call $fib i32.add end)
        (func (export "sum") (param i32) (result i64) (local i64)
          block loop
            local.get 0 i32.eqz br_if 1
            local.get 1 local.get 0 i64.extend_i32_u i64.add local.set 1
            local.get 0 i32.const 1 i32.sub local.set 0
            br 0 end end
          local.get 1)
        (func (export "switch") (param i32) (result i32)
          block block block block
            local.get 0 br_table 0 1 2 3
          end i32.const 100 return
          end i32.const 101 return
          end i32.const 102 return
          end i32.const 103)
        (func $many (param i32 i64 i32 i64 i32 i64 i32 i64) (result i64)
          local.get 0 i64.extend_i32_u local.get 1 i64.add local.get 2 i64.extend_i32_u i64.add local.get 3 i64.add
          local.get 4 i64.extend_i32_u i64.add local.get 5 i64.add local.get 6 i64.extend_i32_u i64.add local.get 7 i64.add)
        (func (export "many") (result i64)
          i32.const 1 i64.const 2 i32.const 3 i64.const 4 i32.const 5 i64.const 6 i32.const 7 i64.const 8 call $many)
        (func $three (param i32) (result i32 i32 i32) local.get 0 local.get 0 i32.const 1 i32.add local.get 0 i32.const 2 i32.add)
        (func (export "three") (param i32) (result i32)
          local.get 0 call $three i32.mul i32.add)
        (func (export "mem") (param i32 i32) (result i32)
          local.get 0 local.get 1 i32.store offset=4
          local.get 0 i32.load8_u offset=4 local.get 0 i32.load16_s offset=5 i32.add
          global.get $g i32.add global.set $g global.get $g)
        (func (export "select") (param i32 i32 i32) (result i32) local.get 0 local.get 1 local.get 2 select)
        (func (export "blockvals") (param i32) (result i32)
          i32.const 5
          block (param i32) (result i32 i32) local.get 0 local.get 0 br_if 0 drop i32.const 7 end
          i32.add)
      )"#,
    );
    let fib = |n: u64| {
        let (mut a, mut b) = (0u64, 1u64);
        for _ in 0..n {
            (a, b) = (b, a + b);
        }
        a
    };
    for n in 0..20 {
        assert_eq!(jit.call_export("fib", &[n])[0] as u32 as u64, fib(n), "fib({n})");
    }
    assert_eq!(jit.call_export("sum", &[1000])[0], 500500);
    for i in 0..6u64 {
        assert_eq!(jit.call_export("switch", &[i])[0] as u32, 100 + i.min(3) as u32, "switch({i})");
    }
    assert_eq!(jit.call_export("many", &[])[0], 36);
    assert_eq!(jit.call_export("three", &[4])[0] as u32, 4 + 5 * 6);
    // store 0x8180 at 16+4; load8_u(20) = 0x80; load16_s(21) = 0x0081 ; 0x80 + 0x81 + 10.
    assert_eq!(jit.call_export("mem", &[16, 0x8180])[0] as u32, 0x80 + 0x81 + 10);
    assert_eq!(jit.call_export("select", &[1, 2, 1])[0] as u32, 1);
    assert_eq!(jit.call_export("select", &[1, 2, 0])[0] as u32, 2);
    // br_if taken with [5, x]; not taken: x dropped, [5, 7].
    assert_eq!(jit.call_export("blockvals", &[9])[0] as u32, 5 + 9);
    assert_eq!(jit.call_export("blockvals", &[0])[0] as u32, 5 + 7);
}


const F64S: [f64; 14] = [0.0, -0.0, 1.0, -1.5, 2.5, 3.5, -2.5, 1e10, -1e300, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 4294967296.5, 9.3e18];

fn same_float(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// Wasm `nearest`: round half to even.
fn nearest(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 { 2.0 * (x / 2.0).round() } else { r }
}

fn wasm_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else if a == b { if a.is_sign_negative() { a } else { b } } else { a.min(b) }
}

fn wasm_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else if a == b { if a.is_sign_positive() { a } else { b } } else { a.max(b) }
}

#[test]
fn float_ops_match_rust() {
    for ty in ["f32", "f64"] {
        let bin = ["add", "sub", "mul", "div", "min", "max", "copysign"];
        let un = ["abs", "neg", "ceil", "floor", "trunc", "nearest", "sqrt"];
        let cmp = ["eq", "ne", "lt", "gt", "le", "ge"];
        let mut wat = String::from("(module\n");
        for op in bin {
            wat += &format!("(func (export \"{op}\") (param {ty} {ty}) (result {ty}) local.get 0 local.get 1 {ty}.{op})\n");
        }
        for op in un {
            wat += &format!("(func (export \"{op}\") (param {ty}) (result {ty}) local.get 0 {ty}.{op})\n");
        }
        for op in cmp {
            wat += &format!("(func (export \"{op}\") (param {ty} {ty}) (result i32) local.get 0 local.get 1 {ty}.{op})\n");
        }
        wat += &format!("(func (export \"k\") (param {ty}) (result {ty}) local.get 0 {ty}.const 1.25 {ty}.add)\n)");
        let mut jit = Jit::from_wat(&wat);
        let is32 = ty == "f32";
        let enc = |v: f64| if is32 { (v as f32).to_bits() as u64 } else { v.to_bits() };
        let dec = |b: u64| if is32 { f32::from_bits(b as u32) as f64 } else { f64::from_bits(b) };
        let round = |v: f64| if is32 { v as f32 as f64 } else { v };
        for &a in &F64S {
            let a = round(a);
            for &b in &F64S {
                let b = round(b);
                for op in bin {
                    let want = round(match op {
                        "add" => if is32 { (a as f32 + b as f32) as f64 } else { a + b },
                        "sub" => if is32 { (a as f32 - b as f32) as f64 } else { a - b },
                        "mul" => if is32 { (a as f32 * b as f32) as f64 } else { a * b },
                        "div" => if is32 { (a as f32 / b as f32) as f64 } else { a / b },
                        "min" => wasm_min(a, b),
                        "max" => wasm_max(a, b),
                        _ => a.copysign(b),
                    });
                    let got = dec(jit.call_export(op, &[enc(a), enc(b)])[0]);
                    assert!(same_float(got, want), "{ty}.{op}({a}, {b}) = {got}, want {want}");
                }
                for op in cmp {
                    let want = match op { "eq" => a == b, "ne" => a != b, "lt" => a < b, "gt" => a > b, "le" => a <= b, _ => a >= b } as u64;
                    assert_eq!(jit.call_export(op, &[enc(a), enc(b)])[0] & 0xffff_ffff, want, "{ty}.{op}({a}, {b})");
                }
            }
            for op in un {
                let want = round(match op {
                    "abs" => a.abs(),
                    "neg" => -a,
                    "ceil" => a.ceil(),
                    "floor" => a.floor(),
                    "trunc" => a.trunc(),
                    "nearest" => nearest(a),
                    _ => if is32 { (a as f32).sqrt() as f64 } else { a.sqrt() },
                });
                let got = dec(jit.call_export(op, &[enc(a)])[0]);
                assert!(same_float(got, want), "{ty}.{op}({a}) = {got}, want {want}");
            }
            let got = dec(jit.call_export("k", &[enc(a)])[0]);
            assert!(same_float(got, round(a + 1.25)), "{ty} const add");
        }
    }
}

#[test]
fn conversions_match_rust() {
    let mut wat = String::from("(module\n");
    let convs = [
        ("i32.trunc_sat_f32_s", "f32", "i32"), ("i32.trunc_sat_f32_u", "f32", "i32"),
        ("i32.trunc_sat_f64_s", "f64", "i32"), ("i32.trunc_sat_f64_u", "f64", "i32"),
        ("i64.trunc_sat_f32_s", "f32", "i64"), ("i64.trunc_sat_f32_u", "f32", "i64"),
        ("i64.trunc_sat_f64_s", "f64", "i64"), ("i64.trunc_sat_f64_u", "f64", "i64"),
        ("i32.trunc_f64_s", "f64", "i32"), ("i32.trunc_f64_u", "f64", "i32"),
        ("i64.trunc_f64_s", "f64", "i64"), ("i64.trunc_f64_u", "f64", "i64"),
        ("f64.convert_i32_s", "i32", "f64"), ("f64.convert_i32_u", "i32", "f64"),
        ("f64.convert_i64_s", "i64", "f64"), ("f64.convert_i64_u", "i64", "f64"),
        ("f32.convert_i64_u", "i64", "f32"), ("f32.convert_i32_u", "i32", "f32"),
        ("f32.demote_f64", "f64", "f32"), ("f64.promote_f32", "f32", "f64"),
        ("i64.extend_i32_s", "i32", "i64"), ("i64.extend_i32_u", "i32", "i64"), ("i32.wrap_i64", "i64", "i32"),
        ("i32.extend8_s", "i32", "i32"), ("i32.extend16_s", "i32", "i32"), ("i64.extend32_s", "i64", "i64"),
        ("i32.clz", "i32", "i32"), ("i64.ctz", "i64", "i64"), ("i64.popcnt", "i64", "i64"), ("i32.eqz", "i32", "i32"),
    ];
    for (op, from, to) in convs {
        wat += &format!("(func (export \"{op}\") (param {from}) (result {to}) local.get 0 {op})\n");
    }
    wat += ")";
    let mut jit = Jit::from_wat(&wat);
    let floats = [0.0, -0.0, 0.7, -0.7, 1.5, -1.5, 2147483647.0, 2147483648.0, -2147483648.0, -2147483649.0,
        4294967295.0, 4294967296.0, 9.2e18, 9.3e18, 1.8e19, 1.9e19, -9.3e18, f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
    let ints: [u64; 8] = [0, 1, 0x7f, 0x80, 0xffff_ffff, 0x8000_0000, 0x8000_0000_0000_0000, u64::MAX];
    for (op, from, to) in convs {
        let inputs: Vec<u64> = match from {
            "f32" => floats.iter().map(|&f| (f as f32).to_bits() as u64).collect(),
            "f64" => floats.iter().map(|&f: &f64| f.to_bits()).collect(),
            "i32" => ints.iter().map(|&i| i & 0xffff_ffff).collect(),
            _ => ints.to_vec(),
        };
        for x in inputs {
            let f = |b: u64| if from == "f32" { f32::from_bits(b as u32) as f64 } else { f64::from_bits(b) };
            let want: Option<u64> = match op {
                "i32.trunc_sat_f32_s" | "i32.trunc_sat_f64_s" => Some(f(x) as i32 as u32 as u64),
                "i32.trunc_sat_f32_u" | "i32.trunc_sat_f64_u" => Some(f(x) as u32 as u64),
                "i64.trunc_sat_f32_s" | "i64.trunc_sat_f64_s" => Some(f(x) as i64 as u64),
                "i64.trunc_sat_f32_u" | "i64.trunc_sat_f64_u" => Some(f(x) as u64),
                "i32.trunc_f64_s" => { let t = f(x).trunc(); (t >= -2147483648.0 && t <= 2147483647.0).then(|| t as i32 as u32 as u64) }
                "i32.trunc_f64_u" => { let t = f(x).trunc(); (t >= 0.0 && t <= 4294967295.0).then(|| t as u32 as u64) }
                "i64.trunc_f64_s" => { let t = f(x).trunc(); (t >= -9223372036854775808.0 && t < 9223372036854775808.0).then(|| t as i64 as u64) }
                "i64.trunc_f64_u" => { let t = f(x).trunc(); (t >= 0.0 && t < 18446744073709551616.0).then(|| t as u64) }
                "f64.convert_i32_s" => Some((x as u32 as i32 as f64).to_bits()),
                "f64.convert_i32_u" => Some((x as u32 as f64).to_bits()),
                "f64.convert_i64_s" => Some((x as i64 as f64).to_bits()),
                "f64.convert_i64_u" => Some((x as f64).to_bits()),
                "f32.convert_i64_u" => Some((x as f32).to_bits() as u64),
                "f32.convert_i32_u" => Some((x as u32 as f32).to_bits() as u64),
                "f32.demote_f64" => { let v = f64::from_bits(x) as f32; (!v.is_nan()).then(|| v.to_bits() as u64) }
                "f64.promote_f32" => { let v = f32::from_bits(x as u32) as f64; (!v.is_nan()).then(|| v.to_bits()) }
                "i64.extend_i32_s" => Some(x as u32 as i32 as i64 as u64),
                "i64.extend_i32_u" => Some(x as u32 as u64),
                "i32.wrap_i64" => Some(x & 0xffff_ffff),
                "i32.extend8_s" => Some(x as u8 as i8 as i32 as u32 as u64),
                "i32.extend16_s" => Some(x as u16 as i16 as i32 as u32 as u64),
                "i64.extend32_s" => Some(x as u32 as i32 as i64 as u64),
                "i32.clz" => Some((x as u32).leading_zeros() as u64),
                "i64.ctz" => Some(x.trailing_zeros() as u64),
                "i64.popcnt" => Some(x.count_ones() as u64),
                "i32.eqz" => Some((x as u32 == 0) as u64),
                _ => unreachable!(),
            };
            let Some(want) = want else { continue };
            let mask = if to == "i32" || to == "f32" { 0xffff_ffff } else { u64::MAX };
            let got = jit.call_export(op, &[x])[0] & mask;
            assert_eq!(got, want, "{op}({x:#x})");
        }
    }
}
