//! Calls in the real app and webview (WebKitWebDriver on Xvfb) through a real Kamailio: the
//! dialer places a call to SIPp's built-in UAS (in-call panel, running timer, hang up, history
//! row), SIPp's built-in UAC calls the desk (incoming popup, answer, remote hang-up, history row),
//! the history in Chinese, do-not-disturb (a call is refused; still on after a restart) and a
//! call cut by the app's death shown as interrupted.
//!
//! Needs the app built with its frontend embedded (`npx --prefix ui tauri build --debug
//! --no-bundle`) and the `sipdesk` CLI (`cargo build -p sipdesk-core --bins`).

use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use sipdesk_e2e::kamailio::{self, free_udp_tcp_port, Config, Kamailio};
use sipdesk_e2e::require_programs;
use sipdesk_e2e::sipdesk::add_account;
use sipdesk_e2e::webdriver::{
    cli_built, save_screenshot, ui_text, wait_until, Desk, Session, PROGRAMS, WAIT,
};

const TEST: &str = "ui_calls";
const PASSWORD: &str = "pw-1001";

fn en(key: &str) -> String {
    ui_text("en", key, &[])
}

fn zh(key: &str) -> String {
    ui_text("zh-CN", key, &[])
}

/// A SIPp process in a folder of its own (for its traces), killed on drop if still running.
struct Sipp {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Sipp {
    /// Starts `sipp` with `args` (split at spaces) plus its message and error traces.
    fn spawn(args: &str) -> Sipp {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("sipp")
            .args(args.split_whitespace())
            .args(["-trace_msg", "-trace_err"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp");
        Sipp {
            child: Some(child),
            dir,
        }
    }

    /// Waits for it to exit on its own.
    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("sipp running");
        let status = wait_until(timeout, "sipp to exit", || child.try_wait().ok().flatten())
            .unwrap_or_else(|e| panic!("{e}; SIPp's traces:\n{}", self.traces()));
        self.child = None;
        status
    }

    /// SIPp's message trace and error log.
    fn traces(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            out.push_str(&format!(
                "--- {}\n{text}\n",
                entry.file_name().to_string_lossy()
            ));
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

/// SIPp's built-in UAC calling user 1001 through Kamailio, answered calls hung up after
/// `hold_ms`; its exit status arrives through the thread.
fn sipp_calls_1001(kamailio_port: u16, hold_ms: u32) -> JoinHandle<ExitStatus> {
    std::thread::spawn(move || {
        let (port, media) = (free_udp_tcp_port(), free_udp_tcp_port());
        let args = format!(
            "-sn uac 127.0.0.1:{kamailio_port} -s 1001 -i 127.0.0.1 -p {port} -mp {media} -m 1 \
             -d {hold_ms} -nostdin -timeout 30s -timeout_error"
        );
        Sipp::spawn(&args).wait(Duration::from_secs(35))
    })
}

/// `m:ss` or `h:mm:ss` as seconds.
fn seconds(clock: &str) -> u64 {
    clock
        .split(':')
        .map(|p| {
            p.parse::<u64>()
                .unwrap_or_else(|_| panic!("not a clock: {clock:?}"))
        })
        .fold(0, |acc, n| acc * 60 + n)
}

fn attr(s: &Session, css: &str, name: &str) -> Option<String> {
    s.with(css, |e| e.attribute(name)).unwrap()
}

/// The text of the result cell of the history row of `call_id`, once it reads `text`.
fn wait_history(s: &Session, call_id: &str, text: &str) {
    let css = format!(".history-row[data-call-id='{call_id}'] .history-result");
    wait_until(
        WAIT,
        &format!("history row {call_id} to read {text:?}"),
        || (s.find(&css).ok()?.text().ok()? == text).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}; the history reads {:?}", s.text("#history")));
}

fn assert_no_password_in_dom(s: &Session) {
    assert!(
        !s.outer_html().unwrap().contains(PASSWORD),
        "the password appears in the DOM"
    );
}

/// Waits for the call panel and returns its call id.
fn wait_in_call(s: &Session, state: &str) -> String {
    s.wait_text("#in-call #call-state", state, WAIT)
        .unwrap_or_else(|e| panic!("{e}; the page reads {:?}", s.text("#phone")));
    attr(s, "#in-call", "data-call-id").expect("the panel names its call")
}

#[test]
fn dial_answer_hang_up_history_and_dnd_in_the_real_webview() {
    let started = Instant::now();
    let programs: Vec<&str> = PROGRAMS
        .iter()
        .chain(kamailio::PROGRAMS)
        .chain(&["sipp"])
        .copied()
        .collect();
    if !require_programs(TEST, &programs) || !cli_built(TEST, "adding the account") {
        return;
    }
    let k = Kamailio::start(&Config::default());
    let kport = k.port;
    let mut account = 0;
    let Some(desk) = Desk::start(TEST, &["kamailio", "kamcmd", "sipp"], |db| {
        let args = format!("--host 127.0.0.1 --port {kport} --user 1001 --interval 60 --activate");
        let args: Vec<&str> = args.split_whitespace().collect();
        account = add_account(db, &args, PASSWORD);
    }) else {
        return;
    };

    // The app opens on the Phone screen; the account registers and is the dialer's choice.
    let s = desk.launch_phone();
    s.wait_text("#header-reg-state", &en("reg.state.registered"), WAIT)
        .unwrap();
    assert_eq!(
        s.with("#dial-account", |e| e.property("value")).unwrap(),
        Value::String(account.to_string())
    );
    assert!(s.find("#call-idle").is_ok(), "no idle card before any call");
    println!("registered after {:.1} s", started.elapsed().as_secs_f32());

    // The keypad types into the box; what the core refuses is said inline, in words.
    for key in ["one", "zero", "star", "hash"] {
        s.click(&format!("#key-{key}")).unwrap();
    }
    assert_eq!(
        s.with("#dial-input", |e| e.property("value")).unwrap(),
        Value::String("10*#".into())
    );
    s.set("#dial-input", "<script>").unwrap();
    s.click("#dial-call").unwrap();
    s.wait_text("#dial-error", &en("dial.error.invalid_argument"), WAIT)
        .unwrap();

    // (a) Outgoing: SIPp's UAS answers and echoes; the timer runs; we hang up.
    let (uas_port, uas_media) = (free_udp_tcp_port(), free_udp_tcp_port());
    let uas_args =
        format!("-sn uas -i 127.0.0.1 -p {uas_port} -mp {uas_media} -rtp_echo -m 1 -nostdin");
    let uas = Sipp::spawn(&uas_args);
    std::thread::sleep(Duration::from_millis(200));
    let target = format!("sip:service@127.0.0.1:{uas_port}");
    s.set("#dial-input", &target).unwrap();
    s.click("#dial-call").unwrap();
    let out_call = wait_in_call(&s, &en("call.state.active"));
    assert!(
        s.find_all("#dial-error:not(.hidden)").unwrap().is_empty(),
        "a dial error is left on screen"
    );
    assert_eq!(s.text("#call-remote-name").unwrap(), target);
    assert_eq!(s.text("#call-codec").unwrap(), "PCMU");
    assert_eq!(s.text("#call-line").unwrap(), "1001@127.0.0.1");
    let first = seconds(&s.text("#call-timer").unwrap());
    std::thread::sleep(Duration::from_millis(1600));
    let second = seconds(&s.text("#call-timer").unwrap());
    assert!(
        second > first,
        "the call timer does not run: {first} s, then {second} s"
    );
    // The history already lists the call, as in progress.
    wait_history(&s, &out_call, &en("history.live"));
    assert_no_password_in_dom(&s);
    save_screenshot(&s, "phone-in-call.png");

    s.click("#call-hangup").unwrap();
    s.wait_for("#call-idle", WAIT).unwrap();
    wait_history(&s, &out_call, &en("call.reason.local_hangup"));
    // SIPp's UAS is not waited for: its 200 carries no Record-Route, so the desk's ACK and BYE
    // reach Kamailio without a Route and go no further (reported); it is killed on drop.
    drop(uas);
    println!(
        "outgoing call done after {:.1} s",
        started.elapsed().as_secs_f32()
    );

    // (b) Incoming: SIPp's UAC calls 1001; the popup shows the caller; we answer; it hangs up.
    let uac = sipp_calls_1001(k.port, 2000);
    s.wait_for("#incoming-popup", WAIT).unwrap();
    assert_eq!(s.text("#incoming-name").unwrap(), "sipp");
    let uri = s.text("#incoming-uri").unwrap();
    assert!(uri.starts_with("sip:sipp@127.0.0.1"), "caller URI {uri:?}");
    // Shown in capitals by the style sheet.
    assert_eq!(
        s.text("#incoming-title").unwrap().to_lowercase(),
        en("incoming.title").to_lowercase()
    );
    assert_no_password_in_dom(&s);
    save_screenshot(&s, "phone-incoming.png");
    s.click("#incoming-answer").unwrap();
    s.wait_gone("#incoming-popup", WAIT).unwrap();
    let in_call = wait_in_call(&s, &en("call.state.active"));
    assert_eq!(s.text("#call-remote-name").unwrap(), "sipp");
    s.wait_for("#call-idle", WAIT).unwrap();
    wait_history(&s, &in_call, &en("call.reason.remote_hangup"));
    assert!(uac.join().unwrap().success(), "SIPp's UAC call failed");
    println!(
        "incoming call done after {:.1} s",
        started.elapsed().as_secs_f32()
    );

    // Both calls in the history: newest first, with their direction and call-back buttons.
    s.wait_count(".history-row", 2, WAIT).unwrap();
    let rows = s.find_all(".history-row").unwrap();
    assert_eq!(
        rows[0].attribute("data-call-id").unwrap().as_deref(),
        Some(in_call.as_str())
    );
    assert_eq!(
        rows[1].attribute("data-call-id").unwrap().as_deref(),
        Some(out_call.as_str())
    );
    assert_eq!(
        s.find_all(".history-row .history-callback").unwrap().len(),
        2
    );
    assert!(s.find(".history-row.dir-in .icon-call-in").is_ok());
    assert!(s.find(".history-row.dir-out .icon-call-out").is_ok());
    assert_no_password_in_dom(&s);
    save_screenshot(&s, "phone-history.png");

    // Call back from the history: the outgoing row dials its remote again (a new UAS on its port).
    let uas = Sipp::spawn(&uas_args);
    std::thread::sleep(Duration::from_millis(200));
    s.click(&format!(
        ".history-row[data-call-id='{out_call}'] .history-callback"
    ))
    .unwrap();
    let again = wait_in_call(&s, &en("call.state.active"));
    assert_ne!(again, out_call);
    assert_eq!(s.text("#call-remote-name").unwrap(), target);
    s.click("#call-hangup").unwrap();
    wait_history(&s, &again, &en("call.reason.local_hangup"));
    drop(uas);

    // The same screen in Chinese.
    s.click("#nav-settings").unwrap();
    s.click("#lang-select option[value='zh-CN']").unwrap();
    s.wait_text("#settings h1", &zh("settings.title"), WAIT)
        .unwrap();
    s.click("#nav-phone").unwrap();
    wait_history(&s, &out_call, &zh("call.reason.local_hangup"));
    wait_history(&s, &in_call, &zh("call.reason.remote_hangup"));
    assert_eq!(s.text("#nav-phone").unwrap(), zh("nav.phone"));
    assert_eq!(s.text("#history-card h2").unwrap(), zh("history.title"));
    assert_no_password_in_dom(&s);
    save_screenshot(&s, "phone-history-zh.png");

    // (c) Do-not-disturb: on, a call is refused without ringing and the history says why.
    assert_eq!(
        attr(&s, "#dnd-toggle", "aria-checked").as_deref(),
        Some("false")
    );
    s.click("#dnd-toggle").unwrap();
    wait_until(WAIT, "do-not-disturb to switch on", || {
        (attr(&s, "#dnd-toggle", "aria-checked").as_deref() == Some("true")).then_some(())
    })
    .unwrap();
    s.wait_for("#call-idle.dnd", WAIT).unwrap();
    let refused = sipp_calls_1001(k.port, 1000);
    s.wait_count(".history-row", 4, WAIT).unwrap();
    let newest = attr(&s, ".history-row", "data-call-id").unwrap();
    wait_history(&s, &newest, &zh("call.reason.dnd"));
    assert!(
        s.find_all("#incoming-popup").unwrap().is_empty(),
        "a refused call rang"
    );
    assert!(
        !refused.join().unwrap().success(),
        "SIPp's call was answered despite do-not-disturb"
    );

    // A call still going when the app dies is "interrupted" in the history of the next run;
    // do-not-disturb is still on. (WebKitWebDriver kills the app, which also leaves its
    // registration behind in Kamailio, so no call comes in after this.)
    let uas = Sipp::spawn(&uas_args);
    std::thread::sleep(Duration::from_millis(200));
    s.set("#dial-input", &target).unwrap();
    s.click("#dial-call").unwrap();
    let cut = wait_in_call(&s, &zh("call.state.active"));
    desk.close(s);
    drop(uas);
    let s = desk.launch_phone();
    wait_until(WAIT, "do-not-disturb to read on after the restart", || {
        (attr(&s, "#dnd-toggle", "aria-checked").as_deref() == Some("true")).then_some(())
    })
    .unwrap();
    assert_eq!(s.text("#dnd-toggle").unwrap(), zh("dnd.label"));
    wait_history(&s, &cut, &zh("history.interrupted"));
    s.wait_count(".history-row", 5, WAIT).unwrap();
    desk.close(s);
    println!("{TEST} took {:.1} s", started.elapsed().as_secs_f32());
}
