//! The AI tests' call: Kamailio with the desk's user 1001 and the phone's 2001, a baresip
//! caller that plays a WAV and records what it hears (PCMU), and `sipdesk run` answering it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::baresip::{Baresip, BaresipConfig};
use crate::kamailio::{Config, Kamailio};
use crate::sipdesk::{add_account, Running};

/// A call from the phone to the desk, up and answered.
pub struct CallerRig {
    /// The registrar.
    pub k: Kamailio,
    /// The caller.
    pub phone: Baresip,
    /// The desk.
    pub desk: Running,
    /// The desk's id of the call.
    pub call_id: String,
    /// The desk's database.
    pub db: PathBuf,
    /// Scratch folder: `caller.wav`, the phone's recordings in `rec/`, the desk's files.
    pub dir: tempfile::TempDir,
}

impl CallerRig {
    /// Starts the registrar and the phone, which plays what `caller_wav` writes to the path it
    /// is given; stores account 1001 and runs `setup` on the desk's database and scratch folder;
    /// starts `sipdesk run` with `run` (each `{dir}` replaced by the scratch folder); has the
    /// phone call the desk and returns once the call is active on both sides.
    pub fn start(caller_wav: impl FnOnce(&Path), setup: impl FnOnce(&Path, &Path), run: &[&str]) -> CallerRig {
        let k = Kamailio::start(&Config {
            users: vec![("1001".into(), "pw-1001".into()), ("2001".into(), "pw-2001".into())],
            max_expires: 60,
            ..Config::default()
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let wav = dir.path().join("caller.wav");
        caller_wav(&wav);
        let mut phone = Baresip::start(&BaresipConfig {
            user: "2001".into(),
            password: "pw-2001".into(),
            registrar_port: k.port,
            codec: "pcmu",
            play_wav: Some(wav),
            record_dir: dir.path().join("rec"),
            ..BaresipConfig::default()
        });
        phone.wait_registered(Duration::from_secs(10));
        let db = dir.path().join("desk.db");
        add_account(
            &db,
            &["--host", "127.0.0.1", "--port", &k.port.to_string(), "--user", "1001", "--interval", "60", "--activate"],
            "pw-1001",
        );
        setup(&db, dir.path());
        let folder = dir.path().display().to_string();
        let run: Vec<String> = run.iter().map(|a| a.replace("{dir}", &folder)).collect();
        let run: Vec<&str> = run.iter().map(String::as_str).collect();
        let mut desk = Running::start(&db, &run, &[]);
        desk.wait_for("registered", Duration::from_secs(10), |v| {
            v["event"] == "registration" && v["state"] == "registered"
        });
        phone.dial(&format!("sip:1001@127.0.0.1:{}", k.port));
        let active =
            desk.wait_for("active", Duration::from_secs(10), |v| v["event"] == "call" && v["state"] == "active");
        let call_id = active["call_id"].as_str().expect("call_id").to_string();
        phone.wait_event("CALL_ESTABLISHED", Duration::from_secs(5));
        CallerRig { k, phone, desk, call_id, db, dir }
    }
}
