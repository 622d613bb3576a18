//! Call history (`call_history`): a row when a call starts, updated when it is answered and when
//! it ends, each in its own transaction.

use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError};

/// One call as the history shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CallRecord {
    /// Row id.
    pub id: i64,
    /// SIP Call-ID.
    pub call_id: String,
    /// Local account.
    pub account_id: Option<i64>,
    /// `in` or `out`.
    pub direction: String,
    /// The other party's URI.
    pub remote: String,
    /// The other party's display name, if it sent one.
    pub display_name: String,
    /// When the call started (UTC, ISO 8601).
    pub started_at: String,
    /// When it was answered.
    pub answered_at: Option<String>,
    /// When it ended; None for a call still going or interrupted by a crash.
    pub ended_at: Option<String>,
    /// Seconds from answer to end.
    pub duration_s: Option<i64>,
    /// Why it ended (the `call` event's reason); None while unfinished.
    pub end_reason: Option<String>,
    /// Negotiated codec.
    pub codec: Option<String>,
}

/// Splits a name-addr (`"Name" <sip:u@h>`) into display name and URI.
pub fn split_name_addr(v: &str) -> (String, String) {
    match (v.find('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => (v[..a].trim().trim_matches('"').to_string(), v[a + 1..b].to_string()),
        _ => (String::new(), v.trim().to_string()),
    }
}

impl Store {
    /// Records a call's start (ignored if the call is already recorded).
    pub fn call_started(
        &mut self,
        call_id: &str,
        account_id: i64,
        direction: &str,
        remote: &str,
    ) -> Result<(), StoreError> {
        let (name, uri) = split_name_addr(remote);
        self.write(
            "INSERT OR IGNORE INTO call_history (call_id, account_id, direction, remote, display_name) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![call_id, account_id, direction, uri, name],
        )
    }

    /// Records the answer and the codec.
    pub fn call_answered(&mut self, call_id: &str, codec: Option<&str>) -> Result<(), StoreError> {
        self.write(
            "UPDATE call_history SET answered_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), codec = ?2 WHERE call_id = ?1 AND answered_at IS NULL",
            params![call_id, codec],
        )
    }

    /// Records the end: time, reason and duration since the answer.
    pub fn call_ended(&mut self, call_id: &str, reason: &str) -> Result<(), StoreError> {
        self.write(
            "UPDATE call_history SET ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), end_reason = ?2,
                duration_s = CASE WHEN answered_at IS NULL THEN 0
                    ELSE CAST(ROUND((julianday('now') - julianday(answered_at)) * 86400) AS INTEGER) END
              WHERE call_id = ?1 AND ended_at IS NULL",
            params![call_id, reason],
        )
    }

    /// The latest calls, newest first.
    pub fn history(&self, limit: u32) -> Result<Vec<CallRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, call_id, account_id, direction, remote, display_name, started_at, answered_at, ended_at,
                        duration_s, end_reason, codec
                   FROM call_history ORDER BY id DESC LIMIT ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([limit], |r| {
                Ok(CallRecord {
                    id: r.get(0)?,
                    call_id: r.get(1)?,
                    account_id: r.get(2)?,
                    direction: r.get(3)?,
                    remote: r.get(4)?,
                    display_name: r.get(5)?,
                    started_at: r.get(6)?,
                    answered_at: r.get(7)?,
                    ended_at: r.get(8)?,
                    duration_s: r.get(9)?,
                    end_reason: r.get(10)?,
                    codec: r.get(11)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    fn write(&mut self, sql: &str, p: impl rusqlite::Params) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(|e| super::classify(&self.path, e))?;
        tx.execute(sql, p).and_then(|_| tx.commit().map(|_| ())).map_err(|e| super::classify(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SecretStore;

    #[test]
    fn a_call_is_one_row_from_start_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let mut s = Store::open_with_secrets(&path, SecretStore::file_only(&path)).unwrap();
        s.call_started("c1", 1, "in", "\"Li 李\" <sip:2001@example.com>").unwrap();
        s.call_started("c1", 1, "in", "<sip:2001@example.com>").unwrap();
        let unfinished = &s.history(10).unwrap()[0];
        assert_eq!(
            (unfinished.display_name.as_str(), unfinished.remote.as_str(), unfinished.end_reason.as_deref()),
            ("Li 李", "sip:2001@example.com", None)
        );
        s.call_answered("c1", Some("PCMU")).unwrap();
        s.call_ended("c1", "remote_hangup").unwrap();
        s.call_ended("c1", "local_hangup").unwrap();
        let h = s.history(10).unwrap();
        assert_eq!(h.len(), 1, "never a duplicate");
        assert_eq!(
            (h[0].end_reason.as_deref(), h[0].codec.as_deref(), h[0].duration_s),
            (Some("remote_hangup"), Some("PCMU"), Some(0))
        );
        assert!(h[0].answered_at.is_some() && h[0].ended_at.is_some());
    }
}
