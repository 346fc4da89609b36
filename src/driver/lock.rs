//! The pass lock: one pass at a time per state directory, so two timer
//! runs (or a timer run and a manual one) never act on the fleet twice.
//!
//! An advisory `flock`-style lock on `<stateDir>/lock` (`File::try_lock`).
//! The kernel drops it when the process ends, however it ends, so a crashed
//! pass never leaves a stale lock behind. A second pass does not wait: it
//! logs and exits 0, because the pass holding the lock does the same work
//! and the timer starts another one a few minutes later anyway.

use anyhow::Context;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::Path;

/// Held for the whole pass; released when dropped or when the process ends.
#[derive(Debug)]
pub struct PassLock {
    _file: File,
}

/// Takes the lock at `path` if no other process holds it (`Ok(None)` if one does).
pub fn try_acquire(path: &Path) -> anyhow::Result<Option<PassLock>> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(None),
        Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
    // For whoever wonders which process holds it.
    let _ = file.set_len(0);
    let _ = writeln!(file, "{}", std::process::id());
    Ok(Some(PassLock { _file: file }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = try_acquire(&path).unwrap();
        assert!(first.is_some());
        assert!(try_acquire(&path).unwrap().is_none());
        drop(first);
        assert!(try_acquire(&path).unwrap().is_some());
    }
}
