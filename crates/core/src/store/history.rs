//! Call history (`call_history`): a row when a call starts, updated when it is answered and when
//! it ends, each in its own transaction; the AI's transcript and summary when it had the call.

use rusqlite::params;
use serde::{Deserialize, Serialize};

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
    /// What was said while the AI voice agent had the call (empty if it never had it).
    pub transcript: Vec<TranscriptLine>,
    /// What the AI collected (slots and intents), for whoever takes the call or calls back;
    /// None if it never had the call.
    pub summary: Option<String>,
}

/// Who said a transcript line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    /// The caller (what the agent recognised).
    Caller,
    /// The AI voice agent.
    Ai,
}

/// One line of a call's transcript, as the `call_history.transcript` JSON array keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptLine {
    /// Who said it.
    pub speaker: Speaker,
    /// What was said.
    pub text: String,
    /// When, in milliseconds since the Unix epoch.
    pub ts_ms: i64,
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

    /// Saves what was said while the AI had the call and what it collected, replacing what was
    /// saved before for that call (the caller keeps the whole transcript of the call, every
    /// handoff included). A call not in the history is logged and ignored.
    pub fn set_call_transcript(
        &mut self,
        call_id: &str,
        transcript: &[TranscriptLine],
        summary: &str,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(transcript).expect("transcript lines always serialise");
        let tx = self.conn.transaction().map_err(|e| super::classify(&self.path, e))?;
        let n = tx
            .execute(
                "UPDATE call_history SET transcript = ?2, summary = ?3 WHERE call_id = ?1",
                params![call_id, json, summary],
            )
            .and_then(|n| tx.commit().map(|_| n))
            .map_err(|e| super::classify(&self.path, e))?;
        if n == 0 {
            tracing::warn!(call_id, "no call history row for a transcript");
        }
        Ok(())
    }

    /// The latest calls, newest first.
    pub fn history(&self, limit: u32) -> Result<Vec<CallRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, call_id, account_id, direction, remote, display_name, started_at, answered_at, ended_at,
                        duration_s, end_reason, codec, transcript, summary
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
                    // A hand-edited column that is not a transcript reads as none.
                    transcript: r
                        .get::<_, Option<String>>(12)?
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default(),
                    summary: r.get(13)?,
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
        assert_eq!((h[0].transcript.len(), h[0].summary.as_deref()), (0, None), "never handed to the AI");
    }

    #[test]
    fn a_transcript_and_summary_are_kept_with_the_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let mut s = Store::open_with_secrets(&path, SecretStore::file_only(&path)).unwrap();
        s.call_started("c1", 1, "in", "<sip:2001@example.com>").unwrap();
        s.call_started("c2", 1, "in", "<sip:2002@example.com>").unwrap();
        let lines = [
            TranscriptLine {
                speaker: Speaker::Ai,
                text: "Hello. You are talking to an automated assistant.".into(),
                ts_ms: 1,
            },
            TranscriptLine {
                speaker: Speaker::Caller,
                text: "i have a question about my bill \"urgent\"".into(),
                ts_ms: 2,
            },
        ];
        s.set_call_transcript("c1", &lines[..1], "intent: none").unwrap();
        s.set_call_transcript("c1", &lines, "intent: billing; callback_number: 5551234").unwrap();
        s.set_call_transcript("nope", &lines, "x").unwrap();
        s.call_ended("c1", "remote_hangup").unwrap();
        let h = s.history(10).unwrap();
        let c1 = h.iter().find(|r| r.call_id == "c1").unwrap();
        assert_eq!(c1.transcript, lines, "the last save wins");
        assert_eq!(c1.summary.as_deref(), Some("intent: billing; callback_number: 5551234"));
        assert_eq!(c1.end_reason.as_deref(), Some("remote_hangup"));
        let c2 = h.iter().find(|r| r.call_id == "c2").unwrap();
        assert!(c2.transcript.is_empty() && c2.summary.is_none());
        let json = serde_json::to_value(c1).unwrap();
        assert_eq!(json["transcript"][1], serde_json::json!({"speaker": "caller", "text": lines[1].text, "ts_ms": 2}));
        let column: String = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("SELECT transcript FROM call_history WHERE call_id = 'c1'", [], |r| r.get(0))
            .unwrap();
        assert!(column.starts_with("[{\"speaker\":\"ai\""), "{column}");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute("UPDATE call_history SET transcript = 'not json' WHERE call_id = 'c1'", [])
            .unwrap();
        assert!(s.history(10).unwrap().iter().find(|r| r.call_id == "c1").unwrap().transcript.is_empty());
    }
}
