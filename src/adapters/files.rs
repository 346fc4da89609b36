//! Writing files so that a reader never sees half of one: a temporary file
//! in the same directory, flushed to disk, then renamed over the target.
//! Hydra's queue runner rereads the machines file whenever its mtime
//! changes, and the state file must survive a crash mid-write.
//!
//! This module only writes bytes; it does not know what they mean.

use anyhow::Context;
use std::io::Write;
use std::path::Path;

/// Replaces `path` with `contents` atomically (same-directory temp file,
/// `fsync`, rename, then `fsync` of the directory so the rename survives a
/// power loss). Creates the parent directory if needed.
pub fn write_atomically(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let dir = crate::config::directory_of(path);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(contents).with_context(|| format!("cannot write {}", tmp.path().display()))?;
    tmp.as_file().sync_all().with_context(|| format!("cannot flush {}", tmp.path().display()))?;
    // Readers other than us (the queue runner, node_exporter) need to read it.
    let perms = std::os::unix::fs::PermissionsExt::from_mode(0o644);
    tmp.as_file()
        .set_permissions(perms)
        .with_context(|| format!("cannot set permissions on {}", tmp.path().display()))?;
    tmp.persist(path).with_context(|| format!("cannot rename into {}", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/machines");
        write_atomically(&target, b"one\n").unwrap();
        write_atomically(&target, b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "two\n");
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("sub")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("machines")]);
    }
}
