//! `sipdesk account ...`: works beside a running instance, which notices the change itself.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use sipdesk_core::desk::default_db_path;
use sipdesk_core::store::{AccountDraft, Store, StoreError};

use crate::cli::{AccountCmd, FieldArgs};

/// Exit code for arguments the core rejects (same as clap's usage errors).
const EXIT_BAD_ARGS: u8 = 2;

/// Runs one account command.
pub fn run(db: Option<PathBuf>, cmd: AccountCmd) -> ExitCode {
    let path = db.unwrap_or_else(default_db_path);
    let mut store = match Store::open(&path) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let result = match cmd {
        AccountCmd::Add { fields, password_stdin: _, activate } => read_password().and_then(|password| {
            let mut draft = draft(fields);
            draft.password = Some(password);
            draft.is_active = Some(activate);
            store.create_account(&draft).map(|id| println!("{id}"))
        }),
        AccountCmd::Edit { id, fields, password_stdin } => {
            let password = if password_stdin { read_password().map(Some) } else { Ok(None) };
            password.and_then(|password| {
                let mut draft = draft(fields);
                draft.password = password;
                store.update_account(id, &draft)
            })
        }
        AccountCmd::List { json } => store.list_accounts().map(|accounts| {
            if json {
                println!("{}", serde_json::to_string_pretty(&accounts).expect("views serialise"));
            } else {
                println!(
                    "{:<4} {:<7} {:<6} {:<8} {:<30} {:<16} {:<8} CODECS",
                    "ID", "ACTIVE", "PROTO", "DEFAULT", "SERVER", "USER", "DTMF"
                );
                for a in accounts {
                    let server = format!("{}:{}", a.server_host, a.server_port);
                    let yes = |b: bool| if b { "yes" } else { "no" };
                    println!(
                        "{:<4} {:<7} {:<6} {:<8} {:<30} {:<16} {:<8} {}",
                        a.id,
                        yes(a.is_active),
                        a.protocol.as_str(),
                        yes(a.is_default),
                        server,
                        a.username,
                        a.dtmf_mode.as_str(),
                        a.codecs.as_deref().unwrap_or("default")
                    );
                }
            }
        }),
        AccountCmd::Activate { id } => store.set_active(id, true),
        AccountCmd::Deactivate { id } => store.set_active(id, false),
        AccountCmd::Default { id } => store.set_default(id),
        AccountCmd::Remove { id } => store.delete_account(id),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn draft(f: FieldArgs) -> AccountDraft {
    AccountDraft {
        display_name: f.display_name,
        server_host: f.host,
        server_port: f.port,
        username: f.user,
        protocol: f.protocol,
        register_interval: f.interval,
        auth_username: f.auth_user,
        domain: f.domain,
        outbound_proxy: f.outbound_proxy,
        codecs: f.codecs,
        dtmf_mode: f.dtmf,
        ..AccountDraft::default()
    }
}

/// The first line of stdin, without its line ending (the password is never echoed).
fn read_password() -> Result<String, StoreError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| StoreError::Unreadable { path: "<stdin>".into(), reason: e.to_string() })?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Prints a store error and returns its exit code (2 for rejected fields, else 1).
pub fn fail(e: &StoreError) -> ExitCode {
    match e {
        StoreError::Invalid(fields) => {
            for f in fields {
                eprintln!("sipdesk: {f}");
            }
            ExitCode::from(EXIT_BAD_ARGS)
        }
        e => {
            eprintln!("sipdesk: {e}");
            ExitCode::FAILURE
        }
    }
}
