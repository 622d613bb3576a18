//! The usual call-test set-up: a Kamailio registrar, a desk database with account 1001 on it,
//! and `sipdesk run --json` started and registered.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::kamailio::{Config, Kamailio};
use crate::sipdesk::{add_account, Running};

/// Programs every call test needs.
pub const PROGRAMS: &[&str] = &["kamailio", "kamcmd", "sipp"];

/// A registrar with one desk account on it.
pub struct DeskRig {
    /// The registrar.
    pub k: Kamailio,
    /// Scratch folder (database, WAVs, SIPp traces).
    pub dir: tempfile::TempDir,
    /// The desk's database.
    pub db: PathBuf,
    /// Account 1001's id.
    pub account_id: i64,
}

impl DeskRig {
    /// Starts Kamailio (default users) and stores account 1001 (UDP) for it.
    pub fn new() -> DeskRig {
        let k = Kamailio::start(&Config::default());
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("desk.db");
        let account_id = add_account(
            &db,
            &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", "1001", "--interval", "60", "--activate"],
            "pw-1001",
        );
        DeskRig { k, dir, db, account_id }
    }

    /// Starts `sipdesk run --json ARGS` and waits until the account is registered.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut run = Running::start(&self.db, args, env);
        let id = self.account_id;
        run.wait_for("registered", Duration::from_secs(10), move |v: &Value| {
            v["event"] == "registration" && v["account_id"] == id && v["state"] == "registered"
        });
        run
    }
}

impl Default for DeskRig {
    fn default() -> DeskRig {
        DeskRig::new()
    }
}

/// Matches a `call` event in `state`.
pub fn call(state: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "call" && v["state"] == state
}
