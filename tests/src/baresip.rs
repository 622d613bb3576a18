//! baresip 1.0.0 as the far phone in end-to-end tests: one process per phone, on 127.0.0.1, with
//! a generated config folder (tests/baresip/config.in, tests/baresip/accounts.in). It plays a
//! WAV file as its microphone (aufile), records what it sends and receives (sndfile) and is
//! driven over ctrl_tcp: netstring-framed JSON commands (`dial`, `accept`, `hangup`) and events
//! (`REGISTER_OK`, `CALL_INCOMING`, `CALL_ESTABLISHED`, `CALL_CLOSED`, ...).
//!
//! Quirks of baresip 1.0.0 this harness takes care of:
//! - aufile's WAV must have the rate and channel count of `ausrc_srate`/`ausrc_channels`, or the
//!   call never gets past 180: both are taken from the WAV's header. A WAV at another rate than
//!   the codec's ([`codec_rate`]) is then resampled by baresip, which lost about 15 dB of level
//!   (16 kHz WAV, pcma); play WAVs at the codec's rate.
//! - With `answermode=auto` there is no `CALL_INCOMING` event, only `CALL_ESTABLISHED`.
//! - sndfile records at the codec's rate and channels: 8 kHz mono for G.711, 48 kHz stereo for
//!   `opus/48000/2` ([`crate::audio::read_wav`] takes the first channel).
//! - With no WAV to play it would send no RTP at all, so it plays a generated silent WAV.
//! - When the WAV ends, baresip hangs the call up (`CALL_CLOSED` with "end of file").
//! - It binds TLS on the SIP port + 1, so both ports must be free.
//! - `net_interface 127.0.0.1` works where `lo` does not.
//! - sndfile names files `dump-<local time to the second>-{enc,dec}.wav`: two calls of one
//!   phone within the same second overwrite each other; two phones must record to different
//!   folders (the default: each phone's own).
//! - Opus must be written `opus/48000/2`; plain `opus` is ignored.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Programs a baresip test needs.
pub const PROGRAMS: &[&str] = &["baresip"];

/// How long a ctrl_tcp command may take to answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// How one baresip phone is set up.
#[derive(Debug, Clone)]
pub struct BaresipConfig {
    /// SIP user (also the digest user).
    pub user: String,
    /// Digest password.
    pub password: String,
    /// UDP port of the registrar on 127.0.0.1; 0 = do not register (call it directly at
    /// [`Baresip::direct_uri`]).
    pub registrar_port: u16,
    /// The only audio codec offered and accepted: `pcmu`, `pcma`, `g722` or `opus/48000/2`.
    pub codec: &'static str,
    /// Answer incoming calls at once (`answermode=auto`); otherwise call [`Baresip::answer`].
    pub auto_answer: bool,
    /// WAV played as the microphone (any rate; mono or stereo s16). When it ends baresip hangs
    /// up. None: a silent WAV of `silence_seconds`.
    pub play_wav: Option<PathBuf>,
    /// Length of the silent WAV played when `play_wav` is None (so also the longest call).
    pub silence_seconds: u32,
    /// Folder sndfile records into; empty = a folder inside the phone's own temporary folder.
    pub record_dir: PathBuf,
    /// Registration interval asked for (`regint`), in seconds.
    pub register_interval: u32,
}

impl Default for BaresipConfig {
    fn default() -> BaresipConfig {
        BaresipConfig {
            user: "2001".into(),
            password: "pw-2001".into(),
            registrar_port: 0,
            codec: "pcmu",
            auto_answer: true,
            play_wav: None,
            silence_seconds: 60,
            record_dir: PathBuf::new(),
            register_interval: 60,
        }
    }
}

/// Sample rate of a codec's audio as baresip feeds it (the rate a WAV to play should have).
pub fn codec_rate(codec: &str) -> u32 {
    let name = codec.split('/').next().unwrap_or(codec).to_ascii_lowercase();
    match name.as_str() {
        "opus" => 48000,
        "g722" => 16000,
        _ => 8000,
    }
}

/// A running baresip.
pub struct Baresip {
    /// SIP port on 127.0.0.1 (UDP and TCP; TLS is on the next port).
    pub sip_port: u16,
    /// ctrl_tcp port on 127.0.0.1.
    pub ctrl_port: u16,
    user: String,
    record_dir: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
    ctrl: TcpStream,
    shared: Arc<Shared>,
    next_token: u64,
}

#[derive(Default)]
struct Shared {
    state: Mutex<CtrlState>,
    changed: Condvar,
}

#[derive(Default)]
struct CtrlState {
    responses: HashMap<String, Value>,
    /// Every event so far, with whether `wait_event` already returned it.
    events: Vec<(Value, bool)>,
    closed: bool,
}

impl Baresip {
    /// Writes the config folder and starts `baresip -f DIR`; returns once ctrl_tcp answers.
    pub fn start(cfg: &BaresipConfig) -> Baresip {
        Self::start_attempt(cfg, 1)
    }

    fn start_attempt(cfg: &BaresipConfig, attempt: u32) -> Baresip {
        let dir = tempfile::tempdir().expect("tempdir");
        let sip_port = free_sip_port();
        let ctrl_port = free_tcp_port();
        let record_dir =
            if cfg.record_dir.as_os_str().is_empty() { dir.path().join("recordings") } else { cfg.record_dir.clone() };
        std::fs::create_dir_all(&record_dir).expect("create record dir");

        let wav = match &cfg.play_wav {
            Some(p) => p.clone(),
            None => {
                let p = dir.path().join("silence.wav");
                crate::audio::write_tone_wav(
                    &p,
                    0.0,
                    codec_rate(cfg.codec),
                    0.0,
                    -100.0,
                    f64::from(cfg.silence_seconds),
                );
                p
            }
        };
        let spec = hound::WavReader::open(&wav).unwrap_or_else(|e| panic!("WAV to play {}: {e}", wav.display())).spec();
        assert!(
            spec.sample_format == hound::SampleFormat::Int && spec.bits_per_sample == 16,
            "aufile plays s16 WAVs only: {}",
            wav.display()
        );

        if spec.sample_rate != codec_rate(cfg.codec) {
            // baresip 1.0.0 then resamples, and its resampler lost about 15 dB (16 kHz -> pcma).
            eprintln!(
                "baresip: {} is {} Hz but {} runs at {} Hz: baresip resamples it (levels drop)",
                wav.display(),
                spec.sample_rate,
                cfg.codec,
                codec_rate(cfg.codec)
            );
        }
        let codec_modules: String = codec_modules(cfg.codec).iter().map(|m| format!("module\t\t\t{m}\n")).collect();
        let config = template("config.in")
            .replace("{{SIP_PORT}}", &sip_port.to_string())
            .replace("{{CTRL_PORT}}", &ctrl_port.to_string())
            .replace("{{WAV}}", &wav.display().to_string())
            .replace("{{SRATE}}", &spec.sample_rate.to_string())
            .replace("{{CHANNELS}}", &spec.channels.to_string())
            .replace("{{DEVICE}}", &format!("sipdesk-e2e-{sip_port}"))
            .replace("{{CODEC_MODULES}}", &codec_modules)
            .replace("{{RECORD_DIR}}", &record_dir.display().to_string());
        std::fs::write(dir.path().join("config"), config).expect("write baresip config");

        let (aor, regint) = if cfg.registrar_port == 0 {
            (format!("sip:{}@127.0.0.1:{sip_port};transport=udp", cfg.user), 0)
        } else {
            (format!("sip:{}@127.0.0.1:{};transport=udp", cfg.user, cfg.registrar_port), cfg.register_interval)
        };
        let accounts = template("accounts.in")
            .replace("{{AOR}}", &aor)
            .replace("{{USER}}", &cfg.user)
            .replace("{{PASSWORD}}", &cfg.password)
            .replace("{{CODEC}}", cfg.codec)
            .replace("{{ANSWERMODE}}", if cfg.auto_answer { "auto" } else { "manual" })
            .replace("{{REGINT}}", &regint.to_string());
        std::fs::write(dir.path().join("accounts"), accounts).expect("write baresip accounts");

        let log = std::fs::File::create(dir.path().join("baresip.log")).expect("baresip log");
        let mut child = Command::new("baresip")
            .arg("-f")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start baresip");

        let deadline = Instant::now() + Duration::from_secs(10);
        let ctrl = loop {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", ctrl_port)) {
                break s;
            }
            if let Ok(Some(status)) = child.try_wait() {
                // 98 = EADDRINUSE: another test took the free port we picked in the meantime.
                if status.code() == Some(98) && attempt < 4 {
                    return Self::start_attempt(cfg, attempt + 1);
                }
                panic!("baresip exited ({status}); log:\n{}", read_log(dir.path()));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("baresip's ctrl_tcp did not answer; log:\n{}", read_log(dir.path()));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let shared = Arc::new(Shared::default());
        let reader = ctrl.try_clone().expect("clone ctrl socket");
        let for_reader = Arc::clone(&shared);
        std::thread::spawn(move || read_ctrl(reader, &for_reader));

        Baresip {
            sip_port,
            ctrl_port,
            user: cfg.user.clone(),
            record_dir,
            dir,
            child: Some(child),
            ctrl,
            shared,
            next_token: 0,
        }
    }

    /// The URI that reaches this phone without a registrar.
    pub fn direct_uri(&self) -> String {
        format!("sip:{}@127.0.0.1:{}", self.user, self.sip_port)
    }

    /// Sends a ctrl_tcp command (a menu command such as `dial`, `accept`, `hangup`, `reginfo`)
    /// and returns its `data`, or Err(data) when baresip answered `ok: false`.
    pub fn command(&mut self, command: &str, params: Option<&str>) -> Result<String, String> {
        self.next_token += 1;
        let token = self.next_token.to_string();
        let mut msg = serde_json::json!({ "command": command, "token": token });
        if let Some(p) = params {
            msg["params"] = Value::from(p);
        }
        let body = msg.to_string();
        let frame = format!("{}:{body},", body.len());
        self.ctrl.write_all(frame.as_bytes()).unwrap_or_else(|e| panic!("ctrl_tcp write: {e}; log:\n{}", self.log()));

        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut state = self.shared.state.lock().expect("ctrl state");
        loop {
            if let Some(resp) = state.responses.remove(&token) {
                let data = resp["data"].as_str().unwrap_or_default().to_string();
                return if resp["ok"] == true { Ok(data) } else { Err(data) };
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                drop(state);
                panic!("no answer to ctrl_tcp command {command}; log:\n{}", self.log());
            }
            state = self.shared.changed.wait_timeout(state, deadline - now).expect("ctrl state").0;
        }
    }

    /// Calls `uri` (for example `sip:2002@127.0.0.1:5060`, through the registrar's port).
    pub fn dial(&mut self, uri: &str) {
        if let Err(e) = self.command("dial", Some(uri)) {
            panic!("dial {uri} failed: {e}; log:\n{}", self.log());
        }
    }

    /// Accepts the incoming call (when `auto_answer` is off).
    pub fn answer(&mut self) {
        if let Err(e) = self.command("accept", None) {
            panic!("accept failed: {e}; log:\n{}", self.log());
        }
    }

    /// Hangs up the current call.
    pub fn hangup(&mut self) {
        if let Err(e) = self.command("hangup", None) {
            panic!("hangup failed: {e}; log:\n{}", self.log());
        }
    }

    /// Waits until the registrar accepted this phone's REGISTER (a `REGISTER_OK` event, or
    /// `reginfo` showing OK for registrations that completed before ctrl_tcp was connected).
    pub fn wait_registered(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.events().iter().any(|e| e["type"] == "REGISTER_OK") {
                return;
            }
            // `> sip:2001@127.0.0.1:5060   OK  kamailio ... Expires 60s` (OK in ANSI colour).
            let info = strip_ansi(&self.command("reginfo", None).unwrap_or_else(|e| e));
            if info.lines().any(|l| l.starts_with('>') && l.split_whitespace().nth(2) == Some("OK")) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not register; reginfo: {info:?}; log:\n{}",
                self.user,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the next event of this `type` (e.g. `CALL_INCOMING`, `CALL_ESTABLISHED`,
    /// `CALL_CLOSED`) that no earlier `wait_event` returned, and returns it.
    pub fn wait_event(&mut self, kind: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state.lock().expect("ctrl state");
        loop {
            if let Some((ev, taken)) = state.events.iter_mut().find(|(e, taken)| !*taken && e["type"] == kind) {
                *taken = true;
                return ev.clone();
            }
            let now = Instant::now();
            if now >= deadline || state.closed {
                let seen: Vec<String> = state.events.iter().map(|(e, _)| e["type"].to_string()).collect();
                drop(state);
                panic!("{}: no {kind} event within {timeout:?} (saw {seen:?}); log:\n{}", self.user, self.log());
            }
            state = self.shared.changed.wait_timeout(state, deadline - now).expect("ctrl state").0;
        }
    }

    /// Every ctrl_tcp event received so far, oldest first.
    pub fn events(&self) -> Vec<Value> {
        self.shared.state.lock().expect("ctrl state").events.iter().map(|(e, _)| e.clone()).collect()
    }

    /// The WAV files sndfile wrote, sorted by name (`dump-<time>-enc.wav` is what this phone
    /// sent, `dump-<time>-dec.wav` what it received). A file is complete once its call closed.
    pub fn recordings(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.record_dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "wav"));
        files.sort();
        files
    }

    /// The recordings of what this phone received (decoded audio).
    pub fn received_recordings(&self) -> Vec<PathBuf> {
        self.recordings().into_iter().filter(|p| p.to_string_lossy().ends_with("-dec.wav")).collect()
    }

    /// The recordings of what this phone sent (before encoding).
    pub fn sent_recordings(&self) -> Vec<PathBuf> {
        self.recordings().into_iter().filter(|p| p.to_string_lossy().ends_with("-enc.wav")).collect()
    }

    /// The config folder (config, accounts, baresip.log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What baresip printed.
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// Stops baresip (SIGTERM, which ends calls and closes the recordings; SIGKILL after 3 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = child.id() as libc::pid_t;
        // SAFETY: signals the process group this harness created with process_group(0).
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if child.try_wait().ok().flatten().is_none() {
            // SAFETY: as above.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        let _ = child.wait();
        let _ = self.ctrl.shutdown(std::net::Shutdown::Both);
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        self.stop();
    }
}

fn template(name: &str) -> String {
    let path = crate::repo_root().join("tests/baresip").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn codec_modules(codec: &str) -> Vec<&'static str> {
    let mut m = vec!["g711.so"];
    match codec.split('/').next().unwrap_or_default().to_ascii_lowercase().as_str() {
        "opus" => m.push("opus.so"),
        "g722" => m.push("g722.so"),
        _ => {}
    }
    m
}

/// Removes ANSI colour sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("baresip.log")).unwrap_or_default()
}

/// Reads netstrings (`LEN:JSON,`) from ctrl_tcp until the connection closes.
fn read_ctrl(stream: TcpStream, shared: &Shared) {
    let mut r = BufReader::new(stream);
    while let Some(msg) = read_netstring(&mut r) {
        let Ok(v) = serde_json::from_slice::<Value>(&msg) else {
            continue;
        };
        let mut state = shared.state.lock().expect("ctrl state");
        if v["response"] == true {
            let token = v["token"].as_str().unwrap_or_default().to_string();
            state.responses.insert(token, v);
        } else if v["event"] == true {
            state.events.push((v, false));
        }
        shared.changed.notify_all();
    }
    shared.state.lock().expect("ctrl state").closed = true;
    shared.changed.notify_all();
}

fn read_netstring(r: &mut impl Read) -> Option<Vec<u8>> {
    let mut len = 0usize;
    let mut byte = [0u8; 1];
    loop {
        r.read_exact(&mut byte).ok()?;
        match byte[0] {
            b'0'..=b'9' => len = len.checked_mul(10)?.checked_add(usize::from(byte[0] - b'0'))?,
            b':' => break,
            _ => return None,
        }
    }
    let mut msg = vec![0u8; len];
    r.read_exact(&mut msg).ok()?;
    r.read_exact(&mut byte).ok()?;
    (byte[0] == b',').then_some(msg)
}

/// A port P with P and P + 1 free for UDP and TCP on 127.0.0.1 (SIP, and the TLS baresip
/// always binds on P + 1).
pub fn free_sip_port() -> u16 {
    for _ in 0..200 {
        let p = crate::kamailio::free_udp_tcp_port();
        if p < u16::MAX
            && TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
    panic!("no free pair of SIP ports on 127.0.0.1");
}

fn free_tcp_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).expect("free tcp port").port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstrings_are_split() {
        let mut input: &[u8] = b"2:{},10:{\"a\":true},";
        assert_eq!(read_netstring(&mut input).unwrap(), b"{}");
        assert_eq!(read_netstring(&mut input).unwrap(), b"{\"a\":true}");
        assert!(read_netstring(&mut input).is_none());
        let mut bad: &[u8] = b"3:abc;";
        assert!(read_netstring(&mut bad).is_none());
    }

    #[test]
    fn colours_are_stripped() {
        let info = "> sip:2001@127.0.0.1:41993   \u{1b}[32mOK \u{1b}[;m kamailio Expires 60s";
        assert_eq!(strip_ansi(info), "> sip:2001@127.0.0.1:41993   OK  kamailio Expires 60s");
    }

    #[test]
    fn codec_rates_and_modules() {
        assert_eq!(codec_rate("pcmu"), 8000);
        assert_eq!(codec_rate("opus/48000/2"), 48000);
        assert_eq!(codec_rate("G722"), 16000);
        assert_eq!(codec_modules("opus/48000/2"), ["g711.so", "opus.so"]);
    }
}
