//! `sipdesk`: the headless SipDesk. It parses arguments and drives the same core as the app.

mod account_cmd;
mod cli;
mod run_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = cli::Cli::parse();
    match args.command {
        cli::Command::Account { cmd } => account_cmd::run(args.db, cmd),
        cli::Command::Run(run) => {
            let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("sipdesk: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let code = rt.block_on(run_cmd::run(args.db, run));
            // A blocking stdin read may still be pending; do not wait for it.
            rt.shutdown_background();
            code
        }
    }
}
