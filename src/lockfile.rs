//! Lock files: drydock's cross-process exclusion (the error log, the state store's migration, a
//! SQLite target's applies) is an OS lock on a file beside what it guards, released by the OS when
//! a process dies. A leaf: it imports nothing of drydock.

use std::fs::{File, OpenOptions};
use std::path::Path;

/// Opens (creating it and its folder if missing, never truncating) the file to lock; the caller
/// takes the lock it needs (`lock` waits, `try_lock` does not).
pub fn open(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}
