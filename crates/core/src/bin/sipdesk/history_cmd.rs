//! `sipdesk history`: the latest calls, newest first, as a table or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use sipdesk_core::desk::default_db_path;
use sipdesk_core::store::Store;

use crate::account_cmd::fail;

/// `sipdesk history`: the latest calls.
pub fn run(db: Option<PathBuf>, json: bool, limit: u32) -> ExitCode {
    let path = db.unwrap_or_else(default_db_path);
    let rows = match Store::open(&path).and_then(|s| s.history(limit.clamp(1, 1000))) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("records serialise"));
        return ExitCode::SUCCESS;
    }
    println!("{:<24} {:<4} {:<36} {:>6} {:<14} CODEC", "STARTED", "DIR", "REMOTE", "SECS", "END");
    for r in rows {
        let remote =
            if r.display_name.is_empty() { r.remote.clone() } else { format!("{} <{}>", r.display_name, r.remote) };
        let secs = r.duration_s.map(|d| d.to_string()).unwrap_or_default();
        println!(
            "{:<24} {:<4} {:<36} {:>6} {:<14} {}",
            r.started_at,
            r.direction,
            remote,
            secs,
            r.end_reason.as_deref().unwrap_or("unfinished"),
            r.codec.as_deref().unwrap_or("")
        );
    }
    ExitCode::SUCCESS
}
