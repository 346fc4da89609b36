//! Settling half-made deployments before a pass decides anything.
//!
//! A creation is recorded in the state file before `nixops create` runs
//! and forgotten once `set-args` has tagged the deployment. A pass can stop
//! anywhere in between, and the `create` itself can outlive it (a wrapper
//! in `nixopsCommand` whose grandchild keeps running) or stop halfway:
//! NixOps inserts the deployment, then records its expressions, then its
//! name. So the next pass may find, for a recorded name:
//!
//! - the deployment, tagged ours: the creation is complete;
//! - the deployment, named but untagged: adopted (`set-args`);
//! - no deployment of that name, but an unnamed one without arguments whose
//!   expression is the recorded one: adopted (`modify --name`, `set-args`);
//! - nothing: the record is kept, and its name reserved, for
//!   [`pending_window`] (a `create` still running may yet insert it), then
//!   forgotten.
//!
//! A deployment that looks half made by us but matches no record (its
//! record was lost with a corrupt state file, or forgotten before a
//! lingering `create` finished): untagged, no arguments, no resources, only
//! our network expressions, and unnamed or named `<tag>-<n>`, is deleted:
//! nothing runs on it, and nothing else would ever clean it up. Nothing is
//! deleted while a recorded creation is still awaited.

use super::state::State;
use crate::adapters::nixops::{CommandError, Inventory, NixOps, Untagged};
use crate::config::Config;
use crate::model::Seconds;
use std::collections::BTreeSet;

/// How long a recorded creation that NixOps does not show is awaited: a
/// `create` of a live pass is bounded by `commandTimeout`; a lingering one
/// gets at least an hour.
pub fn pending_window(config: &Config) -> Seconds {
    config.command_timeout.max(3600)
}

/// Settles recorded creations and leftovers (see the module comment).
/// Returns whether NixOps's state was changed, so the caller re-reads it.
pub fn settle(
    config: &Config,
    nixops: &NixOps,
    state: &mut State,
    inventory: &Inventory,
    now: Seconds,
    dry_run: bool,
    failures: &mut Vec<String>,
) -> bool {
    let mut changed = false;
    let mut unnamed: Vec<&Untagged> =
        inventory.untagged.iter().filter(|u| u.name.is_none() && !u.has_args && !u.has_resources).collect();
    let mut awaited = false;
    // Adopted (or being adopted) here: no longer leftovers.
    let mut handled: BTreeSet<String> = BTreeSet::new();
    let pending: Vec<_> = state.pending_creations.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (name, p) in pending {
        let named = inventory.untagged.iter().find(|u| u.name.as_deref() == Some(name.as_str()));
        let expr = p.nixops_expr.clone().unwrap_or_default();
        let unnamed_match = unnamed.iter().position(|u| !expr.is_empty() && u.nix_exprs == [expr.clone()]);
        if inventory.fleet.deployments.iter().any(|d| d.name == name) {
            tracing::info!("{name}: creation recorded by an earlier pass is complete");
            state.pending_creations.remove(&name);
        } else if let Some(u) = named {
            handled.insert(u.uuid.clone());
            let how = format!(
                "adopted as type {} ({}): created by an earlier pass (at {}) that stopped before tagging it",
                p.machine_type, u.uuid, p.since
            );
            if dry_run {
                tracing::info!("{name}: would be {how}");
                continue;
            }
            let result =
                nixops.set_args(&name, &p.machine_type, &config.tag, &builder_args(config, &name, &p.machine_type));
            adopted(&name, &how, result, state, failures, &mut changed, &mut awaited);
        } else if let Some(i) = unnamed_match {
            let u = unnamed.remove(i);
            handled.insert(u.uuid.clone());
            let how = format!(
                "adopted unnamed deployment {} as type {}: its create (at {}) stopped before naming it",
                u.uuid, p.machine_type, p.since
            );
            if dry_run {
                tracing::info!("{name}: would be {how}");
                continue;
            }
            let result = nixops.name_deployment(&u.uuid, &name, &expr, &p.nix_path).and_then(|()| {
                nixops.set_args(&name, &p.machine_type, &config.tag, &builder_args(config, &name, &p.machine_type))
            });
            adopted(&name, &how, result, state, failures, &mut changed, &mut awaited);
        } else if now.saturating_sub(p.since) >= pending_window(config) {
            tracing::info!("{name}: creation recorded at {} never happened; forgetting it", p.since);
            state.pending_creations.remove(&name);
        } else {
            tracing::info!("{name}: creation recorded at {} not in NixOps (yet); its name stays reserved", p.since);
            awaited = true;
        }
    }
    if awaited {
        return changed;
    }
    let ours: BTreeSet<&str> = config.system_types.values().map(|t| t.nixops_expr.as_str()).collect();
    let claimed: BTreeSet<&str> = state.pending_creations.keys().map(String::as_str).collect();
    for u in inventory.untagged.iter().filter(|u| !handled.contains(&u.uuid)) {
        let looks_ours = !u.has_args
            && !u.has_resources
            && !u.nix_exprs.is_empty()
            && u.nix_exprs.iter().all(|e| ours.contains(e.as_str()))
            && u.name.as_deref().is_none_or(|n| is_our_name(n, &config.tag) && !claimed.contains(n));
        if !looks_ours {
            continue;
        }
        let shown = u.name.clone().unwrap_or_else(|| "(unnamed)".into());
        if dry_run {
            tracing::info!("{shown} ({}): would delete a half-made deployment whose creation record is gone", u.uuid);
            continue;
        }
        match nixops.delete(&u.uuid) {
            Ok(()) => {
                tracing::warn!("{shown} ({}): deleted a half-made deployment whose creation record is gone", u.uuid);
                changed = true;
            }
            Err(e) => {
                tracing::error!("{shown} ({}): cannot delete a half-made deployment: {e}", u.uuid);
                failures.push(e.to_string());
            }
        }
    }
    changed
}

/// The arguments a new deployment of `machine_type` gets besides `type`
/// and `tag` (a Rust runner builder's), as its creation would have set them.
fn builder_args(config: &Config, name: &str, machine_type: &str) -> std::collections::BTreeMap<String, String> {
    match (&config.rust_runner, config.type_for(machine_type)) {
        (Some(rust), Some(tc)) => crate::engine::rust_runner::builder_args(rust, name, tc),
        _ => Default::default(),
    }
}

/// Books an adoption's result: the record goes once it succeeded; a failed
/// one keeps it (and everything else) for the next pass.
fn adopted(
    name: &str,
    how: &str,
    result: Result<(), CommandError>,
    state: &mut State,
    failures: &mut Vec<String>,
    changed: &mut bool,
    awaited: &mut bool,
) {
    match result {
        Ok(()) => {
            tracing::warn!("{name}: {how}");
            state.pending_creations.remove(name);
            *changed = true;
        }
        Err(e) => {
            tracing::error!("{name}: cannot be {how}: {e}");
            failures.push(e.to_string());
            *awaited = true;
        }
    }
}

/// `<tag>-<n>`: a name we give.
fn is_our_name(name: &str, tag: &str) -> bool {
    name.strip_prefix(tag)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_names_are_tag_dash_number() {
        assert!(is_our_name("hp-0", "hp") && is_our_name("hp-12", "hp"));
        assert!(!is_our_name("hp-", "hp") && !is_our_name("hp-x", "hp") && !is_our_name("hpx-1", "hp"));
        assert!(!is_our_name("website", "hp"));
    }
}
