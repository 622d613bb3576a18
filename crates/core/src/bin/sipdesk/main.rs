//! `sipdesk`: the headless SipDesk. It parses arguments and drives the same core as the app.

mod account_cmd;
mod ai_cmd;
mod call_cmd;
mod cli;
mod history_cmd;
mod run_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info".into())
                .add_directive(sipdesk_core::media::device::QUIET_PULSE_LOG.parse().expect("a valid directive")),
        )
        .init();
    let args = cli::Cli::parse();
    match args.command {
        cli::Command::Account { cmd } => account_cmd::run(args.db, cmd),
        cli::Command::Run(run) => with_runtime(run_cmd::run(args.db, run)),
        cli::Command::Call(call) => with_runtime(call_cmd::run(args.db, call)),
        cli::Command::Ai { cmd } => ai_cmd::run(args.db, cmd),
        cli::Command::History { json, limit } => history_cmd::run(args.db, json, limit),
    }
}

/// Runs a command on a two-thread tokio runtime.
fn with_runtime(fut: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sipdesk: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(fut);
    // A blocking stdin read may still be pending; do not wait for it.
    rt.shutdown_background();
    code
}
