//! Reading what the provisioner needs from a Nix derivation file (`.drv`,
//! Nix's ATerm format, docs "Derivation ATerm"): its `system` and the
//! system features it requires (`requiredSystemFeatures`), which the Rust
//! queue runner does not export (its queues are per bare system).
//!
//! A small parser of ATerm terms (strings, lists, tuples, constructor
//! applications), so it reads both `Derive(...)` and the newer
//! `DrvWithVersion("...", ...)` whatever their input lists hold, and both
//! ways a derivation carries its features: a space-separated environment
//! variable, or a JSON list inside `__json` (structured attributes). No
//! crate on crates.io fit: `nix-compat` there is an empty placeholder, and
//! the others pull in compression and signing libraries for a job of a
//! hundred lines. This module reads bytes; it opens no file (the Rust
//! runner's adapter does, and caches the result by path).

use std::collections::BTreeSet;

/// What the provisioner reads from a derivation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrvFacts {
    pub system: String,
    /// `requiredSystemFeatures`, sorted and without duplicates.
    pub required_features: BTreeSet<String>,
}

/// The largest derivation read: real ones are kilobytes, the biggest
/// (NixOS system closures with inline files) a few megabytes.
pub const MAX_DRV_BYTES: u64 = 64 << 20;

/// One ATerm term.
#[derive(Debug, Clone, PartialEq)]
enum Term {
    Str(String),
    List(Vec<Term>),
    Tuple(Vec<Term>),
    Apply(String, Vec<Term>),
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    depth: u32,
}

/// Nesting deeper than this is not a derivation (inputs of dynamic
/// derivations nest a few levels); it would only exhaust the stack.
const MAX_DEPTH: u32 = 64;

impl Parser<'_> {
    fn error(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected `{}`", b as char)))
        }
    }

    fn term(&mut self) -> Result<Term, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("terms nested too deep"));
        }
        let term = match self.peek() {
            Some(b'"') => Term::Str(self.string()?),
            Some(b'[') => Term::List(self.sequence(b'[', b']')?),
            Some(b'(') => Term::Tuple(self.sequence(b'(', b')')?),
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
                    self.pos += 1;
                }
                let name = String::from_utf8_lossy(&self.bytes[start..self.pos]).into_owned();
                Term::Apply(name, self.sequence(b'(', b')')?)
            }
            Some(_) => return Err(self.error("expected a term")),
            None => return Err(self.error("unexpected end")),
        };
        self.depth -= 1;
        Ok(term)
    }

    fn sequence(&mut self, open: u8, close: u8) -> Result<Vec<Term>, String> {
        self.expect(open)?;
        let mut items = vec![];
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            items.push(self.term()?);
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(items);
                }
                _ => return Err(self.error(&format!("expected `,` or `{}`", close as char))),
            }
        }
    }

    /// A string with Nix's escapes (`\"`, `\\`, `\n`, `\r`, `\t`).
    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return String::from_utf8(out).map_err(|_| self.error("a string is not UTF-8"));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self.peek().ok_or_else(|| self.error("unterminated string"))?;
                    out.push(match c {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        other => other,
                    });
                    self.pos += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

fn parse_term(bytes: &[u8]) -> Result<Term, String> {
    let mut p = Parser { bytes, pos: 0, depth: 0 };
    let term = p.term()?;
    if p.bytes[p.pos..].iter().any(|b| !b.is_ascii_whitespace()) {
        return Err(p.error("text after the derivation"));
    }
    Ok(term)
}

/// Reads a derivation's system and required features from the bytes of
/// its `.drv` file.
pub fn parse_drv(bytes: &[u8]) -> Result<DrvFacts, String> {
    // Derive(outputs, inputDrvs, inputSrcs, system, builder, args, env);
    // DrvWithVersion(version, the same seven).
    let fields = match parse_term(bytes)? {
        Term::Apply(name, args) if name == "Derive" && args.len() == 7 => args,
        Term::Apply(name, mut args) if name == "DrvWithVersion" && args.len() == 8 => args.split_off(1),
        Term::Apply(name, args) => {
            return Err(format!("not a derivation: `{name}` with {} fields", args.len()));
        }
        _ => return Err("not a derivation: no `Derive(...)`".into()),
    };
    let Term::Str(system) = &fields[3] else { return Err("the system is not a string".into()) };
    let Term::List(env) = &fields[6] else { return Err("the environment is not a list".into()) };
    let mut required_features = BTreeSet::new();
    for pair in env {
        let Term::Tuple(kv) = pair else { return Err("an environment entry is not a pair".into()) };
        let [Term::Str(key), Term::Str(value)] = kv.as_slice() else {
            return Err("an environment entry is not a pair of strings".into());
        };
        match key.as_str() {
            "requiredSystemFeatures" => required_features.extend(value.split_whitespace().map(String::from)),
            "__json" => required_features.extend(structured_features(value)?),
            _ => {}
        }
    }
    Ok(DrvFacts { system: system.clone(), required_features })
}

/// `requiredSystemFeatures` of a derivation with structured attributes.
fn structured_features(json: &str) -> Result<Vec<String>, String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("`__json` is not JSON ({e})"))?;
    match value.get("requiredSystemFeatures") {
        None | Some(serde_json::Value::Null) => Ok(vec![]),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(String::from).ok_or_else(|| "a required feature is not a string".to_string()))
            .collect(),
        Some(serde_json::Value::String(s)) => Ok(s.split_whitespace().map(String::from).collect()),
        Some(_) => Err("`requiredSystemFeatures` in `__json` is not a list".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A derivation as `nix-instantiate` writes it (trimmed paths).
    fn drv(env: &str) -> String {
        format!(
            r#"Derive([("out","/nix/store/aaaa-x","","")],[("/nix/store/bbbb-dep.drv",["out"])],["/nix/store/cccc-builder.sh"],"x86_64-linux","/bin/sh",["-e","/nix/store/cccc-builder.sh"],[{env}])"#
        )
    }

    #[test]
    fn features_come_from_the_environment_sorted() {
        let text =
            drv(r#"("builder","/bin/sh"),("requiredSystemFeatures","kvm big-parallel"),("system","x86_64-linux")"#);
        let facts = parse_drv(text.as_bytes()).unwrap();
        assert_eq!(facts.system, "x86_64-linux");
        assert_eq!(facts.required_features.iter().collect::<Vec<_>>(), ["big-parallel", "kvm"]);
        assert!(parse_drv(drv(r#"("name","x")"#).as_bytes()).unwrap().required_features.is_empty());
    }

    #[test]
    fn structured_attributes_and_escapes() {
        let text = drv(r#"("__json","{\"requiredSystemFeatures\":[\"benchmark\"],\"x\":\"a\\\\b\"}")"#);
        let facts = parse_drv(text.as_bytes()).unwrap();
        assert_eq!(facts.required_features.iter().collect::<Vec<_>>(), ["benchmark"]);
        let escaped = drv(r#"("a","quote \" tab \t newline \n"),("requiredSystemFeatures","nixos-test")"#);
        assert_eq!(parse_drv(escaped.as_bytes()).unwrap().required_features.len(), 1);
    }

    #[test]
    fn dynamic_derivations_with_versions_and_nested_inputs() {
        let text = r#"DrvWithVersion("xp-dyn-drv",[("out","","r:sha256","")],[("/nix/store/d.drv",(["out"],[("lib",["x"])]))],[],"aarch64-linux","/bin/sh",[],[("requiredSystemFeatures","gccarch-armv8-a")])"#;
        let facts = parse_drv(text.as_bytes()).unwrap();
        assert_eq!(facts.system, "aarch64-linux");
        assert!(facts.required_features.contains("gccarch-armv8-a"));
    }

    #[test]
    fn garbage_is_an_error_naming_where() {
        for bad in ["", "Derive(", "Derive([],[],[],\"x\",\"b\",[],[(\"a\")])", "Nope([])", "\"str\"", "Derive([])x"] {
            let e = parse_drv(bad.as_bytes()).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(parse_drv(drv("").replace(")]", ")] trailing").as_bytes()).is_err());
        let deep = format!("Derive({}{})", "[".repeat(100), "]".repeat(100));
        assert!(parse_drv(deep.as_bytes()).unwrap_err().contains("deep"));
    }

    proptest! {
        #[test]
        fn any_bytes_are_read_or_refused_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_drv(&bytes);
        }

        #[test]
        fn written_features_read_back(features in proptest::collection::btree_set("[a-z][a-z0-9-]{0,8}", 0..5)) {
            let joined: Vec<&str> = features.iter().map(String::as_str).collect();
            let text = drv(&format!(r#"("requiredSystemFeatures","{}")"#, joined.join(" ")));
            prop_assert_eq!(parse_drv(text.as_bytes()).unwrap().required_features, features);
        }
    }
}
