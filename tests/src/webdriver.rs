//! A tiny W3C WebDriver client for driving the built app in its real webview (sessions,
//! elements, scripts, screenshots), plus the Xvfb display and `WebKitWebDriver` it talks to,
//! and the private world ([`Desk`]) a UI test runs the app in.

mod desk;
mod programs;

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

pub use desk::{app_bin, cli_built, save_screenshot, screenshot_dir, ui_dict, ui_text, Desk, PROGRAMS, WAIT};
pub use programs::{have_program, WebKitDriver, Xvfb};

/// The W3C key of an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver or transport failure.
#[derive(Debug)]
pub enum Error {
    /// The driver answered with a W3C error (`error` is e.g. `no such element`).
    WebDriver {
        /// The W3C error code.
        error: String,
        /// The driver's explanation.
        message: String,
    },
    /// The HTTP exchange itself failed, or its answer was not what the protocol says.
    Transport(String),
    /// A wait ran out.
    Timeout(String),
    /// A program could not be started.
    Io(std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::WebDriver { error, message } => {
                write!(f, "webdriver error `{error}`: {message}")
            }
            Error::Transport(m) => write!(f, "webdriver transport: {m}"),
            Error::Timeout(m) => write!(f, "timed out: {m}"),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Io(e)
    }
}

/// Result of a WebDriver call.
pub type Result<T> = std::result::Result<T, Error>;

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(timeout).build()
}

/// Polls `probe` every 100 ms until it returns `Some`, or fails after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> Result<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Ok(v);
        }
        if Instant::now() >= end {
            return Err(Error::Timeout(format!("waiting {timeout:?} for {what}")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One WebDriver session (one run of the app).
pub struct Session {
    base: String,
    agent: ureq::Agent,
    deleted: bool,
}

impl Session {
    /// `POST /session` with the given body (`{"capabilities": ...}`).
    pub fn new(driver_url: &str, capabilities: &Value) -> Result<Session> {
        let agent = agent(Duration::from_secs(60));
        let value = send(&agent, "POST", &format!("{driver_url}/session"), Some(capabilities))?;
        let id = value["sessionId"].as_str().ok_or_else(|| Error::Transport(format!("no sessionId in {value}")))?;
        Ok(Session { base: format!("{driver_url}/session/{id}"), agent, deleted: false })
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        send(&self.agent, method, &format!("{}{path}", self.base), body)
    }

    /// The first element matching a CSS selector.
    pub fn find(&self, css: &str) -> Result<Element<'_>> {
        let v = self.call("POST", "/element", Some(&json!({"using": "css selector", "value": css})))?;
        Element::from_json(self, &v)
    }

    /// Every element matching a CSS selector.
    pub fn find_all(&self, css: &str) -> Result<Vec<Element<'_>>> {
        let v = self.call("POST", "/elements", Some(&json!({"using": "css selector", "value": css})))?;
        let list = v.as_array().ok_or_else(|| Error::Transport(format!("elements: {v}")))?;
        list.iter().map(|e| Element::from_json(self, e)).collect()
    }

    /// Waits until an element matching `css` exists.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element<'_>> {
        wait_until(timeout, &format!("element `{css}`"), || self.find(css).ok())
    }

    /// Waits until no element matches `css`.
    pub fn wait_gone(&self, css: &str, timeout: Duration) -> Result<()> {
        wait_until(timeout, &format!("`{css}` to disappear"), || {
            self.find_all(css).ok().filter(|l| l.is_empty()).map(|_| ())
        })
    }

    /// Waits until the element matching `css` shows exactly `text`.
    pub fn wait_text(&self, css: &str, text: &str, timeout: Duration) -> Result<()> {
        wait_until(timeout, &format!("`{css}` to read {text:?}"), || {
            (self.find(css).ok()?.text().ok()? == text).then_some(())
        })
    }

    /// Waits until exactly `n` elements match `css`.
    pub fn wait_count(&self, css: &str, n: usize, timeout: Duration) -> Result<()> {
        wait_until(timeout, &format!("{n} of `{css}`"), || (self.find_all(css).ok()?.len() == n).then_some(()))
    }

    /// Runs `op` on the element matching `css`, finding it again while it is missing or was
    /// replaced by a re-render (for up to 10 s).
    pub fn with<T>(&self, css: &str, op: impl Fn(&Element<'_>) -> Result<T>) -> Result<T> {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            match self.find(css).and_then(|e| op(&e)) {
                Err(Error::WebDriver { error, message })
                    if error == "stale element reference" || error == "no such element" =>
                {
                    if Instant::now() >= end {
                        return Err(Error::WebDriver { error, message: format!("{css}: {message}") });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    /// Clicks the element matching `css`.
    pub fn click(&self, css: &str) -> Result<()> {
        self.with(css, |e| e.click())
    }

    /// The rendered text of the element matching `css`.
    pub fn text(&self, css: &str) -> Result<String> {
        self.with(css, |e| e.text())
    }

    /// Empties the input matching `css` and types `text`.
    pub fn set(&self, css: &str, text: &str) -> Result<()> {
        self.with(css, |e| e.set(text))
    }

    /// Runs a synchronous script (`return ...;`) with `args` and returns its value.
    pub fn execute(&self, script: &str, args: &[Value]) -> Result<Value> {
        self.call("POST", "/execute/sync", Some(&json!({"script": script, "args": args})))
    }

    /// Runs an asynchronous script: it gets a `done` callback as its last argument.
    pub fn execute_async(&self, script: &str, args: &[Value]) -> Result<Value> {
        self.call("POST", "/execute/async", Some(&json!({"script": script, "args": args})))
    }

    /// Waits until fonts are loaded and two frames have been painted, so a screenshot shows
    /// what the DOM already holds.
    pub fn settle(&self) -> Result<()> {
        let script = "const done = arguments[arguments.length - 1];
            document.fonts.ready.then(() => requestAnimationFrame(() => requestAnimationFrame(() => done(true))));";
        self.execute_async(script, &[]).map(|_| ())
    }

    /// The page's current markup.
    pub fn outer_html(&self) -> Result<String> {
        Ok(self.execute("return document.documentElement.outerHTML;", &[])?.as_str().unwrap_or_default().to_string())
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Result<Vec<u8>> {
        let v = self.call("GET", "/screenshot", None)?;
        let b64 = v.as_str().ok_or_else(|| Error::Transport("screenshot is not a string".into()))?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| Error::Transport(format!("screenshot base64: {e}")))
    }

    /// Ends the session, which closes the app.
    pub fn delete(mut self) -> Result<()> {
        self.deleted = true;
        self.call("DELETE", "", None).map(|_| ())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.deleted {
            let _ = self.call("DELETE", "", None);
        }
    }
}

/// A reference to an element of a session's page.
pub struct Element<'s> {
    session: &'s Session,
    id: String,
}

impl<'s> Element<'s> {
    fn from_json(session: &'s Session, v: &Value) -> Result<Element<'s>> {
        let id = v[ELEMENT_KEY].as_str().ok_or_else(|| Error::Transport(format!("not an element: {v}")))?;
        Ok(Element { session, id: id.to_string() })
    }

    fn call(&self, method: &str, what: &str, body: Option<&Value>) -> Result<Value> {
        self.session.call(method, &format!("/element/{}{what}", self.id), body)
    }

    /// Clicks it.
    pub fn click(&self) -> Result<()> {
        self.call("POST", "/click", Some(&json!({}))).map(|_| ())
    }

    /// Types `text` into it.
    pub fn send_keys(&self, text: &str) -> Result<()> {
        self.call("POST", "/value", Some(&json!({"text": text}))).map(|_| ())
    }

    /// Empties an input.
    pub fn clear(&self) -> Result<()> {
        self.call("POST", "/clear", Some(&json!({}))).map(|_| ())
    }

    /// Empties an input and types `text`.
    pub fn set(&self, text: &str) -> Result<()> {
        self.clear()?;
        self.send_keys(text)
    }

    /// Its rendered text.
    pub fn text(&self) -> Result<String> {
        Ok(self.call("GET", "/text", None)?.as_str().unwrap_or_default().to_string())
    }

    /// An HTML attribute, if present.
    pub fn attribute(&self, name: &str) -> Result<Option<String>> {
        Ok(self.call("GET", &format!("/attribute/{name}"), None)?.as_str().map(str::to_string))
    }

    /// A DOM property (e.g. `value`, `checked`).
    pub fn property(&self, name: &str) -> Result<Value> {
        self.call("GET", &format!("/property/{name}"), None)
    }

    /// Whether it can be used (a control not disabled).
    pub fn enabled(&self) -> Result<bool> {
        Ok(self.call("GET", "/enabled", None)?.as_bool().unwrap_or(false))
    }

    /// Whether it is rendered visibly.
    pub fn displayed(&self) -> Result<bool> {
        Ok(self.call("GET", "/displayed", None)?.as_bool().unwrap_or(false))
    }

    /// The element as a script argument.
    pub fn to_json(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }
}

/// One WebDriver request; returns the answer's `value`, or its W3C error.
fn send(agent: &ureq::Agent, method: &str, url: &str, body: Option<&Value>) -> Result<Value> {
    let req = agent.request(method, url);
    let answer = match body {
        Some(b) => req.send_json(b.clone()),
        None => req.call(),
    };
    let json: Value = match answer {
        Ok(resp) => resp.into_json().map_err(|e| Error::Transport(format!("{method} {url}: {e}")))?,
        Err(ureq::Error::Status(code, resp)) => {
            let body: Value = resp.into_json().unwrap_or(Value::Null);
            let v = &body["value"];
            return Err(Error::WebDriver {
                error: v["error"].as_str().map_or_else(|| format!("http {code}"), str::to_string),
                message: v["message"].as_str().unwrap_or_default().to_string(),
            });
        }
        Err(e) => return Err(Error::Transport(format!("{method} {url}: {e}"))),
    };
    Ok(json["value"].clone())
}
