//! Where account passwords live: the OS secret store (Secret Service through `keyring`) when one
//! answers, else a separate file readable only by the user. The database keeps only a reference.
//!
//! A reference is `keyring:<key>` or `file:<key>`; anything else in the password column is a
//! plaintext password from an older install, which [`super::Store::open`] moves out.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;

/// Keyring service name under which SipDesk keeps its secrets.
const KEYRING_SERVICE: &str = "sipdesk";

/// Which backend new secrets go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretBackend {
    /// The desktop's Secret Service (GNOME Keyring, KWallet) via the `keyring` crate.
    Keyring,
    /// A JSON file with mode 0600 beside the database.
    File(PathBuf),
}

/// Errors of the secret store. They never carry the secret itself.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The keyring refused or is not reachable.
    #[error("secret service error: {0}")]
    Keyring(String),
    /// The secrets file could not be read or written.
    #[error("secrets file {path}: {source}")]
    File {
        /// Path of the secrets file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The secrets file is not valid JSON.
    #[error("secrets file {0} is corrupt")]
    Corrupt(PathBuf),
    /// A reference points to a secret that is not there.
    #[error("secret {0} not found")]
    Missing(String),
}

/// The secret store: writes go to one backend, reads follow each reference's own backend.
#[derive(Debug, Clone)]
pub struct SecretStore {
    backend: SecretBackend,
    file: PathBuf,
}

impl SecretStore {
    /// Chooses the backend for the database at `db_path`.
    ///
    /// `SIPDESK_SECRET_STORE=keyring|file` forces one; otherwise the keyring is used when a
    /// session bus exists and a Secret Service answers on it. Never the kernel keyutils store,
    /// which forgets everything on reboot.
    pub fn for_db(db_path: &Path) -> SecretStore {
        let file = secrets_file_for(db_path);
        let backend = match std::env::var("SIPDESK_SECRET_STORE").as_deref() {
            Ok("file") => SecretBackend::File(file.clone()),
            Ok("keyring") => SecretBackend::Keyring,
            _ if keyring_available() => SecretBackend::Keyring,
            _ => SecretBackend::File(file.clone()),
        };
        SecretStore { backend, file }
    }

    /// A store that keeps secrets only in the private file beside `db_path`.
    pub fn file_only(db_path: &Path) -> SecretStore {
        let file = secrets_file_for(db_path);
        SecretStore { backend: SecretBackend::File(file.clone()), file }
    }

    /// The backend new secrets are written to.
    pub fn backend(&self) -> &SecretBackend {
        &self.backend
    }

    /// Stores a secret under a fresh key and returns the reference to keep in the database.
    pub fn put(&self, secret: &str) -> Result<String, SecretError> {
        let key = fresh_key();
        match &self.backend {
            SecretBackend::Keyring => {
                keyring_entry(&key)?.set_password(secret).map_err(|e| SecretError::Keyring(e.to_string()))?;
                Ok(format!("keyring:{key}"))
            }
            SecretBackend::File(path) => {
                let mut map = read_file(path)?;
                map.insert(key.clone(), secret.to_string());
                write_file(path, &map)?;
                Ok(format!("file:{key}"))
            }
        }
    }

    /// Reads the secret a reference points to.
    pub fn get(&self, reference: &str) -> Result<String, SecretError> {
        match parse_ref(reference) {
            Some(("keyring", key)) => keyring_entry(key)?.get_password().map_err(|e| match e {
                keyring::Error::NoEntry => SecretError::Missing(reference.to_string()),
                e => SecretError::Keyring(e.to_string()),
            }),
            Some((_, key)) => {
                read_file(&self.file)?.remove(key).ok_or_else(|| SecretError::Missing(reference.to_string()))
            }
            None => Err(SecretError::Missing(reference.to_string())),
        }
    }

    /// Deletes the secret a reference points to; a missing one is not an error.
    pub fn delete(&self, reference: &str) -> Result<(), SecretError> {
        match parse_ref(reference) {
            Some(("keyring", key)) => match keyring_entry(key)?.delete_credential() {
                Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                Err(e) => Err(SecretError::Keyring(e.to_string())),
            },
            Some((_, key)) => {
                let mut map = read_file(&self.file)?;
                if map.remove(key).is_some() {
                    write_file(&self.file, &map)?;
                }
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// True when the value in the password column is a reference rather than a plaintext password.
pub fn is_reference(value: &str) -> bool {
    parse_ref(value).is_some()
}

fn parse_ref(value: &str) -> Option<(&str, &str)> {
    let (kind, key) = value.split_once(':')?;
    let key_ok = key.len() == 32 && key.chars().all(|c| c.is_ascii_hexdigit());
    ((kind == "keyring" || kind == "file") && key_ok).then_some((kind, key))
}

fn fresh_key() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sipdesk.db` keeps its secrets in `sipdesk.db.secrets`.
fn secrets_file_for(db_path: &Path) -> PathBuf {
    let mut name = db_path.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "sipdesk.db".into());
    name.push(".secrets");
    db_path.with_file_name(name)
}

fn keyring_available() -> bool {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        return false;
    }
    // A lookup of a key that never exists: NoEntry means a Secret Service answered.
    match keyring::Entry::new(KEYRING_SERVICE, "availability-probe").and_then(|e| e.get_password()) {
        Ok(_) | Err(keyring::Error::NoEntry) => true,
        Err(e) => {
            tracing::info!("no usable Secret Service ({e}); passwords go to a private file");
            false
        }
    }
}

fn keyring_entry(key: &str) -> Result<keyring::Entry, SecretError> {
    keyring::Entry::new(KEYRING_SERVICE, key).map_err(|e| SecretError::Keyring(e.to_string()))
}

fn read_file(path: &Path) -> Result<BTreeMap<String, String>, SecretError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|_| SecretError::Corrupt(path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(source) => Err(SecretError::File { path: path.to_path_buf(), source }),
    }
}

/// Writes the whole map to a 0600 temporary file, syncs it, then renames it over the old one,
/// so a crash leaves either the old or the new file, never half of one.
fn write_file(path: &Path, map: &BTreeMap<String, String>) -> Result<(), SecretError> {
    let err = |source| SecretError::File { path: path.to_path_buf(), source };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(err)?;
    let body = serde_json::to_vec_pretty(map).expect("a string map always serialises");
    f.write_all(&body).and_then(|_| f.sync_all()).map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_backend_round_trip_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.db.secrets");
        let store = SecretStore { backend: SecretBackend::File(file.clone()), file: file.clone() };
        let r = store.put("pa55").unwrap();
        assert!(is_reference(&r) && r.starts_with("file:"));
        assert_eq!(store.get(&r).unwrap(), "pa55");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
        store.delete(&r).unwrap();
        assert!(matches!(store.get(&r), Err(SecretError::Missing(_))));
        assert!(!is_reference("hunter2") && !is_reference("file:short"));
    }
}
