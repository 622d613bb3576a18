//! `sipdesk run`: the desk without a window. With `--json`, events go to stdout as JSON lines
//! and commands come from stdin, one per line; logs go to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;
use sipdesk_core::desk::{handle_line, Desk, DeskOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::cli::RunArgs;

/// Exit code when another instance already runs on the database.
const EXIT_INSTANCE_RUNNING: u8 = 3;
/// Longest command line accepted; longer ones are discarded with an error reply.
const MAX_LINE: usize = 64 * 1024;

/// Runs the desk until SIGINT or SIGTERM.
pub async fn run(db: Option<PathBuf>, args: RunArgs) -> ExitCode {
    let mut opts = DeskOptions::with_db(db);
    opts.auto_answer = args.auto_answer;
    opts.audio = args.audio.clone();
    opts.ai_answer = args.ai_answer;
    // Listen for SIGTERM/SIGINT before anything else, so a stop sent right after start-up is a
    // clean stop and not the default action (death without unregistering).
    let stop_signal = stop_signal();
    let desk = Desk::open(opts);
    // Subscribe before starting so the start-up events reach stdout too.
    let events = desk.subscribe();
    let (replies_tx, replies) = mpsc::channel::<Value>(64);
    let (stop_writer, writer_stop) = oneshot::channel();
    let writer = args.json.then(|| tokio::spawn(write_lines(events, replies, writer_stop)));
    if let Err(e) = desk.start().await {
        eprintln!("sipdesk: {}", e.message);
        return ExitCode::from(EXIT_INSTANCE_RUNNING);
    }
    let ai_answer = args.ai_answer.map(|a| a.to_string());
    tracing::info!(
        audio = ?args.audio,
        auto_answer = args.auto_answer,
        ai_answer = ai_answer.as_deref(),
        "sipdesk running; stop with Ctrl-C"
    );
    if args.json {
        tokio::spawn(read_commands(desk.clone(), replies_tx));
    }
    stop_signal.await;
    tracing::info!("stopping");
    desk.shutdown().await;
    let _ = stop_writer.send(());
    if let Some(w) = writer {
        // Let the last events reach stdout, but never hang the exit on a stuck reader.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), w).await;
    }
    ExitCode::SUCCESS
}

/// A future that completes on SIGINT or SIGTERM; the handlers are installed when it is created.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        let (mut term, mut int) = (term, int);
        tokio::select! {
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            _ = async { match int.as_mut() { Some(i) => { i.recv().await; } None => std::future::pending().await } } => {}
        }
    }
}

/// The one task that writes stdout, so lines never interleave.
async fn write_lines(
    mut events: broadcast::Receiver<sipdesk_core::desk::EventEnvelope>,
    mut replies: mpsc::Receiver<Value>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut out = tokio::io::stdout();
    let mut stopping = false;
    loop {
        if stopping {
            // Drain what is already queued, then return.
            match events.try_recv() {
                Ok(e) => {
                    if let Ok(line) = serde_json::to_string(&e) {
                        let _ = out.write_all(format!("{line}\n").as_bytes()).await;
                    }
                    continue;
                }
                Err(_) => {
                    let _ = out.flush().await;
                    return;
                }
            }
        }
        let line = tokio::select! {
            _ = &mut stop => {
                stopping = true;
                continue;
            }
            e = events.recv() => match e {
                Ok(e) => serde_json::to_string(&e),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("stdout fell behind; {n} events dropped");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            r = replies.recv() => match r {
                Some(v) => serde_json::to_string(&v),
                None => continue,
            },
        };
        let Ok(mut line) = line else { continue };
        line.push('\n');
        if out.write_all(line.as_bytes()).await.and(out.flush().await).is_err() {
            return; // stdout closed: nobody is reading any more.
        }
    }
}

/// Reads commands until EOF; EOF does not stop the desk.
async fn read_commands(desk: Desk, replies: mpsc::Sender<Value>) {
    let mut input = BufReader::new(tokio::io::stdin());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match read_line_capped(&mut input, &mut buf).await {
            Ok(None) => {
                tracing::info!("stdin closed; still running (stop with SIGINT or SIGTERM)");
                return;
            }
            Ok(Some(false)) => {
                let reply = serde_json::json!({"event": "error", "ts_ms": sipdesk_core::desk::now_ms(), "id": null,
                    "code": "line_too_long", "message": format!("command lines are limited to {MAX_LINE} bytes")});
                let _ = replies.send(reply).await;
            }
            Ok(Some(true)) => {
                let text = String::from_utf8_lossy(&buf);
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                let _ = replies.send(handle_line(&desk, text)).await;
            }
            Err(e) => {
                tracing::error!("cannot read stdin: {e}");
                return;
            }
        }
    }
}

/// Reads one line into `buf`: `None` at EOF, `Some(false)` if it was longer than MAX_LINE
/// (the rest of that line is skipped without being stored).
async fn read_line_capped<R: AsyncBufReadExt + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    let mut fits = true;
    let mut any = false;
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(any.then_some(fits));
        }
        any = true;
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1),
            None => (chunk, chunk.len()),
        };
        if fits && buf.len() + part.len() <= MAX_LINE {
            buf.extend_from_slice(part);
        } else {
            fits = false;
            buf.clear();
        }
        let ended = done <= chunk.len() && chunk.get(done - 1) == Some(&b'\n');
        r.consume(done);
        if ended {
            return Ok(Some(fits));
        }
    }
}
