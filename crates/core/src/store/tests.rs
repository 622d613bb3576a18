//! Store behaviour on real SQLite files: migrations, broken files, secrets, edits.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::*;

fn open(path: &Path) -> Result<Store, StoreError> {
    Store::open_with_secrets(path, SecretStore::file_only(path))
}

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("desk.db");
    (dir, path)
}

fn draft(host: &str, port: &str, user: &str, password: Option<&str>) -> AccountDraft {
    AccountDraft {
        server_host: Some(host.into()),
        server_port: Some(port.into()),
        username: Some(user.into()),
        password: password.map(Into::into),
        is_active: Some(true),
        ..AccountDraft::default()
    }
}

#[test]
fn fresh_database_is_migrated_in_wal_mode_and_empty() {
    let (_d, path) = temp_db();
    let store = open(&path).unwrap();
    assert!(store.list_accounts().unwrap().is_empty(), "a new install has no account");
    let c = Connection::open(&path).unwrap();
    let v: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!((v, mode.as_str()), (SCHEMA_VERSION, "wal"));
}

#[test]
fn legacy_table_keeps_rows_and_loses_its_plaintext_password() {
    let (_d, path) = temp_db();
    let c = Connection::open(&path).unwrap();
    c.execute_batch(
        "CREATE TABLE sip_configs (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER, server_host TEXT NOT NULL,
           server_port INTEGER NOT NULL DEFAULT 5060, username TEXT NOT NULL, password TEXT NOT NULL,
           protocol TEXT NOT NULL DEFAULT 'UDP', is_active INTEGER NOT NULL DEFAULT 0, last_register_time INTEGER,
           register_interval INTEGER NOT NULL DEFAULT 3600, created_at TEXT NOT NULL DEFAULT '2024-01-01',
           updated_at TEXT NOT NULL DEFAULT '2024-01-01');
         INSERT INTO sip_configs (user_id, server_host, username, password, protocol, is_active, last_register_time)
           VALUES (7, 'pbx.example.com', '1001', 'legacy-pw', 'tcp', 1, 1700000000);",
    )
    .unwrap();
    drop(c);
    let store = open(&path).unwrap();
    let accounts = store.active_accounts().unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].password.expose(), "legacy-pw");
    assert_eq!(accounts[0].protocol, Protocol::Tcp);
    let view = &store.list_accounts().unwrap()[0];
    assert_eq!(
        (view.user_id, view.last_register_time.as_deref(), view.is_default),
        (Some(7), Some("1700000000"), true)
    );
    let column: String =
        Connection::open(&path).unwrap().query_row("SELECT password FROM sip_configs", [], |r| r.get(0)).unwrap();
    assert!(column.starts_with("file:") && !column.contains("legacy-pw"), "column holds {column}");
}

#[test]
fn newer_schema_is_refused_and_left_untouched() {
    let (_d, path) = temp_db();
    drop(open(&path).unwrap());
    Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 99;").unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { found: 99, .. }), "{err}");
    assert_eq!(err.code(), "store_newer_version");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_file_that_is_not_a_database_is_reported_and_kept() {
    let (_d, path) = temp_db();
    let junk = b"this is not sqlite, and it stays exactly as it is ..................................".repeat(20);
    std::fs::write(&path, &junk).unwrap();
    let err = open(&path).unwrap_err();
    assert_eq!(err.code(), "store_unreadable", "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), junk);
}

#[test]
fn a_locked_database_gives_a_clear_error_in_bounded_time() {
    let (_d, path) = temp_db();
    let mut store = open(&path).unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    let start = Instant::now();
    let err = store.create_account(&draft("127.0.0.1", "5060", "1001", Some("pw"))).unwrap_err();
    assert_eq!(err.code(), "store_locked", "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
    other.execute_batch("ROLLBACK;").unwrap();
    assert!(store.list_accounts().unwrap().is_empty(), "nothing half-written");
    assert!(read_secret_file(&path).is_empty(), "the secret of the failed insert was removed");
}

fn read_secret_file(db: &Path) -> std::collections::BTreeMap<String, String> {
    let p = db.with_file_name("desk.db.secrets");
    std::fs::read(p).map(|b| serde_json::from_slice(&b).unwrap()).unwrap_or_default()
}

#[test]
fn validation_reports_every_bad_field() {
    let (_d, path) = temp_db();
    let mut store = open(&path).unwrap();
    let mut d = draft("bad host", "70000", "", None);
    d.protocol = Some("sctp".into());
    d.register_interval = Some("10".into());
    let StoreError::Invalid(fields) = store.create_account(&d).unwrap_err() else { panic!("expected Invalid") };
    let codes: Vec<_> = fields.iter().map(|f| (f.field, f.code)).collect();
    assert_eq!(
        codes,
        [
            ("server_host", "host_invalid"),
            ("server_port", "port_range"),
            ("username", "username_empty"),
            ("protocol", "protocol_invalid"),
            ("register_interval", "interval_range")
        ]
    );
    let err = store.create_account(&draft("h.example", "5060", "1001", None)).unwrap_err();
    assert_eq!(err.to_string(), "invalid account: password: a password is required");
}

#[test]
fn edit_without_password_keeps_it_and_a_new_one_replaces_it() {
    let (_d, path) = temp_db();
    let mut store = open(&path).unwrap();
    let id = store.create_account(&draft("h.example", "5060", "1001", Some("first-pw"))).unwrap();
    let edit = AccountDraft { server_port: Some("5070".into()), ..AccountDraft::default() };
    store.update_account(id, &edit).unwrap();
    let blank = AccountDraft { password: Some(String::new()), ..AccountDraft::default() };
    store.update_account(id, &blank).unwrap();
    let a = &store.active_accounts().unwrap()[0];
    assert_eq!((a.server_port, a.password.expose()), (5070, "first-pw"));
    store.update_account(id, &AccountDraft { password: Some("second-pw".into()), ..AccountDraft::default() }).unwrap();
    assert_eq!(store.active_accounts().unwrap()[0].password.expose(), "second-pw");
    let secrets: Vec<_> = read_secret_file(&path).into_values().collect();
    assert_eq!(secrets, ["second-pw"], "the old secret is gone");
    let bad = AccountDraft { server_port: Some("0".into()), ..AccountDraft::default() };
    assert!(store.update_account(id, &bad).is_err());
    assert_eq!(store.account(id).unwrap().server_port, 5070, "a rejected edit changes nothing");
    assert!(matches!(store.update_account(999, &edit), Err(StoreError::NotFound(999))));
}

#[test]
fn default_account_moves_when_the_default_is_removed() {
    let (_d, path) = temp_db();
    let mut store = open(&path).unwrap();
    let a = store.create_account(&draft("h.example", "5060", "1001", Some("pw"))).unwrap();
    let b = store.create_account(&draft("h.example", "5060", "1002", Some("pw"))).unwrap();
    assert_eq!(store.default_account_id().unwrap(), Some(a));
    store.set_default(b).unwrap();
    assert_eq!(store.default_account_id().unwrap(), Some(b));
    store.delete_account(b).unwrap();
    assert_eq!(store.default_account_id().unwrap(), Some(a));
    assert!(store.list_accounts().unwrap()[0].is_default);
    assert_eq!(read_secret_file(&path).len(), 1, "the removed account's secret is deleted");
    store.set_active(a, false).unwrap();
    assert!(store.active_accounts().unwrap().is_empty());
    assert!(matches!(store.set_active(42, true), Err(StoreError::NotFound(42))));
}

#[test]
fn data_version_changes_when_another_connection_commits() {
    let (_d, path) = temp_db();
    let store = open(&path).unwrap();
    let before = store.data_version().unwrap();
    let mut other = open(&path).unwrap();
    other.create_account(&draft("h.example", "5060", "1001", Some("pw"))).unwrap();
    assert_ne!(store.data_version().unwrap(), before);
}

#[test]
fn a_version_3_database_gains_a_null_codec_order_and_keeps_its_rows() {
    let (_d, path) = temp_db();
    let mut c = Connection::open(&path).unwrap();
    migrations::migrate_to(&mut c, 3).unwrap();
    c.execute_batch(
        "INSERT INTO sip_configs (server_host, username, password, is_active, is_default, display_name)
           VALUES ('pbx.example.com', '1001', '', 1, 1, 'Desk 1');
         INSERT INTO call_history (call_id, direction, remote) VALUES ('c1', 'in', 'sip:2002@pbx');",
    )
    .unwrap();
    let columns: Vec<String> = c
        .prepare("SELECT name FROM pragma_table_info('sip_configs')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!columns.iter().any(|n| n == "codecs"), "version 3 has no codecs column");
    drop(c);
    let mut store = open(&path).unwrap();
    let v: i64 = Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let view = &store.list_accounts().unwrap()[0];
    assert_eq!((view.display_name.as_str(), view.codecs.as_deref()), ("Desk 1", None));
    assert_eq!(store.active_accounts().unwrap()[0].codecs, None);
    assert_eq!(store.history(10).unwrap().len(), 1, "the call history is kept");
    store
        .update_account(view.id, &AccountDraft { codecs: Some("pcma,pcmu".into()), ..AccountDraft::default() })
        .unwrap();
    assert_eq!(store.account(view.id).unwrap().codecs.as_deref(), Some("pcma,pcmu"));
    // Opening again is a no-op.
    drop(store);
    assert_eq!(open(&path).unwrap().account(1).unwrap().codecs.as_deref(), Some("pcma,pcmu"));
}

#[test]
fn codec_order_is_stored_normalised_kept_on_edit_and_cleared_by_default() {
    let (_d, path) = temp_db();
    let mut store = open(&path).unwrap();
    let mut d = draft("h.example", "5060", "1001", Some("pw"));
    d.codecs = Some(" Opus, PCMU ".into());
    let id = store.create_account(&d).unwrap();
    assert_eq!(store.account(id).unwrap().codecs.as_deref(), Some("opus,pcmu"));
    store.update_account(id, &AccountDraft { server_port: Some("5070".into()), ..AccountDraft::default() }).unwrap();
    assert_eq!(store.active_accounts().unwrap()[0].codecs.as_deref(), Some("opus,pcmu"), "kept when not given");
    for bad in ["g729", "pcmu,pcmu", ","] {
        let edit = AccountDraft { codecs: Some(bad.into()), ..AccountDraft::default() };
        let StoreError::Invalid(fields) = store.update_account(id, &edit).unwrap_err() else { panic!("{bad}") };
        assert_eq!(fields.iter().map(|f| f.field).collect::<Vec<_>>(), ["codecs"], "{bad}");
    }
    assert_eq!(store.account(id).unwrap().codecs.as_deref(), Some("opus,pcmu"), "a rejected edit changes nothing");
    store.update_account(id, &AccountDraft { codecs: Some("default".into()), ..AccountDraft::default() }).unwrap();
    assert_eq!(store.account(id).unwrap().codecs, None);
    store.update_account(id, &AccountDraft { codecs: Some("pcma".into()), ..AccountDraft::default() }).unwrap();
    store.update_account(id, &AccountDraft { codecs: Some(String::new()), ..AccountDraft::default() }).unwrap();
    assert_eq!(store.account(id).unwrap().codecs, None, "an empty value is the default order too");
    let column: Option<String> =
        Connection::open(&path).unwrap().query_row("SELECT codecs FROM sip_configs", [], |r| r.get(0)).unwrap();
    assert_eq!(column, None, "the default order is NULL in the column");
    // Every field error is reported together, codecs among them.
    let mut d = draft("h.example", "0", "1002", Some("pw"));
    d.codecs = Some("pcmu,g722".into());
    let StoreError::Invalid(fields) = store.create_account(&d).unwrap_err() else { panic!("expected Invalid") };
    let codes: Vec<_> = fields.iter().map(|f| (f.field, f.code)).collect();
    assert_eq!(codes, [("server_port", "port_range"), ("codecs", "codecs_unknown")]);
}

#[test]
fn an_accounts_codec_order_wins_over_sipdesk_codecs_which_wins_over_the_default() {
    use crate::media::offer_answer::{Codec, MediaPolicy};
    let (_d, path) = temp_db();
    let mut store = open(&path).unwrap();
    let mut d = draft("h.example", "5060", "1001", Some("pw"));
    d.codecs = Some("pcma,pcmu".into());
    store.create_account(&d).unwrap();
    store.create_account(&draft("h.example", "5060", "1002", Some("pw"))).unwrap();
    let accounts = store.active_accounts().unwrap();
    let policy = |a: &Account, env: Option<&str>| MediaPolicy::with_codecs(a.codecs.as_deref(), env).codecs;
    assert_eq!(policy(&accounts[0], None), [Codec::Pcma, Codec::Pcmu]);
    assert_eq!(policy(&accounts[0], Some("opus")), [Codec::Pcma, Codec::Pcmu], "the account wins");
    assert_eq!(policy(&accounts[1], Some("opus,pcmu")), [Codec::Opus, Codec::Pcmu], "then SIPDESK_CODECS");
    assert_eq!(policy(&accounts[1], None), MediaPolicy::default().codecs, "then the default");
    assert_eq!(policy(&accounts[1], Some("g729")), MediaPolicy::default().codecs);
    // A hand-edited column the store would not accept falls back like an unset one.
    assert_eq!(MediaPolicy::with_codecs(Some("g729"), Some("pcma")).codecs, [Codec::Pcma]);
}

#[test]
fn a_version_4_database_gains_the_rfc4733_dtmf_mode_and_keeps_its_rows() {
    let (_d, path) = temp_db();
    let mut c = Connection::open(&path).unwrap();
    migrations::migrate_to(&mut c, 4).unwrap();
    c.execute_batch(
        "INSERT INTO sip_configs (server_host, username, password, is_active, is_default, codecs)
           VALUES ('pbx.example.com', '1001', '', 1, 1, 'pcma');",
    )
    .unwrap();
    let has_column = |c: &Connection| {
        c.prepare("SELECT name FROM pragma_table_info('sip_configs')")
            .unwrap()
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .any(|n| n.unwrap() == "dtmf_mode")
    };
    assert!(!has_column(&c), "version 4 has no dtmf_mode column");
    drop(c);
    let mut store = open(&path).unwrap();
    let c = Connection::open(&path).unwrap();
    let v: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!((v, has_column(&c)), (SCHEMA_VERSION, true));
    let view = store.account(1).unwrap();
    assert_eq!((view.codecs.as_deref(), view.dtmf_mode), (Some("pcma"), DtmfMode::Rfc4733));
    store.update_account(1, &AccountDraft { dtmf_mode: Some("info".into()), ..AccountDraft::default() }).unwrap();
    drop(store);
    // Opening again is a no-op and keeps the value.
    let store = open(&path).unwrap();
    assert_eq!(store.active_accounts().unwrap()[0].dtmf_mode, DtmfMode::Info);
}

#[test]
fn dtmf_mode_is_stored_kept_on_edit_and_validated_with_the_other_fields() {
    let (_d, path) = temp_db();
    let mut store = open(&path).unwrap();
    let plain = store.create_account(&draft("h.example", "5060", "1001", Some("pw"))).unwrap();
    let mut d = draft("h.example", "5060", "1002", Some("pw"));
    d.dtmf_mode = Some(" INFO ".into());
    let info = store.create_account(&d).unwrap();
    assert_eq!(store.account(plain).unwrap().dtmf_mode, DtmfMode::Rfc4733, "the default");
    assert_eq!(store.account(info).unwrap().dtmf_mode, DtmfMode::Info);
    store.update_account(info, &AccountDraft { server_port: Some("5070".into()), ..AccountDraft::default() }).unwrap();
    assert_eq!(store.account(info).unwrap().dtmf_mode, DtmfMode::Info, "kept when not given");
    let bad = AccountDraft { dtmf_mode: Some("inband".into()), ..AccountDraft::default() };
    let StoreError::Invalid(fields) = store.update_account(info, &bad).unwrap_err() else { panic!("expected Invalid") };
    assert_eq!(fields, [FieldError { field: "dtmf_mode", code: "dtmf_mode_invalid" }]);
    assert_eq!(store.account(info).unwrap().dtmf_mode, DtmfMode::Info, "a rejected edit changes nothing");
    store.update_account(info, &AccountDraft { dtmf_mode: Some("rfc4733".into()), ..AccountDraft::default() }).unwrap();
    assert_eq!(store.account(info).unwrap().dtmf_mode, DtmfMode::Rfc4733);
    let column: String = Connection::open(&path)
        .unwrap()
        .query_row("SELECT dtmf_mode FROM sip_configs WHERE id = ?1", [info], |r| r.get(0))
        .unwrap();
    assert_eq!(column, "rfc4733");
    // Every field error is reported together, dtmf_mode among them.
    let mut d = draft("h.example", "0", "1003", Some("pw"));
    d.dtmf_mode = Some("rfc2833".into());
    let StoreError::Invalid(fields) = store.create_account(&d).unwrap_err() else { panic!("expected Invalid") };
    let codes: Vec<_> = fields.iter().map(|f| (f.field, f.code)).collect();
    assert_eq!(codes, [("server_port", "port_range"), ("dtmf_mode", "dtmf_mode_invalid")]);
    // A hand-edited column reads as the default; the JSON view names the mode in lower case.
    Connection::open(&path)
        .unwrap()
        .execute("UPDATE sip_configs SET dtmf_mode = 'bogus' WHERE id = ?1", [plain])
        .unwrap();
    let view = store.account(plain).unwrap();
    assert_eq!(view.dtmf_mode, DtmfMode::Rfc4733);
    assert_eq!(serde_json::to_value(store.account(info).unwrap()).unwrap()["dtmf_mode"], "rfc4733");
}
