//! [`Names`]: a module's name section (the custom section `name`, spec §7.4.1),
//! decoded on first use.
//!
//! Names serve backtraces, error messages and `explain`, never code. A module
//! with thousands of functions names each of them, so decoding the section (a `String`
//! per function) at every load would cost a warm reload more than finding its code;
//! [`ModuleEnv::parse`](crate::module::ModuleEnv::parse) keeps the section's bytes
//! instead, and the first lookup decodes them.
//!
//! Names also tell functions apart across builds (a function keeps its name when its
//! body is edited): the code image layout chooses its chunk boundaries by them
//! ([`Names::func_name_hashes`]). They never change what code does.
//!
//! Invariant: a malformed name section gives the names decoded before the error and no
//! error (the spec lets an engine ignore a malformed name section).

use std::collections::HashMap;
use std::sync::OnceLock;

/// A module's name section, decoded on first use (see the module docs).
#[derive(Debug, Default)]
pub struct Names {
    /// The section's contents and their offset in the module.
    section: Option<(Box<[u8]>, u64)>,
    decoded: OnceLock<Decoded>,
    /// The last [`func_name_hashes`](Self::func_name_hashes): its arguments and result.
    hashes: OnceLock<(u32, usize, Vec<Option<u64>>)>,
}

#[derive(Debug, Default)]
struct Decoded {
    module: Option<String>,
    funcs: HashMap<u32, String>,
}

impl Names {
    /// The name section whose contents (after the section's name) are `data`, at byte
    /// `offset` of the module.
    pub fn from_section(data: &[u8], offset: u64) -> Names {
        Names { section: Some((data.into(), offset)), decoded: OnceLock::new(), hashes: OnceLock::new() }
    }

    /// Names given directly: function index to name.
    pub fn from_funcs(funcs: HashMap<u32, String>) -> Names {
        Names { section: None, decoded: OnceLock::from(Decoded { module: None, funcs }), hashes: OnceLock::new() }
    }

    /// Whether this was made from a name section.
    pub fn has_section(&self) -> bool {
        self.section.is_some()
    }

    /// The name of function `index` (in the function index space, imports first).
    pub fn func(&self, index: u32) -> Option<&str> {
        self.decoded().funcs.get(&index).map(String::as_str)
    }

    /// Every named function: `(function index, name)`, in no particular order.
    pub fn funcs(&self) -> impl Iterator<Item = (u32, &str)> {
        self.decoded().funcs.iter().map(|(&i, n)| (i, n.as_str()))
    }

    /// The module's own name.
    pub fn module(&self) -> Option<&str> {
        self.decoded().module.as_deref()
    }

    /// Whether these names were made from a name section with the contents `data`.
    pub fn same_section(&self, data: &[u8]) -> bool {
        self.section.as_ref().is_some_and(|(d, _)| **d == *data)
    }

    /// For each function `first..first + count` (in the function index space), a hash
    /// of its name, if it has one: the same for the same name in any module and
    /// process. Reads the section without keeping the names (cheaper than the first
    /// lookup: no `String` per function); the first result is kept.
    pub fn func_name_hashes(&self, first: u32, count: usize) -> std::borrow::Cow<'_, [Option<u64>]> {
        let (f, c, hashes) = self.hashes.get_or_init(|| (first, count, self.compute_name_hashes(first, count)));
        match (*f, *c) == (first, count) {
            true => std::borrow::Cow::Borrowed(hashes),
            false => std::borrow::Cow::Owned(self.compute_name_hashes(first, count)),
        }
    }

    fn compute_name_hashes(&self, first: u32, count: usize) -> Vec<Option<u64>> {
        let mut hashes = vec![None; count];
        let mut put = |index: u32, name: &str| {
            if let Some(h) = index.checked_sub(first).and_then(|i| hashes.get_mut(i as usize)) {
                *h = Some(name_hash(name));
            }
        };
        match (&self.section, self.decoded.get()) {
            (Some((data, offset)), None) => {
                let reader = wasmparser::BinaryReader::new(data, *offset);
                // Errors end decoding (see the module docs).
                let _ = visit_func_names(wasmparser::NameSectionReader::new(reader), &mut put);
            }
            _ => self.funcs().for_each(|(i, n)| put(i, n)),
        }
        hashes
    }

    fn decoded(&self) -> &Decoded {
        self.decoded.get_or_init(|| {
            let mut d = Decoded::default();
            if let Some((data, offset)) = &self.section {
                let reader = wasmparser::BinaryReader::new(data, *offset);
                // Errors end decoding (see the module docs).
                let _ = decode(wasmparser::NameSectionReader::new(reader), &mut d);
            }
            d
        })
    }
}

/// The hash [`Names::func_name_hashes`] gives a name.
fn name_hash(name: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0).hash_one(name)
}

/// Calls `f` with each function name of the section, in order, until an error.
fn visit_func_names(names: wasmparser::NameSectionReader<'_>, f: &mut impl FnMut(u32, &str)) -> wasmparser::Result<()> {
    for n in names {
        if let wasmparser::Name::Function(map) = n? {
            for naming in map {
                let naming = naming?;
                f(naming.index, naming.name);
            }
        }
    }
    Ok(())
}

fn decode(names: wasmparser::NameSectionReader<'_>, d: &mut Decoded) -> wasmparser::Result<()> {
    for n in names {
        match n? {
            wasmparser::Name::Module { name, .. } => d.module = Some(name.into()),
            wasmparser::Name::Function(map) => {
                for naming in map {
                    let naming = naming?;
                    d.funcs.insert(naming.index, naming.name.into());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(wat: &str) -> (Vec<u8>, u64) {
        let wasm = wat::parse_str(wat).unwrap();
        for p in wasmparser::Parser::new(0).parse_all(&wasm) {
            if let wasmparser::Payload::CustomSection(c) = p.unwrap() {
                if c.name() == "name" {
                    return (c.data().to_vec(), c.data_offset());
                }
            }
        }
        panic!("no name section");
    }

    #[test]
    fn decodes_function_and_module_names_on_first_use() {
        let (data, offset) = section("(module $m (func $a) (func) (func $c))");
        let names = Names::from_section(&data, offset);
        assert_eq!((names.func(0), names.func(1), names.func(2)), (Some("a"), None, Some("c")));
        assert_eq!(names.module(), Some("m"));
        let mut all: Vec<_> = names.funcs().collect();
        all.sort();
        assert_eq!(all, [(0, "a"), (2, "c")]);
    }

    #[test]
    fn name_hashes_are_those_of_the_names_decoded_or_not() {
        let (data, offset) = section("(module (import \"m\" \"f\" (func $i)) (func $a) (func) (func $c))");
        let names = Names::from_section(&data, offset);
        let hashes = names.func_name_hashes(1, 3);
        assert_eq!(*hashes, [Some(name_hash("a")), None, Some(name_hash("c"))]);
        assert_ne!(name_hash("a"), name_hash("c"));
        assert_eq!(names.func(0), Some("i"), "decodes after hashing");
        assert_eq!(names.func_name_hashes(1, 3), hashes, "the same once decoded");
        let given = Names::from_funcs([(2, "a".to_string())].into_iter().collect());
        assert_eq!(*given.func_name_hashes(1, 3), [None, Some(name_hash("a")), None]);
        assert_eq!(*given.func_name_hashes(2, 1), [Some(name_hash("a"))], "other arguments than the first call's");
    }

    #[test]
    fn a_malformed_section_keeps_the_names_before_the_error() {
        let (mut data, offset) = section("(module (func $a) (func $b))");
        // The second name (the section's last byte) made invalid UTF-8: the first survives.
        *data.last_mut().unwrap() = 0xff;
        let names = Names::from_section(&data, offset);
        assert_eq!((names.func(0), names.func(1)), (Some("a"), None));
        assert_eq!(Names::from_section(&[0xff, 0xff], 0).func(0), None);
    }
}
