//! The command-line contract (docs/EVENTS.md and the README describe it; tests rely on it).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use sipdesk_core::desk::{AiAnswer, AudioChoice};

/// Headless SipDesk: manage SIP accounts and run the desk without a window.
#[derive(Debug, Parser)]
#[command(name = "sipdesk", version, about)]
pub struct Cli {
    /// Account database (default: $SIPDESK_DB, else ~/.local/share/sipdesk/sipdesk.db).
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add, list, edit, activate, deactivate or remove SIP accounts.
    Account {
        /// The account operation.
        #[command(subcommand)]
        cmd: AccountCmd,
    },
    /// Load the active accounts and run until SIGINT or SIGTERM.
    Run(RunArgs),
    /// Place one call and exit when it ends (exit 0 if it was answered).
    Call(CallArgs),
    /// The AI voice agents (providers, endpoints, keys) and the supervisors' AI policy.
    Ai {
        /// The AI operation.
        #[command(subcommand)]
        cmd: AiCmd,
    },
    /// List the latest calls, newest first.
    History {
        /// One JSON array (keys named as the call_history columns).
        #[arg(long)]
        json: bool,
        /// How many calls.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// `sipdesk call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// A number, an extension, user@host or a sip: URI.
    pub target: String,
    /// The account to call from (default: the default account).
    #[arg(long)]
    pub account: Option<i64>,
    /// Audio endpoint: null, device, or file:IN.wav,OUT.wav.
    #[arg(long, default_value = "device", value_parser = parse_audio)]
    pub audio: AudioChoice,
    /// Events as JSON lines on stdout.
    #[arg(long)]
    pub json: bool,
    /// Hang up this many seconds after the call is answered.
    #[arg(long, value_name = "S")]
    pub hangup_after: Option<f64>,
}

/// `sipdesk account ...`.
#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Add an account; prints its id.
    Add {
        /// The account's fields.
        #[command(flatten)]
        fields: FieldArgs,
        /// Read the password from the first line of standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Register this account (make it active).
        #[arg(long)]
        activate: bool,
    },
    /// List accounts (never their passwords).
    List {
        /// One JSON array, keys named as the database columns.
        #[arg(long)]
        json: bool,
    },
    /// Change an account; flags not given keep their values.
    Edit {
        /// Account id.
        id: i64,
        /// Fields to change.
        #[command(flatten)]
        fields: FieldArgs,
        /// Read a new password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Make an account register.
    Activate {
        /// Account id.
        id: i64,
    },
    /// Stop an account registering.
    Deactivate {
        /// Account id.
        id: i64,
    },
    /// Make an account the default for dialling.
    Default {
        /// Account id.
        id: i64,
    },
    /// Delete an account and its stored password.
    Remove {
        /// Account id.
        id: i64,
    },
}

/// Account fields as flags; values are checked by the core's validation.
#[derive(Debug, Args)]
pub struct FieldArgs {
    /// Registrar / proxy host (name, IPv4 or IPv6).
    #[arg(long)]
    pub host: Option<String>,
    /// Registrar port (default 5060).
    #[arg(long)]
    pub port: Option<String>,
    /// SIP user (extension).
    #[arg(long)]
    pub user: Option<String>,
    /// udp or tcp (default udp).
    #[arg(long)]
    pub protocol: Option<String>,
    /// Registration interval in seconds, 60..86400 (default 3600).
    #[arg(long)]
    pub interval: Option<String>,
    /// Digest auth user when it differs from the SIP user.
    #[arg(long)]
    pub auth_user: Option<String>,
    /// SIP domain when it differs from the host.
    #[arg(long)]
    pub domain: Option<String>,
    /// Name shown to called parties.
    #[arg(long)]
    pub display_name: Option<String>,
    /// Outbound proxy: host[:port] or sip:host[:port].
    #[arg(long)]
    pub outbound_proxy: Option<String>,
    /// Codec preference order, e.g. opus,pcmu,pcma (known: pcmu, pcma, opus); "default" for the
    /// default order ($SIPDESK_CODECS, else pcmu,pcma).
    #[arg(long, value_name = "LIST")]
    pub codecs: Option<String>,
    /// How calls send DTMF: rfc4733 (the default: RTP telephone-events, SIP INFO when the far
    /// end did not agree to them) or info (always SIP INFO).
    #[arg(long, value_name = "MODE")]
    pub dtmf: Option<String>,
}

/// `sipdesk run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Audio endpoint for calls: null, device, or file:IN.wav,OUT.wav.
    #[arg(long, default_value = "device", value_parser = parse_audio)]
    pub audio: AudioChoice,
    /// Answer incoming calls at once.
    #[arg(long)]
    pub auto_answer: bool,
    /// Events as JSON lines on stdout; JSON commands on stdin.
    #[arg(long)]
    pub json: bool,
    /// When the AI answers incoming calls for this run, whatever the saved policy says: never,
    /// always, after:SECONDS of ringing nobody answered (1-119), or outside_hours.
    #[arg(long, value_name = "WHEN")]
    pub ai_answer: Option<AiAnswer>,
}

/// `sipdesk ai ...`.
#[derive(Debug, Subcommand)]
pub enum AiCmd {
    /// List the AI agent configurations (never a key: KEY says whether one is stored).
    List {
        /// One JSON array, keys named as the ai_agent_configs columns (api_key_set for the key).
        #[arg(long)]
        json: bool,
    },
    /// Change a provider's configuration; flags not given keep their values, and so does the key.
    Edit {
        /// local, openai or doubao (or the configuration's id).
        provider: String,
        /// Let calls be handed to it (a cloud provider needs its endpoint and key first; Doubao
        /// its app id too).
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Stop handing calls to it (the default provider cannot be disabled).
        #[arg(long)]
        disable: bool,
        /// WebSocket URL: wss://..., or ws:// to this machine (a test server).
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        /// Read the API key (Doubao: the access key) from the first line of standard input.
        #[arg(long, conflicts_with = "clear_api_key")]
        api_key_stdin: bool,
        /// Remove the stored key.
        #[arg(long)]
        clear_api_key: bool,
        /// Doubao's app id.
        #[arg(long, value_name = "ID")]
        app_id: Option<String>,
        /// The voice (e.g. alloy for OpenAI, zh_female_vv_jupiter_bigtts for Doubao).
        #[arg(long)]
        voice: Option<String>,
        /// The system prompt of a cloud model.
        #[arg(long, value_name = "TEXT")]
        instructions: Option<String>,
        /// The agent's first words (empty: the provider's own).
        #[arg(long, value_name = "TEXT")]
        greeting: Option<String>,
        /// Language tag, e.g. en, en-US, zh-CN (empty: the provider decides).
        #[arg(long, value_name = "TAG")]
        language: Option<String>,
    },
    /// Make an enabled provider the one handoffs go to.
    Default {
        /// local, openai or doubao (or the configuration's id).
        provider: String,
    },
    /// Show the supervisors' AI policy as JSON, after applying any change given.
    Policy {
        /// Whether agents may hand calls to the AI.
        #[arg(long, value_name = "BOOL")]
        handoff_allowed: Option<bool>,
        /// When the AI answers incoming calls: never, always, after:SECONDS or outside_hours.
        #[arg(long, value_name = "WHEN")]
        answer: Option<String>,
        /// Working days, e.g. mon,tue,wed,thu,fri.
        #[arg(long, value_name = "DAYS", value_delimiter = ',')]
        days: Option<Vec<String>>,
        /// Start of the working hours, HH:MM local time.
        #[arg(long, value_name = "HH:MM")]
        start: Option<String>,
        /// End of the working hours, HH:MM local time (at or before the start: the next day).
        #[arg(long, value_name = "HH:MM")]
        end: Option<String>,
    },
}

fn parse_audio(s: &str) -> Result<AudioChoice, String> {
    match s {
        "null" => Ok(AudioChoice::Null),
        "device" => Ok(AudioChoice::Device),
        _ => {
            let spec = s.strip_prefix("file:").ok_or("expected null, device or file:IN.wav,OUT.wav")?;
            match spec.split_once(',') {
                Some((i, o)) if !i.is_empty() && !o.is_empty() => {
                    Ok(AudioChoice::File { input: PathBuf::from(i), output: PathBuf::from(o) })
                }
                _ => Err("file audio needs two paths: file:IN.wav,OUT.wav".into()),
            }
        }
    }
}
