//! The entry format: round trips of generated and real stencils and exact records; no
//! panic and no success on damaged input.

use quickbeam_cache::entry::{ExactRecord, ModuleRecord, Variant, Variants, MAX_VARIANTS};
use quickbeam_codegen::{ConstSite, FunctionCompiler, Guard, Reloc, RelocKind, SiteEncoding, Stencil, TrapSite};
use quickbeam_environ::*;

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Small values mostly, extremes sometimes.
    fn u32(&mut self) -> u32 {
        match self.below(4) {
            0 => u32::MAX - self.below(3) as u32,
            1 => self.next() as u32,
            _ => self.below(300) as u32,
        }
    }
    fn u64(&mut self) -> u64 {
        match self.below(3) {
            0 => u64::MAX - self.below(3),
            1 => self.next(),
            _ => self.below(300),
        }
    }
}

fn stencil(rng: &mut Rng) -> Stencil {
    let n = |rng: &mut Rng| rng.below(12) as usize;
    let code = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
    let relocs = (0..n(rng))
        .map(|_| {
            let s = rng.u32();
            let kind = match rng.below(11) {
                0 => RelocKind::CallRel32(FuncSlot(s)),
                1 => RelocKind::FuncRefOffset(FuncSlot(s)),
                2 => RelocKind::TableOffset(TableSlot(s)),
                3 => RelocKind::MemoryOffset(MemorySlot(s)),
                4 => RelocKind::GlobalOffset(GlobalSlot(s)),
                5 => RelocKind::TypeIdOffset(TypeSlot(s)),
                6 => RelocKind::FuncIndex(FuncSlot(s)),
                7 => RelocKind::TableIndex(TableSlot(s)),
                8 => RelocKind::MemoryIndex(MemorySlot(s)),
                9 => RelocKind::DataIndex(DataSlot(s)),
                _ => RelocKind::ElemIndex(ElemSlot(s)),
            };
            Reloc { offset: rng.u32(), kind }
        })
        .collect();
    let const_sites = (0..n(rng))
        .map(|_| ConstSite {
            offset: rng.u32(),
            k: ConstIdx(rng.u32()),
            encoding: [
                SiteEncoding::Imm32,
                SiteEncoding::Imm32Neg,
                SiteEncoding::Imm64,
                SiteEncoding::Imm8Masked(31),
                SiteEncoding::Imm8Masked(63),
            ][rng.below(5) as usize],
        })
        .collect();
    let guards = (0..n(rng))
        .map(|_| match rng.below(3) {
            0 => Guard::Any,
            1 => Guard::Range { lo: rng.u64() as i64, hi: rng.u64() as i64 },
            _ => Guard::Exact(rng.u64()),
        })
        .collect();
    let trap_sites = (0..n(rng))
        .map(|_| TrapSite { offset: rng.u32(), code: TrapCode::from_u32(1 + rng.below(13) as u32).unwrap() })
        .collect();
    let srclocs = (0..n(rng)).map(|_| (rng.u32(), rng.u32())).collect();
    Stencil { code, relocs, const_sites, guards, trap_sites, srclocs }
}

fn record(rng: &mut Rng) -> ExactRecord {
    let list = |rng: &mut Rng| (0..rng.below(6)).map(|_| rng.u32()).collect::<Vec<u32>>();
    let params = FunctionParameters {
        funcs: list(rng),
        globals: list(rng),
        tables: list(rng),
        types: list(rng),
        memories: list(rng),
        datas: list(rng),
        elems: list(rng),
    };
    let mut shape = [0u8; 32];
    shape.iter_mut().for_each(|b| *b = rng.next() as u8);
    ExactRecord { shape: StencilKey(shape), params, consts: (0..rng.below(20)).map(|_| rng.u64()).collect() }
}

fn variants(rng: &mut Rng) -> Variants {
    let n = rng.below(MAX_VARIANTS as u64 + 1);
    let variants = (0..n)
        .map(|_| Variant { stencil: stencil(rng), consts: (0..rng.below(8)).map(|_| rng.u64()).collect() })
        .collect();
    Variants { variants }
}

#[test]
fn generated_entries_round_trip() {
    let mut rng = Rng::new(1);
    for _ in 0..500 {
        let v = variants(&mut rng);
        assert_eq!(Variants::decode(&v.encode()), Some(v));
        let r = record(&mut rng);
        assert_eq!(ExactRecord::decode(&r.encode()), Some(r));
        let m = ModuleRecord { functions: (0..rng.below(5)).map(|_| record(&mut rng)).collect() };
        let bytes = m.encode();
        assert_eq!(ModuleRecord::decode(&bytes), Some(m));
        assert_eq!(ModuleRecord::decode(&bytes[..bytes.len() - 1]), None);
    }
}

#[test]
fn real_stencils_round_trip() {
    let mut modules = vec![wat::parse_str(
        r#"(module (memory 1) (global $g (mut i32) (i32.const 0)) (table 2 funcref)
             (type $t (func (param i32) (result i32)))
             (func $f (param i32) (result i32) local.get 0 i32.load offset=12 i32.const 7 i32.div_s global.get $g i32.add)
             (func (param i32) (result i32) local.get 0 call $f local.get 0 call_indirect (type $t)))"#,
    )
    .unwrap()];
    if let Ok(m) = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus/coremark.wasm")) {
        modules.push(m);
    }
    let mut n = 0;
    for wasm in modules {
        let (env, inputs) = ModuleEnv::parse(&wasm, supported_features()).unwrap();
        let mut c = FunctionCompiler::new();
        let mut v = Variants::default();
        for input in inputs {
            let f = c.compile(&env, input).unwrap();
            let one = Variants { variants: vec![Variant { stencil: f.stencil.clone(), consts: f.consts.clone() }] };
            assert_eq!(Variants::decode(&one.encode()), Some(one));
            let r = ExactRecord { shape: StencilKey([n as u8; 32]), params: f.params, consts: f.consts.clone() };
            assert_eq!(ExactRecord::decode(&r.encode()), Some(r));
            let consts = f.consts.clone();
            v.add(Variant { stencil: f.stencil.clone(), consts: consts.clone() });
            if v.variants.iter().any(|x| x.stencil == f.stencil) {
                // Its own constants satisfy its guards.
                assert!(v.find(&consts).is_some());
            }
            n += 1;
        }
        assert_eq!(Variants::decode(&v.encode()), Some(v));
    }
    assert!(n > 2);
}

#[test]
fn variants_are_bounded_and_found_by_guards() {
    let st = |g: Guard, code: u8| Variant {
        stencil: Stencil { code: vec![code], guards: vec![g], ..Stencil::default() },
        consts: vec![code as u64],
    };
    let mut v = Variants::default();
    v.add(st(Guard::Exact(1), 1));
    v.add(st(Guard::Range { lo: 0, hi: 100 }, 2));
    v.add(st(Guard::Range { lo: 0, hi: 100 }, 2)); // a duplicate is not added
    assert_eq!(v.variants.len(), 2);
    assert_eq!(v.find(&[1]).unwrap().stencil.code, vec![1]);
    assert_eq!(v.find(&[50]).unwrap().stencil.code, vec![2]);
    assert!(v.find(&[500]).is_none());
    assert!(v.find(&[1, 2]).is_none(), "another number of constants never matches");
    for i in 3..10 {
        v.add(st(Guard::Any, i));
    }
    assert_eq!(v.variants.len(), MAX_VARIANTS);
    assert_eq!(v.variants.last().unwrap().stencil.code, vec![9], "the newest is kept");
    assert_eq!(v.variants[0].stencil.code, vec![6], "the oldest go first");

    // More than the bound is not a valid entry.
    let mut too_many = v.clone();
    too_many.variants.push(Variant::default());
    assert_eq!(Variants::decode(&too_many.encode()), None);
}

/// Random bytes, every truncation and bit flips never panic; truncations and trailing
/// bytes never decode.
#[test]
fn damaged_entries_never_panic() {
    let mut rng = Rng::new(2);
    for _ in 0..300 {
        let v = variants(&mut rng).encode();
        let r = record(&mut rng).encode();
        for e in [&v, &r] {
            for cut in 0..e.len() {
                assert_eq!(Variants::decode(&e[..cut]), None);
                assert_eq!(ExactRecord::decode(&e[..cut]), None);
            }
            let mut longer = e.clone();
            longer.push(0);
            assert_eq!(Variants::decode(&longer), None);
            assert_eq!(ExactRecord::decode(&longer), None);
            for _ in 0..20 {
                let mut d = e.clone();
                let i = rng.below(d.len() as u64) as usize;
                d[i] ^= 1 << rng.below(8);
                let _ = Variants::decode(&d);
                let _ = ExactRecord::decode(&d);
            }
        }
        let junk: Vec<u8> = (0..rng.below(100)).map(|_| rng.next() as u8).collect();
        let _ = Variants::decode(&junk);
        let _ = ExactRecord::decode(&junk);
    }
    // A count far beyond the input does not allocate it.
    let mut huge = vec![b'V', quickbeam_cache::entry::ENTRY_FORMAT, 1];
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert_eq!(Variants::decode(&huge), None);
    // The wrong kind of entry, or another version, is not decoded.
    let r = record(&mut rng).encode();
    assert_eq!(Variants::decode(&r), None);
    let mut other_version = r.clone();
    other_version[1] += 1;
    assert_eq!(ExactRecord::decode(&other_version), None);
}
