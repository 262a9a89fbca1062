//! Snapshots of the Microwasm the translator streams for small functions.
//!
//! Each snapshot holds the `.wat` (as its description) and the Microwasm text of every
//! defined function, with its constants and slot parameters. Regenerate with
//! `BLESS=1 cargo test -p quickbeam-microwasm` (or `INSTA_UPDATE=always`), then review
//! the diff: depths, label params and arities are the things to check by hand.

mod common;

fn check(name: &str, wat: &str) {
    check_with(name, wat, quickbeam_environ::supported_features());
}

fn check_with(name: &str, wat: &str, features: wasmparser::WasmFeatures) {
    common::bless();
    let text = common::mir_with(wat, features);
    insta::with_settings!({ description => wat.trim(), omit_expression => true }, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn locals() {
    check(
        "locals",
        r#"
(module
  (func (param i32 i64) (result i32) (local f32 i32)
    local.get 0     ;; height 4: pick 3
    local.set 3     ;; height 5: swap 1, drop
    local.get 1     ;; height 4: pick 2
    drop
    i32.const 7
    local.tee 3     ;; height 5: pick 0, swap 2, drop
    local.get 3     ;; height 5: pick 1
    i32.add))
"#,
    );
}

#[test]
fn local_set_param_deep() {
    check(
        "local_set_param_deep",
        r#"
(module
  (func (param i32 i32 i32)
    i32.const 1
    i32.const 2
    local.set 0     ;; height 5: swap 4, drop
    local.set 2     ;; height 4: swap 1, drop
    local.get 2     ;; height 3: pick 0
    local.tee 1     ;; height 4: pick 0, swap 3, drop
    drop))
"#,
    );
}

#[test]
fn nested_blocks() {
    check(
        "nested_blocks",
        r#"
(module
  (func (param i32) (result i32)
    block (result i32)
      block
        local.get 0
        br_if 0
        i32.const 1
        br 1
      end
      i32.const 2
    end))
"#,
    );
}

#[test]
fn loop_br_if() {
    check(
        "loop_br_if",
        r#"
(module
  (func (param i32) (result i32) (local i32)
    loop
      local.get 1
      local.get 0
      i32.add
      local.set 1
      local.get 0
      i32.const 1
      i32.sub
      local.tee 0
      br_if 0
    end
    local.get 1))
"#,
    );
}

#[test]
fn if_else_results() {
    check(
        "if_else_results",
        r#"
(module
  (func (param i32 i32) (result i32)
    local.get 1
    local.get 0
    if (result i32)
      i32.const 10
    else
      i32.const 20
    end
    i32.add
    local.get 0
    if
      nop
    end))
"#,
    );
}

#[test]
fn if_params_without_else() {
    check(
        "if_params_without_else",
        r#"
(module
  (func (param i32 i32) (result i32)
    local.get 0
    local.get 1
    if (param i32) (result i32)
      i32.const 1
      i32.add
    end))
"#,
    );
}

#[test]
fn br_table() {
    check(
        "br_table",
        r#"
(module
  (func (param i32) (result i32)
    block (result i32)
      block (result i32)
        i32.const 10
        local.get 0
        br_table 0 1 2 0   ;; depth 2 is the function: a return pseudo-label
      end
      i32.const 1
      i32.add
    end
    i32.const 2
    i32.mul))
"#,
    );
}

#[test]
fn multi_value_blocks() {
    check(
        "multi_value_blocks",
        r#"
(module
  (func (param i32 i32) (result i32 i32)
    local.get 0
    local.get 1
    block (param i32 i32) (result i32 i32)
      i32.add
      i32.const 1
    end
    loop (param i32 i32) (result i32 i32)
      local.get 0
      br_if 0
    end))
"#,
    );
}

#[test]
fn calls() {
    check(
        "calls",
        r#"
(module
  (import "env" "imp" (func $imp (param i32) (result i32)))
  (func $a (param i32) (result i32)
    local.get 0)
  (func (result i32)
    i32.const 1
    call $a
    call $imp
    call $a))
"#,
    );
}

#[test]
fn call_indirect() {
    check(
        "call_indirect",
        r#"
(module
  (type $t (func (param i64) (result i32)))
  (table 2 funcref)
  (func (param i32) (result i32)
    i64.const 5
    local.get 0
    call_indirect (type $t)))
"#,
    );
}

#[test]
fn globals() {
    check(
        "globals",
        r#"
(module
  (global $a (mut i32) (i32.const 0))
  (global $b (mut f64) (f64.const 0))
  (func
    global.get $b
    global.get $a
    i32.const 1
    i32.add
    global.set $a
    global.set $b))
"#,
    );
}

#[test]
fn loads_stores() {
    check(
        "loads_stores",
        r#"
(module
  (memory 1)
  (func (param i32) (result i32)
    local.get 0
    i32.const 5              ;; #0
    i32.store offset=8       ;; #1
    local.get 0
    i64.load offset=16       ;; #2
    drop
    i32.const 3              ;; #3
    i32.load8_u offset=1 align=1)) ;; #4
"#,
    );
}

#[test]
fn dead_code_after_br() {
    check(
        "dead_code_after_br",
        r#"
(module
  (func (param i32) (result i32)
    block (result i32)
      i32.const 1
      br 0
      i32.const 2      ;; dead, but numbered #1
      block            ;; dead: emits nothing
        local.get 0
        br_if 0
      end
      i32.add
    end))
"#,
    );
}

#[test]
fn dead_after_if_else_returns() {
    check(
        "dead_after_if_else_returns",
        r#"
(module
  (func (param i32) (result i32)
    local.get 0
    if
      i32.const 1
      return
    else
      i32.const 2
      return
    end
    i32.const 3        ;; dead: nothing reaches the end label
    i32.const 4
    i32.add))
"#,
    );
}

#[test]
fn return_paths() {
    check(
        "return_paths",
        r#"
(module
  (func (param i32) (result i32)
    local.get 0
    local.get 0
    br_if 0            ;; a conditional return
    drop
    local.get 0
    if
      unreachable
    end
    i32.const 7
    return))
"#,
    );
}

#[test]
fn bulk_and_reference_types() {
    check_with(
        "bulk_and_reference_types",
        r#"
(module
  (memory 1)
  (table $t 1 funcref)
  (table $e 1 externref)
  (data $d "hello")
  (elem $el func $f)
  (func $f (param i32 externref) (result i32)
    local.get 0 i32.const 0 i32.const 1 memory.fill
    local.get 0 i32.const 0 i32.const 1 memory.copy
    local.get 0 i32.const 0 i32.const 1 memory.init $d
    data.drop $d
    i32.const 0 ref.func $f i32.const 1 table.fill $t
    i32.const 0 i32.const 0 i32.const 1 table.copy $t $t
    i32.const 0 i32.const 0 i32.const 1 table.init $t $el
    elem.drop $el
    i32.const 0 local.get 1 table.set $e
    ref.null extern i32.const 1 table.grow $e
    table.size $t
    i32.add
    i32.const 0 table.get $t
    ref.is_null
    i32.add
    memory.size
    memory.grow
    i32.add
    local.get 1
    ref.null extern
    local.get 0
    select (result externref)
    drop))
"#,
        common::features_with_externref(),
    );
}

#[test]
fn numeric() {
    check(
        "numeric",
        r#"
(module
  (func (param i32 i64 f32 f64) (result f64)
    local.get 0 i32.extend8_s i32.clz
    i64.extend_i32_u local.get 1 i64.rotl
    f32.convert_i64_s local.get 2 f32.copysign
    i32.trunc_sat_f32_u f64.convert_i32_s
    local.get 3 f64.max
    f64.const -0.5 f64.mul
    local.get 2 f64.promote_f32 f64.lt
    f32.const 1.5 f32.const 2 f32.const nan f32.min f32.add drop
    f64.convert_i32_u))
"#,
    );
}
