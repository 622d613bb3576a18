//! A real Kamailio registrar for the tests, on 127.0.0.1 (or ::1) and a free port, with digest users in
//! an htable (tests/kamailio/registrar.cfg). It can be stopped and restarted on the same port,
//! and `kamcmd ul.dump` shows its bindings.

use std::net::{TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Programs a Kamailio test needs.
pub const PROGRAMS: &[&str] = &["kamailio", "kamcmd"];

/// How a registrar is set up.
pub struct Config {
    /// (auth user, password) pairs.
    pub users: Vec<(String, String)>,
    /// registrar min_expires.
    pub min_expires: u32,
    /// registrar max_expires (and default_expires): low so refreshes happen within a test.
    pub max_expires: u32,
    /// Digest algorithm: `MD5` or `SHA-256`.
    pub algorithm: &'static str,
    /// Listen on ::1 instead of 127.0.0.1.
    pub ipv6: bool,
    /// Session timers: the `sst` and `dialog` modules ask calls for this Session-Expires (and
    /// Min-SE), and end a call with BYE both ways when it is not refreshed in time.
    pub session_expires: Option<u32>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            users: vec![("1001".into(), "pw-1001".into())],
            min_expires: 0,
            max_expires: 10,
            algorithm: "MD5",
            ipv6: false,
            session_expires: None,
        }
    }
}

/// A running Kamailio.
pub struct Kamailio {
    /// UDP and TCP port it listens on.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Kamailio {
    /// Starts a registrar on a port free for both UDP and TCP.
    pub fn start(cfg: &Config) -> Kamailio {
        let dir = tempfile::tempdir().expect("tempdir");
        let ip = if cfg.ipv6 { "::1" } else { "127.0.0.1" };
        let port = free_port_on(ip);
        let users: String = cfg.users.iter().map(|(u, p)| format!("\t$sht(users=>{u}) = \"{p}\";\n")).collect();
        let text = std::fs::read_to_string(crate::repo_root().join("tests/kamailio/registrar.cfg"))
            .expect("registrar.cfg")
            .replace("{{NAME}}", &format!("kam{port}"))
            .replace("{{ADDR}}", if cfg.ipv6 { "[::1]" } else { "127.0.0.1" })
            .replace("{{PORT}}", &port.to_string())
            .replace("{{CTL}}", &dir.path().join("ctl.sock").display().to_string())
            .replace("{{MIN_EXPIRES}}", &cfg.min_expires.to_string())
            .replace("{{MAX_EXPIRES}}", &cfg.max_expires.to_string())
            .replace("{{ALGORITHM}}", cfg.algorithm)
            .replace("{{USERS}}", &users)
            .replace("{{SST_MODULES}}", &cfg.session_expires.map_or(String::new(), sst_modules))
            .replace(
                "{{SST_INVITE}}",
                // sst inserts Session-Expires (its min_se) into INVITEs that lack one.
                if cfg.session_expires.is_some() { "setflag(4);\n\t\tsetflag(6);" } else { "" },
            );
        std::fs::write(dir.path().join("kamailio.cfg"), text).expect("write cfg");
        let mut k = Kamailio { port, dir, child: None };
        k.spawn();
        k
    }

    fn cfg_path(&self) -> PathBuf {
        self.dir.path().join("kamailio.cfg")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("kamailio.log"))
            .expect("log");
        let child = Command::new("kamailio")
            .arg("-f")
            .arg(self.cfg_path())
            .args(["-DD", "-E", "-m", "32", "-M", "4", "-Y"])
            .arg(self.dir.path())
            .arg("-P")
            .arg(self.dir.path().join("kamailio.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start kamailio");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.kamcmd(&["core.version"]).is_none() {
            assert!(Instant::now() < deadline, "kamailio did not start; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `kamcmd` against this instance; None if it failed.
    pub fn kamcmd(&self, args: &[&str]) -> Option<String> {
        let sock = format!("unix:{}", self.dir.path().join("ctl.sock").display());
        let out = Command::new("kamcmd").arg("-s").arg(sock).args(args).stderr(Stdio::null()).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `ul.dump`: every binding it holds.
    pub fn ul_dump(&self) -> String {
        self.kamcmd(&["ul.dump"]).unwrap_or_default()
    }

    /// Seconds left on `user`'s binding, if it has one.
    pub fn binding_expires(&self, user: &str) -> Option<i64> {
        let dump = self.ul_dump();
        let start = dump.find(&format!("AoR: {user}"))?;
        let rest = &dump[start..];
        let line = rest.lines().find(|l| l.trim_start().starts_with("Expires:"))?;
        line.split(':').nth(1)?.trim().parse().ok()
    }

    /// Stops the process (it forgets every binding).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", c.id())]).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", c.id())]).stderr(Stdio::null()).status();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// What it logged (each request it got is one line).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }

    /// How many REGISTER requests from `user` it logged.
    pub fn registers_seen(&self) -> usize {
        self.log().lines().filter(|l| l.contains("REGISTER from")).count()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that is free for both UDP and TCP on 127.0.0.1.
pub fn free_udp_tcp_port() -> u16 {
    free_port_on("127.0.0.1")
}

/// A port that is free for both UDP and TCP on `ip`.
pub fn free_port_on(ip: &str) -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind((ip, 0)).expect("bind tcp");
        let port = tcp.local_addr().expect("addr").port();
        if UdpSocket::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port for both UDP and TCP on {ip}");
}

/// The dialog and sst module set-up for a session interval of `secs`.
fn sst_modules(secs: u32) -> String {
    format!(
        "loadmodule \"dialog.so\"\nloadmodule \"sst.so\"\nmodparam(\"dialog\", \"dlg_flag\", 4)\n\
         modparam(\"dialog\", \"send_bye\", 1)\nmodparam(\"dialog\", \"timeout_avp\", \"$avp(dlg_timeout)\")\n\
         modparam(\"sst\", \"timeout_avp\", \"$avp(dlg_timeout)\")\nmodparam(\"sst\", \"sst_flag\", 6)\n\
         modparam(\"sst\", \"min_se\", {secs})\n"
    )
}
