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
            .arg("-sf")
            .arg(&xml)
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-mp",
                &media.to_string(),
                "-t",
                "u1",
                "-m",
                "1",
                "-nostdin",
                "-timeout",
                "60s",
                "-timeout_error",
                "-trace_err",
                "-trace_msg",
            ])
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

/// SIPp's built-in UAS (answers, echoes RTP, waits for BYE), killed on drop; its message trace
/// goes to the directory it runs in.
pub struct Uas {
    child: Child,
    /// SIP port it listens on.
    pub port: u16,
    dir: std::path::PathBuf,
}

impl Uas {
    /// Starts the built-in UAS in `dir` on free ports.
    pub fn echo(dir: &std::path::Path) -> Uas {
        Uas::start(dir, None)
    }

    /// Starts `tests/sipp/<scenario>.xml` (None: the built-in UAS) in `dir` on free ports, echoing
    /// RTP, for one call.
    pub fn start(dir: &std::path::Path, scenario: Option<&str>) -> Uas {
        let (port, media) = (crate::kamailio::free_udp_tcp_port(), crate::kamailio::free_udp_tcp_port());
        let mut cmd = Command::new(PROGRAM);
        match scenario {
            Some(name) => cmd.arg("-sf").arg(crate::repo_root().join(format!("tests/sipp/{name}.xml"))),
            None => cmd.args(["-sn", "uas"]),
        };
        let child = cmd
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-mp",
                &media.to_string(),
                "-rtp_echo",
                "-m",
                "1",
                "-nostdin",
                "-trace_msg",
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp uas");
        Uas { child, port, dir: dir.to_path_buf() }
    }

    /// Waits for the UAS to finish its one call; true when it ended successfully (it got our ACK
    /// and our BYE and answered it).
    pub fn finished_ok(&mut self, timeout: std::time::Duration) -> bool {
        let end = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    }

    /// The RTP port the caller offered (the m= line of the INVITE the UAS received).
    pub fn offered_rtp_port(&self) -> u16 {
        let log = std::fs::read_dir(&self.dir)
            .expect("trace dir")
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with("_messages.log"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .expect("SIPp's message log");
        log.lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|r| r.split(' ').next()?.parse().ok())
            .expect("an m= line in the offer")
    }
}

impl Drop for Uas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one SIPp call as a UAC to `service` through the registrar on `registrar_port`, in `dir`:
/// the built-in scenario (`scenario` None) or `tests/sipp/<scenario>.xml`. Returns the exit status
/// and SIPp's logs (for failure messages).
pub fn call(
    dir: &std::path::Path,
    registrar_port: u16,
    service: &str,
    scenario: Option<&str>,
    extra: &[&str],
) -> (ExitStatus, String) {
    let (port, media) = (crate::kamailio::free_udp_tcp_port(), crate::kamailio::free_udp_tcp_port());
    let mut cmd = Command::new(PROGRAM);
    match scenario {
        Some(name) => cmd.arg("-sf").arg(crate::repo_root().join(format!("tests/sipp/{name}.xml"))),
        None => cmd.args(["-sn", "uac"]),
    };
    let status = cmd
        .args([
            &format!("127.0.0.1:{registrar_port}"),
            "-s",
            service,
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-mp",
            &media.to_string(),
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "20s",
            "-timeout_error",
            "-trace_err",
            "-trace_msg",
        ])
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run sipp");
    let logs = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    (status, logs)
}
