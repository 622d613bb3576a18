//! `sipdesk ai ...`: the AI voice agents and the supervisors' AI policy. Like `sipdesk account`,
//! it works beside a running instance, which reads both when it next needs them. Enabling a
//! cloud provider (which sends call audio over the network) is an admin's step, done here.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use sipdesk_core::desk::{AiPolicyDraft, ApiError, AudioChoice, Desk, DeskOptions, WorkingHoursDraft};
use sipdesk_core::store::{AiAgentDraft, AiAgentView, AiProvider};

use crate::cli::AiCmd;

/// Exit code for arguments the core rejects (same as clap's usage errors).
const EXIT_BAD_ARGS: u8 = 2;

/// Runs one `sipdesk ai` command.
pub fn run(db: Option<PathBuf>, cmd: AiCmd) -> ExitCode {
    let mut opts = DeskOptions::with_db(db);
    opts.audio = AudioChoice::Null;
    let desk = Desk::open(opts);
    let result = match cmd {
        AiCmd::List { json } => desk.ai_agents_list().map(|agents| print_list(&agents, json)),
        AiCmd::Edit {
            provider,
            enable,
            disable,
            endpoint,
            api_key_stdin,
            clear_api_key,
            app_id,
            voice,
            instructions,
            greeting,
            language,
        } => find(&desk, &provider).and_then(|id| {
            let api_key = if api_key_stdin { Some(read_key()?) } else { None };
            let draft = AiAgentDraft {
                enabled: if enable { Some(true) } else { disable.then_some(false) },
                endpoint,
                api_key,
                clear_api_key: clear_api_key.then_some(true),
                app_id,
                voice,
                instructions,
                greeting,
                language,
            };
            desk.ai_agent_update(id, &draft).map(|_| ())
        }),
        AiCmd::Default { provider } => find(&desk, &provider).and_then(|id| desk.ai_agent_set_default(id)),
        AiCmd::Policy { handoff_allowed, answer, days, start, end } => {
            let hours =
                (days.is_some() || start.is_some() || end.is_some()).then_some(WorkingHoursDraft { days, start, end });
            let draft = AiPolicyDraft { handoff_allowed, answer, working_hours: hours };
            let policy =
                if draft == AiPolicyDraft::default() { Ok(desk.ai_policy()) } else { desk.set_ai_policy(&draft) };
            policy.map(|p| println!("{}", serde_json::to_string_pretty(&p).expect("a policy serialises")))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// A provider name or a configuration id.
fn find(desk: &Desk, which: &str) -> Result<i64, ApiError> {
    if let Some(p) = AiProvider::parse(which) {
        return desk.ai_agent_by_provider(p).map(|a| a.id);
    }
    match which.trim().parse::<i64>() {
        Ok(id) => desk.ai_agent_get(id).map(|a| a.id),
        Err(_) => Err(ApiError::new("invalid_argument", format!("{which:?} is not local, openai, doubao or an id"))),
    }
}

fn print_list(agents: &[AiAgentView], json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(agents).expect("views serialise"));
        return;
    }
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!(
        "{:<4} {:<8} {:<8} {:<8} {:<5} {:<28} {:<6} ENDPOINT",
        "ID", "PROVIDER", "ENABLED", "DEFAULT", "KEY", "VOICE", "LANG"
    );
    for a in agents {
        println!(
            "{:<4} {:<8} {:<8} {:<8} {:<5} {:<28} {:<6} {}",
            a.id,
            a.provider.as_str(),
            yes(a.enabled),
            yes(a.is_default),
            if a.api_key_set { "set" } else { "none" },
            a.voice,
            a.language,
            a.endpoint
        );
    }
}

/// The first line of stdin, without its line ending (the key is never echoed).
fn read_key() -> Result<String, ApiError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| ApiError::new("invalid_argument", format!("cannot read the key from stdin: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Prints the error (one `field: reason` line per rejected field, exit 2), else exit 1.
fn fail(e: &ApiError) -> ExitCode {
    if !e.fields.is_empty() {
        for f in &e.fields {
            eprintln!("sipdesk: {f}");
        }
        return ExitCode::from(EXIT_BAD_ARGS);
    }
    eprintln!("sipdesk: {}", e.message);
    if e.code == "invalid_argument" {
        ExitCode::from(EXIT_BAD_ARGS)
    } else {
        ExitCode::FAILURE
    }
}
