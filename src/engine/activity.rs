//! Whether a machine may be building right now: busy with some jobs, idle,
//! or unknown. The engine never stops, destroys or drains-to-destroy a
//! machine it cannot show to be idle.
//!
//! A status whose `machines` section is absent, `null` or `{}` (Hydra's
//! dumps from late 2022 to mid 2023, while machines build) cannot describe
//! machines: a machine missing from it is *unknown*, not idle. Other
//! evidence can still show it idle: no step running at all
//! (`nrActiveSteps = 0`), no step running of any machine type the machine
//! could serve (`machineTypes.*.running`), or the machine's own history: it
//! was seen idle after Hydra had reread a machines file without it, so no
//! step can have been given to it since. This module only classifies; the
//! rules that act on it are in `engine`.

use crate::config::TypeConfig;
use crate::model::{BuilderStatus, Deployment, MachineState, MachineType, QueueStatus, Seconds};

/// How often the C++ queue runner rereads its machines files.
pub const HYDRA_RELOAD: Seconds = 30;

/// What the status (and the machine's history) says about a machine's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Running this many jobs.
    Busy(u64),
    /// Running nothing.
    Idle,
    /// The status cannot tell, and nothing else shows it idle.
    Unknown,
}

/// A machine in this state may be running build steps (only a vanished or
/// stopped instance certainly is not).
pub fn could_be_building(state: MachineState) -> bool {
    !matches!(state, MachineState::Missing | MachineState::Stopped)
}

/// Classifies `d`'s activity. `builder` is its entry in the status's
/// machines (found by its address for the C++ runner, by its hostname for
/// the Rust one), `None` when it has none; `tc` is its configured type, if
/// any.
pub fn activity(
    status: &QueueStatus,
    builder: Option<&BuilderStatus>,
    d: &Deployment,
    tc: Option<&TypeConfig>,
    drain_delay: Seconds,
) -> Activity {
    match builder.map(|b| b.current_jobs) {
        Some(0) => return Activity::Idle,
        Some(jobs) => return Activity::Busy(jobs),
        None if status.machines_known || !status.is_up() => return Activity::Idle,
        None => {}
    }
    if status.active_steps == Some(0)
        || nothing_of_its_systems_runs(status, d, tc)
        || idle_since_drained(d, drain_delay)
    {
        return Activity::Idle;
    }
    Activity::Unknown
}

/// Whether the status's machine types show no running step the machine
/// could be building: every type sharing a system with it runs nothing.
/// Systems rather than whole type keys, because the Rust runner counts
/// steps per bare system whatever features they need.
fn nothing_of_its_systems_runs(status: &QueueStatus, d: &Deployment, tc: Option<&TypeConfig>) -> bool {
    if !status.has_machine_types || status.machine_types.is_empty() {
        return false;
    }
    let parsed;
    let machine_type = match tc {
        Some(tc) => &tc.machine_type,
        None => match MachineType::parse(&d.machine_type) {
            Ok(t) => {
                parsed = t;
                &parsed
            }
            Err(_) => return false,
        },
    };
    status.machine_types.iter().all(|(key, t)| {
        t.running == 0
            || MachineType::parse(key).is_ok_and(|k| !k.systems.iter().any(|s| machine_type.systems.contains(s)))
    })
}

/// Whether the machine's history shows it idle for good: delisted, and seen
/// idle once Hydra had reread a machines file without it.
fn idle_since_drained(d: &Deployment, drain_delay: Seconds) -> bool {
    let m = &d.memory;
    match (m.listed, m.delisted_at, m.idle_since) {
        (false, Some(delisted), Some(idle)) => idle >= delisted.saturating_add(drain_delay.max(HYDRA_RELOAD)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BuilderStatus, MachineMemory, QueueHealth, TypeStatus};

    fn status(machines_known: bool, active_steps: Option<u64>) -> QueueStatus {
        let mut s = QueueStatus::down("");
        s.health = QueueHealth::Up;
        s.machines_known = machines_known;
        s.active_steps = active_steps;
        s
    }

    fn machine(memory: MachineMemory) -> Deployment {
        Deployment {
            name: "t-0".into(),
            machine_type: "x86_64-linux".into(),
            state: MachineState::Up,
            recorded_state: None,
            launch_time: None,
            public_ip: Some("10.0.0.1".into()),
            host_key: None,
            memory,
        }
    }

    #[test]
    fn a_section_that_describes_machines_decides() {
        let mut s = status(true, Some(5));
        assert_eq!(activity(&s, s.builder("10.0.0.1"), &machine(Default::default()), None, 60), Activity::Idle);
        s.machines.insert("10.0.0.1".into(), BuilderStatus { enabled: true, current_jobs: 2, idle_since: None });
        assert_eq!(activity(&s, s.builder("10.0.0.1"), &machine(Default::default()), None, 60), Activity::Busy(2));
    }

    #[test]
    fn without_machines_only_other_evidence_shows_a_machine_idle() {
        let m = machine(Default::default());
        for (active_steps, expected) in
            [(None, Activity::Unknown), (Some(3), Activity::Unknown), (Some(0), Activity::Idle)]
        {
            let s = status(false, active_steps);
            assert_eq!(activity(&s, s.builder("10.0.0.1"), &m, None, 60), expected, "{active_steps:?} active steps");
        }

        let mut s = status(false, Some(3));
        s.machine_types.insert("aarch64-linux".into(), TypeStatus { runnable: 0, running: 3, last_active: None });
        s.machine_types.insert("x86_64-linux:kvm".into(), TypeStatus { runnable: 9, running: 0, last_active: None });
        assert_eq!(activity(&s, s.builder("10.0.0.1"), &m, None, 60), Activity::Idle, "only other systems run");
        s.machine_types.insert("x86_64-linux".into(), TypeStatus { runnable: 0, running: 1, last_active: None });
        assert_eq!(activity(&s, s.builder("10.0.0.1"), &m, None, 60), Activity::Unknown);
    }

    #[test]
    fn history_shows_a_drained_machine_idle() {
        let s = status(false, None);
        let drained =
            |idle_since| MachineMemory { listed: false, delisted_at: Some(1000), idle_since, ..Default::default() };
        assert_eq!(activity(&s, s.builder("10.0.0.1"), &machine(drained(Some(1060))), None, 60), Activity::Idle);
        assert_eq!(
            activity(&s, s.builder("10.0.0.1"), &machine(drained(Some(1059))), None, 60),
            Activity::Unknown,
            "before Hydra reread"
        );
        assert_eq!(
            activity(&s, s.builder("10.0.0.1"), &machine(drained(Some(1010))), None, 0),
            Activity::Unknown,
            "a reload takes 30 s"
        );
        assert_eq!(activity(&s, s.builder("10.0.0.1"), &machine(drained(None)), None, 60), Activity::Unknown);
        let listed =
            MachineMemory { listed: true, delisted_at: Some(1000), idle_since: Some(5000), ..Default::default() };
        assert_eq!(activity(&s, s.builder("10.0.0.1"), &machine(listed), None, 60), Activity::Unknown);
    }
}
