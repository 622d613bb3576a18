//! Passwords in a real Secret Service: gnome-keyring in a private D-Bus session. The account's
//! password goes to the keyring (the database keeps only a reference, no secrets file appears),
//! and the desk reads it back to register with a real Kamailio.

use std::process::Command;

use sipdesk_e2e::kamailio::{self, Config, Kamailio};

#[test]
fn password_lives_in_the_keyring_and_registration_uses_it() {
    let mut needed = vec!["dbus-run-session", "gnome-keyring-daemon"];
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("secret_service", &needed) {
        return;
    }
    let k = Kamailio::start(&Config::default());
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("desk.db");
    let bin = sipdesk_e2e::sipdesk::bin();
    // One private session: unlock a fresh keyring, add the account, run until registered.
    let script = format!(
        r#"set -e
echo -n unlock-pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null
echo 'pw-1001' | "$BIN" --db "$DB" account add --host 127.0.0.1 --port {port} --user 1001 --password-stdin --activate >/dev/null
timeout -s TERM 4 "$BIN" --db "$DB" run --json > "$HOME/events.jsonl" 2> "$HOME/stderr.log" || true"#,
        port = k.port
    );
    let status = Command::new("dbus-run-session")
        .args(["--", "bash", "-c", &script])
        .env("BIN", &bin)
        .env("DB", &db)
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env_remove("SIPDESK_SECRET_STORE")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .status()
        .unwrap();
    assert!(status.success());
    let events = std::fs::read_to_string(home.path().join("events.jsonl")).unwrap();
    let stderr = std::fs::read_to_string(home.path().join("stderr.log")).unwrap();
    assert!(
        events.contains(r#""event":"registration""#) && events.contains(r#""state":"registered""#),
        "{events}\n{stderr}"
    );
    let column = reference_in(&db);
    assert!(column.starts_with("keyring:"), "the column holds a keyring reference, not {column}");
    assert!(!home.path().join("desk.db.secrets").exists(), "no secrets file when a Secret Service answers");
    for entry in walk(home.path()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(!bytes.windows(7).any(|w| w == b"pw-1001"), "{} holds the password in clear", entry.display());
    }
}

/// The secret reference stored in the database file (or its WAL): `sipdesk` never prints the
/// password column, so the file itself is searched.
fn reference_in(db: &std::path::Path) -> String {
    let bytes = std::fs::read(db).unwrap();
    let wal = std::fs::read(db.with_extension("db-wal")).unwrap_or_default();
    let all = [bytes, wal].concat();
    let text = String::from_utf8_lossy(&all);
    match text.find("keyring:") {
        Some(i) => text[i..i + 8 + 32].to_string(),
        None => text.find("file:").map(|i| text[i..i + 5 + 32].to_string()).unwrap_or_default(),
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
