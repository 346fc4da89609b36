//! The features rules file: Hydra's database and API do not store a step's
//! `requiredSystemFeatures` (it is only in the `.drv`), so an import asks
//! the operator which steps need which features.
//!
//! A rules file is TOML, a list of `[[rule]]` tables. Each rule has one or
//! more conditions (glob patterns on the derivation name, the build's job
//! name, the system, the jobset) and the features a matching step requires.
//! Every condition of a rule must match; the features of all matching rules
//! are joined. The format is documented in docs/import.md. This module only
//! matches; it reads no files and knows nothing of databases.

use globset::{Glob, GlobMatcher};
use serde::Deserialize;
use std::collections::BTreeSet;

/// One `[[rule]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleText {
    drv: Option<String>,
    job: Option<String>,
    system: Option<String>,
    jobset: Option<String>,
    features: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    #[serde(default)]
    rule: Vec<RuleText>,
}

#[derive(Debug, Clone)]
struct Rule {
    drv: Option<GlobMatcher>,
    job: Option<GlobMatcher>,
    system: Option<GlobMatcher>,
    jobset: Option<GlobMatcher>,
    features: Vec<String>,
}

/// What a rule can look at for one step.
#[derive(Debug, Clone, Copy)]
pub struct StepFacts<'a> {
    /// The derivation's name: the store path without directory, hash and `.drv`.
    pub drv_name: &'a str,
    /// The build's job name, given only for the build's top-level step (the
    /// derivation the job names); its dependencies are other derivations.
    pub job: Option<&'a str>,
    pub system: &'a str,
    /// `project:jobset`.
    pub jobset: &'a str,
}

/// Compiled rules; the empty set requires no features of any step.
#[derive(Debug, Clone, Default)]
pub struct FeatureRules {
    rules: Vec<Rule>,
}

impl FeatureRules {
    /// Parses a rules file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<FeatureRules, String> {
        let file: FileText = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
        let mut rules = Vec::with_capacity(file.rule.len());
        for (i, r) in file.rule.into_iter().enumerate() {
            let at = format!("{origin}: rule {}", i + 1);
            let glob = |p: &Option<String>, what: &str| -> Result<Option<GlobMatcher>, String> {
                p.as_deref()
                    .map(|p| {
                        Glob::new(p)
                            .map(|g| g.compile_matcher())
                            .map_err(|e| format!("{at}: `{what}` pattern `{p}`: {e}"))
                    })
                    .transpose()
            };
            let rule = Rule {
                drv: glob(&r.drv, "drv")?,
                job: glob(&r.job, "job")?,
                system: glob(&r.system, "system")?,
                jobset: glob(&r.jobset, "jobset")?,
                features: r.features,
            };
            if rule.drv.is_none() && rule.job.is_none() && rule.system.is_none() && rule.jobset.is_none() {
                return Err(format!("{at}: needs at least one of `drv`, `job`, `system`, `jobset`"));
            }
            if rule.features.is_empty() {
                return Err(format!("{at}: `features` is empty"));
            }
            if let Some(bad) =
                rule.features.iter().find(|f| f.is_empty() || f.contains(',') || f.contains(char::is_whitespace))
            {
                return Err(format!("{at}: feature `{bad}` must be one word without commas"));
            }
            rules.push(rule);
        }
        Ok(FeatureRules { rules })
    }

    /// The required features of a step, sorted and comma-joined as the
    /// trace format wants them (empty: none).
    pub fn features_for(&self, step: &StepFacts<'_>) -> String {
        let mut found: BTreeSet<&str> = BTreeSet::new();
        for rule in &self.rules {
            let matches = |m: &Option<GlobMatcher>, value: Option<&str>| match (m, value) {
                (None, _) => true,
                (Some(m), Some(v)) => m.is_match(v),
                (Some(_), None) => false,
            };
            if matches(&rule.drv, Some(step.drv_name))
                && matches(&rule.job, step.job)
                && matches(&rule.system, Some(step.system))
                && matches(&rule.jobset, Some(step.jobset))
            {
                found.extend(rule.features.iter().map(String::as_str));
            }
        }
        found.into_iter().collect::<Vec<_>>().join(",")
    }
}

/// The derivation name of a store path: `/nix/store/<hash>-hello-2.12.drv`
/// (or the bare `<hash>-hello-2.12.drv` the Rust runner's API shows) is
/// `hello-2.12`.
pub fn drv_name(drv_path: &str) -> &str {
    let file = drv_path.rsplit('/').next().unwrap_or(drv_path);
    let file = file.strip_suffix(".drv").unwrap_or(file);
    file.split_once('-').map_or(file, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
[[rule]]
drv = "vm-test-run-*"
features = ["kvm", "nixos-test"]

[[rule]]
job = "*.iso_*"
features = ["big-parallel"]

[[rule]]
system = "x86_64-linux"
drv = "linux-[0-9]*"
features = ["big-parallel"]
"#;

    fn facts<'a>(drv: &'a str, job: Option<&'a str>, system: &'a str) -> StepFacts<'a> {
        StepFacts { drv_name: drv, job, system, jobset: "nixos:trunk-combined" }
    }

    #[test]
    fn matching_rules_join_their_features() {
        let rules = FeatureRules::parse(RULES, "f.toml").unwrap();
        assert_eq!(rules.features_for(&facts("vm-test-run-login", None, "x86_64-linux")), "kvm,nixos-test");
        assert_eq!(rules.features_for(&facts("linux-6.6.1", None, "x86_64-linux")), "big-parallel");
        assert_eq!(rules.features_for(&facts("linux-6.6.1", None, "aarch64-linux")), "");
        assert_eq!(rules.features_for(&facts("hello-2.12", None, "x86_64-linux")), "");
        // A job pattern applies only to the top-level step.
        assert_eq!(rules.features_for(&facts("nixos.iso", None, "x86_64-linux")), "");
        assert_eq!(
            rules.features_for(&facts("nixos.iso", Some("nixos.iso_minimal.x86_64-linux"), "x86_64-linux")),
            "big-parallel"
        );
    }

    #[test]
    fn bad_rules_are_refused_with_their_place() {
        let e = FeatureRules::parse("[[rule]]\nfeatures = [\"kvm\"]\n", "f.toml").unwrap_err();
        assert!(e.contains("rule 1") && e.contains("at least one"), "{e}");
        let e = FeatureRules::parse("[[rule]]\ndrv = \"x\"\nfeatures = [\"a b\"]\n", "f.toml").unwrap_err();
        assert!(e.contains("one word"), "{e}");
        let e = FeatureRules::parse("[[rule]]\ndrv = \"[\"\nfeatures = [\"kvm\"]\n", "f.toml").unwrap_err();
        assert!(e.contains("`drv` pattern"), "{e}");
        let e = FeatureRules::parse("[[rule]]\nname = \"x\"\nfeatures = [\"kvm\"]\n", "f.toml").unwrap_err();
        assert!(e.starts_with("f.toml"), "{e}");
    }

    #[test]
    fn derivation_names_drop_directory_hash_and_suffix() {
        assert_eq!(drv_name("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.drv"), "hello-2.12");
        assert_eq!(drv_name("0123456789abcdfghijklmnpqrsvwxyz-vm-test-run-x.drv"), "vm-test-run-x");
        assert_eq!(drv_name("weird"), "weird");
    }
}
