//! Registration figures (printed, never asserted): launch of `sipdesk run` to `registered`
//! against a loopback Kamailio, median of 20 runs per transport; and REGISTER requests built,
//! serialised and parsed per second through the core's own code path.
//! Run with `bash scripts/bench.sh` (it builds the release binary first).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sipdesk_core::sip::request::{self, RegisterParams};
use sipdesk_core::store::{env_account, Protocol};
use sipdesk_e2e::kamailio::{Config, Kamailio};

const RUNS: usize = 20;

fn main() {
    if !sipdesk_e2e::require_programs("bench", sipdesk_e2e::kamailio::PROGRAMS) {
        return;
    }
    println!("sipdesk: {}", sipdesk_e2e::sipdesk::bin().display());
    for proto in ["udp", "tcp"] {
        launch_to_registered(proto);
    }
    register_codec();
}

fn launch_to_registered(proto: &str) {
    let k = Kamailio::start(&Config::default());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    sipdesk_e2e::sipdesk::add_account(
        &db,
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &k.port.to_string(),
            "--user",
            "1001",
            "--protocol",
            proto,
            "--interval",
            "60",
            "--activate",
        ],
        "pw-1001",
    );
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let mut child = sipdesk_e2e::sipdesk::command(&db)
            .args(["run", "--json", "--audio", "null"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        for line in out.lines() {
            let line = line.unwrap();
            if line.contains("\"event\":\"registration\"") && line.contains("\"state\":\"registered\"") {
                times.push(start.elapsed());
                break;
            }
        }
        // SIGTERM, and wait for the unregistration so the next run starts clean.
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let _ = child.wait();
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "launch to registered ({proto}, {} runs): median {:.1} ms, min {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        times.len(),
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() * 9 / 10]),
        ms(times[times.len() - 1])
    );
}

fn register_codec() {
    let account = env_account(|k| match k {
        "SIP_SERVER_HOST" => Some("pbx.example.com".into()),
        "SIP_USERNAME" => Some("1001".into()),
        "SIP_PASSWORD" => Some("pw".into()),
        _ => None,
    })
    .unwrap()
    .unwrap();
    let local: SocketAddr = "192.0.2.10:5060".parse().unwrap();
    let contact = request::contact_uri(&account, local, Protocol::Udp);
    let auth = r#"Digest username="1001", realm="pbx.example.com", nonce="abcdef0123456789", uri="sip:pbx.example.com", response="0123456789abcdef0123456789abcdef", algorithm=MD5, cnonce="xyz", qop=auth, nc=00000001"#;
    let build = || {
        let branch = request::branch();
        let p = RegisterParams {
            account: &account,
            local,
            proto: Protocol::Udp,
            contact: &contact,
            call_id: "bench-call-id@sipdesk",
            from_tag: "tag1",
            cseq: 2,
            expires: 3600,
            branch: &branch,
            auth: Some(("Authorization", auth)),
        };
        request::register(&p).unwrap().to_string()
    };
    let sample = build();
    println!("REGISTER size: {} bytes", sample.len());
    let per_sec = |f: &dyn Fn() -> usize| {
        let start = Instant::now();
        let mut n = 0u64;
        let mut sink = 0usize;
        while start.elapsed() < Duration::from_secs(2) {
            sink = sink.wrapping_add(f());
            n += 1;
        }
        std::hint::black_box(sink);
        n as f64 / start.elapsed().as_secs_f64()
    };
    let built = per_sec(&|| build().len());
    let parsed = per_sec(&|| rsip::SipMessage::try_from(sample.as_str()).map(|m| m.body().len() + 1).unwrap());
    let both = per_sec(&|| rsip::SipMessage::try_from(build().as_str()).map(|m| m.body().len() + 1).unwrap());
    println!("REGISTER built and serialised: {built:.0}/s; parsed: {parsed:.0}/s; built+serialised+parsed: {both:.0}/s (one core)");
}
