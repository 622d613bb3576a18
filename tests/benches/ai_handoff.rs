//! The AI voice agent handoff, timed on the wire (printed, never asserted). Run with
//! `bash scripts/bench.sh`, or `cargo bench -p sipdesk-e2e --bench ai_handoff` once the release
//! binary is built (`cargo build --release -p sipdesk-core --bins`).
//!
//! The rig: Kamailio on loopback, a baresip caller (PCMU) and `sipdesk run --auto-answer`, whose
//! file endpoint plays a 1400 Hz tone at -12 dBFS as the desk's own voice. A tapping relay in
//! this process stands in the media path (the desk advertises 127.0.0.2 with
//! `SIPDESK_MEDIA_ADDRESS`, as tests/src/relay.rs does, but nothing is impaired): it forwards
//! every RTP packet at once and stamps it, so "on the wire" below means at the relay. Each
//! decoded 20 ms frame is classed by its two 10 ms halves: the desk's tone (both halves almost
//! pure 1400 Hz), silence (peak under -40 dBFS), mixed (one half tone, the other not: a switch
//! inside a frame), or sound (the caller's or the agent's voice). The caller's question is
//! flite's "I have a question about my bill", 8 kHz, which the sample script answers with "I
//! can help with your bill." then its callback-number prompt.
//!
//! **(a) Handoff cycles in one call** ([`cycles`] of each kind, alternating). Each cycle hands the
//! call to the AI (`handoff` command), lets the caller ask, and takes the call back (`takeback`)
//! a second into the reply. Kind 1 asks after the greeting has played; kind 2 asks over the
//! greeting (barge-in). Per cycle:
//! - *handoff*: from writing the command to the first desk->caller packet that is not the desk's
//!   tone, and from the `handoff` event (read on the desk's stdout, which it emits right after
//!   `Switchboard::to_agent`) to that packet; the frame before must be whole tone and that one
//!   hold no tone (a switch on a frame boundary), RTP sequence and timestamps must run on
//!   without a gap; then the silent frames until the greeting's first sound;
//! - *voice-to-voice*: from the last caller packet with sound (peak over -40 dBFS) to the first
//!   agent packet with sound, split at the caller's final `transcript` event and the agent's
//!   first (interim) `transcript` line, which the local agent emits just before synthesising
//!   the first sentence of its reply (stdout lines are stamped as this process reads them);
//! - *barge-in* (kind 2): from the caller's first packet with sound to the last agent packet
//!   with sound before the reply, and the frames sent in between; split at the bridge's
//!   `barge-in: agent audio flushed` log line (debug, its own microsecond timestamp), which it
//!   writes right after `Switchboard::flush` on the agent's `UserSpeechStarted`;
//! - *takeback*: from the command to the first whole desk-tone packet, the frame before it, and
//!   the frames between the agent's last sound and the desk's tone.
//!
//! Commands timed from a packet are delayed by a phase spread evenly over the 20 ms tick, so the
//! wait for the next tick is sampled fairly. The desk's VmRSS before each handoff is printed too.
//!
//! **(b) CPU per AI call**: separate calls (a fresh `sipdesk run` each, `RUST_LOG=warn`), with the
//! same caller audio (the question 8 s in): handed to the AI 2 s after answering, or never. The
//! desk process's utime + stime (`/proc/PID/stat`) over 20 s from the handoff command (or the
//! same moment), its threads named `agent-local` (the session: VAD, recognition, synthesis)
//! apart, the part spent between the command and the `handoff` event (loading the agent), the
//! peak RSS (`VmHWM`) before and after, and VmRSS at the end and 2 s after a takeback;
//! [`rounds`] rounds, interleaved.
//!
//! **(c) The core's parts, in this process** (release build): what the local agent does on a
//! handoff (`LocalAgent::sample`, a recogniser's model load), flite's time per sentence, and
//! the question replayed through the agent's ear (`agent::ear::Ear`, 8 kHz frames of 20 ms,
//! G.711-coded as on the wire): when its VAD starts and ends the utterance in audio time, and the
//! wall time of the frame that ends it (the recogniser's final search), with the default VAD
//! settings and with shorter ones (checked against white noise as agent/vad.rs's test does);
//! then `SIPDESK_BENCH_SESSIONS` (30) whole `LocalAgent` sessions one after another (greeting,
//! the question, the answer, close) and this process's VmRSS across them.
//!
//! `SIPDESK_BENCH_PARTS` picks parts (`abc` by default; `c` alone needs no SIP programs).
//!
//! Loopback on a shared 2-core machine: other builds and tests may run at the same time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use sipdesk_core::agent::asr::Recognizer;
use sipdesk_core::agent::ear::{Ear, Heard};
use sipdesk_core::agent::grammar::{Grammar, SpeechModel};
use sipdesk_core::agent::script::DialogScript;
use sipdesk_core::agent::vad::{Segmenter, VadConfig, VadEvent};
use sipdesk_core::agent::{AgentAudio, AgentEvent, LocalAgent, SessionConfig, VoiceAgent};
use sipdesk_core::media::frame::SampleRate;
use sipdesk_core::media::g711::Law;
use sipdesk_core::media::resample::resample;
use sipdesk_core::media::rtp::RtpPacket;
use sipdesk_e2e::audio::write_tone_wav;
use sipdesk_e2e::baresip::{self, Baresip, BaresipConfig};
use sipdesk_e2e::kamailio::{self, Config, Kamailio};
use sipdesk_e2e::sipdesk::{add_account, Running};

const QUESTION: &str = "I have a question about my bill";
const INSIDE: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PUBLIC: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// A frame (or half) whose peak is below this (-40 dBFS) is silence.
const SILENT_PEAK: i32 = 328;
/// The desk's tone.
const DESK_HZ: f64 = 1400.0;
/// Length of the CPU window.
const CPU_SECS: u64 = 20;
/// When the caller asks, in the CPU calls, from the start of the window.
const CPU_QUESTION_AT: Duration = Duration::from_secs(8);
/// The bridge's log line on barge-in (crates/core/src/desk/handoff.rs).
const FLUSH_LOG: &str = "barge-in: agent audio flushed";
/// Its log line once the desk has the call again, after `Switchboard::to_desk`.
const BACK_LOG: &str = "the call is back with the desk";

/// Cycles of each kind: `SIPDESK_BENCH_CYCLES`, default 10.
fn cycles() -> usize {
    env_count("SIPDESK_BENCH_CYCLES", 10)
}

/// Rounds of CPU calls: `SIPDESK_BENCH_ROUNDS`, default 3.
fn rounds() -> usize {
    env_count("SIPDESK_BENCH_ROUNDS", 3)
}

/// A delay below 20 ms, another at each call (the golden-ratio sequence: evenly spread). Commands
/// timed from a packet of the desk's would otherwise land at one phase of its 20 ms tick (and
/// so would a delay taken from the clock, whose second is a whole number of ticks).
fn next_phase() -> Duration {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed) as f64;
    Duration::from_micros(((n * 0.618_033_988_75).fract() * 20_000.0) as u64)
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// The tapping relay.

/// What a 20 ms frame on the wire held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tone,
    Silent,
    Mixed,
    Sound,
}

/// One RTP packet seen by the relay.
#[derive(Debug, Clone, Copy)]
struct Pkt {
    at: Instant,
    /// Desk -> caller (else caller -> desk).
    to_phone: bool,
    seq: u16,
    ts: u32,
    kind: Kind,
}

fn half_kind(s: &[i16]) -> Kind {
    let peak = s.iter().map(|x| i32::from(*x).abs()).max().unwrap_or(0);
    if peak < SILENT_PEAK {
        return Kind::Silent;
    }
    let energy: f64 = s.iter().map(|x| f64::from(*x).powi(2)).sum();
    let (mut c, mut q) = (0.0, 0.0);
    for (i, x) in s.iter().enumerate() {
        let ph = 2.0 * std::f64::consts::PI * DESK_HZ * i as f64 / 8000.0;
        c += f64::from(*x) * ph.cos();
        q += f64::from(*x) * ph.sin();
    }
    // 10 ms hold 14 whole periods of 1400 Hz: a pure tone puts all its energy in this bin.
    let tone = 2.0 * (c * c + q * q) / s.len() as f64;
    if tone > 0.9 * energy {
        Kind::Tone
    } else {
        Kind::Sound
    }
}

fn frame_kind(pcm: &[i16]) -> Kind {
    let (a, b) = pcm.split_at(pcm.len() / 2);
    match (half_kind(a), half_kind(b)) {
        (Kind::Tone, Kind::Tone) => Kind::Tone,
        (Kind::Silent, Kind::Silent) => Kind::Silent,
        (Kind::Tone, _) | (_, Kind::Tone) => Kind::Mixed,
        _ => Kind::Sound,
    }
}

/// Relays `PUBLIC:port` (and port + 1) to `INSIDE:port` (and port + 1), stamping RTP.
struct Tap {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    log: Arc<Mutex<Vec<Pkt>>>,
}

impl Tap {
    fn start(port: u16) -> Tap {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::with_capacity(40_000)));
        let mut threads = Vec::new();
        for (p, log) in [(port, Some(log.clone())), (port + 1, None)] {
            let sock = UdpSocket::bind((PUBLIC, p)).unwrap_or_else(|e| panic!("relay bind {PUBLIC}:{p}: {e}"));
            sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let inside = SocketAddr::new(INSIDE, p);
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || relay_loop(&sock, inside, &stop, log.as_deref())));
        }
        Tap { stop, threads, log }
    }

    fn packets(&self) -> Vec<Pkt> {
        self.log.lock().unwrap().clone()
    }

    /// The first packet one way after `t` whose kind passes `pred`.
    fn first_after(&self, t: Instant, to_phone: bool, pred: impl Fn(Kind) -> bool) -> Option<Pkt> {
        self.log.lock().unwrap().iter().find(|p| p.at > t && p.to_phone == to_phone && pred(p.kind)).copied()
    }

    /// Waits for [`Tap::first_after`].
    fn wait_first(&self, t: Instant, to_phone: bool, pred: impl Fn(Kind) -> bool, timeout: Duration) -> Option<Pkt> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(p) = self.first_after(t, to_phone, &pred) {
                return Some(p);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// Waits until the desk has sent `quiet` without sound, after some sound since `t`.
    fn wait_quiet_after_sound(&self, t: Instant, quiet: Duration, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            let last = self
                .log
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|p| p.at > t && p.to_phone && p.kind == Kind::Sound)
                .map(|p| p.at);
            if last.is_some_and(|l| l.elapsed() >= quiet) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn relay_loop(sock: &UdpSocket, inside: SocketAddr, stop: &AtomicBool, log: Option<&Mutex<Vec<Pkt>>>) {
    let mut outside: Option<SocketAddr> = None;
    let mut buf = [0u8; 2048];
    let mut pcm = [0i16; 160];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
        let at = Instant::now();
        let to_phone = from == inside;
        let to = if to_phone {
            outside
        } else {
            outside = Some(from);
            Some(inside)
        };
        let Some(to) = to else { continue };
        let _ = sock.send_to(&buf[..n], to);
        let Some(log) = log else { continue };
        let Ok(pkt) = RtpPacket::parse(&buf[..n]) else { continue };
        if pkt.header.payload_type != 0 || pkt.payload.len() != 160 {
            continue;
        }
        Law::Mu.decode_into(pkt.payload, &mut pcm);
        let kind = frame_kind(&pcm);
        log.lock().unwrap().push(Pkt { at, to_phone, seq: pkt.header.sequence, ts: pkt.header.timestamp, kind });
    }
}

/// An even port whose pair is free on both addresses.
fn free_port_pair() -> u16 {
    sipdesk_e2e::relay::free_port_pair(&[INSIDE, PUBLIC])
}

// ---------------------------------------------------------------------------------------------
// The desk's stdout and log.

/// The next stdout object matching `pred`, stamped as read; None on timeout (quietly).
fn next(run: &mut Running, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<(Value, Instant)> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.wait_next("", timeout, pred)));
    std::panic::set_hook(hook);
    r.ok().map(|v| (v, Instant::now()))
}

/// Seconds since the Unix epoch of an RFC 3339 UTC stamp (`2026-11-24T16:01:02.123456Z`).
fn parse_stamp(s: &str) -> Option<f64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let time = time.trim_end_matches('Z');
    let mut t = time.split(':');
    let (h, min, sec) =
        (t.next()?.parse::<f64>().ok()?, t.next()?.parse::<f64>().ok()?, t.next()?.parse::<f64>().ok()?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86400.0 + h * 3600.0 + min * 60.0 + sec)
}

/// Maps wall-clock stamps of the desk's log onto this process's `Instant`s.
struct Clock {
    instant: Instant,
    unix: f64,
}

impl Clock {
    fn now() -> Clock {
        let unix = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
        Clock { instant: Instant::now(), unix }
    }

    fn instant(&self, unix: f64) -> Instant {
        let d = unix - self.unix;
        if d >= 0.0 {
            self.instant + Duration::from_secs_f64(d)
        } else {
            self.instant - Duration::from_secs_f64(-d)
        }
    }
}

/// The times of the desk's log lines holding `needle`.
fn log_times(stderr: &str, needle: &str, clock: &Clock) -> Vec<Instant> {
    stderr
        .lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| l.split_whitespace().next().and_then(parse_stamp))
        .map(|u| clock.instant(u))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Figures.

/// Signed milliseconds from `a` to `b`.
fn ms(a: Instant, b: Instant) -> f64 {
    if b >= a {
        b.duration_since(a).as_secs_f64() * 1000.0
    } else {
        -(a.duration_since(b).as_secs_f64() * 1000.0)
    }
}

/// "p50 X, p95 Y, max Z (min W, n N)" of `values`.
fn summary(values: &[f64], unit: &str) -> String {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return "none measured".into();
    }
    v.sort_by(f64::total_cmp);
    let pct = |p: f64| v[((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    format!(
        "p50 {:.1}, p95 {:.1}, max {:.1} {unit} (min {:.1}, n {})",
        pct(50.0),
        pct(95.0),
        v[v.len() - 1],
        v[0],
        v.len()
    )
}

/// "median (min-max)".
fn spread(values: &[f64], digits: usize) -> String {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => "-".into(),
        1 => format!("{:.digits$}", v[0]),
        n => format!("{:.digits$} ({:.digits$}-{:.digits$})", v[n / 2], v[0], v[n - 1]),
    }
}

/// Counts of how often each distinct value occurs: "0 x9, 1 x1".
fn histogram(values: &[usize]) -> String {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.dedup();
    v.iter().map(|x| format!("{x} x{}", values.iter().filter(|y| *y == x).count())).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------------------------
// Audio.

/// Writes 8 kHz mono: `lead` s of silence, the sentence, `tail` s of silence.
fn spoken_wav(path: &Path, text: &str, lead: f64, tail: f64) {
    let speech = sipdesk_core::agent::tts::synthesize(text).expect("flite");
    let at8k = resample(&speech.samples, speech.rate.hz(), 8000);
    let spec =
        hound::WavSpec { channels: 1, sample_rate: 8000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let silence = |secs: f64| std::iter::repeat_n(0i16, (secs * 8000.0) as usize);
    for s in silence(lead).chain(at8k).chain(silence(tail)) {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

// ---------------------------------------------------------------------------------------------
// The rig.

struct Rig {
    _k: Kamailio,
    phone: Baresip,
    desk: Running,
    id: String,
    _dir: tempfile::TempDir,
}

/// Kamailio, a silent baresip caller of `secs`, and a desk (with `env`) that answers; the
/// caller calls and the call is active. `tap_port`: the desk's RTP goes through a relay there.
fn rig(secs: u32, tap_port: Option<u16>, env: &[(&str, &str)]) -> Rig {
    let k = Kamailio::start(&Config {
        users: vec![("1001".into(), "pw-1001".into()), ("2001".into(), "pw-2001".into())],
        max_expires: 3600,
        ..Config::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut phone = Baresip::start(&BaresipConfig {
        user: "2001".into(),
        password: "pw-2001".into(),
        registrar_port: k.port,
        codec: "pcmu",
        auto_answer: false,
        play_wav: None,
        silence_seconds: secs,
        record_dir: dir.path().join("rec"),
        register_interval: 3600,
    });
    phone.wait_registered(Duration::from_secs(10));
    let db = dir.path().join("desk.db");
    add_account(
        &db,
        &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", "1001", "--interval", "3600", "--activate"],
        "pw-1001",
    );
    let desk_wav = dir.path().join("desk.wav");
    write_tone_wav(&desk_wav, DESK_HZ, 8000, f64::from(secs) + 30.0, -12.0, 0.0);
    let audio = format!("file:{},{}", desk_wav.display(), dir.path().join("heard.wav").display());
    let mut all_env: Vec<(&str, String)> = vec![("SIPDESK_CODECS", "pcmu".into())];
    if let Some(p) = tap_port {
        all_env.push(("SIPDESK_RTP_PORTS", format!("{p}-{}", p + 1)));
        all_env.push(("SIPDESK_MEDIA_ADDRESS", PUBLIC.to_string()));
    }
    all_env.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
    let env_ref: Vec<(&str, &str)> = all_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut desk = Running::start(&db, &["--auto-answer", "--audio", &audio], &env_ref);
    desk.wait_for("registered", Duration::from_secs(10), |v| {
        v["event"] == "registration" && v["state"] == "registered"
    });
    phone.dial(&format!("sip:1001@127.0.0.1:{}", k.port));
    let active = desk.wait_for("active", Duration::from_secs(10), |v| v["event"] == "call" && v["state"] == "active");
    let id = active["call_id"].as_str().unwrap().to_string();
    phone.wait_event("CALL_ESTABLISHED", Duration::from_secs(5));
    Rig { _k: k, phone, desk, id, _dir: dir }
}

impl Rig {
    /// Sends a call command; returns when it was written.
    fn send(&mut self, n: u64, cmd: &str) -> Instant {
        let line = json!({"id": n, "cmd": cmd, "call_id": self.id}).to_string();
        let t = Instant::now();
        self.desk.send_raw(&line);
        t
    }

    /// Waits for the `handoff` event to `to` (or an error reply to command `n`).
    fn handoff_event(&mut self, n: u64, to: &'static str) -> Option<Instant> {
        let (v, t) = next(&mut self.desk, Duration::from_secs(15), move |v| {
            (v["event"] == "handoff" && v["to"] == to) || (v["event"] == "error" && v["id"] == n)
        })?;
        if v["event"] == "error" || v["reason"].as_str().is_some_and(|r| r != "takeback" && to == "human") {
            eprintln!("ai_handoff: {v}");
        }
        (v["event"] == "handoff").then_some(t)
    }

    fn ask(&mut self, wav: &Path) -> Instant {
        let t = Instant::now();
        self.phone.command("ausrc", Some(&format!("aufile,{}", wav.display()))).expect("baresip ausrc");
        t
    }
}

// ---------------------------------------------------------------------------------------------
// (a) Handoff cycles.

/// What one cycle's driver saw (times as this process saw them).
#[derive(Debug, Default, Clone)]
struct CycleLog {
    barge: bool,
    handoff_cmd: Option<Instant>,
    handoff_event: Option<Instant>,
    asked: Option<Instant>,
    caller_final: Option<Instant>,
    caller_text: String,
    agent_delta: Option<Instant>,
    takeback_cmd: Option<Instant>,
    takeback_event: Option<Instant>,
}

/// One cycle's figures from the wire.
#[derive(Debug, Default, Clone)]
struct CycleFigures {
    handoff_ms: Option<f64>,
    handoff_after_event_ms: Option<f64>,
    handoff_event_ms: Option<f64>,
    handoff_boundary: Option<(Kind, Kind)>,
    handoff_continuous: Option<bool>,
    handoff_silent_frames: Option<usize>,
    handoff_max_gap_ms: Option<f64>,
    quiet_max_gap_ms: Option<f64>,
    v2v_ms: Option<f64>,
    v2v_to_final_ms: Option<f64>,
    v2v_final_to_delta_ms: Option<f64>,
    v2v_delta_to_sound_ms: Option<f64>,
    v2v_final_to_sound_ms: Option<f64>,
    barge_total_ms: Option<f64>,
    barge_frames: Option<usize>,
    barge_detect_ms: Option<f64>,
    barge_flush_ms: Option<f64>,
    barge_sound_after_flush: Option<usize>,
    takeback_ms: Option<f64>,
    takeback_after_event_ms: Option<f64>,
    takeback_log_ms: Option<f64>,
    takeback_log_to_frame_ms: Option<f64>,
    takeback_boundary: Option<(Kind, Kind)>,
    takeback_gap_frames: Option<usize>,
    takeback_continuous: Option<bool>,
}

fn continuous(d: &[&Pkt], around: usize) -> bool {
    let lo = around.saturating_sub(5);
    let hi = (around + 5).min(d.len());
    d[lo..hi].windows(2).all(|w| w[1].seq == w[0].seq.wrapping_add(1) && w[1].ts == w[0].ts.wrapping_add(160))
}

fn max_gap(d: &[&Pkt], from: Instant, to: Instant) -> Option<f64> {
    let times: Vec<Instant> = d.iter().map(|p| p.at).filter(|t| *t >= from && *t <= to).collect();
    times.windows(2).map(|w| ms(w[0], w[1])).reduce(f64::max)
}

fn analyse_cycle(c: &CycleLog, log: &[Pkt], flushes: &[Instant], backs: &[Instant]) -> CycleFigures {
    let mut f = CycleFigures::default();
    let d: Vec<&Pkt> = log.iter().filter(|p| p.to_phone).collect();
    let caller: Vec<&Pkt> = log.iter().filter(|p| !p.to_phone).collect();
    // The handoff.
    if let (Some(cmd), Some(ev)) = (c.handoff_cmd, c.handoff_event) {
        f.handoff_event_ms = Some(ms(cmd, ev));
        if let Some(i) = d.iter().position(|p| p.at > cmd && p.kind != Kind::Tone).filter(|i| *i > 0) {
            f.handoff_ms = Some(ms(cmd, d[i].at));
            f.handoff_after_event_ms = Some(ms(ev, d[i].at));
            f.handoff_boundary = Some((d[i - 1].kind, d[i].kind));
            f.handoff_continuous = Some(continuous(&d, i));
            f.handoff_silent_frames = Some(d[i..].iter().take_while(|p| p.kind == Kind::Silent).count());
            f.handoff_max_gap_ms = max_gap(&d, cmd, ev + Duration::from_millis(300));
            f.quiet_max_gap_ms = max_gap(&d, cmd - Duration::from_millis(1000), cmd);
        }
    }
    // Voice to voice, and the barge-in.
    if let (Some(asked), Some(fin)) = (c.asked, c.caller_final) {
        let spoke: Vec<&&Pkt> =
            caller.iter().filter(|p| p.at > asked && p.at <= fin && p.kind != Kind::Silent).collect();
        if let (Some(first), Some(last)) = (spoke.first(), spoke.last()) {
            let reply = d.iter().find(|p| p.at > last.at && p.kind == Kind::Sound);
            if let Some(reply) = reply {
                f.v2v_ms = Some(ms(last.at, reply.at));
                f.v2v_to_final_ms = Some(ms(last.at, fin));
                f.v2v_final_to_sound_ms = Some(ms(fin, reply.at));
                if let Some(delta) = c.agent_delta {
                    f.v2v_final_to_delta_ms = Some(ms(fin, delta));
                    f.v2v_delta_to_sound_ms = Some(ms(delta, reply.at));
                }
            }
            if c.barge {
                let end = reply.map_or(fin, |r| r.at);
                // The agent's last sound before its reply, and every frame sent from the caller's
                // first sound to it.
                if let Some(last_agent) = d.iter().rev().find(|p| p.at < end && p.kind == Kind::Sound) {
                    f.barge_total_ms = Some(ms(first.at, last_agent.at));
                    f.barge_frames = Some(d.iter().filter(|p| p.at > first.at && p.at <= last_agent.at).count());
                }
                if let Some(flush) = flushes.iter().find(|t| **t > first.at - Duration::from_millis(50) && **t < end) {
                    f.barge_detect_ms = Some(ms(first.at, *flush));
                    if let Some(after) = d.iter().find(|p| p.at > *flush) {
                        f.barge_flush_ms = Some(ms(*flush, after.at));
                    }
                    f.barge_sound_after_flush =
                        Some(d.iter().filter(|p| p.at > *flush && p.at < end && p.kind == Kind::Sound).count());
                }
            }
        }
    }
    // The takeback.
    if let Some(cmd) = c.takeback_cmd {
        if let Some(j) = d.iter().position(|p| p.at > cmd && p.kind == Kind::Tone).filter(|j| *j > 0) {
            f.takeback_ms = Some(ms(cmd, d[j].at));
            f.takeback_after_event_ms = c.takeback_event.map(|ev| ms(ev, d[j].at));
            if let Some(back) = backs.iter().find(|t| **t > cmd && **t < d[j].at + Duration::from_millis(100)) {
                f.takeback_log_ms = Some(ms(cmd, *back));
                f.takeback_log_to_frame_ms = Some(ms(*back, d[j].at));
            }
            f.takeback_boundary = Some((d[j - 1].kind, d[j].kind));
            f.takeback_continuous = Some(continuous(&d, j));
            f.takeback_gap_frames = d[..j].iter().rposition(|p| p.kind == Kind::Sound).map(|k| j - k - 1);
        }
    }
    f
}

/// What the cycles' call showed besides the cycles: the jitter buffer's delays (call_stats, ms)
/// and the desk's VmRSS before each handoff and at the end (MB).
struct CallNotes {
    buffer_ms: Vec<f64>,
    rss_mb: Vec<f64>,
}

fn run_cycles(question: &Path) -> Option<(Vec<CycleLog>, Vec<CycleFigures>, CallNotes)> {
    let n = cycles();
    let port = free_port_pair();
    let tap = Tap::start(port);
    let clock = Clock::now();
    let secs = (n as u32 * 2) * 20 + 60;
    let mut r = rig(secs, Some(port), &[("RUST_LOG", "info,sipdesk_core::desk::handoff=debug")]);
    // Let the symmetric RTP latch onto the relay and the jitter buffer settle.
    std::thread::sleep(Duration::from_secs(3));
    if tap.first_after(clock.instant, true, |k| k == Kind::Tone).is_none() {
        eprintln!("ai_handoff: no desk tone through the relay; skipped");
        return None;
    }
    let mut logs = Vec::new();
    let mut cmd_id = 0u64;
    let mut rss_mb = Vec::new();
    for i in 0..2 * n {
        rss_mb.push(sample(r.desk.pid()).rss_kb as f64 / 1024.0);
        let barge = i % 2 == 1;
        eprintln!("ai_handoff: cycle {}/{} ({})", i + 1, 2 * n, if barge { "barge-in" } else { "after the greeting" });
        let mut c = CycleLog { barge, ..CycleLog::default() };
        cmd_id += 1;
        c.handoff_cmd = Some(r.send(cmd_id, "handoff"));
        c.handoff_event = r.handoff_event(cmd_id, "ai");
        let Some(ev) = c.handoff_event else {
            logs.push(c);
            continue;
        };
        let Some(greeting) = tap.wait_first(ev, true, |k| k == Kind::Sound, Duration::from_secs(5)) else {
            eprintln!("ai_handoff: no greeting heard");
            logs.push(c);
            continue;
        };
        if barge {
            // Into the greeting's second sentence.
            let at = greeting.at + Duration::from_millis(1200) + next_phase();
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
        } else if !tap.wait_quiet_after_sound(ev, Duration::from_millis(1000), Duration::from_secs(15)) {
            eprintln!("ai_handoff: the greeting did not end");
        }
        c.asked = Some(r.ask(question));
        let fin = next(&mut r.desk, Duration::from_secs(15), |v| {
            v["event"] == "transcript" && v["speaker"] == "caller" && v["final"] == true
        });
        if let Some((v, t)) = fin {
            c.caller_final = Some(t);
            c.caller_text = v["text"].as_str().unwrap_or("").to_string();
            c.agent_delta = next(&mut r.desk, Duration::from_secs(10), |v| {
                v["event"] == "transcript" && v["speaker"] == "ai" && v["final"] == false
            })
            .map(|(_, t)| t);
            if let Some(reply) = tap.wait_first(t, true, |k| k == Kind::Sound, Duration::from_secs(5)) {
                let at = reply.at + Duration::from_millis(1000) + next_phase();
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
            }
        } else {
            eprintln!("ai_handoff: no final caller transcript");
        }
        cmd_id += 1;
        c.takeback_cmd = Some(r.send(cmd_id, "takeback"));
        c.takeback_event = r.handoff_event(cmd_id, "human");
        std::thread::sleep(Duration::from_millis(1500) + next_phase());
        logs.push(c);
    }
    rss_mb.push(sample(r.desk.pid()).rss_kb as f64 / 1024.0);
    let buffer_ms: Vec<f64> =
        r.desk.seen().iter().filter(|v| v["event"] == "call_stats").filter_map(|v| v["buffer_ms"].as_f64()).collect();
    r.phone.hangup();
    let (_, stderr) = r.desk.terminate(Duration::from_secs(5));
    let log = tap.packets();
    let flushes = log_times(&stderr, FLUSH_LOG, &clock);
    let backs = log_times(&stderr, BACK_LOG, &clock);
    if flushes.is_empty() || backs.is_empty() {
        eprintln!("ai_handoff: the desk's log lacks '{FLUSH_LOG}' or '{BACK_LOG}' (those splits are left out)");
    }
    let figures = logs.iter().map(|c| analyse_cycle(c, &log, &flushes, &backs)).collect();
    Some((logs, figures, CallNotes { buffer_ms, rss_mb }))
}

fn print_cycles(logs: &[CycleLog], figs: &[CycleFigures], notes: &CallNotes) {
    let pick = |f: &dyn Fn(&CycleFigures) -> Option<f64>, only: Option<bool>| -> Vec<f64> {
        logs.iter().zip(figs).filter(|(c, _)| only.is_none_or(|b| c.barge == b)).filter_map(|(_, x)| f(x)).collect()
    };
    let kinds = |f: &dyn Fn(&CycleFigures) -> Option<(Kind, Kind)>| -> String {
        let mut seen: Vec<(String, usize)> = Vec::new();
        for k in figs.iter().filter_map(f) {
            let s = format!("{:?}->{:?}", k.0, k.1).to_lowercase();
            match seen.iter_mut().find(|(x, _)| *x == s) {
                Some(e) => e.1 += 1,
                None => seen.push((s, 1)),
            }
        }
        seen.iter().map(|(s, n)| format!("{s} x{n}")).collect::<Vec<_>>().join(", ")
    };
    let counts = |f: &dyn Fn(&CycleFigures) -> Option<usize>, only: Option<bool>| -> Vec<usize> {
        logs.iter().zip(figs).filter(|(c, _)| only.is_none_or(|b| c.barge == b)).filter_map(|(_, x)| f(x)).collect()
    };
    let flags = |f: &dyn Fn(&CycleFigures) -> Option<bool>| {
        let v: Vec<bool> = figs.iter().filter_map(f).collect();
        format!("{} of {}", v.iter().filter(|b| **b).count(), v.len())
    };
    let mut texts: Vec<(&str, usize)> = Vec::new();
    for c in logs {
        let t = if c.caller_final.is_some() { c.caller_text.as_str() } else { "(nothing final)" };
        match texts.iter_mut().find(|(x, _)| *x == t) {
            Some(e) => e.1 += 1,
            None => texts.push((t, 1)),
        }
    }
    let texts: Vec<String> = texts.iter().map(|(t, n)| format!("{t:?} x{n}")).collect();
    println!(
        "(a) {} handoff cycles in one PCMU call ({} after the greeting, {} barge-in); the desk's jitter buffer \
         held {} ms (call_stats); the caller was understood as {}",
        logs.len(),
        logs.iter().filter(|c| !c.barge).count(),
        logs.iter().filter(|c| c.barge).count(),
        spread(&notes.buffer_ms, 0),
        texts.join(", ")
    );
    let rss: Vec<String> = notes.rss_mb.iter().map(|m| format!("{m:.1}")).collect();
    println!("  the desk's VmRSS before each handoff, then after the last takeback (MB): {}", rss.join(" "));
    println!("  handoff:");
    println!(
        "    command -> handoff event (the agent opened):   {}",
        summary(&pick(&|f| f.handoff_event_ms, None), "ms")
    );
    println!("    command -> first frame not the desk's:         {}", summary(&pick(&|f| f.handoff_ms, None), "ms"));
    println!(
        "    handoff event -> that frame (stdout read):      {}",
        summary(&pick(&|f| f.handoff_after_event_ms, None), "ms")
    );
    println!("    frames at the switch (before->after):          {}", kinds(&|f| f.handoff_boundary));
    println!("    RTP seq/timestamp continuous at the switch:    {}", flags(&|f| f.handoff_continuous));
    println!(
        "    silent frames before the greeting:             {}",
        histogram(&counts(&|f| f.handoff_silent_frames, None))
    );
    println!(
        "    longest desk->caller packet gap while loading: {}",
        summary(&pick(&|f| f.handoff_max_gap_ms, None), "ms")
    );
    println!(
        "    ... in the second before the command:          {}",
        summary(&pick(&|f| f.quiet_max_gap_ms, None), "ms")
    );
    for (label, only) in [("after the greeting", Some(false)), ("after a barge-in", Some(true)), ("all", None)] {
        println!("  voice-to-voice, {label}:");
        println!("    caller's last sound -> agent's first sound:    {}", summary(&pick(&|f| f.v2v_ms, only), "ms"));
        println!(
            "    ... -> caller's final transcript:             {}",
            summary(&pick(&|f| f.v2v_to_final_ms, only), "ms")
        );
        println!(
            "    final transcript -> agent's first sound:      {}",
            summary(&pick(&|f| f.v2v_final_to_sound_ms, only), "ms")
        );
        if only.is_none() {
            println!(
                "    final transcript -> agent's first line:       {}",
                summary(&pick(&|f| f.v2v_final_to_delta_ms, only), "ms")
            );
            println!(
                "    agent's first line -> its first sound:        {}",
                summary(&pick(&|f| f.v2v_delta_to_sound_ms, only), "ms")
            );
        }
    }
    println!("  barge-in:");
    println!(
        "    caller's first sound -> agent's last sound:    {}",
        summary(&pick(&|f| f.barge_total_ms, Some(true)), "ms")
    );
    println!(
        "    frames sent in that time:                      {}",
        histogram(&counts(&|f| f.barge_frames, Some(true)))
    );
    println!(
        "    caller's first sound -> flush (desk's log):    {}",
        summary(&pick(&|f| f.barge_detect_ms, Some(true)), "ms")
    );
    println!(
        "    flush -> next frame out:                       {}",
        summary(&pick(&|f| f.barge_flush_ms, Some(true)), "ms")
    );
    println!(
        "    agent frames with sound after the flush:       {}",
        histogram(&counts(&|f| f.barge_sound_after_flush, Some(true)))
    );
    println!("  takeback (a second into the reply):");
    println!("    command -> first desk-tone frame:              {}", summary(&pick(&|f| f.takeback_ms, None), "ms"));
    println!(
        "    handoff event (to human) -> that frame:        {}",
        summary(&pick(&|f| f.takeback_after_event_ms, None), "ms")
    );
    println!(
        "    command -> desk's log 'back with the desk':    {}",
        summary(&pick(&|f| f.takeback_log_ms, None), "ms")
    );
    println!(
        "    that log line -> the first desk-tone frame:    {}",
        summary(&pick(&|f| f.takeback_log_to_frame_ms, None), "ms")
    );
    println!("    frames at the switch (before->after):          {}", kinds(&|f| f.takeback_boundary));
    println!("    RTP seq/timestamp continuous at the switch:    {}", flags(&|f| f.takeback_continuous));
    println!(
        "    frames from the agent's last sound to the desk: {}",
        histogram(&counts(&|f| f.takeback_gap_frames, None))
    );
}

// ---------------------------------------------------------------------------------------------
// (b) CPU per AI call.

#[derive(Debug, Clone, Copy, Default)]
struct ProcSample {
    ticks: u64,
    hwm_kb: u64,
    rss_kb: u64,
}

fn stat_ticks(path: &str) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are the 14th and 15th fields, 11 and 12 after the state field.
    field(11) + field(12)
}

fn sample(pid: u32) -> ProcSample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
    };
    ProcSample { ticks: stat_ticks(&format!("/proc/{pid}/stat")), hwm_kb: kb("VmHWM:"), rss_kb: kb("VmRSS:") }
}

/// CPU ticks of the process's threads named `name`.
fn thread_ticks(pid: u32, name: &str) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let dir = entry.path();
        if std::fs::read_to_string(dir.join("comm")).unwrap_or_default().trim() == name {
            total += stat_ticks(&dir.join("stat").display().to_string());
        }
    }
    total
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

#[derive(Debug, Clone, Copy)]
struct CpuCost {
    /// The desk process, % of one core over the window.
    cpu: f64,
    /// Its `agent-local` threads, % of one core.
    agent: f64,
    /// CPU seconds from the handoff command to the `handoff` event.
    load_s: f64,
    /// VmHWM before the window and at its end, MB.
    hwm_before_mb: f64,
    hwm_after_mb: f64,
    /// VmRSS at the end of the window, and 2 s after the takeback (or the same moment).
    rss_mb: f64,
    rss_later_mb: f64,
}

fn cpu_call(handover: bool, question: &Path) -> Option<CpuCost> {
    let mut r = rig(CPU_SECS as u32 + 40, None, &[("RUST_LOG", "warn")]);
    let pid = r.desk.pid();
    std::thread::sleep(Duration::from_secs(2));
    let (s0, t0) = (sample(pid), Instant::now());
    let mut load_s = 0.0;
    if handover {
        r.send(1, "handoff");
        r.handoff_event(1, "ai")?;
        load_s = sample(pid).ticks.saturating_sub(s0.ticks) as f64 / ticks_per_second();
    }
    std::thread::sleep((t0 + CPU_QUESTION_AT).saturating_duration_since(Instant::now()));
    r.ask(question);
    std::thread::sleep((t0 + Duration::from_secs(CPU_SECS)).saturating_duration_since(Instant::now()));
    let (s1, agent, secs) = (sample(pid), thread_ticks(pid, "agent-local"), t0.elapsed().as_secs_f64());
    if handover {
        let answered = next(&mut r.desk, Duration::from_secs(1), |v| {
            v["event"] == "transcript" && v["speaker"] == "ai" && v["text"].as_str().is_some_and(|t| t.contains("bill"))
        });
        if answered.is_none() {
            eprintln!("ai_handoff: the agent did not answer the question in the CPU call");
        }
    }
    if handover {
        r.send(2, "takeback");
        let _ = r.handoff_event(2, "human");
    }
    std::thread::sleep(Duration::from_secs(2));
    let later = sample(pid);
    let closed = r.phone.events().iter().any(|e| e["type"] == "CALL_CLOSED");
    r.phone.hangup();
    let _ = r.desk.terminate(Duration::from_secs(5));
    if closed {
        eprintln!("ai_handoff: the call closed inside the window; skipped");
        return None;
    }
    let pct = |ticks: u64| ticks as f64 / ticks_per_second() / secs * 100.0;
    Some(CpuCost {
        cpu: pct(s1.ticks.saturating_sub(s0.ticks)),
        agent: pct(agent),
        load_s,
        hwm_before_mb: s0.hwm_kb as f64 / 1024.0,
        hwm_after_mb: s1.hwm_kb as f64 / 1024.0,
        rss_mb: s1.rss_kb as f64 / 1024.0,
        rss_later_mb: later.rss_kb as f64 / 1024.0,
    })
}

fn run_cpu(question: &Path) {
    let rounds = rounds();
    let (mut ai, mut desk) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        for handover in [true, false] {
            eprintln!("ai_handoff: CPU round {round}/{rounds}, {}", if handover { "handed to the AI" } else { "not" });
            if let Some(c) = cpu_call(handover, question) {
                eprintln!("  {c:?}");
                if handover { &mut ai } else { &mut desk }.push(c);
            }
        }
    }
    let pick = |v: &[CpuCost], f: fn(&CpuCost) -> f64| v.iter().map(f).collect::<Vec<f64>>();
    println!(
        "(b) the desk process over {CPU_SECS} s of a PCMU call (file endpoint; the caller asks at {} s), {rounds} \
         rounds, median (min-max):",
        CPU_QUESTION_AT.as_secs()
    );
    println!(
        "  handed to the AI at 0 s: CPU {}% of a core, of which the agent's thread {}%; loading the agent {} CPU-s; \
         VmHWM {} MB before, {} MB after; VmRSS {} MB at the end, {} MB 2 s after the takeback",
        spread(&pick(&ai, |c| c.cpu), 2),
        spread(&pick(&ai, |c| c.agent), 2),
        spread(&pick(&ai, |c| c.load_s), 2),
        spread(&pick(&ai, |c| c.hwm_before_mb), 1),
        spread(&pick(&ai, |c| c.hwm_after_mb), 1),
        spread(&pick(&ai, |c| c.rss_mb), 1),
        spread(&pick(&ai, |c| c.rss_later_mb), 1)
    );
    println!(
        "  not handed over:         CPU {}% of a core; VmHWM {} MB; VmRSS {} MB",
        spread(&pick(&desk, |c| c.cpu), 2),
        spread(&pick(&desk, |c| c.hwm_after_mb), 1),
        spread(&pick(&desk, |c| c.rss_mb), 1)
    );
}

// ---------------------------------------------------------------------------------------------
// (c) The core's parts.

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed().as_secs_f64() * 1000.0)
}

/// `text` cut after each `.`, `?` or `!` (as the local agent speaks it).
fn sentences(text: &str) -> Vec<String> {
    text.split_inclusive(['.', '?', '!']).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

fn parts() {
    const RUNS: usize = 5;
    println!("(c) the core's parts, in this process ({RUNS} runs each, median (min-max)):");
    let model = SpeechModel::default();
    let script = DialogScript::sample();
    let agent: Vec<f64> = (0..RUNS).map(|_| timed(|| LocalAgent::sample().expect("local agent")).1).collect();
    let grammar = Grammar::for_script(&script);
    let lexicon = grammar.lexicon(&model).expect("lexicon");
    let rec: Vec<f64> =
        (0..RUNS).map(|_| timed(|| Recognizer::new(&model, &grammar, &lexicon).expect("recogniser")).1).collect();
    println!(
        "  handoff: LocalAgent::sample() (grammar, dictionary scan) {} ms; Recognizer::new (model load) {} ms",
        spread(&agent, 1),
        spread(&rec, 1)
    );
    let reply = &script.intents.iter().find(|i| i.name == "billing").expect("billing intent").reply;
    for text in sentences(&script.greeting).iter().chain(sentences(reply).iter()) {
        let _ = sipdesk_core::agent::tts::synthesize(text);
        let runs: Vec<(f64, f64, f64)> = (0..RUNS)
            .map(|_| {
                let (speech, t) = timed(|| sipdesk_core::agent::tts::synthesize(text).expect("flite"));
                let hz = f64::from(speech.rate.hz());
                let lead = speech.samples.iter().position(|s| i32::from(*s).abs() >= SILENT_PEAK).unwrap_or(0);
                (t, speech.samples.len() as f64 / hz * 1000.0, lead as f64 / hz * 1000.0)
            })
            .collect();
        println!(
            "  flite {text:?}: {} ms for {} ms of audio, starting after {} ms of silence",
            spread(&runs.iter().map(|r| r.0).collect::<Vec<_>>(), 1),
            spread(&runs.iter().map(|r| r.1).collect::<Vec<_>>(), 0),
            spread(&runs.iter().map(|r| r.2).collect::<Vec<_>>(), 0)
        );
    }
    // The question as the desk hears it: 8 kHz, G.711-coded, 20 ms frames, after 1.5 s (as in a
    // barge-in) or 7 s (after the greeting) of the caller's silence.
    let speech = sipdesk_core::agent::tts::synthesize(QUESTION).expect("flite");
    let question: Vec<i16> = resample(&speech.samples, speech.rate.hz(), 8000);
    let mut all_frames = Vec::new();
    for (lead, vad, label) in [
        (1.5, VadConfig::default(), "after 1.5 s of silence"),
        (7.0, VadConfig::default(), "after 7 s of silence"),
        (1.5, VadConfig { end_silence_ms: 200, ..VadConfig::default() }, "after 1.5 s, end_silence_ms 200"),
        (1.5, VadConfig { start_threshold: 0.7, ..VadConfig::default() }, "after 1.5 s, start_threshold 0.7"),
        (1.5, VadConfig { start_threshold: 0.6, ..VadConfig::default() }, "after 1.5 s, start_threshold 0.6"),
    ] {
        let r = replay(&model, &grammar, &lexicon, &question, lead, vad, RUNS);
        println!(
            "  the ear on the question {label} ({:.0} ms of speech, heard as {:?}): its start found {} ms after the \
             first sound, its end {} ms after the last (audio time, to the end of the 20 ms frame that finds it); \
             that frame takes {} us (the final search)",
            r.speech_ms,
            r.text,
            spread(&r.start, 0),
            spread(&r.stop, 0),
            spread(&r.final_us, 0)
        );
        if vad.start_threshold != VadConfig::default().start_threshold {
            // As agent/vad.rs's test: 2 s of white noise at three levels must start nothing.
            let mut seg = Segmenter::new(vad);
            let starts: usize = [300, 3000, 12000]
                .iter()
                .map(|amp| seg.push(&noise(32000, *amp, *amp as u32)))
                .map(|events| events.iter().filter(|e| matches!(e, VadEvent::Started(_))).count())
                .sum();
            println!("    with it, 2 s of white noise at peaks 300, 3000 and 12000 start {starts} utterance(s)");
        }
        if label.ends_with("7 s of silence") {
            all_frames = r.frames;
        }
    }
    let mut us: Vec<f64> = all_frames.iter().map(|f| f.1).collect();
    us.sort_by(f64::total_cmp);
    let mean = us.iter().sum::<f64>() / us.len() as f64;
    let mut worst = all_frames.clone();
    worst.sort_by(|a, b| b.1.total_cmp(&a.1));
    let worst: Vec<String> = worst.iter().take(4).map(|(what, t)| format!("{t:.0} us ({what})")).collect();
    println!(
        "  the ear per 20 ms frame: mean {:.0} us ({:.2}% of a core), p99 {:.0} us; slowest {}",
        mean,
        mean / 20_000.0 * 100.0,
        us[(us.len() * 99 / 100).min(us.len() - 1)],
        worst.join(", ")
    );
    sessions(&question);
}

/// Whole local-agent sessions in this process, as the desk runs them (the session's thread,
/// its channels): each greets, hears the question in paced 20 ms frames and answers; then it is
/// closed. This process's VmRSS after the first and after the last shows what a session keeps.
fn sessions(question8k: &[i16]) {
    let n = env_count("SIPDESK_BENCH_SESSIONS", 30);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let own_rss = || sample(std::process::id()).rss_kb as f64 / 1024.0;
    let mut audio: Vec<i16> = vec![0; 4000];
    audio.extend_from_slice(question8k);
    audio.extend(vec![0i16; 8000]);
    let (mut rss, mut answered, mut wall) = (Vec::new(), 0, Vec::new());
    rss.push(own_rss());
    rt.block_on(async {
        for _ in 0..n {
            let t = Instant::now();
            let agent = LocalAgent::sample().expect("local agent");
            let session = agent.open(SessionConfig::default()).await.expect("session");
            let (inputs, mut events) = session.split();
            for frame in audio.chunks(160) {
                let _ = inputs.send_audio(AgentAudio::Pcm { rate: SampleRate::Hz8000, samples: frame.to_vec() });
                // Faster than real time, slow enough for the session's input queue.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let until = tokio::time::Instant::now() + Duration::from_secs(10);
            while let Ok(Some(ev)) = tokio::time::timeout_at(until, events.recv()).await {
                if matches!(&ev, AgentEvent::AgentTranscript { text } if text.contains("bill")) {
                    answered += 1;
                    break;
                }
            }
            let _ = inputs.close().await;
            while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
                if ev == AgentEvent::Closed {
                    break;
                }
            }
            drop(events);
            wall.push(t.elapsed().as_secs_f64() * 1000.0);
            rss.push(own_rss());
        }
    });
    println!(
        "  {n} local-agent sessions one after another ({answered} answered the question; {} ms each): this \
         process's VmRSS {:.1} MB before, {:.1} after the first, {:.1} after the 2nd, {:.1} after the last \
         ({:+.0} kB a session over the last {})",
        spread(&wall, 0),
        rss[0],
        rss[1],
        rss[2.min(n)],
        rss[n],
        (rss[n] - rss[2.min(n)]) * 1024.0 / (n.saturating_sub(2).max(1)) as f64,
        n.saturating_sub(2)
    );
}

/// Deterministic white noise (a linear congruential generator), peak about `amp`.
fn noise(n: usize, amp: i32, seed: u32) -> Vec<i16> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((x >> 16) as i32 % (2 * amp + 1) - amp) as i16
        })
        .collect()
}

/// What replaying the question through an ear showed.
struct Replay {
    speech_ms: f64,
    text: Option<String>,
    /// Audio ms from the first sound to the end of the frame that started the utterance.
    start: Vec<f64>,
    /// Audio ms from the last sound to the end of the frame that ended it.
    stop: Vec<f64>,
    final_us: Vec<f64>,
    /// Every frame's wall time, us, with what the frame was.
    frames: Vec<(String, f64)>,
}

fn replay(
    model: &SpeechModel,
    grammar: &Grammar,
    lexicon: &str,
    question: &[i16],
    lead_s: f64,
    vad: VadConfig,
    runs: usize,
) -> Replay {
    let mut pcm = vec![0i16; (lead_s * 8000.0) as usize];
    pcm.extend_from_slice(question);
    pcm.extend(vec![0i16; 16000]);
    let pcm: Vec<i16> = pcm.iter().map(|s| Law::Mu.decode(Law::Mu.encode(*s))).collect();
    let first_loud = pcm.iter().position(|s| i32::from(*s).abs() >= SILENT_PEAK).unwrap_or(0);
    let last_loud = pcm.iter().rposition(|s| i32::from(*s).abs() >= SILENT_PEAK).unwrap_or(0);
    let mut r = Replay {
        speech_ms: (last_loud - first_loud) as f64 / 8.0,
        text: None,
        start: vec![],
        stop: vec![],
        final_us: vec![],
        frames: vec![],
    };
    for _ in 0..runs {
        let rec = Recognizer::new(model, grammar, lexicon).expect("recogniser");
        let mut ear = Ear::new(rec, vad);
        let mut in_speech = false;
        for (n, frame) in pcm.chunks(160).enumerate() {
            let end_ms = ((n + 1) * 160) as f64 / 8.0;
            let audio = AgentAudio::Pcm { rate: SampleRate::Hz8000, samples: frame.to_vec() };
            let (heard, t) = timed(|| ear.hear(&audio));
            let mut what = if n == 0 {
                "the first frame"
            } else if in_speech {
                "speech"
            } else {
                "silence"
            };
            for h in heard {
                match h {
                    Heard::Started => {
                        r.start.push(end_ms - first_loud as f64 / 8.0);
                        in_speech = true;
                        what = "the start";
                    }
                    Heard::Partial(_) => what = "a partial result",
                    Heard::Stopped => {
                        r.stop.push(end_ms - last_loud as f64 / 8.0);
                        in_speech = false;
                    }
                    Heard::Final(text) => {
                        r.final_us.push(t * 1000.0);
                        r.text = text;
                        what = "the end";
                    }
                    Heard::Unclear(_) => {
                        // Words but no sentence: the utterance ended all the same.
                        r.final_us.push(t * 1000.0);
                        r.text = None;
                        what = "the end";
                    }
                    Heard::Failed(_) => {}
                }
            }
            r.frames.push((what.to_string(), t * 1000.0));
        }
    }
    r
}

fn main() {
    // `SIPDESK_BENCH_PARTS=c` (or `ab`, ...) runs only those parts.
    let only = std::env::var("SIPDESK_BENCH_PARTS").unwrap_or_else(|_| "abc".into());
    if only.contains('c') {
        parts();
        println!();
    }
    if !(only.contains('a') || only.contains('b')) {
        return;
    }
    let mut needed = vec![];
    needed.extend_from_slice(baresip::PROGRAMS);
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("bench_ai_handoff", &needed) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let question = dir.path().join("question.wav");
    spoken_wav(&question, QUESTION, 0.3, 60.0);
    if only.contains('a') {
        if let Some((logs, figs, notes)) = run_cycles(&question) {
            print_cycles(&logs, &figs, &notes);
        }
        println!();
    }
    if only.contains('b') {
        run_cpu(&question);
    }
}
