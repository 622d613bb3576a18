//! linphone-cli 5.1 (`linphonec`) as a far phone in end-to-end tests: one process per phone on
//! 127.0.0.1, each with its own HOME (a temporary folder) and a generated config
//! (tests/linphone/linphonerc.in, plus tests/linphone/proxy.in when it registers). It plays a WAV
//! file as its microphone and records what it hears (`soundcard use files`, `play`, `record`),
//! and is driven through its console: commands go through a FIFO on its stdin, one at a time,
//! and its stdout is read for what happened.
//!
//! The console as linphonec 5.1.65 (Debian 12) has it, found with `help`, `help advanced` and
//! `help <command>`:
//! - `call <sip-uri>`; `answer [<id>]`; `terminate [<id>|all]`; `calls` (a table: id,
//!   destination, state such as `StreamsRunning`, `Paused`, `PausedByRemote`, flags);
//!   `pause` (the current call only) and `resume [<id>]`; `autoanswer enable|disable`;
//!   `status register` (`registered, identity=... duration=N` once registered, `registered=-1`
//!   before); `soundcard use files`, `play <wav>`, `record <wav>`.
//! - `transfer <sip-uri>` (blind, the current call), `transfer <id> <sip-uri>` (blind), and
//!   `transfer <id1> --to-call <id2>`: the attended transfer. It REFERs call id1's far end to call
//!   id2's far end, with a Replaces naming id2's dialog, so id1's party calls id2's party and that
//!   call takes the place of id2. (There is no `--to-call-id`.)
//! - Call ids are numbers the console gives out (1, 2, ... per process, never reused).
//!
//! What it prints, one line each (X is the far end's address):
//! `Establishing call id to X, assigned id N`, `Call N to X in progress.`, `Call N to X ringing.`,
//! `Receiving new incoming call from X, assigned id N`, `Call N with X connected.`,
//! `Media streams established with X for call N (audio).`, `Call N with X is now paused.`,
//! `Call N has been paused by X.`, `Call N with X ended (REASON).`, `Call N with X error.`, and
//! for the transferor once the transferred call is up: `The distant endpoint X of call N has been
//! transfered, you can safely close the call.`
//!
//! Quirks this harness takes care of:
//! - Its stdin reader keeps only the latest unread line: a command sent before the previous one
//!   was taken is lost. The console echoes each line when it takes it, so [`Linphone::command`]
//!   waits for the echo, then for the next prompt, before it returns.
//! - The core silently does not start unless `$HOME/.local/share/linphone/` exists.
//! - With `gruu` in Supported (the default), Kamailio keeps a Contact without a port: the config
//!   sets `supported=replaces`. `sip_tcp_port=0` turns TCP off (-1 opens a random port).
//! - With files as the sound card it records at 48 kHz mono; the WAV header is written when the
//!   call ends, so a recording is readable only after [`Linphone::wait_ended`].
//! - `record` names one file for every stream that starts afterwards (a call, and again after
//!   each hold, resume or re-INVITE), and each appends to it ("Opening wav file in append mode").
//!   After an append the header's data size counts the 44 header bytes too, which WAV readers
//!   refuse: read recordings with [`read_recording`]. Give a new name with
//!   [`Linphone::set_record`] before the call you want to hear on its own.
//! - `call` is refused ("Terminate or hold on the current call first.") while a call is up:
//!   [`Linphone::pause`] it first.
//! - It rewrites its config as it runs (the password moves into its database).
//! - It leaves the port out of the From and To URIs it sends (`To: sip:1001@127.0.0.1` for a
//!   call to `sip:1001@127.0.0.1:5070`), and its attended transfer puts the other call's To URI
//!   (the remote party, not its Contact) in Refer-To. With a registrar that is not on port 5060
//!   the transferee's INVITE then goes to port 5060 (Kamailio, too, relays a port-less URI
//!   there): [`LinphoneConfig::port_fixing_proxy`] routes such requests to the registrar.
//! - `-d 6 -l FILE` writes its full log, SIP messages included ([`Linphone::sip_trace`]).
//! - The folder of a phone whose test panicked is kept, and its path printed.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Programs a linphone test needs.
pub const PROGRAMS: &[&str] = &["linphonec"];

/// How long linphonec may take to take a console command and print its prompt again.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// The console prompt (printed without a newline).
const PROMPT: &str = "linphonec> ";
/// RTP ports each phone gets (one per call; a phone holds at most a few calls).
const RTP_PORTS: u16 = 20;

/// How one linphone phone is set up.
#[derive(Debug, Clone)]
pub struct LinphoneConfig {
    /// SIP user (also the digest user).
    pub user: String,
    /// Digest password.
    pub password: String,
    /// UDP port of the registrar on 127.0.0.1; 0 = do not register (call it directly at
    /// [`Linphone::direct_uri`]).
    pub registrar_port: u16,
    /// Answer incoming calls at once (`linphonec -a`); otherwise call [`Linphone::answer`].
    pub auto_answer: bool,
    /// WAV played as the microphone (s16; 8 kHz mono works). None: a silent WAV.
    pub play_wav: Option<PathBuf>,
    /// Where calls are recorded (see [`Linphone::set_record`]). None: `record.wav` in the
    /// phone's own folder.
    pub record_wav: Option<PathBuf>,
    /// Registration interval asked for, in seconds.
    pub register_interval: u32,
    /// Send every request outside a dialog (REGISTER included) through a relay in front of the
    /// registrar that adds the registrar's port to a request URI on 127.0.0.1 that has none
    /// (see the module doc: a transferee's INVITE to `sip:1001@127.0.0.1` then reaches the
    /// registrar, which finds 1001's binding).
    pub port_fixing_proxy: bool,
}

impl Default for LinphoneConfig {
    fn default() -> LinphoneConfig {
        LinphoneConfig {
            user: "2001".into(),
            password: "pw-2001".into(),
            registrar_port: 0,
            auto_answer: true,
            play_wav: None,
            record_wav: None,
            register_interval: 60,
            port_fixing_proxy: false,
        }
    }
}

/// One row of the `calls` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    /// The console's call id.
    pub id: u32,
    /// The far end's address.
    pub remote: String,
    /// liblinphone's state name: `OutgoingRinging`, `StreamsRunning`, `Paused`, `PausedByRemote`, ...
    pub state: String,
    /// Flags column (`conferencing`, `recording`, ...), often empty.
    pub flags: String,
}

/// A running linphonec.
pub struct Linphone {
    /// SIP port (UDP) on 127.0.0.1.
    pub sip_port: u16,
    user: String,
    record_wav: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
    fifo: File,
    shared: Arc<Shared>,
    fixer: Option<PortFixer>,
    /// Where [`Linphone::wait_for_output`] goes on searching (a byte offset in the output).
    cursor: usize,
}

#[derive(Default)]
struct Shared {
    out: Mutex<Output>,
    changed: Condvar,
}

#[derive(Default)]
struct Output {
    /// Everything linphonec printed on stdout and stderr.
    text: String,
    /// Pipes still open (stdout, stderr): 0 once the process is gone.
    open: usize,
}

impl Linphone {
    /// Writes the config, starts linphonec with a private HOME, switches it to WAV files and
    /// returns once its console takes commands. Call [`Linphone::wait_registered`] next when it
    /// registers.
    pub fn start(cfg: &LinphoneConfig) -> Linphone {
        let dir = tempfile::Builder::new().prefix(&format!("linphone-{}-", cfg.user)).tempdir().expect("tempdir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".local/share/linphone")).expect("linphone data dir");
        std::fs::create_dir_all(home.join(".config")).expect("linphone config dir");
        let sip_port = crate::kamailio::free_udp_tcp_port();
        let rtp = free_udp_range(RTP_PORTS);

        let play = match &cfg.play_wav {
            Some(p) => p.clone(),
            None => {
                let p = dir.path().join("silence.wav");
                crate::audio::write_tone_wav(&p, 0.0, 8000, 0.0, -100.0, 120.0);
                p
            }
        };
        let record_wav = cfg.record_wav.clone().unwrap_or_else(|| dir.path().join("record.wav"));

        assert!(
            cfg.registrar_port != 0 || !cfg.port_fixing_proxy,
            "the port-fixing proxy stands in front of a registrar"
        );
        let fixer = cfg.port_fixing_proxy.then(|| PortFixer::start(cfg.registrar_port));
        let proxy = if cfg.registrar_port == 0 {
            String::new()
        } else {
            let route = fixer.as_ref().map(|f| format!("reg_route=<sip:127.0.0.1:{};transport=udp;lr>", f.port));
            template("proxy.in")
                .replace("{{REGISTRAR_PORT}}", &cfg.registrar_port.to_string())
                .replace("{{ROUTE}}", &route.unwrap_or_default())
                .replace("{{USER}}", &cfg.user)
                .replace("{{PASSWORD}}", &cfg.password)
                .replace("{{REGINT}}", &cfg.register_interval.to_string())
        };
        let rc = template("linphonerc.in")
            .replace("{{SIP_PORT}}", &sip_port.to_string())
            .replace("{{RTP_PORTS}}", &format!("{}-{}", rtp, rtp + RTP_PORTS - 1))
            .replace("{{DEFAULT_PROXY}}", if cfg.registrar_port == 0 { "-1" } else { "0" })
            .replace("{{PROXY}}", &proxy);
        let rc_path = dir.path().join("linphonerc");
        std::fs::write(&rc_path, rc).expect("write linphonerc");

        // The FIFO is opened read-write here first (which does not block), so opening its read
        // end for the child does not block either and linphonec never sees end of input.
        let fifo_path = dir.path().join("stdin.fifo");
        let c_path = std::ffi::CString::new(fifo_path.as_os_str().as_encoded_bytes()).expect("fifo path");
        // SAFETY: a NUL-terminated path and a mode.
        let rc = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
        assert_eq!(rc, 0, "mkfifo {}: {}", fifo_path.display(), std::io::Error::last_os_error());
        let fifo = std::fs::OpenOptions::new().read(true).write(true).open(&fifo_path).expect("open fifo");
        let child_stdin = File::open(&fifo_path).expect("open fifo for reading");

        let mut cmd = Command::new("linphonec");
        cmd.arg("-c").arg(&rc_path).arg("-d").arg("6").arg("-l").arg(dir.path().join("debug.log"));
        if cfg.auto_answer {
            cmd.arg("-a");
        }
        let mut child = cmd
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .current_dir(dir.path())
            .stdin(child_stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start linphonec");
        let shared = Arc::new(Shared::default());
        shared.out.lock().expect("output").open = 2;
        let log = File::create(dir.path().join("console.log")).expect("console log");
        for pipe in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let shared = Arc::clone(&shared);
            let log = log.try_clone().expect("log fd");
            std::thread::spawn(move || read_output(pipe, log, &shared));
        }

        let mut phone = Linphone {
            sip_port,
            user: cfg.user.clone(),
            record_wav: record_wav.clone(),
            dir,
            child: Some(child),
            fifo,
            shared,
            fixer,
            cursor: 0,
        };
        phone.wait_until("its first prompt", Duration::from_secs(15), |t| t.contains(PROMPT).then_some(()));
        let out = phone.command("soundcard use files");
        assert!(out.contains("Using wav files"), "{}: soundcard use files said {out:?}{}", phone.user, phone.context());
        phone.command(&format!("play {}", play.display()));
        phone.command(&format!("record {}", record_wav.display()));
        phone
    }

    /// The URI that reaches this phone without a registrar.
    pub fn direct_uri(&self) -> String {
        format!("sip:{}@127.0.0.1:{}", self.user, self.sip_port)
    }

    /// Sends one console command and returns what it printed (up to its next prompt). Waits
    /// until linphonec took the line, so commands never overwrite each other.
    pub fn command(&mut self, raw: &str) -> String {
        let cmd = raw.trim().to_string();
        assert!(!cmd.is_empty() && !cmd.contains('\n'), "one console command a line: {raw:?}");
        let start = self.output_len();
        if let Err(e) = writeln!(self.fifo, "{cmd}").and_then(|()| self.fifo.flush()) {
            panic!("{}: write {cmd:?}: {e}{}", self.user, self.context());
        }
        let echo_end = self.wait_until(&format!("the console to take {cmd:?}"), COMMAND_TIMEOUT, |t| {
            complete_lines(t, start).find(|(_, l)| *l == cmd).map(|(end, _)| end)
        });
        self.wait_until(&format!("the prompt after {cmd:?}"), COMMAND_TIMEOUT, |t| {
            t[echo_end..].find(PROMPT).map(|i| t[echo_end..echo_end + i].to_string())
        })
    }

    /// Waits until the registrar accepted this phone (`status register` says `registered,`).
    pub fn wait_registered(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.command("status register");
            if out.lines().any(|l| l.trim_start().starts_with("registered,")) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not register within {timeout:?}; status: {out:?}{}",
                self.user,
                self.context()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Calls `uri` (for example `sip:2002@127.0.0.1:5060`, through the registrar's port) and
    /// returns the console's id of the new call.
    pub fn dial(&mut self, uri: &str) -> u32 {
        let start = self.output_len();
        self.command(&format!("call {uri}"));
        self.wait_until(&format!("call {uri} to get an id"), COMMAND_TIMEOUT, |t| {
            complete_lines(t, start).find_map(|(_, l)| l.strip_prefix("Establishing call id to ").and_then(assigned_id))
        })
    }

    /// Waits for the next incoming call not returned before (`Receiving new incoming call from
    /// X, assigned id N`) and returns (N, X).
    pub fn wait_incoming(&mut self, timeout: Duration) -> (u32, String) {
        let line =
            self.wait_for_line("an incoming call", timeout, |l| l.starts_with("Receiving new incoming call from "));
        let rest = line.strip_prefix("Receiving new incoming call from ").unwrap_or_default();
        let id = assigned_id(rest).unwrap_or_else(|| panic!("{}: no id in {line:?}", self.user));
        let from = rest.rsplit_once(", assigned id").map(|(f, _)| f.to_string()).unwrap_or_default();
        (id, from)
    }

    /// Waits until call `id` is connected (it may have been already); returns the far end's
    /// address.
    pub fn wait_connected(&mut self, id: u32, timeout: Duration) -> String {
        let prefix = format!("Call {id} with ");
        self.wait_until(&format!("call {id} to connect"), timeout, |t| {
            complete_lines(t, 0).find_map(|(_, l)| {
                l.strip_prefix(&prefix).and_then(|r| r.strip_suffix(" connected.")).map(str::to_string)
            })
        })
    }

    /// Waits until call `id` has its media running (`Media streams established ...`), at any
    /// time so far or to come.
    pub fn wait_streams(&mut self, id: u32, timeout: Duration) {
        let suffix = format!(" for call {id} (audio).");
        self.wait_until(&format!("call {id}'s media"), timeout, |t| {
            complete_lines(t, 0)
                .any(|(_, l)| l.starts_with("Media streams established with ") && l.ends_with(&suffix))
                .then_some(())
        })
    }

    /// Waits until call `id` ended (it may have already); returns the reason liblinphone gave
    /// (`None` for a normal end, `Declined`, `Busy`, ...).
    pub fn wait_ended(&mut self, id: u32, timeout: Duration) -> String {
        let prefix = format!("Call {id} with ");
        self.wait_until(&format!("call {id} to end"), timeout, |t| {
            complete_lines(t, 0).find_map(|(_, l)| {
                let r = l.strip_prefix(&prefix)?.strip_suffix(").")?;
                r.rsplit_once(" ended (").map(|(_, reason)| reason.to_string())
            })
        })
    }

    /// True when call `id` ended (so far).
    pub fn has_ended(&self, id: u32) -> bool {
        let prefix = format!("Call {id} with ");
        let text = self.output();
        let mut lines = complete_lines(&text, 0);
        lines.any(|(_, l)| l.starts_with(&prefix) && l.contains(" ended ("))
    }

    /// Holds the current call, which must be call `id` (`pause` takes no id), and waits until it
    /// is paused. linphonec places no new call while another is up: pause it first.
    pub fn pause(&mut self, id: u32, timeout: Duration) {
        self.command("pause");
        let prefix = format!("Call {id} with ");
        self.wait_until(&format!("call {id} to be paused"), timeout, |t| {
            let mut lines = complete_lines(t, 0);
            lines.any(|(_, l)| l.starts_with(&prefix) && l.ends_with(" is now paused.")).then_some(())
        });
    }

    /// Resumes call `id` (`resume <id>`).
    pub fn resume(&mut self, id: u32) -> String {
        self.command(&format!("resume {id}"))
    }

    /// Answers the ringing call (`answer`), or call `id`.
    pub fn answer(&mut self, id: Option<u32>) -> String {
        self.command(&id.map_or("answer".to_string(), |id| format!("answer {id}")))
    }

    /// Hangs up the current call (`terminate`), or call `id`.
    pub fn hangup(&mut self, id: Option<u32>) -> String {
        self.command(&id.map_or("terminate".to_string(), |id| format!("terminate {id}")))
    }

    /// Blind transfer of call `id` to `uri` (`transfer <id> <uri>`).
    pub fn transfer(&mut self, id: u32, uri: &str) -> String {
        self.command(&format!("transfer {id} {uri}"))
    }

    /// Attended transfer (`transfer <id> --to-call <to_call>`): call `id`'s far end is REFERred
    /// to call `to_call`'s far end with a Replaces for `to_call`'s dialog.
    pub fn transfer_attended(&mut self, id: u32, to_call: u32) -> String {
        self.command(&format!("transfer {id} --to-call {to_call}"))
    }

    /// The current calls (`calls`).
    pub fn calls(&mut self) -> Vec<CallRow> {
        parse_calls(&self.command("calls"))
    }

    /// Records the calls that start from now on into `path` (`record`).
    pub fn set_record(&mut self, path: &Path) {
        self.command(&format!("record {}", path.display()));
        self.record_wav = path.to_path_buf();
    }

    /// Plays `path` as the microphone of calls that start from now on (`play`).
    pub fn set_play(&mut self, path: &Path) {
        self.command(&format!("play {}", path.display()));
    }

    /// The file calls are recorded into now.
    pub fn record_wav(&self) -> &Path {
        &self.record_wav
    }

    /// Waits for the next complete output line, after the last one this returned, that contains
    /// `pattern`; returns it (without the prompt).
    pub fn wait_for_output(&mut self, pattern: &str, timeout: Duration) -> String {
        self.wait_for_line(&format!("{pattern:?}"), timeout, |l| l.contains(pattern))
    }

    /// Waits for the next complete output line, after the last one this or
    /// [`Linphone::wait_for_output`] returned, that `pred` accepts.
    pub fn wait_for_line(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let from = self.cursor;
        let (end, line) = self.wait_until(what, timeout, |t| {
            complete_lines(t, from).find(|(_, l)| pred(l)).map(|(end, l)| (end, l.to_string()))
        });
        self.cursor = end;
        line
    }

    /// Everything linphonec printed on its console so far.
    pub fn output(&self) -> String {
        self.shared.out.lock().expect("output").text.clone()
    }

    /// The phone's folder (config, console.log, debug.log, recordings by default).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// liblinphone's full log (`-d 6`).
    pub fn debug_log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.path().join("debug.log")).unwrap_or_default()).into_owned()
    }

    /// Every SIP message linphonec sent or received so far, each after belle-sip's line saying
    /// where it went or came from.
    pub fn sip_trace(&self) -> String {
        sip_messages(&self.debug_log())
    }

    /// Stops linphonec (`quit`, which ends its calls and closes the recordings; SIGTERM after
    /// 3 s, SIGKILL after 2 more).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = writeln!(self.fifo, "quit").and_then(|()| self.fifo.flush());
        let pgid = child.id() as libc::pid_t;
        for (signal, wait) in [(None, 3), (Some(libc::SIGTERM), 2), (Some(libc::SIGKILL), 2)] {
            if let Some(sig) = signal {
                // SAFETY: signals the process group this harness created with process_group(0).
                unsafe { libc::kill(-pgid, sig) };
            }
            let deadline = Instant::now() + Duration::from_secs(wait);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
        }
        let _ = child.wait();
        self.fixer = None;
    }

    fn output_len(&self) -> usize {
        self.shared.out.lock().expect("output").text.len()
    }

    /// Waits until `f` finds something in the output; panics with the output after `timeout` or
    /// when linphonec is gone.
    fn wait_until<T>(&self, what: &str, timeout: Duration, mut f: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        let mut out = self.shared.out.lock().expect("output");
        loop {
            if let Some(found) = f(&out.text) {
                return found;
            }
            let now = Instant::now();
            if now >= deadline || out.open == 0 {
                let gone = if out.open == 0 { " (linphonec exited)" } else { "" };
                drop(out);
                panic!("{}: no {what} within {timeout:?}{gone}{}", self.user, self.context());
            }
            out = self.shared.changed.wait_timeout(out, deadline - now).expect("output").0;
        }
    }

    /// The console output and where the full log is, for panic messages.
    fn context(&self) -> String {
        format!(
            "; full log: {} (kept)\n--- {} console ---\n{}\n---",
            self.dir.path().join("debug.log").display(),
            self.user,
            self.output()
        )
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!("linphone {}: kept {}", self.user, self.dir.path().display());
        }
    }
}

fn template(name: &str) -> String {
    let path = crate::repo_root().join("tests/linphone").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Copies a pipe into the shared output (and the console log) until it closes.
fn read_output(mut pipe: Box<dyn Read + Send>, mut log: File, shared: &Shared) {
    let mut buf = [0u8; 4096];
    let mut pending = Vec::new();
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let _ = log.write_all(&buf[..n]);
        pending.extend_from_slice(&buf[..n]);
        // Keep a UTF-8 sequence split across reads for the next one.
        let valid = match std::str::from_utf8(&pending) {
            Ok(_) => pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => pending.len(),
        };
        let text = String::from_utf8_lossy(&pending[..valid]).into_owned();
        pending.drain(..valid);
        shared.out.lock().expect("output").text.push_str(&text);
        shared.changed.notify_all();
    }
    let mut out = shared.out.lock().expect("output");
    out.text.push_str(&String::from_utf8_lossy(&pending));
    out.open -= 1;
    shared.changed.notify_all();
}

/// The relay behind [`LinphoneConfig::port_fixing_proxy`]: the phone's outbound proxy, which
/// passes requests on to the registrar with a port added to a port-less `127.0.0.1` request URI
/// (and its own Route removed), and the registrar's responses back to the phone.
struct PortFixer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PortFixer {
    fn start(registrar_port: u16) -> PortFixer {
        let sock = UdpSocket::bind(("127.0.0.1", 0)).expect("bind the port-fixing proxy");
        sock.set_read_timeout(Some(Duration::from_millis(50))).expect("read timeout");
        let port = sock.local_addr().expect("proxy address").port();
        let registrar = SocketAddr::from(([127, 0, 0, 1], registrar_port));
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut phone = None;
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                if from == registrar {
                    if let Some(to) = phone {
                        let _ = sock.send_to(&buf[..n], to);
                    }
                } else {
                    phone = Some(from);
                    let _ = sock.send_to(&fix_request(&buf[..n], port, registrar_port), registrar);
                }
            }
        });
        PortFixer { port, stop, thread: Some(thread) }
    }
}

impl Drop for PortFixer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A SIP request as the port-fixing proxy passes it on: `sip:u@127.0.0.1` in the request line
/// becomes `sip:u@127.0.0.1:REGISTRAR`, and Route headers naming the proxy (`:OWN_PORT`) go.
/// Responses and anything else pass unchanged.
fn fix_request(datagram: &[u8], own_port: u16, registrar_port: u16) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(datagram) else { return datagram.to_vec() };
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return datagram.to_vec() };
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts: Vec<&str> = first.split(' ').collect();
    if parts.len() != 3 || parts[2] != "SIP/2.0" || first.starts_with("SIP/") {
        return datagram.to_vec();
    }
    let uri = parts[1];
    let host_at = uri.find("@127.0.0.1").map(|i| i + 1).or_else(|| uri.starts_with("sip:127.0.0.1").then_some(4));
    let fixed;
    if let Some(at) = host_at {
        let after = at + "127.0.0.1".len();
        if !uri[after..].starts_with(':') {
            fixed = format!("{}:{registrar_port}{}", &uri[..after], &uri[after..]);
            parts[1] = &fixed;
        }
    }
    let own = format!("127.0.0.1:{own_port}");
    let mut out = parts.join(" ");
    for line in lines {
        if line.to_ascii_lowercase().starts_with("route:") && line.contains(&own) {
            continue;
        }
        out.push_str("\r\n");
        out.push_str(line);
    }
    out.push_str("\r\n\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// The complete lines of `text` from byte `from` on, as (offset just past the line, the line
/// without its newline and without the prompts printed before it).
fn complete_lines(text: &str, from: usize) -> impl Iterator<Item = (usize, &str)> {
    let mut offset = from;
    text[from..].split_inclusive('\n').filter_map(move |raw| {
        offset += raw.len();
        let line = raw.strip_suffix('\n')?.trim_end_matches('\r');
        let mut line = line.trim_start();
        while let Some(rest) = line.strip_prefix(PROMPT.trim_end()) {
            line = rest.trim_start();
        }
        Some((offset, line))
    })
}

/// Reads a linphone recording as s16 samples of its first channel, and its rate: the samples
/// run from the `data` chunk to the end of the file, whatever the header says (see the module
/// doc). Panics on a file that is not such a WAV.
pub fn read_recording(path: &Path) -> (Vec<i16>, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let bad = |why: &str| -> ! { panic!("{}: not a linphone WAV ({why})", path.display()) };
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        bad("no RIFF/WAVE header");
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let (mut at, mut format) = (12, None);
    while at + 8 <= bytes.len() {
        let (id, size) = (&bytes[at..at + 4], u32_at(at + 4) as usize);
        if id == b"fmt " && at + 24 <= bytes.len() {
            format = Some((u16_at(at + 8), u16_at(at + 10), u32_at(at + 12), u16_at(at + 22)));
        } else if id == b"data" {
            let Some((1, channels, rate, 16)) = format else { bad("not 16-bit PCM") };
            let frame = 2 * usize::from(channels.max(1));
            let samples = bytes[at + 8..].chunks_exact(frame).map(|f| i16::from_le_bytes([f[0], f[1]])).collect();
            return (samples, rate);
        }
        at += 8 + size + size % 2;
    }
    bad("no data chunk")
}

/// N from `..., assigned id N`.
fn assigned_id(text: &str) -> Option<u32> {
    text.rsplit_once(", assigned id ")?.1.trim().parse().ok()
}

/// Rows of the `calls` table:
/// `1  | sip:2002@127.0.0.1:5060             | StreamsRunning  | `.
fn parse_calls(out: &str) -> Vec<CallRow> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').map(str::trim).collect();
            if f.len() < 3 {
                return None;
            }
            Some(CallRow {
                id: f[0].parse().ok()?,
                remote: f[1].to_string(),
                state: f[2].to_string(),
                flags: f.get(3).copied().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// True for a liblinphone log line's start (`2026-11-24 15:01:33:949 ...`).
fn is_log_line(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 24 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b' ' && b[13] == b':'
}

/// The SIP messages in a liblinphone log, each after the belle-sip line that announced it
/// (`message sent to [UDP://...]` or `received [N] new bytes from [UDP://...]`).
fn sip_messages(log: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in log.lines() {
        if is_log_line(line) {
            inside = line.contains("message sent to [") || line.contains("new bytes from [");
            if inside {
                out.push_str("\n== ");
                out.push_str(line);
                out.push('\n');
            }
        } else if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The first of `count` consecutive UDP ports that are all free on 127.0.0.1, picked at random
/// between 40000 and 60000 (outside the desk's default RTP range).
fn free_udp_range(count: u16) -> u16 {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..200 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let base = 40000 + (h.finish() % 20000) as u16 / 2 * 2;
        let held: Vec<UdpSocket> =
            (base..base + count).filter_map(|p| UdpSocket::bind(("127.0.0.1", p)).ok()).collect();
        if held.len() == usize::from(count) {
            return base;
        }
    }
    panic!("no {count} free UDP ports in a row on 127.0.0.1");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_commands_and_events_are_lines_without_prompts() {
        let out = "Warning: video\nlinphonec> calls\nlinphonec> Call 1 with sip:a@h connected.\ncalls\npartial";
        let lines: Vec<&str> = complete_lines(out, 0).map(|(_, l)| l).collect();
        assert_eq!(lines, ["Warning: video", "calls", "Call 1 with sip:a@h connected.", "calls"]);
        let from = out.find("linphonec> Call").unwrap();
        let (end, first) = complete_lines(out, from).next().unwrap();
        assert_eq!(first, "Call 1 with sip:a@h connected.");
        assert_eq!(&out[end..end + 5], "calls");
    }

    #[test]
    fn ids_and_call_tables_are_parsed() {
        assert_eq!(assigned_id("sip:2002@127.0.0.1:5060, assigned id 12"), Some(12));
        assert_eq!(assigned_id("no id"), None);
        let table = "Call states\n\
            Id |            Destination              |      State      |    Flags   |\n\
            ------------------------------------------------------------------------\n\
            1  | sip:2002@127.0.0.1:35060            | StreamsRunning  | \n\
            3  | sip:1001@127.0.0.1                  | Paused          | recording\n";
        let rows = parse_calls(table);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            CallRow {
                id: 1,
                remote: "sip:2002@127.0.0.1:35060".into(),
                state: "StreamsRunning".into(),
                flags: String::new()
            }
        );
        assert_eq!((rows[1].id, rows[1].state.as_str(), rows[1].flags.as_str()), (3, "Paused", "recording"));
    }

    #[test]
    fn recordings_are_read_past_a_wrong_data_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.wav");
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&[1, 0, 1, 0]);
        wav.extend_from_slice(&48000u32.to_le_bytes());
        wav.extend_from_slice(&96000u32.to_le_bytes());
        wav.extend_from_slice(&[2, 0, 16, 0]);
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&1000u32.to_le_bytes()); // more than there is, as linphone writes
        for s in [1i16, -2, 300] {
            wav.extend_from_slice(&s.to_le_bytes());
        }
        std::fs::write(&path, &wav).unwrap();
        assert_eq!(read_recording(&path), (vec![1, -2, 300], 48000));
    }

    #[test]
    fn the_proxy_adds_the_registrars_port_and_drops_its_route() {
        let invite = "INVITE sip:1001@127.0.0.1 SIP/2.0\r\nRoute: <sip:127.0.0.1:4000;transport=udp;lr>\r\n\
            Replaces: a;to-tag=b\r\nContent-Length: 3\r\n\r\nv=0";
        let fixed = String::from_utf8(fix_request(invite.as_bytes(), 4000, 5070)).unwrap();
        assert_eq!(
            fixed,
            "INVITE sip:1001@127.0.0.1:5070 SIP/2.0\r\nReplaces: a;to-tag=b\r\nContent-Length: 3\r\n\r\nv=0"
        );
        let register = "REGISTER sip:127.0.0.1:5070 SIP/2.0\r\nRoute: <sip:127.0.0.1:9;lr>\r\n\r\n";
        assert_eq!(String::from_utf8(fix_request(register.as_bytes(), 4000, 5070)).unwrap(), register);
        let bare = "OPTIONS sip:127.0.0.1;transport=udp SIP/2.0\r\n\r\n";
        let fixed = String::from_utf8(fix_request(bare.as_bytes(), 4000, 5070)).unwrap();
        assert_eq!(fixed, "OPTIONS sip:127.0.0.1:5070;transport=udp SIP/2.0\r\n\r\n");
        let response = "SIP/2.0 200 OK\r\nRoute: <sip:127.0.0.1:4000;lr>\r\n\r\n";
        assert_eq!(String::from_utf8(fix_request(response.as_bytes(), 4000, 5070)).unwrap(), response);
    }

    #[test]
    fn sip_messages_are_cut_from_the_log() {
        let log = "2026-11-24 15:01:33:949 belle-sip-message-channel [0x1]: message sent to [UDP://127.0.0.1:5060], size: [10] bytes\n\
            REGISTER sip:127.0.0.1 SIP/2.0\n\
            CSeq: 1 REGISTER\n\
            \n\
            2026-11-24 15:01:33:950 liblinphone-message-something else\n\
            not a message\n\
            2026-11-24 15:01:33:951 belle-sip-message-channel [0x1]: received [443] new bytes from [UDP://127.0.0.1:5060]:\n\
            SIP/2.0 401 Unauthorized\n";
        let trace = sip_messages(log);
        assert!(trace.contains("REGISTER sip:127.0.0.1 SIP/2.0\nCSeq: 1 REGISTER\n"), "{trace}");
        assert!(trace.contains("SIP/2.0 401 Unauthorized"), "{trace}");
        assert!(!trace.contains("not a message"), "{trace}");
    }
}
