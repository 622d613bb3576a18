//! The AI voice agents a call can be handed to (`ai_agent_configs`): one row per provider, the
//! offline `local` agent (the default) and the cloud ones (`openai`, `doubao`), which stay
//! disabled until an admin enables them. Keys are kept like SIP passwords: the `api_key` column
//! holds only a `keyring:`/`file:` reference, the secret is in the secret store, and nothing
//! shown to people or scripts ever carries it.

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::{secrets, validate, FieldError, Store, StoreError};

/// Which voice agent a configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AiProvider {
    /// The offline agent: English only, no network, no key.
    Local,
    /// OpenAI Realtime over a WebSocket.
    Openai,
    /// Doubao (Volcengine) realtime dialogue over a WebSocket.
    Doubao,
}

impl AiProvider {
    /// Every provider, in the order they are shown.
    pub const ALL: [AiProvider; 3] = [AiProvider::Local, AiProvider::Openai, AiProvider::Doubao];

    /// The name stored in the `provider` column and used by the CLI and the UI.
    pub fn as_str(self) -> &'static str {
        match self {
            AiProvider::Local => "local",
            AiProvider::Openai => "openai",
            AiProvider::Doubao => "doubao",
        }
    }

    /// The provider a name means (any case); `None` for anything else.
    pub fn parse(value: &str) -> Option<AiProvider> {
        AiProvider::ALL.into_iter().find(|p| value.trim().eq_ignore_ascii_case(p.as_str()))
    }

    /// True for the providers that send call audio over the network.
    pub fn is_cloud(self) -> bool {
        self != AiProvider::Local
    }

    /// The provider's public endpoint, the default of a new install (none for the local agent).
    pub fn default_endpoint(self) -> &'static str {
        match self {
            AiProvider::Local => "",
            AiProvider::Openai => "wss://api.openai.com/v1/realtime",
            AiProvider::Doubao => "wss://openspeech.bytedance.com/api/v3/realtime/dialogue",
        }
    }
}

/// A provider's API key (for Doubao its access key) in memory; its Debug output is redacted so
/// it cannot reach a log.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(s: impl Into<String>) -> ApiKey {
        ApiKey(s.into())
    }
    /// The key itself, for the provider's handshake.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "ApiKey(none)" } else { "ApiKey(***)" })
    }
}

/// An AI agent configuration as listed to people and scripts: the columns, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AiAgentView {
    /// Row id.
    pub id: i64,
    /// Which provider.
    pub provider: AiProvider,
    /// Whether calls may be handed to it (cloud providers: only once an admin enabled them).
    pub enabled: bool,
    /// The provider's WebSocket URL (empty for the local agent).
    pub endpoint: String,
    /// Doubao's app id (`X-Api-App-ID`); empty for the others.
    pub app_id: String,
    /// Whether a key is stored (the key itself is never listed).
    pub api_key_set: bool,
    /// The voice it speaks with (empty: the provider's default).
    pub voice: String,
    /// What the agent is and how it behaves (a cloud model's system prompt; the local agent
    /// follows its dialog script instead).
    pub instructions: String,
    /// Its first words (empty: the provider's own; the local agent's script greeting).
    pub greeting: String,
    /// The language it speaks (`en`, `zh-CN`; empty: the provider decides).
    pub language: String,
    /// Whether a handoff goes to this one.
    pub is_default: bool,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// What a provider needs to open a session: the configuration with its key read from the
/// secret store. Debug never shows the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiAgentConfig {
    /// Row id.
    pub id: i64,
    /// Which provider.
    pub provider: AiProvider,
    /// Whether it may be used.
    pub enabled: bool,
    /// The WebSocket URL.
    pub endpoint: String,
    /// Doubao's app id.
    pub app_id: String,
    /// The API key (Doubao: the access key); empty when none is stored.
    pub api_key: ApiKey,
    /// Voice name.
    pub voice: String,
    /// System prompt.
    pub instructions: String,
    /// First words; empty for the provider's own.
    pub greeting: String,
    /// Language tag; empty for the provider's choice.
    pub language: String,
}

/// An edit of an AI agent configuration as people submit it: text fields, `None` keeps the
/// stored value. An absent or empty `api_key` keeps the stored key, as passwords do;
/// `clear_api_key` removes it.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiAgentDraft {
    /// Enable or disable it (cloud providers need their endpoint and key first).
    pub enabled: Option<bool>,
    /// WebSocket URL (`wss://`, or `ws://` to this machine).
    pub endpoint: Option<String>,
    /// A new key; `None` or empty keeps the stored one.
    pub api_key: Option<String>,
    /// Removes the stored key.
    pub clear_api_key: Option<bool>,
    /// Doubao's app id.
    pub app_id: Option<String>,
    /// Voice name.
    pub voice: Option<String>,
    /// System prompt.
    pub instructions: Option<String>,
    /// First words.
    pub greeting: Option<String>,
    /// Language tag.
    pub language: Option<String>,
}

impl std::fmt::Debug for AiAgentDraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Written by hand so the key can never be printed.
        f.debug_struct("AiAgentDraft")
            .field("enabled", &self.enabled)
            .field("endpoint", &self.endpoint)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("clear_api_key", &self.clear_api_key)
            .field("app_id", &self.app_id)
            .field("voice", &self.voice)
            .field("language", &self.language)
            .finish_non_exhaustive()
    }
}

/// The local agent's one voice (flite's `slt`).
const LOCAL_VOICE: &str = "slt";

/// Validated fields of an edit.
struct Fields {
    enabled: bool,
    endpoint: String,
    app_id: String,
    voice: String,
    instructions: String,
    greeting: String,
    language: String,
    new_key: Option<String>,
    clear_key: bool,
}

/// Validates `draft` over the stored row, collecting every field error.
fn validate_draft(base: &AiAgentView, draft: &AiAgentDraft) -> Result<Fields, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut keep = |r: Result<String, FieldError>| r.map_err(|e| errors.push(e)).unwrap_or_default();
    let pick = |given: &Option<String>, stored: &str| given.clone().unwrap_or_else(|| stored.to_string());
    let provider = base.provider;
    let endpoint = keep(validate::endpoint(&pick(&draft.endpoint, &base.endpoint)));
    let app_id = keep(validate::app_id(&pick(&draft.app_id, &base.app_id)));
    let voice = keep(validate::voice(&pick(&draft.voice, &base.voice)));
    let instructions = keep(validate::instructions(&pick(&draft.instructions, &base.instructions)));
    let greeting = keep(validate::greeting(&pick(&draft.greeting, &base.greeting)));
    let language = keep(validate::language(&pick(&draft.language, &base.language)));
    let new_key = match draft.api_key.as_deref() {
        Some(k) if !k.trim().is_empty() => Some(keep(validate::api_key(k))),
        _ => None,
    };
    let clear_key = draft.clear_api_key.unwrap_or(false) && new_key.is_none();
    let enabled = draft.enabled.unwrap_or(base.enabled);
    let err = |field, code| FieldError { field, code };
    if provider == AiProvider::Local {
        if !endpoint.is_empty() {
            errors.push(err("endpoint", "endpoint_unsupported"));
        }
        if new_key.is_some() {
            errors.push(err("api_key", "api_key_unsupported"));
        }
        if !voice.is_empty() && voice != LOCAL_VOICE {
            errors.push(err("voice", "voice_unsupported"));
        }
        if !language.is_empty() && language != "en" && !language.starts_with("en-") {
            errors.push(err("language", "language_unsupported"));
        }
    }
    if provider != AiProvider::Doubao && !app_id.is_empty() {
        errors.push(err("app_id", "app_id_unsupported"));
    }
    if !enabled && base.is_default {
        errors.push(err("enabled", "default_disabled"));
    }
    if enabled && provider.is_cloud() {
        let key_present = new_key.is_some() || (base.api_key_set && !clear_key);
        if endpoint.is_empty() && !errors.iter().any(|e| e.field == "endpoint") {
            errors.push(err("endpoint", "endpoint_required"));
        }
        if !key_present && !errors.iter().any(|e| e.field == "api_key") {
            errors.push(err("api_key", "api_key_required"));
        }
        if provider == AiProvider::Doubao && app_id.is_empty() && !errors.iter().any(|e| e.field == "app_id") {
            errors.push(err("app_id", "app_id_required"));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Fields { enabled, endpoint, app_id, voice, instructions, greeting, language, new_key, clear_key })
}

const COLUMNS: &str = "id, provider, enabled, endpoint, app_id, api_key, voice, instructions, greeting, language, \
    is_default, created_at, updated_at";

fn view_from_row(row: &Row) -> rusqlite::Result<(AiAgentView, String)> {
    let provider: String = row.get("provider")?;
    let key_ref: String = row.get("api_key")?;
    let view = AiAgentView {
        id: row.get("id")?,
        // The column's CHECK constraint allows only the three names.
        provider: AiProvider::parse(&provider).unwrap_or(AiProvider::Local),
        enabled: row.get::<_, i64>("enabled")? != 0,
        endpoint: row.get("endpoint")?,
        app_id: row.get("app_id")?,
        api_key_set: !key_ref.is_empty(),
        voice: row.get("voice")?,
        instructions: row.get("instructions")?,
        greeting: row.get("greeting")?,
        language: row.get("language")?,
        is_default: row.get::<_, i64>("is_default")? != 0,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    };
    Ok((view, key_ref))
}

impl Store {
    /// Every AI agent configuration, by id (the local agent first).
    pub fn ai_agents(&self) -> Result<Vec<AiAgentView>, StoreError> {
        Ok(self.ai_rows("")?.into_iter().map(|(v, _)| v).collect())
    }

    /// One AI agent configuration.
    pub fn ai_agent(&self, id: i64) -> Result<AiAgentView, StoreError> {
        self.ai_row(id).map(|(v, _)| v)
    }

    /// The configuration of a provider.
    pub fn ai_agent_by_provider(&self, provider: AiProvider) -> Result<AiAgentView, StoreError> {
        let mut rows = self.ai_rows(&format!("WHERE provider = '{}'", provider.as_str()))?;
        rows.pop().map(|(v, _)| v).ok_or(StoreError::NoAiAgent(0))
    }

    /// A configuration with its key read from the secret store, to open a session with.
    pub fn ai_agent_config(&self, id: i64) -> Result<AiAgentConfig, StoreError> {
        let (v, key_ref) = self.ai_row(id)?;
        let api_key = match key_ref.as_str() {
            "" => ApiKey::default(),
            r => ApiKey::new(self.secrets.get(r)?),
        };
        Ok(AiAgentConfig {
            id: v.id,
            provider: v.provider,
            enabled: v.enabled,
            endpoint: v.endpoint,
            app_id: v.app_id,
            api_key,
            voice: v.voice,
            instructions: v.instructions,
            greeting: v.greeting,
            language: v.language,
        })
    }

    /// The configuration a handoff uses: the enabled default, else the local agent.
    pub fn default_ai_agent(&self) -> Result<AiAgentConfig, StoreError> {
        let rows = self.ai_rows("WHERE enabled = 1 ORDER BY is_default DESC, provider = 'local' DESC, id LIMIT 1")?;
        let id = rows.first().map(|(v, _)| v.id).ok_or(StoreError::NoAiAgent(0))?;
        self.ai_agent_config(id)
    }

    /// Applies an edit. An absent or empty key keeps the stored one; a new key replaces it (the
    /// old secret is deleted once the row points at the new one).
    pub fn update_ai_agent(&mut self, id: i64, draft: &AiAgentDraft) -> Result<(), StoreError> {
        let (base, old_ref) = self.ai_row(id)?;
        let f = validate_draft(&base, draft).map_err(StoreError::InvalidAiAgent)?;
        let new_ref = match &f.new_key {
            Some(k) => Some(self.secrets.put(k)?),
            None if f.clear_key => Some(String::new()),
            None => None,
        };
        let result = (|| {
            let tx = self.conn.transaction()?;
            tx.execute(
                "UPDATE ai_agent_configs SET enabled = ?2, endpoint = ?3, app_id = ?4, api_key = COALESCE(?5, api_key),
                    voice = ?6, instructions = ?7, greeting = ?8, language = ?9,
                    updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
                 WHERE id = ?1",
                params![id, f.enabled, f.endpoint, f.app_id, new_ref, f.voice, f.instructions, f.greeting, f.language],
            )?;
            tx.commit()
        })();
        match (result, new_ref) {
            (Ok(()), Some(_)) => {
                if !old_ref.is_empty() {
                    self.forget_ai_secret(&old_ref);
                }
                Ok(())
            }
            (Ok(()), None) => Ok(()),
            (Err(e), new_ref) => {
                if let Some(r) = new_ref.filter(|r| !r.is_empty()) {
                    let _ = self.secrets.delete(&r);
                }
                Err(self.err(e))
            }
        }
    }

    /// Makes an enabled configuration the one handoffs use.
    pub fn set_default_ai_agent(&mut self, id: i64) -> Result<(), StoreError> {
        let (v, _) = self.ai_row(id)?;
        if !v.enabled {
            return Err(StoreError::InvalidAiAgent(vec![FieldError { field: "is_default", code: "default_disabled" }]));
        }
        let tx = self.conn.transaction().map_err(|e| super::classify(&self.path, e))?;
        tx.execute("UPDATE ai_agent_configs SET is_default = (id = ?1)", [id])
            .and_then(|_| tx.commit())
            .map_err(|e| super::classify(&self.path, e))
    }

    /// Moves keys written into the column by hand (or by an older tool) into the secret store,
    /// so the column only ever holds references.
    pub(super) fn move_plaintext_api_keys(&mut self) -> Result<(), StoreError> {
        let rows = self.ai_rows("")?;
        for (view, value) in rows.into_iter().filter(|(_, k)| !k.is_empty() && !secrets::is_reference(k)) {
            let reference = self.secrets.put(&value)?;
            let tx = self.conn.transaction().map_err(|e| super::classify(&self.path, e))?;
            let moved = tx
                .execute(
                    "UPDATE ai_agent_configs SET api_key = ?2 WHERE id = ?1 AND api_key = ?3",
                    params![view.id, reference, value],
                )
                .and_then(|n| tx.commit().map(|_| n));
            match moved {
                Ok(1) => {
                    tracing::info!(provider = view.provider.as_str(), "moved a plaintext API key into the secret store")
                }
                Ok(_) => self.forget_ai_secret(&reference),
                Err(e) => {
                    let _ = self.secrets.delete(&reference);
                    return Err(self.err(e));
                }
            }
        }
        Ok(())
    }

    fn forget_ai_secret(&self, reference: &str) {
        // The row no longer points at it, so a failure here leaves only an orphan.
        if let Err(e) = self.secrets.delete(reference) {
            tracing::warn!("could not delete an unused API key: {e}");
        }
    }

    fn ai_rows(&self, filter: &str) -> Result<Vec<(AiAgentView, String)>, StoreError> {
        let order = if filter.contains("ORDER BY") { "" } else { " ORDER BY id" };
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM ai_agent_configs {filter}{order}"))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], view_from_row).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    fn ai_row(&self, id: i64) -> Result<(AiAgentView, String), StoreError> {
        self.conn
            .query_row(&format!("SELECT {COLUMNS} FROM ai_agent_configs WHERE id = ?1"), [id], view_from_row)
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or(StoreError::NoAiAgent(id))
    }
}
