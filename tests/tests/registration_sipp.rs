//! Registrar behaviours scripted with SIPp: 423 Interval Too Brief with Min-Expires, a
//! challenge without qop, a stale nonce, and 503 with Retry-After; our Contact found among
//! other bindings of the same address.

use std::time::Duration;

use serde_json::Value;
use sipdesk_e2e::sipdesk::{add_account, Running};
use sipdesk_e2e::sipp::{self, Sipp};

fn state(id: i64, state: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "registration" && v["account_id"] == id && v["state"] == state
}

#[test]
fn min_expires_no_qop_and_stale_nonce() {
    if !sipdesk_e2e::require_programs("sipp_quirks", &[sipp::PROGRAM]) {
        return;
    }
    let mut sipp = Sipp::serve("register_quirks");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    let id = add_account(
        &db,
        &["--host", "127.0.0.1", "--port", &sipp.port.to_string(), "--user", "1001", "--interval", "60", "--activate"],
        "pw-1001",
    );
    let mut run = Running::start(&db, &[], &[]);
    let ev = run.wait_for("registered", Duration::from_secs(20), state(id, "registered"));
    assert_eq!(ev["expires"], 120, "the Min-Expires the server asked for");
    let status = sipp.wait(Duration::from_secs(10));
    assert!(status.success(), "sipp's checks failed:\n{}", sipp.messages());
}

#[test]
fn retry_after_is_honoured_and_our_contact_is_found_among_others() {
    if !sipdesk_e2e::require_programs("sipp_503", &[sipp::PROGRAM]) {
        return;
    }
    let mut sipp = Sipp::serve("register_503");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.db");
    let id = add_account(
        &db,
        &["--host", "127.0.0.1", "--port", &sipp.port.to_string(), "--user", "1001", "--interval", "60", "--activate"],
        "pw-1001",
    );
    let mut run = Running::start(&db, &[], &[]);
    let failed = run.wait_for("503", Duration::from_secs(10), state(id, "failed"));
    assert_eq!(failed["reason"], "server_error");
    let ok = run.wait_for("registered", Duration::from_secs(15), state(id, "registered"));
    assert_eq!(ok["expires"], 60, "our binding's expiry, not the other binding's");
    let waited = ok["ts_ms"].as_u64().unwrap() - failed["ts_ms"].as_u64().unwrap();
    assert!(waited >= 3_900, "retried after {waited} ms; Retry-After asked for 4 s");
    assert!(sipp.wait(Duration::from_secs(10)).success(), "{}", sipp.messages());
}
