//! Harness for SipDesk's end-to-end tests: the built programs, the EVENTS.md schema, and the
//! real programs the tests start (WebKitWebDriver under Xvfb, Kamailio, SIPp) and the scripted
//! peer used for bad input and timing.

pub mod audio;
pub mod baresip;
pub mod caller_rig;
pub mod desk_rig;
pub mod events_schema;
pub mod fake_doubao;
pub mod fake_openai;
pub mod kamailio;
pub mod linphone;
pub mod loopback_ws;
pub mod pipewire;
pub mod relay;
pub mod scripted_peer;
pub mod sipdesk;
pub mod sipp;
pub mod webdriver;

use std::path::PathBuf;

/// The repository's top folder.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Cargo's target profile folder this test binary was built into (`.../target/debug`).
pub fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // .../target/debug/deps/<test>-<hash>
    exe.parent().and_then(|deps| deps.parent()).expect("test binary lives in target/<profile>/deps").to_path_buf()
}

/// True when the run is CI's (`CI` set and not `false`): a missing program is then a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Checks that real programs a test needs are installed. Returns false (after printing a loud
/// SKIP line) when one is missing outside CI; panics when one is missing in CI.
pub fn require_programs(test: &str, programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !webdriver::have_program(p)).collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{test}: needs {} (install them with scripts/deps.sh)", missing.join(", "));
    assert!(!in_ci(), "{msg}");
    eprintln!("SKIP {msg}");
    false
}
