//! A private PipeWire for the audio device tests: there is no sound card here, so the tests make
//! virtual devices (null sinks, whose `.monitor` sources are microphones) on a PipeWire of their
//! own, with its own D-Bus session and runtime folder, and stop it all on drop.
//!
//! cpal talks ALSA; ALSA's `pulse` plugin (libasound2-plugins) reaches PipeWire through
//! pipewire-pulse. [`PipeWire::start`] writes an ALSA config into the rig's own
//! `XDG_CONFIG_HOME` that points ALSA's `default` device at `pulse`, so a process given
//! [`PipeWire::env`] opens the rig's default sink and source as its default devices. Nothing
//! outside the rig's temporary folder is touched.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Programs the rig needs (Debian: pipewire pipewire-bin pipewire-pulse wireplumber dbus-bin
/// pulseaudio-utils libasound2-plugins).
pub const PROGRAMS: &[&str] =
    &["dbus-daemon", "pipewire", "wireplumber", "pipewire-pulse", "pactl", "paplay", "parecord"];

const ASOUNDRC: &str = "pcm.!default { type pulse }\nctl.!default { type pulse }\n";

/// A running private PipeWire with its D-Bus session, session manager and Pulse server.
pub struct PipeWire {
    dir: tempfile::TempDir,
    children: Vec<(&'static str, Child)>,
}

impl PipeWire {
    /// Starts dbus-daemon, pipewire, wireplumber and pipewire-pulse in a fresh runtime folder and
    /// waits until the Pulse server answers. Panics (with the logs' folder) when it does not.
    pub fn start() -> PipeWire {
        let dir = tempfile::Builder::new().prefix("sipdesk-pw").tempdir().expect("tempdir");
        let mut pw = PipeWire { dir, children: Vec::new() };
        for sub in ["run", "config/alsa", "home"] {
            std::fs::create_dir_all(pw.dir.path().join(sub)).expect("rig folders");
        }
        std::fs::set_permissions(pw.runtime_dir(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");
        std::fs::write(pw.dir.path().join("config/alsa/asoundrc"), ASOUNDRC).expect("asoundrc");

        let bus = format!("unix:path={}", pw.runtime_dir().join("bus").display());
        pw.spawn("dbus-daemon", &["--session", &format!("--address={bus}"), "--nofork", "--nopidfile"]);
        pw.wait_for("D-Bus socket", |pw| pw.runtime_dir().join("bus").exists());
        pw.spawn("pipewire", &[]);
        pw.wait_for("PipeWire socket", |pw| pw.runtime_dir().join("pipewire-0").exists());
        pw.spawn("wireplumber", &[]);
        pw.spawn("pipewire-pulse", &[]);
        pw.wait_for("pipewire-pulse answering", |pw| pw.try_pactl(&["info"]).is_some());
        pw
    }

    /// The runtime folder (`XDG_RUNTIME_DIR`) holding the sockets.
    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// The rig's scratch folder (logs are written there too).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The environment a process needs to use the rig's audio (Pulse clients and ALSA through
    /// the `pulse` plugin).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let run = self.runtime_dir();
        vec![
            ("XDG_RUNTIME_DIR", run.display().to_string()),
            ("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={}", run.join("bus").display())),
            ("PULSE_SERVER", format!("unix:{}", run.join("pulse/native").display())),
            ("XDG_CONFIG_HOME", self.dir.path().join("config").display().to_string()),
            // Where libpulse (pactl, at start-up) wrote the cookie; cpal's Pulse host only looks
            // under HOME otherwise, and pipewire-pulse refuses an empty one.
            ("PULSE_COOKIE", self.dir.path().join("config/pulse/cookie").display().to_string()),
            ("HOME", self.dir.path().join("home").display().to_string()),
        ]
    }

    /// A command for `program` with the rig's environment.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.envs(self.env()).env_remove("PULSE_SINK").env_remove("PULSE_SOURCE");
        c
    }

    /// Runs `pactl` and returns its output; panics when it fails.
    pub fn pactl(&self, args: &[&str]) -> String {
        self.try_pactl(args)
            .unwrap_or_else(|| panic!("pactl {} failed (logs in {})", args.join(" "), self.dir().display()))
    }

    fn try_pactl(&self, args: &[&str]) -> Option<String> {
        let out = self.command("pactl").args(args).stdin(Stdio::null()).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Creates a mono null sink `name` at `rate` (its monitor source is `name.monitor`).
    pub fn null_sink(&self, name: &str, rate: u32) {
        self.pactl(&[
            "load-module",
            "module-null-sink",
            &format!("sink_name={name}"),
            &format!("rate={rate}"),
            "channels=1",
        ]);
        let short = |pw: &PipeWire| {
            pw.try_pactl(&["list", "short", "sinks"])
                .is_some_and(|s| s.lines().any(|l| l.split('\t').nth(1) == Some(name)))
        };
        self.wait_for(&format!("sink {name}"), short);
    }

    /// Makes `sink` the default sink.
    pub fn set_default_sink(&self, sink: &str) {
        self.pactl(&["set-default-sink", sink]);
    }

    /// Makes `source` (e.g. `mic.monitor`) the default source.
    pub fn set_default_source(&self, source: &str) {
        self.pactl(&["set-default-source", source]);
    }

    /// Starts playing `wav` into `sink`; the returned handle stops it when dropped.
    pub fn play(&self, sink: &str, wav: &Path) -> Background {
        let child = self
            .command("paplay")
            .arg(format!("--device={sink}"))
            .arg(wav)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start paplay");
        Background(Some(child))
    }

    /// Starts recording `source` (e.g. `spk.monitor`) as mono s16 at `rate` into `wav`; stop it
    /// with [`Background::stop`] to finish the file.
    pub fn record(&self, source: &str, rate: u32, wav: &Path) -> Background {
        let child = self
            .command("parecord")
            .arg(format!("--device={source}"))
            .args([
                "--file-format=wav",
                "--latency-msec=20",
                "--format=s16le",
                "--channels=1",
                &format!("--rate={rate}"),
            ])
            .arg(wav)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start parecord");
        Background(Some(child))
    }

    /// Records `source` for `seconds` into `wav` (blocking).
    pub fn record_for(&self, source: &str, rate: u32, seconds: f64, wav: &Path) {
        let mut rec = self.record(source, rate, wav);
        std::thread::sleep(Duration::from_secs_f64(seconds));
        rec.stop();
    }

    fn spawn(&mut self, program: &'static str, args: &[&str]) {
        let log = std::fs::File::create(self.dir.path().join(format!("{program}.log"))).expect("log file");
        let child = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        self.children.push((program, child));
    }

    fn wait_for(&self, what: &str, ready: impl Fn(&PipeWire) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready(self) {
            assert!(Instant::now() < deadline, "PipeWire rig: no {what} after 10 s (logs in {})", self.dir().display());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PipeWire {
    fn drop(&mut self) {
        // The session manager and the Pulse server first, then PipeWire, then D-Bus.
        while let Some((_, child)) = self.children.pop() {
            stop_child(child);
        }
    }
}

/// A background audio client (`paplay`, `parecord`), stopped on drop.
pub struct Background(Option<Child>);

impl Background {
    /// Stops it (SIGINT, so `parecord` finishes its file) and waits.
    pub fn stop(&mut self) {
        if let Some(child) = self.0.take() {
            stop_child(child);
        }
    }

    /// Waits until it ends by itself (e.g. `paplay` at the end of the file), up to `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(child) = self.0.as_mut() {
            if child.try_wait().ok().flatten().is_some() {
                self.0 = None;
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGINT, then SIGKILL when it has not ended after 2 s; always reaped.
fn stop_child(mut child: Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    // SAFETY: signalling a child we spawned and have not reaped yet.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
