//! SIPp (Debian's `sip-tester`) as a scripted SIP server, for the behaviours a real registrar
//! will not show on demand (tests/sipp/*.xml).

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Program a SIPp test needs.
pub const PROGRAM: &str = "sipp";

/// A running SIPp server scenario on 127.0.0.1 (UDP).
pub struct Sipp {
    /// SIP port it listens on.
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Sipp {
    /// Starts `tests/sipp/<scenario>.xml` as a UAS for one "call" (one Call-ID).
    pub fn serve(scenario: &str) -> Sipp {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = crate::kamailio::free_udp_tcp_port();
        let media = crate::kamailio::free_udp_tcp_port();
        let xml = crate::repo_root().join(format!("tests/sipp/{scenario}.xml"));
        let child = Command::new(PROGRAM)
            .arg("-sf").arg(&xml)
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-mp", &media.to_string(), "-t", "u1", "-m", "1", "-nostdin", "-timeout", "60s", "-timeout_error", "-trace_err", "-trace_msg"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp");
        std::thread::sleep(Duration::from_millis(300));
        Sipp { port, child: Some(child), dir }
    }

    /// Waits for the scenario to finish; its exit status (0 when every check passed).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let mut c = self.child.take().expect("sipp running");
        let end = Instant::now() + timeout;
        loop {
            if let Some(s) = c.try_wait().expect("wait sipp") {
                return s;
            }
            if Instant::now() > end {
                let _ = c.kill();
                panic!("sipp did not finish its scenario; messages:\n{}", self.messages());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIPp's message trace and error log, for failure reports.
    pub fn messages(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.dir.path()).into_iter().flatten().flatten() {
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                out.push_str(&format!("--- {}\n{text}\n", entry.file_name().to_string_lossy()));
            }
        }
        out
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
