//! Strict expected-failure lists.
//!
//! File format: one entry per line, `script.wast:line  reason` (the key, then at least
//! one space, then free text); `#` starts a comment line; blank lines are ignored. A key
//! names every directive that starts on that line.
//!
//! [`check`] compares a run with a list: the run is good only if every failure is
//! listed and every listed key failed. [`bless`] writes the list a run would need,
//! keeping the reasons of entries that are still failing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// A parsed list: key (`script.wast:line`) to reason.
pub type List = BTreeMap<String, String>;

/// Parses a list. Malformed lines (no `:` in the key) are errors, with their line number.
pub fn parse(text: &str) -> Result<List, String> {
    let mut list = List::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, reason) = match line.split_once(char::is_whitespace) {
            Some((k, r)) => (k, r.trim()),
            None => (line, ""),
        };
        let valid = key.rsplit_once(':').is_some_and(|(file, n)| !file.is_empty() && n.parse::<usize>().is_ok());
        if !valid {
            return Err(format!("line {}: expected `script.wast:line  reason`, found `{line}`", i + 1));
        }
        if list.insert(key.to_string(), reason.to_string()).is_some() {
            return Err(format!("line {}: `{key}` is listed twice", i + 1));
        }
    }
    Ok(list)
}

/// The result of comparing a run with a list.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Check {
    /// Failing keys that are not listed, with their failure messages.
    pub unexpected: BTreeMap<String, String>,
    /// Listed keys that did not fail (they pass, or no longer exist).
    pub fixed: BTreeSet<String>,
    /// Failing keys that are listed.
    pub expected: usize,
}

impl Check {
    pub fn ok(&self) -> bool {
        self.unexpected.is_empty() && self.fixed.is_empty()
    }

    /// A report of what is wrong, at most `limit` lines of each kind.
    pub fn explain(&self, list_path: &str, bless_var: &str, limit: usize) -> String {
        let mut s = String::new();
        if !self.unexpected.is_empty() {
            let _ =
                writeln!(s, "{} unexpected failure(s) (fix them, or add them to {list_path}):", self.unexpected.len());
            for (key, msg) in self.unexpected.iter().take(limit) {
                let _ = writeln!(s, "  {key}: {msg}");
            }
            if self.unexpected.len() > limit {
                let _ = writeln!(s, "  ... and {} more", self.unexpected.len() - limit);
            }
        }
        if !self.fixed.is_empty() {
            let _ = writeln!(s, "{} listed failure(s) now pass (remove them from {list_path}):", self.fixed.len());
            for key in self.fixed.iter().take(limit) {
                let _ = writeln!(s, "  {key}");
            }
            if self.fixed.len() > limit {
                let _ = writeln!(s, "  ... and {} more", self.fixed.len() - limit);
            }
        }
        let _ = writeln!(s, "(`{bless_var}=1` rewrites the list from the current failures)");
        s
    }
}

/// Compares the failures of a run (key to message) with a list.
pub fn check(failures: &BTreeMap<String, String>, list: &List) -> Check {
    let mut c = Check::default();
    for (key, msg) in failures {
        if list.contains_key(key) {
            c.expected += 1;
        } else {
            c.unexpected.insert(key.clone(), msg.clone());
        }
    }
    c.fixed = list.keys().filter(|k| !failures.contains_key(*k)).cloned().collect();
    c
}

/// The list a run needs: `header` (comment lines), then every failing key with its old
/// reason if it had one, else `new_reason`.
pub fn bless(header: &str, failures: &BTreeMap<String, String>, old: &List, new_reason: &str) -> String {
    let mut s = String::from(header);
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    // Sort by script, then by line number (not as text).
    let mut keys: Vec<&String> = failures.keys().collect();
    keys.sort_by_key(|k| {
        let (file, line) = k.rsplit_once(':').unwrap_or((k.as_str(), "0"));
        (file.to_string(), line.parse::<usize>().unwrap_or(0))
    });
    for key in keys {
        let reason = old.get(key).filter(|r| !r.is_empty()).map(String::as_str).unwrap_or(new_reason);
        let _ = writeln!(s, "{key}  {reason}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(keys: &[&str]) -> BTreeMap<String, String> {
        keys.iter().map(|k| (k.to_string(), "boom".to_string())).collect()
    }

    #[test]
    fn parses_entries_and_comments() {
        let list = parse("# header\n\nf32.wast:12  NaN sign\ni32.wast:3\tTODO: triage\nx.wast:7\n").unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list["f32.wast:12"], "NaN sign");
        assert_eq!(list["i32.wast:3"], "TODO: triage");
        assert_eq!(list["x.wast:7"], "");
        assert!(parse("nocolon reason").unwrap_err().starts_with("line 1:"));
        assert!(parse("a.wast:x reason").is_err());
        assert!(parse("a.wast:1 r\na.wast:1 again").unwrap_err().contains("twice"));
    }

    #[test]
    fn a_listed_pass_and_an_unlisted_failure_both_fail() {
        let list = parse("a.wast:1 known\na.wast:2 fixed since").unwrap();
        let c = check(&failures(&["a.wast:1", "b.wast:9"]), &list);
        assert!(!c.ok());
        assert_eq!(c.expected, 1);
        assert_eq!(c.unexpected.keys().collect::<Vec<_>>(), ["b.wast:9"]);
        assert_eq!(c.fixed.iter().collect::<Vec<_>>(), ["a.wast:2"]);
        let text = c.explain("list.txt", "BLESS", 10);
        assert!(text.contains("b.wast:9: boom"));
        assert!(text.contains("remove them from list.txt"));
        assert!(check(&failures(&["a.wast:1", "a.wast:2"]), &list).ok());
    }

    #[test]
    fn bless_keeps_reasons_and_sorts_by_line_number() {
        let old = parse("a.wast:10 kept reason\na.wast:99 gone").unwrap();
        let text = bless("# list\n", &failures(&["a.wast:10", "a.wast:9", "b.wast:1"]), &old, "TODO: triage");
        assert_eq!(text, "# list\na.wast:9  TODO: triage\na.wast:10  kept reason\nb.wast:1  TODO: triage\n");
        assert!(check(&failures(&["a.wast:10", "a.wast:9", "b.wast:1"]), &parse(&text).unwrap()).ok());
    }
}
