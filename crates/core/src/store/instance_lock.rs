//! One registering instance per database: an OS file lock on `<db>.lock`, released by the OS
//! when the process ends however it ends, so a crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Another instance holds the database.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone else holds the lock; `pid` is what they wrote into it.
    #[error("another SipDesk instance (pid {pid}) is already running on {db}")]
    Held {
        /// The database in question.
        db: PathBuf,
        /// Process id of the holder, as it wrote it.
        pid: String,
    },
    /// The lock file could not be opened.
    #[error("cannot open lock file {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Held while this process registers the database's accounts.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

impl InstanceLock {
    /// Takes the lock for `db` without waiting.
    pub fn acquire(db: &Path) -> Result<InstanceLock, LockError> {
        let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".lock");
        let path = db.with_file_name(name);
        let io = |source| LockError::Io { path: path.clone(), source };
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)
                    .and_then(|_| file.rewind())
                    .and_then(|_| write!(file, "{}", std::process::id()))
                    .map_err(io)?;
                Ok(InstanceLock { _file: file })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                Err(LockError::Held { db: db.to_path_buf(), pid: pid.trim().to_string() })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_the_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        let first = InstanceLock::acquire(&db).unwrap();
        let err = InstanceLock::acquire(&db).unwrap_err();
        assert!(err.to_string().contains(&std::process::id().to_string()), "{err}");
        drop(first);
        InstanceLock::acquire(&db).unwrap();
    }
}
