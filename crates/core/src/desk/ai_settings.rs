//! AI settings: the voice agents a call can be handed to (the store's `ai_agent_configs`) and the
//! supervisors' policy (one JSON row of `desk_settings`): whether agents may hand calls to the AI,
//! and when the AI answers incoming calls by itself: `never`, `always`, `after:N` seconds of
//! ringing nobody answered, or `outside_hours` (outside the working hours, local time).
//! `sipdesk run --ai-answer` overrides the saved `answer` for that run (tests rely on it).
//!
//! The policy only decides; the call code asks [`Desk::ai_answers_after_now`] (or the pure
//! [`ai_answers_after`]) when a call starts ringing.

use std::time::Duration;

use chrono::{Datelike, NaiveDateTime, Timelike};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::{ApiError, Desk};
use crate::agent::{AudioFormat, SessionConfig};
use crate::store::{AiAgentConfig, AiAgentDraft, AiAgentView, AiProvider, FieldError};

/// The `desk_settings` key of the supervisors' AI policy.
const AI_POLICY_KEY: &str = "ai_policy";

/// Longest ring the AI may wait for before answering: calls stop ringing at 120 s (`no_answer`).
pub const AI_ANSWER_AFTER_MAX: u32 = 119;

/// When the AI answers an incoming call by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AiAnswer {
    /// Never: calls ring at the desk only.
    Never,
    /// At once, before the call rings at the desk.
    Always,
    /// After this many seconds of ringing that nobody answered (1 to [`AI_ANSWER_AFTER_MAX`]).
    After(u32),
    /// At once outside the working hours; never within them.
    OutsideHours,
}

impl AiAnswer {
    /// Parses `never`, `always`, `after:SECONDS` or `outside_hours` (any case, spaces trimmed),
    /// the one syntax of the CLI flag, the `set_policy` command and the settings screen.
    pub fn parse(value: &str) -> Result<AiAnswer, FieldError> {
        let v = value.trim().to_ascii_lowercase();
        let err = |code| FieldError { field: "answer", code };
        match v.as_str() {
            "never" => Ok(AiAnswer::Never),
            "always" => Ok(AiAnswer::Always),
            "outside_hours" => Ok(AiAnswer::OutsideHours),
            _ => {
                let n = v.strip_prefix("after:").ok_or(err("answer_invalid"))?.trim();
                if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
                    return Err(err("answer_invalid"));
                }
                match n.parse::<u32>() {
                    Ok(n) if (1..=AI_ANSWER_AFTER_MAX).contains(&n) => Ok(AiAnswer::After(n)),
                    _ => Err(err("answer_after_range")),
                }
            }
        }
    }
}

impl std::fmt::Display for AiAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AiAnswer::Never => f.write_str("never"),
            AiAnswer::Always => f.write_str("always"),
            AiAnswer::After(n) => write!(f, "after:{n}"),
            AiAnswer::OutsideHours => f.write_str("outside_hours"),
        }
    }
}

impl std::str::FromStr for AiAnswer {
    type Err = String;
    fn from_str(s: &str) -> Result<AiAnswer, String> {
        AiAnswer::parse(s).map_err(|e| e.message().to_string())
    }
}

impl Serialize for AiAnswer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AiAnswer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AiAnswer, D::Error> {
        let text = String::deserialize(d)?;
        AiAnswer::parse(&text).map_err(|e| serde::de::Error::custom(e.message()))
    }
}

/// Day names as the policy spells them, Monday first.
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The desk's working hours in local time: the days it is staffed and the hours on each. An end
/// at or before the start runs past midnight into the next day (a night shift, `22:00`-`06:00`,
/// belongs to the day it starts on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkingHours {
    /// Monday first.
    pub days: [bool; 7],
    /// Minutes after midnight when work starts.
    pub start_min: u16,
    /// Minutes after midnight when work ends.
    pub end_min: u16,
}

impl Default for WorkingHours {
    /// Monday to Friday, 09:00 to 17:00.
    fn default() -> WorkingHours {
        WorkingHours { days: [true, true, true, true, true, false, false], start_min: 9 * 60, end_min: 17 * 60 }
    }
}

impl WorkingHours {
    /// True when `t` (local time) is within the working hours.
    pub fn contains(&self, t: NaiveDateTime) -> bool {
        let day = t.weekday().num_days_from_monday() as usize;
        let minute = (t.hour() * 60 + t.minute()) as u16;
        if self.start_min < self.end_min {
            self.days[day] && (self.start_min..self.end_min).contains(&minute)
        } else {
            let yesterday = (day + 6) % 7;
            (self.days[day] && minute >= self.start_min) || (self.days[yesterday] && minute < self.end_min)
        }
    }

    fn day_names(&self) -> Vec<&'static str> {
        DAYS.iter().zip(self.days).filter(|(_, on)| *on).map(|(d, _)| *d).collect()
    }
}

fn hhmm(min: u16) -> String {
    format!("{:02}:{:02}", min / 60, min % 60)
}

impl Serialize for WorkingHours {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown {
            days: Vec<&'static str>,
            start: String,
            end: String,
        }
        Shown { days: self.day_names(), start: hhmm(self.start_min), end: hhmm(self.end_min) }.serialize(s)
    }
}

/// The supervisors' AI policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AiPolicy {
    /// Whether agents may hand a live call to the AI (the `handoff` command, the call screen).
    pub handoff_allowed: bool,
    /// When the AI answers incoming calls by itself (independent of `handoff_allowed`).
    pub answer: AiAnswer,
    /// The working hours `outside_hours` is measured against.
    pub working_hours: WorkingHours,
    /// True when `sipdesk run --ai-answer` decides `answer`, whatever is saved.
    pub answer_overridden: bool,
}

impl Default for AiPolicy {
    /// Handoff allowed, the AI never answers by itself, Monday to Friday 09:00-17:00.
    fn default() -> AiPolicy {
        AiPolicy {
            handoff_allowed: true,
            answer: AiAnswer::Never,
            working_hours: WorkingHours::default(),
            answer_overridden: false,
        }
    }
}

/// A change of the policy as people submit it; `None` keeps what is saved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiPolicyDraft {
    /// Whether agents may hand calls to the AI.
    pub handoff_allowed: Option<bool>,
    /// `never`, `always`, `after:SECONDS` or `outside_hours`.
    pub answer: Option<String>,
    /// The working hours.
    pub working_hours: Option<WorkingHoursDraft>,
}

/// Working hours as people submit them; `None` keeps what is saved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkingHoursDraft {
    /// Day names: `mon` ... `sun` (or whole names, any case).
    pub days: Option<Vec<String>>,
    /// `HH:MM`, local time.
    pub start: Option<String>,
    /// `HH:MM`, local time; at or before `start`: the next day.
    pub end: Option<String>,
}

fn parse_time(field: &'static str, v: &str) -> Result<u16, FieldError> {
    let bad = FieldError { field, code: "time_invalid" };
    let (h, m) = v.trim().split_once(':').ok_or(bad.clone())?;
    let digits =
        |s: &str, n: std::ops::RangeInclusive<usize>| n.contains(&s.len()) && s.chars().all(|c| c.is_ascii_digit());
    if !digits(h, 1..=2) || !digits(m, 2..=2) {
        return Err(bad);
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad.clone())?, m.parse().map_err(|_| bad.clone())?);
    if h > 23 || m > 59 {
        return Err(bad);
    }
    Ok(h * 60 + m)
}

fn parse_days(names: &[String]) -> Result<[bool; 7], FieldError> {
    let mut days = [false; 7];
    for name in names {
        let n = name.trim().to_ascii_lowercase();
        let i = DAYS
            .iter()
            .position(|d| n == *d || (n.len() > 3 && full_day_name(d) == n))
            .ok_or(FieldError { field: "working_hours.days", code: "days_invalid" })?;
        days[i] = true;
    }
    if !days.contains(&true) {
        return Err(FieldError { field: "working_hours.days", code: "days_empty" });
    }
    Ok(days)
}

fn full_day_name(short: &str) -> &'static str {
    match short {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
    }
}

impl AiPolicyDraft {
    /// Applies the draft over `base`, checking every field; every error is reported together.
    pub fn apply(&self, base: &AiPolicy) -> Result<AiPolicy, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut policy = *base;
        policy.answer_overridden = false;
        if let Some(on) = self.handoff_allowed {
            policy.handoff_allowed = on;
        }
        if let Some(answer) = &self.answer {
            match AiAnswer::parse(answer) {
                Ok(a) => policy.answer = a,
                Err(e) => errors.push(e),
            }
        }
        if let Some(h) = &self.working_hours {
            let before = errors.len();
            let hours = &mut policy.working_hours;
            if let Some(days) = &h.days {
                parse_days(days).map(|d| hours.days = d).unwrap_or_else(|e| errors.push(e));
            }
            if let Some(start) = &h.start {
                parse_time("working_hours.start", start)
                    .map(|m| hours.start_min = m)
                    .unwrap_or_else(|e| errors.push(e));
            }
            if let Some(end) = &h.end {
                parse_time("working_hours.end", end).map(|m| hours.end_min = m).unwrap_or_else(|e| errors.push(e));
            }
            if errors.len() == before && hours.start_min == hours.end_min {
                errors.push(FieldError { field: "working_hours.end", code: "hours_empty" });
            }
        }
        if errors.is_empty() {
            Ok(policy)
        } else {
            Err(errors)
        }
    }
}

/// How long an incoming call rings before the AI answers it, under `policy` at `now_local`:
/// `None` when the AI does not answer it, `Some(0)` at once, `Some(N s)` after N seconds of
/// ringing nobody answered. `handoff_allowed` does not enter into it.
pub fn ai_answers_after(policy: &AiPolicy, now_local: NaiveDateTime) -> Option<Duration> {
    match policy.answer {
        AiAnswer::Never => None,
        AiAnswer::Always => Some(Duration::ZERO),
        AiAnswer::After(n) => Some(Duration::from_secs(u64::from(n))),
        AiAnswer::OutsideHours => (!policy.working_hours.contains(now_local)).then_some(Duration::ZERO),
    }
}

/// What a cloud agent says first when its admin left the greeting empty: the caller must know
/// at once that a machine answers, and must not hear dead air while the model waits for them.
const CLOUD_GREETING_EN: &str = "Hello, you are talking to an automated assistant. How can I help you?";
/// The same in Chinese, for agents set to speak it.
const CLOUD_GREETING_ZH: &str = "您好，我是自动语音助手，请问有什么可以帮您？";

impl AiAgentConfig {
    /// The session a handoff opens with this configuration, for caller audio in `input`. An
    /// empty greeting keeps the local agent's script greeting; cloud agents get a default one.
    pub fn session_config(&self, input: AudioFormat) -> SessionConfig {
        let greeting = if !self.greeting.trim().is_empty() {
            Some(self.greeting.clone())
        } else if self.provider.is_cloud() {
            let chinese = self.language.trim().to_ascii_lowercase().starts_with("zh");
            Some(if chinese { CLOUD_GREETING_ZH } else { CLOUD_GREETING_EN }.to_string())
        } else {
            None
        };
        SessionConfig { instructions: self.instructions.clone(), greeting, input }
    }
}

/// The error of a rejected policy: `invalid_ai_policy` with each field's code.
fn policy_error(fields: Vec<FieldError>) -> ApiError {
    let message = fields.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    ApiError { code: "invalid_ai_policy", message: format!("invalid AI policy: {message}"), fields }
}

impl Desk {
    /// The AI policy in force: the saved one (the default when none is saved, or it cannot be
    /// read), with `sipdesk run --ai-answer`'s choice as `answer` when given.
    pub fn ai_policy(&self) -> AiPolicy {
        let mut policy = self.saved_ai_policy();
        if let Some(answer) = self.inner.ai_answer {
            policy.answer = answer;
            policy.answer_overridden = true;
        }
        policy
    }

    /// Changes and saves the policy (fields not given keep their values); returns the policy
    /// then in force (`--ai-answer`, when given, still decides `answer`).
    pub fn set_ai_policy(&self, draft: &AiPolicyDraft) -> Result<AiPolicy, ApiError> {
        let policy = draft.apply(&self.saved_ai_policy()).map_err(policy_error)?;
        let json = serde_json::to_string(&StoredPolicy::from(&policy)).expect("a policy always serialises");
        self.with_store_mut(|s| s.set_setting(AI_POLICY_KEY, &json))?;
        tracing::info!(
            handoff_allowed = policy.handoff_allowed,
            answer = %policy.answer,
            "AI policy saved"
        );
        Ok(self.ai_policy())
    }

    /// How long a call ringing now rings before the AI answers it (see [`ai_answers_after`]),
    /// in the machine's local time.
    pub fn ai_answers_after_now(&self) -> Option<Duration> {
        ai_answers_after(&self.ai_policy(), chrono::Local::now().naive_local())
    }

    fn saved_ai_policy(&self) -> AiPolicy {
        let saved = self.with_store(|s| s.setting(AI_POLICY_KEY)).ok().flatten();
        let Some(text) = saved else { return AiPolicy::default() };
        // A hand-edited row that does not parse or validate reads as the default.
        let draft = serde_json::from_str::<AiPolicyDraft>(&text).map_err(|e| e.to_string());
        match draft.and_then(|d| d.apply(&AiPolicy::default()).map_err(|e| policy_error(e).message)) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("the saved AI policy is unusable ({e}); using the default");
                AiPolicy::default()
            }
        }
    }

    /// Every AI agent configuration (never a key; `api_key_set` says whether one is stored).
    pub fn ai_agents_list(&self) -> Result<Vec<AiAgentView>, ApiError> {
        self.with_store(|s| s.ai_agents())
    }

    /// One AI agent configuration.
    pub fn ai_agent_get(&self, id: i64) -> Result<AiAgentView, ApiError> {
        self.with_store(|s| s.ai_agent(id))
    }

    /// The configuration of a provider.
    pub fn ai_agent_by_provider(&self, provider: AiProvider) -> Result<AiAgentView, ApiError> {
        self.with_store(|s| s.ai_agent_by_provider(provider))
    }

    /// Edits an AI agent configuration; an absent or empty key keeps the stored one. Returns it
    /// as saved.
    pub fn ai_agent_update(&self, id: i64, draft: &AiAgentDraft) -> Result<AiAgentView, ApiError> {
        let view = self.with_store_mut(|s| s.update_ai_agent(id, draft).and_then(|()| s.ai_agent(id)))?;
        tracing::info!(
            provider = view.provider.as_str(),
            enabled = view.enabled,
            key_changed = draft.api_key.as_deref().is_some_and(|k| !k.trim().is_empty()),
            "AI agent configuration saved"
        );
        Ok(view)
    }

    /// Makes an enabled configuration the one handoffs use.
    pub fn ai_agent_set_default(&self, id: i64) -> Result<(), ApiError> {
        self.with_store_mut(|s| s.set_default_ai_agent(id))?;
        tracing::info!(id, "default AI agent set");
        Ok(())
    }

    /// The configuration a handoff opens a session with (the enabled default, else the local
    /// agent), its key read from the secret store.
    pub fn ai_agent_for_handoff(&self) -> Result<AiAgentConfig, ApiError> {
        self.with_store(|s| s.default_ai_agent())
    }
}

/// What the `desk_settings` row holds (the policy without the run's override).
#[derive(Serialize)]
struct StoredPolicy {
    handoff_allowed: bool,
    answer: AiAnswer,
    working_hours: WorkingHours,
}

impl From<&AiPolicy> for StoredPolicy {
    fn from(p: &AiPolicy) -> StoredPolicy {
        StoredPolicy { handoff_allowed: p.handoff_allowed, answer: p.answer, working_hours: p.working_hours }
    }
}

/// The `set_policy` command of the JSON channel: any of `handoff_allowed`, `answer`,
/// `working_hours` (`{days, start, end}`, any of them); replies with the policy in force. A bad
/// value is `invalid_argument`, naming each field.
pub(super) fn set_policy_command(desk: &Desk, args: &Map<String, Value>) -> Result<Value, ApiError> {
    let given: Map<String, Value> =
        args.iter().filter(|(k, _)| *k != "id" && *k != "cmd").map(|(k, v)| (k.clone(), v.clone())).collect();
    if given.is_empty() {
        return Err(ApiError::new("invalid_argument", "give \"handoff_allowed\", \"answer\" or \"working_hours\""));
    }
    let draft: AiPolicyDraft = serde_json::from_value(Value::Object(given))
        .map_err(|e| ApiError::new("invalid_argument", format!("set_policy: {e}")))?;
    let policy = desk.set_ai_policy(&draft).map_err(|e| ApiError { code: "invalid_argument", ..e })?;
    Ok(serde_json::to_value(policy).expect("a policy always serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    /// 2025-01-06 is a Monday.
    fn at(day_of_jan_2025: u32, h: u32, m: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2025, 1, day_of_jan_2025).unwrap().and_hms_opt(h, m, 0).unwrap()
    }

    fn policy(answer: &str) -> AiPolicy {
        AiPolicyDraft { answer: Some(answer.into()), ..Default::default() }.apply(&AiPolicy::default()).unwrap()
    }

    #[test]
    fn answer_names_round_trip_and_bad_ones_are_refused() {
        for (text, want) in [
            ("never", AiAnswer::Never),
            (" ALWAYS ", AiAnswer::Always),
            ("after:20", AiAnswer::After(20)),
            ("After: 1", AiAnswer::After(1)),
            ("after:119", AiAnswer::After(119)),
            ("outside_hours", AiAnswer::OutsideHours),
        ] {
            let a = AiAnswer::parse(text).unwrap();
            assert_eq!(a, want, "{text}");
            assert_eq!(AiAnswer::parse(&a.to_string()).unwrap(), a);
            assert_eq!(serde_json::from_value::<AiAnswer>(serde_json::to_value(a).unwrap()).unwrap(), a);
        }
        assert_eq!(serde_json::to_value(AiAnswer::After(30)).unwrap(), "after:30");
        for (bad, code) in [
            ("sometimes", "answer_invalid"),
            ("after", "answer_invalid"),
            ("after:", "answer_invalid"),
            ("after:-5", "answer_invalid"),
            ("after:1.5", "answer_invalid"),
            ("after:0", "answer_after_range"),
            ("after:120", "answer_after_range"),
            ("after:99999999999", "answer_after_range"),
        ] {
            assert_eq!(AiAnswer::parse(bad).unwrap_err(), FieldError { field: "answer", code }, "{bad}");
        }
        assert!("after:10".parse::<AiAnswer>().is_ok());
        assert!("after:0".parse::<AiAnswer>().unwrap_err().contains("1 to 119"));
    }

    #[test]
    fn the_ai_answers_never_always_after_n_or_outside_working_hours() {
        let monday_noon = at(6, 12, 0);
        assert_eq!(ai_answers_after(&AiPolicy::default(), monday_noon), None, "the default: never");
        assert_eq!(ai_answers_after(&policy("always"), monday_noon), Some(Duration::ZERO));
        assert_eq!(ai_answers_after(&policy("after:25"), monday_noon), Some(Duration::from_secs(25)));
        let outside = policy("outside_hours");
        for (t, answers) in [
            (at(6, 8, 59), true),   // Monday before nine
            (at(6, 9, 0), false),   // Monday at nine
            (at(6, 16, 59), false), // Monday, the last minute
            (at(6, 17, 0), true),   // Monday at five
            (at(10, 12, 0), false), // Friday noon
            (at(11, 12, 0), true),  // Saturday
            (at(12, 10, 0), true),  // Sunday
        ] {
            let want = answers.then_some(Duration::ZERO);
            assert_eq!(ai_answers_after(&outside, t), want, "{t}");
        }
        // handoff_allowed does not decide whether the AI answers.
        let mut p = policy("always");
        p.handoff_allowed = false;
        assert_eq!(ai_answers_after(&p, monday_noon), Some(Duration::ZERO));
    }

    #[test]
    fn night_shifts_run_past_midnight() {
        let draft = AiPolicyDraft {
            answer: Some("outside_hours".into()),
            working_hours: Some(WorkingHoursDraft {
                days: Some(vec!["Friday".into(), "sat".into()]),
                start: Some("22:00".into()),
                end: Some("6:00".into()),
            }),
            ..Default::default()
        };
        let p = draft.apply(&AiPolicy::default()).unwrap();
        assert_eq!(
            serde_json::to_value(p.working_hours).unwrap(),
            serde_json::json!({"days": ["fri", "sat"], "start": "22:00", "end": "06:00"})
        );
        let staffed = |t| ai_answers_after(&p, t).is_none();
        assert!(staffed(at(10, 23, 0)), "Friday night");
        assert!(staffed(at(11, 5, 59)), "Saturday morning, Friday's shift");
        assert!(!staffed(at(11, 6, 0)), "Saturday after the shift");
        assert!(staffed(at(12, 2, 0)), "Sunday morning, Saturday's shift");
        assert!(!staffed(at(12, 22, 30)), "Sunday has no shift");
        assert!(!staffed(at(9, 23, 0)), "Thursday has no shift");
    }

    #[test]
    fn a_policy_draft_keeps_what_it_does_not_name_and_reports_every_bad_field() {
        let base = policy("after:30");
        let p = AiPolicyDraft { handoff_allowed: Some(false), ..Default::default() }.apply(&base).unwrap();
        assert_eq!(
            (p.handoff_allowed, p.answer, p.working_hours),
            (false, AiAnswer::After(30), WorkingHours::default())
        );
        let bad = AiPolicyDraft {
            answer: Some("after:600".into()),
            working_hours: Some(WorkingHoursDraft {
                days: Some(vec!["mon".into(), "funday".into()]),
                start: Some("9am".into()),
                end: Some("24:00".into()),
            }),
            ..Default::default()
        };
        let codes: Vec<_> = bad.apply(&base).unwrap_err().iter().map(|e| (e.field, e.code)).collect();
        assert_eq!(
            codes,
            [
                ("answer", "answer_after_range"),
                ("working_hours.days", "days_invalid"),
                ("working_hours.start", "time_invalid"),
                ("working_hours.end", "time_invalid"),
            ]
        );
        let empty = AiPolicyDraft {
            working_hours: Some(WorkingHoursDraft { days: Some(vec![]), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(empty.apply(&base).unwrap_err()[0].code, "days_empty");
        let same = AiPolicyDraft {
            working_hours: Some(WorkingHoursDraft {
                start: Some("09:00".into()),
                end: Some("09:00".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(same.apply(&base).unwrap_err(), [FieldError { field: "working_hours.end", code: "hours_empty" }]);
        for t in ["0:00", "23:59", "07:30"] {
            assert!(parse_time("working_hours.start", t).is_ok(), "{t}");
        }
        for t in ["7:5", "24:00", "12:60", "1200", "-1:00", ":30", "12:00:00"] {
            assert!(parse_time("working_hours.start", t).is_err(), "{t}");
        }
        // What the UI and the command channel send: unknown keys are refused.
        assert!(serde_json::from_str::<AiPolicyDraft>(r#"{"answer": "never", "ai": true}"#).is_err());
        assert!(serde_json::from_str::<AiPolicyDraft>(r#"{"working_hours": {"from": "09:00"}}"#).is_err());
    }

    #[test]
    fn the_policy_serialises_as_the_settings_screen_and_the_channel_read_it() {
        let json = serde_json::to_value(policy("after:45")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "handoff_allowed": true,
                "answer": "after:45",
                "working_hours": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"},
                "answer_overridden": false,
            })
        );
        // What is stored reads back as a draft.
        let stored = serde_json::to_string(&StoredPolicy::from(&policy("outside_hours"))).unwrap();
        let back = serde_json::from_str::<AiPolicyDraft>(&stored).unwrap().apply(&AiPolicy::default()).unwrap();
        assert_eq!(back, policy("outside_hours"));
    }

    #[test]
    fn a_configuration_opens_a_session_with_its_instructions_and_greeting() {
        let cfg = AiAgentConfig {
            id: 2,
            provider: AiProvider::Openai,
            enabled: true,
            endpoint: AiProvider::Openai.default_endpoint().into(),
            app_id: String::new(),
            api_key: crate::store::ApiKey::new("sk-x"),
            voice: "alloy".into(),
            instructions: "Be brief.".into(),
            greeting: String::new(),
            language: "en".into(),
        };
        // No greeting set: a cloud agent still says at once that a machine answers.
        let s = cfg.session_config(AudioFormat::Mulaw);
        assert_eq!(
            (s.instructions.as_str(), s.greeting.as_deref(), s.input),
            ("Be brief.", Some(CLOUD_GREETING_EN), AudioFormat::Mulaw)
        );
        let zh = AiAgentConfig { language: "zh-CN".into(), ..cfg.clone() }.session_config(AudioFormat::Mulaw);
        assert_eq!(zh.greeting.as_deref(), Some(CLOUD_GREETING_ZH));
        // The local agent keeps its script's greeting.
        let local = AiAgentConfig { provider: AiProvider::Local, ..cfg.clone() }.session_config(AudioFormat::Mulaw);
        assert_eq!(local.greeting, None);
        let s = AiAgentConfig { greeting: "Hi.".into(), ..cfg }.session_config(AudioFormat::Alaw);
        assert_eq!(s.greeting.as_deref(), Some("Hi."));
    }
}
