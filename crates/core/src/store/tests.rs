//! Store behaviour on real SQLite files: migrations, broken files, secrets, edits.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::secrets;
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

// ---- v6: AI agent configurations, transcripts ----

fn agent(store: &Store, provider: AiProvider) -> AiAgentView {
    store.ai_agent_by_provider(provider).unwrap()
}

fn fields_of(e: StoreError) -> Vec<(&'static str, &'static str)> {
    let StoreError::InvalidAiAgent(fields) = e else { panic!("expected InvalidAiAgent, got {e}") };
    fields.iter().map(|f| (f.field, f.code)).collect()
}

#[test]
fn a_version_5_database_gains_the_ai_agents_and_transcripts_and_keeps_its_rows() {
    let (_d, path) = temp_db();
    let mut c = Connection::open(&path).unwrap();
    migrations::migrate_to(&mut c, 5).unwrap();
    c.execute_batch(
        "INSERT INTO sip_configs (server_host, username, password, is_active, is_default, codecs, dtmf_mode)
           VALUES ('pbx.example.com', '1001', '', 1, 1, 'pcma', 'info');
         INSERT INTO call_history (call_id, account_id, direction, remote, display_name, end_reason, codec)
           VALUES ('c1', 1, 'in', 'sip:2002@pbx', 'Li', 'remote_hangup', 'PCMA');
         INSERT INTO desk_settings (key, value) VALUES ('refer_policy', 'refuse');",
    )
    .unwrap();
    let tables: i64 =
        c.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'ai_agent_configs'", [], |r| r.get(0)).unwrap();
    assert_eq!(tables, 0, "version 5 has no AI agents");
    drop(c);
    let mut store = open(&path).unwrap();
    let v: i64 = Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!((v, SCHEMA_VERSION), (6, 6));
    let a = store.account(1).unwrap();
    assert_eq!((a.codecs.as_deref(), a.dtmf_mode), (Some("pcma"), DtmfMode::Info));
    let h = store.history(10).unwrap();
    assert_eq!((h.len(), h[0].display_name.as_str(), h[0].codec.as_deref()), (1, "Li", Some("PCMA")));
    assert!(h[0].transcript.is_empty() && h[0].summary.is_none(), "old calls have no transcript");
    assert_eq!(store.setting("refer_policy").unwrap().as_deref(), Some("refuse"));

    // The three providers, the local one enabled and the default, the cloud ones off with their
    // public endpoints.
    let agents = store.ai_agents().unwrap();
    let summary: Vec<_> =
        agents.iter().map(|a| (a.provider, a.enabled, a.is_default, a.endpoint.as_str(), a.api_key_set)).collect();
    assert_eq!(
        summary,
        [
            (AiProvider::Local, true, true, "", false),
            (AiProvider::Openai, false, false, "wss://api.openai.com/v1/realtime", false),
            (AiProvider::Doubao, false, false, "wss://openspeech.bytedance.com/api/v3/realtime/dialogue", false),
        ]
    );
    for a in &agents {
        assert_eq!(a.endpoint, a.provider.default_endpoint());
    }
    assert_eq!(agents[0].language, "en");
    assert_eq!(store.default_ai_agent().unwrap().provider, AiProvider::Local);

    // A transcript can be saved on the old call.
    let line = TranscriptLine { speaker: Speaker::Caller, text: "my bill".into(), ts_ms: 5 };
    store.set_call_transcript("c1", std::slice::from_ref(&line), "intent: billing").unwrap();
    drop(store);
    // Opening again is a no-op: no second set of providers, the transcript kept.
    let store = open(&path).unwrap();
    assert_eq!(store.ai_agents().unwrap().len(), 3);
    assert_eq!(store.history(1).unwrap()[0].transcript, [line]);
}

#[test]
fn an_api_key_lives_in_the_secret_store_and_an_empty_field_keeps_it() {
    let (_d, path) = temp_db();
    let mut store = open(&path).unwrap();
    let openai = agent(&store, AiProvider::Openai);
    let key = "sk-test-0123456789abcdef";
    let edit = AiAgentDraft { api_key: Some(format!(" {key} ")), voice: Some("marin".into()), ..Default::default() };
    store.update_ai_agent(openai.id, &edit).unwrap();
    let view = store.ai_agent(openai.id).unwrap();
    assert!(view.api_key_set && !view.enabled, "a key alone does not enable it");
    let column: String = Connection::open(&path)
        .unwrap()
        .query_row("SELECT api_key FROM ai_agent_configs WHERE id = ?1", [openai.id], |r| r.get(0))
        .unwrap();
    assert!(secrets::is_reference(&column) && !column.contains(key), "the column holds {column}");
    assert_eq!(read_secret_file(&path).into_values().collect::<Vec<_>>(), [key]);
    assert_eq!(store.ai_agent_config(openai.id).unwrap().api_key.expose(), key);
    // Nothing shown carries it: the view, its JSON, Debug of the config and of a draft.
    assert!(!serde_json::to_string(&store.ai_agents().unwrap()).unwrap().contains(key));
    assert!(!format!("{:?}", store.ai_agent_config(openai.id).unwrap()).contains(key));
    assert!(!format!("{edit:?}").contains(key));

    // Edits without a key, or with an empty one, keep it.
    for keep in [None, Some(String::new()), Some("   ".into())] {
        let d = AiAgentDraft { api_key: keep, instructions: Some("Be brief.".into()), ..Default::default() };
        store.update_ai_agent(openai.id, &d).unwrap();
    }
    assert_eq!(store.ai_agent_config(openai.id).unwrap().api_key.expose(), key);
    // Enabling it works now that it has a key; a new key replaces the old secret.
    store.update_ai_agent(openai.id, &AiAgentDraft { enabled: Some(true), ..Default::default() }).unwrap();
    store
        .update_ai_agent(openai.id, &AiAgentDraft { api_key: Some("sk-second".into()), ..Default::default() })
        .unwrap();
    assert_eq!(read_secret_file(&path).into_values().collect::<Vec<_>>(), ["sk-second"], "the old secret is gone");
    // An enabled cloud provider cannot lose its key; a disabled one can.
    let clear = AiAgentDraft { clear_api_key: Some(true), ..Default::default() };
    assert_eq!(fields_of(store.update_ai_agent(openai.id, &clear).unwrap_err()), [("api_key", "api_key_required")]);
    let clear_off = AiAgentDraft { enabled: Some(false), clear_api_key: Some(true), ..Default::default() };
    store.update_ai_agent(openai.id, &clear_off).unwrap();
    assert!(!store.ai_agent(openai.id).unwrap().api_key_set);
    assert!(read_secret_file(&path).is_empty(), "a cleared key is deleted");
    assert_eq!(store.ai_agent_config(openai.id).unwrap().api_key, ApiKey::default());

    // A plaintext key written into the column by hand is moved out on the next open.
    Connection::open(&path)
        .unwrap()
        .execute("UPDATE ai_agent_configs SET api_key = 'sk-hand-written' WHERE id = ?1", [openai.id])
        .unwrap();
    drop(store);
    let store = open(&path).unwrap();
    let column: String = Connection::open(&path)
        .unwrap()
        .query_row("SELECT api_key FROM ai_agent_configs WHERE id = ?1", [openai.id], |r| r.get(0))
        .unwrap();
    assert!(column.starts_with("file:"), "{column}");
    assert_eq!(store.ai_agent_config(openai.id).unwrap().api_key.expose(), "sk-hand-written");
}

#[test]
fn ai_agent_validation_reports_every_bad_field_and_changes_nothing() {
    let (_d, path) = temp_db();
    let mut store = open(&path).unwrap();
    let (local, openai, doubao) =
        (agent(&store, AiProvider::Local), agent(&store, AiProvider::Openai), agent(&store, AiProvider::Doubao));

    // Cloud providers stay off until they have what they need.
    let enable = AiAgentDraft { enabled: Some(true), ..Default::default() };
    assert_eq!(fields_of(store.update_ai_agent(openai.id, &enable).unwrap_err()), [("api_key", "api_key_required")]);
    assert_eq!(
        fields_of(store.update_ai_agent(doubao.id, &enable).unwrap_err()),
        [("api_key", "api_key_required"), ("app_id", "app_id_required")]
    );
    let no_endpoint = AiAgentDraft { endpoint: Some(String::new()), api_key: Some("k".into()), ..enable.clone() };
    assert_eq!(
        fields_of(store.update_ai_agent(openai.id, &no_endpoint).unwrap_err()),
        [("endpoint", "endpoint_required")]
    );

    let bad = AiAgentDraft {
        endpoint: Some("http://api.example.com/realtime".into()),
        api_key: Some("has space".into()),
        app_id: Some("x y".into()),
        voice: Some("a/b".into()),
        instructions: Some("\u{1}".into()),
        greeting: Some("two\nlines".into()),
        language: Some("english".into()),
        ..Default::default()
    };
    assert_eq!(
        fields_of(store.update_ai_agent(doubao.id, &bad).unwrap_err()),
        [
            ("endpoint", "endpoint_invalid"),
            ("app_id", "app_id_invalid"),
            ("voice", "voice_invalid"),
            ("instructions", "instructions_invalid"),
            ("greeting", "greeting_invalid"),
            ("language", "language_invalid"),
            ("api_key", "api_key_invalid"),
        ]
    );
    let insecure = AiAgentDraft { endpoint: Some("ws://api.openai.com/v1/realtime".into()), ..Default::default() };
    assert_eq!(
        fields_of(store.update_ai_agent(openai.id, &insecure).unwrap_err()),
        [("endpoint", "endpoint_insecure")]
    );
    assert_eq!(store.ai_agent(doubao.id).unwrap(), doubao, "a rejected edit changes nothing");
    assert!(read_secret_file(&path).is_empty(), "a rejected key is never stored");

    // The local agent: no endpoint, key or app id, the slt voice, English.
    let local_bad = AiAgentDraft {
        endpoint: Some("wss://h.example/".into()),
        api_key: Some("k".into()),
        app_id: Some("123".into()),
        voice: Some("alloy".into()),
        language: Some("zh-CN".into()),
        ..Default::default()
    };
    assert_eq!(
        fields_of(store.update_ai_agent(local.id, &local_bad).unwrap_err()),
        [
            ("endpoint", "endpoint_unsupported"),
            ("api_key", "api_key_unsupported"),
            ("voice", "voice_unsupported"),
            ("language", "language_unsupported"),
            ("app_id", "app_id_unsupported"),
        ]
    );
    let greet = AiAgentDraft {
        greeting: Some(" Hello, you are talking to an automated assistant. ".into()),
        language: Some("EN-us".into()),
        ..Default::default()
    };
    store.update_ai_agent(local.id, &greet).unwrap();
    let l = store.ai_agent(local.id).unwrap();
    assert_eq!(
        (l.greeting.as_str(), l.language.as_str()),
        ("Hello, you are talking to an automated assistant.", "en-US")
    );

    // The default cannot be disabled; only an enabled provider can become the default.
    let off = AiAgentDraft { enabled: Some(false), ..Default::default() };
    assert_eq!(fields_of(store.update_ai_agent(local.id, &off).unwrap_err()), [("enabled", "default_disabled")]);
    assert_eq!(fields_of(store.set_default_ai_agent(openai.id).unwrap_err()), [("is_default", "default_disabled")]);
    let doubao_on = AiAgentDraft {
        enabled: Some(true),
        app_id: Some("1234567890".into()),
        api_key: Some("access-key-1".into()),
        endpoint: Some("ws://127.0.0.1:9000/api/v3/realtime/dialogue".into()),
        ..Default::default()
    };
    store.update_ai_agent(doubao.id, &doubao_on).unwrap();
    store.set_default_ai_agent(doubao.id).unwrap();
    let cfg = store.default_ai_agent().unwrap();
    assert_eq!(
        (cfg.provider, cfg.app_id.as_str(), cfg.api_key.expose()),
        (AiProvider::Doubao, "1234567890", "access-key-1")
    );
    assert_eq!(cfg.endpoint, "ws://127.0.0.1:9000/api/v3/realtime/dialogue", "loopback ws:// is allowed for tests");
    assert!(!store.ai_agent(local.id).unwrap().is_default);
    store.update_ai_agent(local.id, &off).unwrap();
    assert_eq!(fields_of(store.update_ai_agent(doubao.id, &off).unwrap_err()), [("enabled", "default_disabled")]);
    assert!(matches!(store.update_ai_agent(99, &off), Err(StoreError::NoAiAgent(99))));
    assert_eq!(StoreError::NoAiAgent(99).code(), "not_found");
    assert_eq!(StoreError::InvalidAiAgent(vec![]).code(), "invalid_ai_agent");
    // Drafts arrive as JSON from the UI; unknown keys (a typo, or `provider`) are refused.
    assert!(serde_json::from_str::<AiAgentDraft>(r#"{"provider": "openai"}"#).is_err());
    let d: AiAgentDraft = serde_json::from_str(r#"{"api_key": null, "voice": "alloy"}"#).unwrap();
    assert_eq!((d.api_key, d.voice.as_deref()), (None, Some("alloy")));
}
