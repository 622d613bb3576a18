//! The headless `sipdesk` binary under test: running account commands, and `run --json` as a
//! child whose stdout lines are collected and validated against docs/EVENTS.md.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::events_schema::EventsSchema;

/// Path of the built `sipdesk` binary: `SIPDESK_BIN`, else beside this test's target folder.
pub fn bin() -> PathBuf {
    let path = std::env::var_os("SIPDESK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::target_profile_dir().join("sipdesk"));
    assert!(path.is_file(), "{} not found: build it first (cargo build -p sipdesk-core --bins)", path.display());
    path
}

/// A `sipdesk` command line against `db`, with a clean environment for SIP_* variables (and the
/// SIPDESK_DTMF / SIPDESK_REFER overrides) and a private secrets file. The desk logs at info, or
/// as `SIPDESK_TEST_LOG` says (a `RUST_LOG` filter, to look into a failing test).
pub fn command(db: &Path) -> Command {
    let mut c = Command::new(bin());
    let log = std::env::var("SIPDESK_TEST_LOG").unwrap_or_else(|_| "info".into());
    c.arg("--db").arg(db).env("SIPDESK_SECRET_STORE", "file").env("RUST_LOG", log);
    for k in [
        "SIP_SERVER_HOST",
        "SIP_SERVER_PORT",
        "SIP_USERNAME",
        "SIP_PASSWORD",
        "SIP_PROTOCOL",
        "SIP_REGISTER_INTERVAL",
        "SIP_CODECS",
        "SIP_DTMF_MODE",
        "SIPDESK_DB",
        // Overrides of the saved call settings: a test that wants one passes it itself.
        "SIPDESK_DTMF",
        "SIPDESK_REFER",
    ] {
        c.env_remove(k);
    }
    c
}

/// Runs `sipdesk --db DB ARGS` with `stdin` as input.
pub fn run_with_stdin(db: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = command(db)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sipdesk");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("sipdesk output")
}

/// Adds an account and returns its id.
pub fn add_account(db: &Path, args: &[&str], password: &str) -> i64 {
    let mut all = vec!["account", "add"];
    all.extend_from_slice(args);
    all.push("--password-stdin");
    let out = run_with_stdin(db, &all, &format!("{password}\n"));
    assert!(out.status.success(), "account add failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("account add prints the id")
}

/// A running `sipdesk run --json`.
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<Value>,
    schema: EventsSchema,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    /// Starts `sipdesk run --json` with the given extra arguments; `env` adds variables.
    pub fn start(db: &Path, extra: &[&str], env: &[(&str, &str)]) -> Running {
        let mut cmd = command(db);
        cmd.args(["run", "--json"]).args(extra).envs(env.iter().copied());
        let mut child =
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn sipdesk run");
        let lines = pipe_lines(child.stdout.take().expect("stdout"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err_lines = pipe_lines(child.stderr.take().expect("stderr"));
        std::thread::spawn(move || {
            for line in err_lines {
                let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        let stdin = child.stdin.take();
        Running { child, stdin, lines, seen: Vec::new(), schema: EventsSchema::load(), stderr }
    }

    /// Sends one raw line on stdin.
    pub fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin
            .write_all(line.as_bytes())
            .and_then(|_| stdin.write_all(b"\n"))
            .and_then(|_| stdin.flush())
            .expect("write command");
    }

    /// Closes stdin (EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the first stdout object matching `pred`, among those seen already or to come.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_since(0, what, timeout, pred)
    }

    /// Waits for the first stdout object matching `pred` among those seen from index `since` on
    /// (see [`Running::seen`]) or to come: an event a command causes may come before its ack.
    pub fn wait_since(&mut self, since: usize, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().skip(since).find(|v| pred(v)) {
            return v.clone();
        }
        self.wait_next(what, timeout, pred)
    }

    /// Waits for the next stdout object matching `pred` (each line is schema-checked on arrival).
    pub fn wait_next(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let v: Value =
                        serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                    if let Err(e) = self.schema.validate(&v) {
                        panic!("stdout line breaks docs/EVENTS.md: {e}\n{line}");
                    }
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("timed out waiting for {what}; saw {:#?}\nstderr: {}", self.seen, self.stderr_text())
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "sipdesk exited while waiting for {what}; saw {:#?}\nstderr: {}",
                    self.seen,
                    self.stderr_text()
                ),
            }
        }
    }

    /// Sends a command object and returns its `ack` or `error` reply (matched by id).
    pub fn command(&mut self, cmd: Value) -> Value {
        let id = cmd["id"].clone();
        self.send_raw(&cmd.to_string());
        self.wait_next("the reply", Duration::from_secs(10), |v| {
            (v["event"] == "ack" || v["event"] == "error") && v["id"] == id
        })
    }

    /// Every object seen so far.
    pub fn seen(&self) -> &[Value] {
        &self.seen
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(mut self, timeout: Duration) -> (ExitStatus, String) {
        self.stop(timeout)
    }

    /// Sends SIGTERM and waits for the exit, keeping what it printed to look at.
    pub fn stop(&mut self, timeout: Duration) -> (ExitStatus, String) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.wait_exit_within(timeout, "of SIGTERM")
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(mut self, timeout: Duration) -> (ExitStatus, String) {
        self.wait_exit_within(timeout, "")
    }

    fn wait_exit_within(&mut self, timeout: Duration, what: &str) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, self.stderr_text());
            }
            assert!(Instant::now() < deadline, "sipdesk did not stop within {timeout:?} {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Still running?
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// What the process wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        // Give the pipe thread a moment to drain what the process wrote last.
        std::thread::sleep(Duration::from_millis(50));
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pipe_lines(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Lossy: one line that is not UTF-8 (a logged datagram) must not end the capture.
        let mut reader = BufReader::new(r);
        let mut buf = Vec::new();
        while matches!(std::io::BufRead::read_until(&mut reader, b'\n', &mut buf), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string();
            buf.clear();
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}
