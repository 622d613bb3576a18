//! What one call costs the callee, sipdesk against baresip in the same run (printed, never
//! asserted). Run with `bash scripts/bench.sh`.
//!
//! Every call has a baresip caller (plays a tone WAV, dials through a loopback Kamailio) and one
//! of these callees, each answering at once and playing a tone back for the whole call:
//! - `sipdesk run --auto-answer --audio file:IN.wav,OUT.wav` (the release binary; its file
//!   endpoint runs at the codec's rate, 48 kHz for Opus, and plays a WAV at that rate);
//! - the same with `--audio device` on a private PipeWire (null sinks as the headset);
//! - baresip 1.0.0 (aufile plays a WAV at the codec's rate, sndfile records both directions),
//!   the reference: the issue quotes 3.4% of a core and 13.3 MB for its Opus callee.
//!
//! The callee's CPU (user + sys over all its threads, `/proc/PID/stat` fields 14-15) is read
//! over [`CALL_SECS`] of established call, starting [`SETTLE`] after the call became active;
//! memory is the peak resident set (`VmHWM`) and the resident set at the end of that window
//! (`VmRSS`) from `/proc/PID/status`. Calls are interleaved and repeated ([`rounds`]) so a
//! burst of load from something else on the machine hits every kind alike; each row prints the
//! median and the range over the rounds. The PipeWire daemons' own CPU during a device call is
//! printed beside it: it is what the audio system spends for sipdesk, outside its process.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use sipdesk_e2e::audio::write_tone_wav;
use sipdesk_e2e::baresip::{self, Baresip, BaresipConfig};
use sipdesk_e2e::kamailio::{self, Config, Kamailio};
use sipdesk_e2e::pipewire::{self, PipeWire};
use sipdesk_e2e::sipdesk::{add_account, Running};

/// Length of the measured window of each call.
const CALL_SECS: u64 = 20;
/// Time between the call becoming active and the start of the window.
const SETTLE: Duration = Duration::from_secs(2);
/// Level of every tone played.
const LEVEL_DBFS: f64 = -12.0;

/// Rounds of calls: `SIPDESK_BENCH_ROUNDS`, default 3.
fn rounds() -> usize {
    std::env::var("SIPDESK_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(3)
}

/// CPU ticks (user + sys) and memory (kB) of a process at one moment.
#[derive(Debug, Clone, Copy)]
struct ProcSample {
    ticks: u64,
    hwm_kb: u64,
    rss_kb: u64,
}

fn sample(pid: u32) -> ProcSample {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
    };
    // utime and stime are the 14th and 15th fields, 11 and 12 after the state field.
    ProcSample { ticks: field(11) + field(12), hwm_kb: kb("VmHWM:"), rss_kb: kb("VmRSS:") }
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

fn pid_of(pattern: &str) -> u32 {
    let out = std::process::Command::new("pgrep").args(["-f", pattern]).output().expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no process matches {pattern}"))
}

/// Processes whose environment names `runtime_dir` as `XDG_RUNTIME_DIR`: the rig's daemons.
fn pids_with_runtime_dir(runtime_dir: &Path) -> Vec<u32> {
    let needle = format!("XDG_RUNTIME_DIR={}", runtime_dir.display());
    let me = std::process::id();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if !matches!(comm.trim(), "pipewire" | "pipewire-pulse" | "wireplumber") {
            continue;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Callee {
    DeskFile,
    DeskDevice,
    Baresip,
}

impl Callee {
    fn label(self) -> &'static str {
        match self {
            Callee::DeskFile => "sipdesk, file endpoint",
            Callee::DeskDevice => "sipdesk, audio device (PipeWire null sink)",
            Callee::Baresip => "baresip 1.0.0, aufile + sndfile",
        }
    }
}

/// What one call cost.
#[derive(Debug, Clone, Copy)]
struct Cost {
    /// Callee's CPU, % of one core.
    cpu: f64,
    /// Callee's peak RSS, MB.
    hwm_mb: f64,
    /// Callee's RSS at the end of the window, MB.
    rss_mb: f64,
    /// The caller baresip's CPU, % of one core.
    caller_cpu: f64,
    /// The PipeWire daemons' CPU (device calls), % of one core.
    audio_system_cpu: Option<f64>,
}

fn cpu_percent(a: ProcSample, b: ProcSample, secs: f64) -> f64 {
    b.ticks.saturating_sub(a.ticks) as f64 / ticks_per_second() / secs * 100.0
}

/// One call from a baresip caller to `callee` with `codec` (baresip's spelling).
fn one_call(codec: &'static str, callee: Callee, audio: Option<&PipeWire>) -> Option<Cost> {
    let k = Kamailio::start(&Config {
        users: vec![
            ("1001".into(), "pw-1001".into()),
            ("2001".into(), "pw-2001".into()),
            ("3001".into(), "pw-3001".into()),
        ],
        max_expires: 3600,
        ..Config::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let rate = baresip::codec_rate(codec);
    let wav_secs = (CALL_SECS + 15) as f64;
    let caller_wav = dir.path().join("caller.wav");
    write_tone_wav(&caller_wav, 1020.0, rate, wav_secs, LEVEL_DBFS, 0.0);
    let mut caller = Baresip::start(&BaresipConfig {
        user: "2001".into(),
        password: "pw-2001".into(),
        registrar_port: k.port,
        codec,
        auto_answer: false,
        play_wav: Some(caller_wav),
        record_dir: dir.path().join("caller-rec"),
        register_interval: 3600,
        ..BaresipConfig::default()
    });
    caller.wait_registered(Duration::from_secs(10));
    let caller_pid = pid_of(&caller.dir().display().to_string());

    let mut desk: Option<Running> = None;
    let mut talking = None;
    let mut phone: Option<Baresip> = None;
    let callee_user = match callee {
        Callee::DeskFile | Callee::DeskDevice => {
            let db = dir.path().join("desk.db");
            let id = add_account(
                &db,
                &[
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &k.port.to_string(),
                    "--user",
                    "1001",
                    "--interval",
                    "3600",
                    "--activate",
                ],
                "pw-1001",
            );
            let desk_codecs = if codec.starts_with("opus") { "opus,pcmu,pcma" } else { "pcmu,pcma" };
            let mut env: Vec<(&str, String)> =
                vec![("SIPDESK_CODECS", desk_codecs.into()), ("RUST_LOG", "warn".into())];
            let audio_arg = if callee == Callee::DeskFile {
                let desk_wav = dir.path().join("desk.wav");
                // At the codec's rate, as baresip's aufile gets it: neither side converts.
                write_tone_wav(&desk_wav, 1400.0, rate, wav_secs, LEVEL_DBFS, 0.0);
                format!("file:{},{}", desk_wav.display(), dir.path().join("desk-heard.wav").display())
            } else {
                let rig = audio.expect("a PipeWire rig for device calls");
                // The agent talks: a tone into the microphone for the whole call.
                let talk = dir.path().join("talk.wav");
                write_tone_wav(&talk, 700.0, 48000, wav_secs, LEVEL_DBFS, 0.0);
                talking = Some(rig.play("mic", &talk));
                env.extend(rig.env());
                "device".to_string()
            };
            let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let mut run = Running::start(&db, &["--auto-answer", "--audio", &audio_arg], &env_ref);
            run.wait_for("registered", Duration::from_secs(10), move |v: &Value| {
                v["event"] == "registration" && v["account_id"] == id && v["state"] == "registered"
            });
            desk = Some(run);
            "1001"
        }
        Callee::Baresip => {
            let wav = dir.path().join("callee.wav");
            write_tone_wav(&wav, 1400.0, rate, wav_secs, LEVEL_DBFS, 0.0);
            let mut p = Baresip::start(&BaresipConfig {
                user: "3001".into(),
                password: "pw-3001".into(),
                registrar_port: k.port,
                codec,
                auto_answer: true,
                play_wav: Some(wav),
                record_dir: dir.path().join("callee-rec"),
                register_interval: 3600,
                ..BaresipConfig::default()
            });
            p.wait_registered(Duration::from_secs(10));
            phone = Some(p);
            "3001"
        }
    };
    caller.dial(&format!("sip:{callee_user}@127.0.0.1:{}", k.port));
    let callee_pid = if let Some(run) = desk.as_mut() {
        let active =
            run.wait_for("active", Duration::from_secs(10), |v| v["event"] == "call" && v["state"] == "active");
        let want = codec.split('/').next().unwrap_or(codec).to_uppercase();
        if active["codec"] != want.as_str() {
            eprintln!("media_cost: the call runs {} where {want} was wanted; skipped", active["codec"]);
            return None;
        }
        run.pid()
    } else {
        let p = phone.as_mut().expect("a baresip callee");
        p.wait_event("CALL_ESTABLISHED", Duration::from_secs(10));
        pid_of(&p.dir().display().to_string())
    };
    caller.wait_event("CALL_ESTABLISHED", Duration::from_secs(10));
    let daemons = audio.filter(|_| callee == Callee::DeskDevice).map(|a| pids_with_runtime_dir(&a.runtime_dir()));

    std::thread::sleep(SETTLE);
    let sample_daemons = || daemons.as_ref().map(|d| d.iter().map(|p| sample(*p).ticks).sum::<u64>());
    let (c0, r0, d0, t0) = (sample(callee_pid), sample(caller_pid), sample_daemons(), Instant::now());
    std::thread::sleep(Duration::from_secs(CALL_SECS));
    let (c1, r1, d1, secs) = (sample(callee_pid), sample(caller_pid), sample_daemons(), t0.elapsed().as_secs_f64());
    let closed = caller.events().iter().any(|e| e["type"] == "CALL_CLOSED");
    if closed {
        eprintln!("media_cost: the call closed inside the window ({codec}, {}); skipped", callee.label());
        return None;
    }
    let cost = Cost {
        cpu: cpu_percent(c0, c1, secs),
        hwm_mb: c1.hwm_kb as f64 / 1024.0,
        rss_mb: c1.rss_kb as f64 / 1024.0,
        caller_cpu: cpu_percent(r0, r1, secs),
        audio_system_cpu: d0.zip(d1).map(|(a, b)| b.saturating_sub(a) as f64 / ticks_per_second() / secs * 100.0),
    };
    if let Some(run) = desk {
        let _ = run.terminate(Duration::from_secs(5));
    }
    if let Some(mut p) = phone {
        p.stop();
    }
    caller.stop();
    drop(talking);
    Some(cost)
}

/// "median (min-max)" of `values`.
fn spread(values: &[f64], digits: usize) -> String {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return "-".into();
    }
    let med = median(&v);
    if v.len() == 1 {
        return format!("{med:.digits$}");
    }
    format!("{med:.digits$} ({:.digits$}-{:.digits$})", v[0], v[v.len() - 1])
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn main() {
    let mut needed = vec!["pgrep"];
    needed.extend_from_slice(baresip::PROGRAMS);
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("bench_media_cost", &needed) {
        return;
    }
    let rig = if sipdesk_e2e::webdriver::have_program("pipewire")
        && pipewire::PROGRAMS.iter().all(|p| sipdesk_e2e::webdriver::have_program(p))
    {
        let rig = PipeWire::start();
        rig.null_sink("mic", 48000);
        rig.null_sink("spk", 48000);
        rig.set_default_sink("spk");
        rig.set_default_source("mic.monitor");
        Some(rig)
    } else {
        eprintln!("media_cost: no PipeWire (scripts/deps.sh test installs it): the device rows are left out");
        None
    };
    let audio = rig.as_ref();

    let mut kinds: Vec<(&'static str, Callee)> = vec![
        ("opus/48000/2", Callee::DeskFile),
        ("opus/48000/2", Callee::Baresip),
        ("pcmu", Callee::DeskFile),
        ("pcmu", Callee::Baresip),
    ];
    if audio.is_some() {
        kinds.insert(2, ("opus/48000/2", Callee::DeskDevice));
        kinds.push(("pcmu", Callee::DeskDevice));
    }
    let rounds = rounds();
    let mut results: Vec<Vec<Cost>> = vec![Vec::new(); kinds.len()];
    for round in 1..=rounds {
        for (i, (codec, callee)) in kinds.iter().enumerate() {
            eprintln!("media_cost: round {round}/{rounds}, {codec}, callee {}", callee.label());
            if let Some(c) = one_call(codec, *callee, audio) {
                eprintln!("  {c:?}");
                results[i].push(c);
            }
        }
    }

    println!(
        "Callee's cost of one call ({CALL_SECS} s window, {rounds} rounds, median (min-max)); the caller is baresip \
         playing a tone; every callee plays a tone back and the file endpoints record:"
    );
    for (i, (codec, callee)) in kinds.iter().enumerate() {
        let r = &results[i];
        let pick = |f: fn(&Cost) -> f64| r.iter().map(f).collect::<Vec<f64>>();
        let codec_name = if codec.starts_with("opus") { "Opus" } else { "G.711 (PCMU)" };
        println!("  {codec_name}, {}:", callee.label());
        println!(
            "    CPU {}% of a core, VmHWM {} MB, VmRSS {} MB (caller baresip: CPU {}%)",
            spread(&pick(|c| c.cpu), 2),
            spread(&pick(|c| c.hwm_mb), 1),
            spread(&pick(|c| c.rss_mb), 1),
            spread(&pick(|c| c.caller_cpu), 2)
        );
        if r.iter().any(|c| c.audio_system_cpu.is_some()) {
            println!(
                "    PipeWire daemons during the call (outside sipdesk): CPU {}% of a core",
                spread(&r.iter().filter_map(|c| c.audio_system_cpu).collect::<Vec<f64>>(), 2)
            );
        }
    }
    for codec in ["opus/48000/2", "pcmu"] {
        let of = |who: Callee| {
            kinds.iter().position(|(c, k)| *c == codec && *k == who).map(|i| results[i].clone()).unwrap_or_default()
        };
        let (desk, bare) = (of(Callee::DeskFile), of(Callee::Baresip));
        let mut cpu: Vec<f64> = desk.iter().map(|c| c.cpu).collect();
        let mut bcpu: Vec<f64> = bare.iter().map(|c| c.cpu).collect();
        let mut hwm: Vec<f64> = desk.iter().map(|c| c.hwm_mb).collect();
        let mut bhwm: Vec<f64> = bare.iter().map(|c| c.hwm_mb).collect();
        for v in [&mut cpu, &mut bcpu, &mut hwm, &mut bhwm] {
            v.sort_by(f64::total_cmp);
        }
        if cpu.is_empty() || bcpu.is_empty() {
            continue;
        }
        // Round by round (both measured minutes apart at most), then the ratio of the medians.
        let per_round: Vec<f64> = desk.iter().zip(&bare).map(|(d, b)| d.cpu / b.cpu).collect();
        println!(
            "  {}: sipdesk/baresip CPU ratio {:.2} (per round {}), VmHWM ratio {:.2}",
            if codec.starts_with("opus") { "Opus" } else { "G.711" },
            median(&cpu) / median(&bcpu),
            per_round.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", "),
            median(&hwm) / median(&bhwm)
        );
    }
}
