//! `sipdesk call TARGET`: registers the accounts, places one call, follows it until it ends and
//! exits (0 if it was answered). Only one instance registers per database: with one already
//! running, dial through its `run --json` channel instead.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sipdesk_core::desk::{CallCommand, Desk, DeskOptions, EventEnvelope};
use tokio::sync::broadcast;

use crate::cli::CallArgs;

/// How long to wait for the calling account to register.
const REGISTER_WAIT: Duration = Duration::from_secs(15);

/// Runs the call.
pub async fn run(db: Option<PathBuf>, args: CallArgs) -> ExitCode {
    let mut opts = DeskOptions::with_db(db);
    opts.audio = args.audio.clone();
    let desk = Desk::open(opts);
    let mut events = desk.subscribe();
    if let Err(e) = desk.start().await {
        eprintln!(
            "sipdesk: {}; send {{\"cmd\":\"dial\",\"uri\":...}} to the running instance's `run --json` instead",
            e.message
        );
        return ExitCode::from(3);
    }
    let code = place(&desk, &args, &mut events).await;
    desk.shutdown().await;
    while let Ok(e) = events.try_recv() {
        print_event(&args, &e);
    }
    code
}

async fn place(desk: &Desk, args: &CallArgs, events: &mut broadcast::Receiver<EventEnvelope>) -> ExitCode {
    let account = args.account;
    // Wait until the account can carry a call (it has a flow to its server).
    let deadline = tokio::time::Instant::now() + REGISTER_WAIT;
    let call_id = loop {
        match desk.dial(&args.target, account) {
            Ok(id) => break id,
            Err(e) if e.code == "not_registered" && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                eprintln!("sipdesk: cannot call {}: {}", args.target, e.message);
                return ExitCode::from(if e.code == "invalid_argument" { 2 } else { 1 });
            }
        }
    };
    let mut answered = false;
    let mut hangup_at: Option<tokio::time::Instant> = None;
    loop {
        let timer = async {
            match hangup_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = timer => {
                hangup_at = None;
                let _ = desk.call_command(&call_id, CallCommand::Hangup);
            }
            _ = tokio::signal::ctrl_c() => {
                let _ = desk.call_command(&call_id, CallCommand::Hangup);
            }
            e = events.recv() => {
                let Ok(e) = e else { continue };
                print_event(args, &e);
                let v = serde_json::to_value(&e).unwrap_or_default();
                if v["event"] != "call" || v["call_id"] != call_id.as_str() {
                    continue;
                }
                match v["state"].as_str() {
                    Some("active") => {
                        answered = true;
                        hangup_at = args.hangup_after.map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s.max(0.0)));
                    }
                    Some("ended") => {
                        eprintln!("sipdesk: call ended: {}", v["reason"].as_str().unwrap_or("unknown"));
                        return if answered { ExitCode::SUCCESS } else { ExitCode::FAILURE };
                    }
                    _ => {}
                }
            }
        }
    }
}

fn print_event(args: &CallArgs, e: &EventEnvelope) {
    if args.json {
        if let Ok(line) = serde_json::to_string(e) {
            println!("{line}");
        }
    }
}
