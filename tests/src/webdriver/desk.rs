//! The built app in a world of its own for one UI test: a private HOME and database, an Xvfb
//! display and a `WebKitWebDriver` that launches the app; plus where the app, its screenshots
//! and its translations are.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::{wait_until, Session, WebKitDriver, Xvfb};
use crate::{in_ci, repo_root, require_programs, sipdesk, target_profile_dir};

/// How long a UI step may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// Programs every webview test needs.
pub const PROGRAMS: &[&str] = &["WebKitWebDriver", "Xvfb", "dbus-run-session"];

/// The UI's translation file for `lang` (`en`, `zh-CN`).
pub fn ui_dict(lang: &str) -> Map<String, Value> {
    let path = repo_root().join(format!("ui/src/i18n/{lang}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One UI text in `lang`, with `{name}` placeholders filled from `vars`.
pub fn ui_text(lang: &str, key: &str, vars: &[(&str, &str)]) -> String {
    let dict = ui_dict(lang);
    let mut text =
        dict.get(key).and_then(Value::as_str).unwrap_or_else(|| panic!("{lang}.json has no {key}")).to_string();
    for (name, value) in vars {
        text = text.replace(&format!("{{{name}}}"), value);
    }
    text
}

/// The built app: `SIPDESK_APP_BIN`, else the debug build in `CARGO_TARGET_DIR`, beside this
/// test, or in the shared target dir.
pub fn app_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SIPDESK_APP_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(|t| PathBuf::from(t).join("debug"));
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sipdesk/target/debug"));
    let candidates: Vec<PathBuf> =
        [target, Some(target_profile_dir()), home].into_iter().flatten().map(|dir| dir.join("sipdesk-app")).collect();
    candidates.iter().find(|p| p.is_file()).unwrap_or(&candidates[0]).clone()
}

/// Where screenshots go: `SIPDESK_SCREENSHOT_DIR`, else `$CARGO_TARGET_DIR/screenshots`.
pub fn screenshot_dir() -> PathBuf {
    let dir = match std::env::var_os("SIPDESK_SCREENSHOT_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"))
            .join("screenshots"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Saves a PNG of the settled page as `name` in [`screenshot_dir`].
pub fn save_screenshot(s: &Session, name: &str) {
    s.settle().expect("page settles");
    let png = s.screenshot().expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
    let path = screenshot_dir().join(name);
    std::fs::write(&path, png).unwrap();
    println!("screenshot: {}", path.display());
}

/// Whether the headless `sipdesk` CLI is built; without CI a missing one is a loud skip of `what`.
pub fn cli_built(test: &str, what: &str) -> bool {
    let built = std::env::var_os("SIPDESK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_profile_dir().join("sipdesk"))
        .is_file();
    if !built {
        let msg = format!("{test}: {what} needs the sipdesk CLI (cargo build -p sipdesk-core --bins)");
        assert!(!in_ci(), "{msg}");
        eprintln!("SKIP {msg}");
    }
    built
}

/// Whether this machine can run the app; without CI a missing piece is a loud skip.
fn prerequisites(test: &str, app: &Path, programs: &[&str]) -> bool {
    let all: Vec<&str> = PROGRAMS.iter().chain(programs).copied().collect();
    if !require_programs(test, &all) {
        return false;
    }
    if app.is_file() {
        return true;
    }
    let msg =
        format!("{test}: needs the app {} (build it: npx --prefix ui tauri build --debug --no-bundle)", app.display());
    assert!(!in_ci(), "{msg}");
    eprintln!("SKIP {msg}");
    false
}

/// The app's world for one test: a private HOME and database, a display and a driver.
/// Fields drop in order: the driver (and the app) before the display, then the files.
pub struct Desk {
    driver: WebKitDriver,
    _xvfb: Xvfb,
    test: String,
    app: PathBuf,
    db: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Desk {
    /// None (after a loud SKIP) when this machine cannot run the app or lacks one of `programs`;
    /// `prepare` may write the database before anything starts.
    pub fn start(test: &str, programs: &[&str], prepare: impl FnOnce(&Path)) -> Option<Desk> {
        Desk::start_with_env(test, programs, &[], prepare)
    }

    /// [`Desk::start`] with `extra` added to the app's environment (e.g. a PipeWire rig's
    /// `PULSE_SERVER`, so the app's audio devices are the rig's).
    pub fn start_with_env(
        test: &str,
        programs: &[&str],
        extra: &[(&str, String)],
        prepare: impl FnOnce(&Path),
    ) -> Option<Desk> {
        let app = app_bin();
        if !prerequisites(test, &app, programs) {
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let data = home.join(".local/share");
        std::fs::create_dir_all(&data).unwrap();
        let db = tmp.path().join("sipdesk.db");
        prepare(&db);
        let path = |p: PathBuf| p.to_str().unwrap().to_string();
        let env = [
            ("SIPDESK_DB", path(db.clone())),
            ("SIPDESK_SECRET_STORE", "file".into()),
            ("LANG", "en_US.UTF-8".into()),
            ("LC_ALL", "en_US.UTF-8".into()),
            ("HOME", path(home.clone())),
            ("XDG_DATA_HOME", path(data)),
            ("XDG_CONFIG_HOME", path(home.join(".config"))),
            ("XDG_CACHE_HOME", path(home.join(".cache"))),
        ];
        let env: Vec<(&str, String)> = env.into_iter().chain(extra.iter().cloned()).collect();
        let xvfb = Xvfb::start().expect("Xvfb");
        let driver = WebKitDriver::start(xvfb.display(), &env).expect("WebKitWebDriver");
        Some(Desk { driver, _xvfb: xvfb, test: test.to_string(), app, db, _tmp: tmp })
    }

    /// The app's database.
    pub fn db(&self) -> &Path {
        &self.db
    }

    /// Runs the headless `sipdesk` CLI on the same database beside the app (None, outside CI,
    /// when it is not built).
    pub fn cli(&self, args: &[&str]) -> Option<std::process::Output> {
        if !cli_built(&self.test, "a live-update step") {
            return None;
        }
        Some(sipdesk::command(&self.db).args(args).output().expect("run sipdesk"))
    }

    /// Opens the app, waits for its Phone screen (the one it starts on) and goes to Settings.
    pub fn launch(&self) -> Session {
        let s = self.launch_phone();
        s.click("#nav-settings").expect("the Settings tab");
        s.wait_for("#settings", WAIT).expect("the Settings screen");
        s
    }

    /// Opens the app and waits for its Phone screen.
    pub fn launch_phone(&self) -> Session {
        let s = self.driver.launch(&self.app).expect("WebDriver session with the app");
        s.wait_for("#phone", WAIT).unwrap_or_else(|e| {
            panic!("the app shows no Phone screen ({e}); a plain `cargo build` points at the dev server, build with tauri build")
        });
        s
    }

    /// Closes the app and waits until it has exited: it holds `<db>.lock` while it runs.
    pub fn close(&self, s: Session) {
        s.delete().unwrap();
        let lock = self.db.with_file_name("sipdesk.db.lock");
        wait_until(WAIT, "the app to exit", || {
            let Ok(file) = std::fs::OpenOptions::new().read(true).write(true).open(&lock) else {
                return Some(());
            };
            file.try_lock().ok()
        })
        .unwrap();
    }
}
