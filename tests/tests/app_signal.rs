//! The desktop app on SIGTERM (a logout, a service manager): it closes like its window does and
//! removes its registration from the real Kamailio registrar.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sipdesk_e2e::desk_rig::DeskRig;
use sipdesk_e2e::webdriver::{app_bin, Xvfb};

#[test]
fn sigterm_unregisters_the_app() {
    if !sipdesk_e2e::require_programs("app_signal", &["Xvfb", "dbus-run-session", "kamailio", "kamcmd", "sipp"]) {
        return;
    }
    let app = app_bin();
    if !app.is_file() {
        assert!(!sipdesk_e2e::in_ci(), "the app is not built: {}", app.display());
        eprintln!("SKIP app_signal: the app is not built");
        return;
    }
    let rig = DeskRig::new();
    let xvfb = Xvfb::start().expect("Xvfb");
    let home = rig.dir.path().join("home");
    let mut child = Command::new("dbus-run-session")
        .arg("--")
        .arg(&app)
        .env("DISPLAY", xvfb.display())
        .env("SIPDESK_DB", &rig.db)
        .env("SIPDESK_SECRET_STORE", "file")
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("NO_AT_BRIDGE", "1")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !rig.k.ul_dump().contains("AoR: 1001") {
        assert!(Instant::now() < deadline, "the app never registered");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The app is dbus-run-session's child: signal the app itself, not the bus it runs in.
    let out = Command::new("pgrep").args(["-P", &child.id().to_string(), "-x", "sipdesk-app"]).output().unwrap();
    let pids: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert!(!pids.is_empty(), "the app process is not found");
    for pid in &pids {
        let _ = Command::new("kill").args(["-TERM", pid]).status();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the app did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!rig.k.ul_dump().contains("AoR: 1001"), "the binding is still there: {}", rig.k.ul_dump());
}
