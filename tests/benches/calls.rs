//! Call cost against baresip in the same run (printed, never asserted): sipdesk (release build,
//! file endpoint) calls baresip (auto-answer, WAV source, sndfile recording) through a loopback
//! Kamailio; both play a tone for the whole call, and the CPU (user+sys) and RSS of each process
//! are read from /proc over 60 s of established call. Run with `bash scripts/bench.sh`.

use std::time::{Duration, Instant};

use serde_json::json;
use sipdesk_e2e::audio::write_tone_wav;
use sipdesk_e2e::baresip::{self, Baresip, BaresipConfig};
use sipdesk_e2e::kamailio::{self, Config, Kamailio};
use sipdesk_e2e::sipdesk::{add_account, Running};

const CALL_SECS: u64 = 60;

/// (user+sys clock ticks, RSS in kB) of a process.
fn sample(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    (ticks, rss)
}

fn pid_of(pattern: &str) -> u32 {
    let out = std::process::Command::new("pgrep").args(["-f", pattern]).output().expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no process matches {pattern}"))
}

fn main() {
    let mut needed = vec!["pgrep"];
    needed.extend_from_slice(baresip::PROGRAMS);
    needed.extend_from_slice(kamailio::PROGRAMS);
    if !sipdesk_e2e::require_programs("bench_calls", &needed) {
        return;
    }
    let k = Kamailio::start(&Config {
        users: vec![("1001".into(), "pw-1001".into()), ("2001".into(), "pw-2001".into())],
        max_expires: 3600,
        ..Config::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let phone_wav = dir.path().join("phone.wav");
    let desk_wav = dir.path().join("desk.wav");
    write_tone_wav(&phone_wav, 1020.0, 8000, (CALL_SECS + 15) as f64, -12.0, 0.0);
    write_tone_wav(&desk_wav, 1400.0, 8000, (CALL_SECS + 15) as f64, -12.0, 0.0);
    let mut phone = Baresip::start(&BaresipConfig {
        user: "2001".into(),
        password: "pw-2001".into(),
        registrar_port: k.port,
        codec: "pcmu",
        auto_answer: true,
        play_wav: Some(phone_wav),
        record_dir: dir.path().join("phone-rec"),
        register_interval: 3600,
        ..BaresipConfig::default()
    });
    phone.wait_registered(Duration::from_secs(10));
    let db = dir.path().join("bench.db");
    add_account(
        &db,
        &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", "1001", "--interval", "3600", "--activate"],
        "pw-1001",
    );
    let audio = format!("file:{},{}", desk_wav.display(), dir.path().join("desk-heard.wav").display());
    let mut desk = Running::start(&db, &["--audio", &audio], &[("RUST_LOG", "warn")]);
    desk.wait_for("registered", Duration::from_secs(10), |v| {
        v["event"] == "registration" && v["state"] == "registered"
    });
    desk.command(json!({"id": 1, "cmd": "dial", "uri": format!("sip:2001@127.0.0.1:{}", k.port)}));
    desk.wait_for("active", Duration::from_secs(10), |v| v["event"] == "call" && v["state"] == "active");
    let desk_pid = desk.pid();
    let phone_pid = pid_of(&phone.dir().display().to_string());
    // Let the call settle, then measure a 60 s window.
    std::thread::sleep(Duration::from_secs(2));
    let (d0, p0, t0) = (sample(desk_pid), sample(phone_pid), Instant::now());
    std::thread::sleep(Duration::from_secs(CALL_SECS));
    let (d1, p1, secs) = (sample(desk_pid), sample(phone_pid), t0.elapsed().as_secs_f64());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = |a: (u64, u64), b: (u64, u64)| (b.0 - a.0) as f64 / hz / secs * 100.0;
    let (dc, pc) = (cpu(d0, d1), cpu(p0, p1));
    println!("G.711 call, {secs:.0} s, both sides playing and recording a WAV:");
    println!("  sipdesk: CPU {dc:.2}% of a core, RSS {:.1} MB", d1.1 as f64 / 1024.0);
    println!("  baresip: CPU {pc:.2}% of a core, RSS {:.1} MB", p1.1 as f64 / 1024.0);
    println!("  sipdesk/baresip CPU ratio: {:.2}", if pc > 0.0 { dc / pc } else { f64::NAN });
    let _ = desk.terminate(Duration::from_secs(5));
    phone.stop();
}
