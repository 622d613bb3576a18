//! The programs a webview test needs: a private Xvfb display and `WebKitWebDriver` on a free
//! port. Each runs in its own process group, killed with everything it started (the app
//! included) on drop.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::{agent, wait_until, Error, Result, Session};

/// True when `program` can be found on `PATH` (or is an existing path).
pub fn have_program(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// A child in its own process group; the whole group is killed on drop.
struct Group(Child);

impl Group {
    fn spawn(cmd: &mut Command) -> std::io::Result<Group> {
        cmd.process_group(0).spawn().map(Group)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // Kill the group, not only the child: WebKitWebDriver's app and web processes live in it.
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.0.id())]).stderr(Stdio::null()).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private X server on a display Xvfb picked itself.
pub struct Xvfb {
    display: String,
    _child: Group,
    // Kept open: Xvfb would get SIGPIPE if it ever wrote to a closed stdout.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Xvfb {
    /// Starts `Xvfb` at 1280x800 and waits until it accepts clients.
    pub fn start() -> Result<Xvfb> {
        // `-displayfd 1`: Xvfb takes the first free display and prints its number once ready.
        let mut child = Group::spawn(
            Command::new("Xvfb")
                .args(["-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )?;
        let stdout = child.0.stdout.take().ok_or_else(|| Error::Transport("Xvfb has no stdout".into()))?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let number = line.trim();
        if number.is_empty() {
            return Err(Error::Transport("Xvfb exited without a display".into()));
        }
        Ok(Xvfb { display: format!(":{number}"), _child: child, _stdout: stdout })
    }

    /// The `DISPLAY` value, e.g. `:3`.
    pub fn display(&self) -> &str {
        &self.display
    }
}

/// A running `WebKitWebDriver` on a free loopback port.
pub struct WebKitDriver {
    url: String,
    _child: Group,
}

impl WebKitDriver {
    /// Starts the driver on `display` with `env` added to its environment (the app it launches
    /// inherits it) and waits until `/status` says it is ready.
    pub fn start(display: &str, env: &[(&str, String)]) -> Result<WebKitDriver> {
        let port = free_port()?;
        // A private session bus that ends with the driver: without one, GLib autolaunches a bus
        // (with portals, a keyring and an accessibility bus) that outlives every test run.
        let mut cmd = Command::new("dbus-run-session");
        cmd.args(["--", "WebKitWebDriver"])
            .arg(format!("--port={port}"))
            .arg("--host=127.0.0.1")
            .env("NO_AT_BRIDGE", "1")
            .env("GTK_A11Y", "none")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            // Without this variable the Tauri webview never accepts the automation session.
            .env("TAURI_WEBVIEW_AUTOMATION", "true")
            .env("DISPLAY", display)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if std::env::var_os("SIPDESK_WEBDRIVER_LOG").is_none() {
            cmd.stderr(Stdio::null());
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let driver = WebKitDriver { url: format!("http://127.0.0.1:{port}"), _child: Group::spawn(&mut cmd)? };
        let agent = agent(Duration::from_secs(2));
        wait_until(Duration::from_secs(15), "WebKitWebDriver to be ready", || {
            let ready = agent.get(&format!("{}/status", driver.url)).call().ok()?.into_json::<Value>().ok()?;
            ready["value"]["ready"].as_bool().filter(|r| *r).map(|_| ())
        })?;
        Ok(driver)
    }

    /// The driver's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens a session that launches `binary` (a webkitgtk browser such as a Tauri app).
    pub fn launch(&self, binary: &Path) -> Result<Session> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "webkitgtk:browserOptions": {"binary": binary.to_string_lossy(), "args": []}
        }}});
        Session::new(&self.url, &caps)
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
