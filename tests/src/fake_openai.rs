//! A loopback server that speaks the OpenAI Realtime protocol (JSON events over a WebSocket), so
//! SipDesk's OpenAI client can be tested without the cloud, and end-to-end call tests can hand
//! a real call to it.
//!
//! Like the real service it records the upgrade, sends `session.created`, takes the
//! `session.update` (GA or beta shape: audio formats, transcription, server VAD, tools) and
//! confirms it with `session.updated`. It answers `response.create` (the first one is the
//! greeting) and the caller's turns with a tone as the model's audio (24 kHz PCM, or µ-law /
//! A-law when the session asked for G.711), with transcript deltas and the done events, named
//! the GA or the beta way ([`Names`]). Its server VAD follows the level of the appended caller
//! audio: sound starts a turn (`speech_started`, which stops its own reply the way
//! `interrupt_response` does, with a few in-flight deltas still arriving after it), silence
//! ends it (`speech_stopped`, the caller's transcription when enabled, and a reply). It can call
//! the `transfer_to_human` tool, checks truncates against the audio it really sent, answers
//! `response.cancel` with nothing active with `response_cancel_not_active`, and fails in the
//! ways of [`Fault`]. Tests drive it further with [`FakeOpenAi::send_event`],
//! [`FakeOpenAi::caller_speech`], [`FakeOpenAi::speak`] and friends, and read what the client
//! sent with [`FakeOpenAi::received`].
//!
//! *Choice: its own JSON handling and G.711 codec*, written from the API reference and not
//! shared with the core's, so a mistake in the core's wire format cannot hide in both ends.

use std::collections::VecDeque;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::loopback_ws::{pcm_bytes, pcm_samples, tone};
use crate::loopback_ws::{poll_until, LoopbackServer};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

/// The path the fake serves (the real endpoint's).
pub const PATH: &str = "/v1/realtime";

/// The body of the 401 the fake refuses a key with (the real one's shape).
pub const UNAUTHORIZED_BODY: &str =
    r#"{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","code":"invalid_api_key"}}"#;

/// Which event names the server uses for the model's audio and its transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// `response.output_audio.delta`, `response.output_audio_transcript.delta`, ...
    Ga,
    /// `response.audio.delta`, `response.audio_transcript.delta`, ...
    Beta,
}

/// A frame that is not what the protocol promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// A text frame that is not JSON.
    NotJson,
    /// JSON without a `type`.
    NoType,
    /// An audio delta whose `delta` is not base64.
    BadBase64,
    /// A binary frame (the API sends only text).
    Binary,
}

/// How the fake misbehaves.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// It behaves.
    None,
    /// The upgrade is refused with HTTP 401 and [`UNAUTHORIZED_BODY`] (a wrong key).
    Unauthorized,
    /// Half-way through the greeting's audio it closes the socket (close frame 1011).
    CloseMidSentence,
    /// Half-way through the greeting's audio it sends a malformed frame, then nothing more of
    /// the greeting.
    Malformed(Malformed),
    /// Half-way through the greeting's audio it sends this `error` event, then nothing more of
    /// the greeting (the socket stays open: the client decides).
    ErrorEvent {
        /// `error.type` (`server_error`).
        kind: String,
        /// `error.code`.
        code: Option<String>,
        /// `error.message`.
        message: String,
    },
}

/// What the fake says and how.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// How it misbehaves.
    pub fault: Fault,
    /// The event names of its audio and transcript events.
    pub names: Names,
    /// The greeting's transcript (the first response of a session).
    pub greeting_text: String,
    /// The greeting's tone (Hz) and length (ms).
    pub greeting_hz: f64,
    /// See `greeting_hz`.
    pub greeting_ms: u32,
    /// The transcript of its replies to the caller.
    pub reply_text: String,
    /// The replies' tone (Hz) and length (ms).
    pub reply_hz: f64,
    /// See `reply_hz`.
    pub reply_ms: u32,
    /// What its transcription "hears" whenever the caller makes sound.
    pub heard_text: String,
    /// When set, its reply to the caller's first turn (if the session declared the
    /// `transfer_to_human` tool) says [`Behaviour::transfer_text`] and calls the tool with this
    /// reason.
    pub transfer_reason: Option<String>,
    /// What it says before transferring.
    pub transfer_text: String,
    /// Silence after sound that ends the caller's turn (ms).
    pub end_silence_ms: u32,
    /// How many times faster than real time its audio goes out (`f64::INFINITY`: all at once;
    /// the real service is a few times faster than real time).
    pub speed: f64,
    /// Length of each audio delta (ms).
    pub audio_chunk_ms: u32,
    /// Deltas of the interrupted reply still sent after `speech_started` (in flight when the
    /// caller spoke).
    pub late_chunks: usize,
}

impl Default for Behaviour {
    fn default() -> Behaviour {
        Behaviour {
            fault: Fault::None,
            names: Names::Ga,
            greeting_text: "Hello, you are talking to an automated assistant.".into(),
            greeting_hz: 700.0,
            greeting_ms: 1000,
            reply_text: "Sure, I can help with your bill.".into(),
            reply_hz: 700.0,
            reply_ms: 1000,
            heard_text: "I have a question about my bill".into(),
            transfer_reason: None,
            transfer_text: "Let me get a person for you.".into(),
            end_silence_ms: 300,
            speed: 4.0,
            audio_chunk_ms: 100,
            late_chunks: 1,
        }
    }
}

/// One client event, as received.
#[derive(Debug, Clone)]
pub struct ClientEvent {
    /// When it arrived.
    pub at: Instant,
    /// The event (`Null` for a frame that was not JSON).
    pub json: Value,
}

impl ClientEvent {
    /// Its `type`.
    pub fn kind(&self) -> &str {
        self.json["type"].as_str().unwrap_or("")
    }
}

/// One `input_audio_buffer.append`, decoded in the session's input format.
#[derive(Debug, Clone)]
pub struct Appended {
    /// When it arrived.
    pub at: Instant,
    /// The bytes as sent (base64 decoded).
    pub bytes: Vec<u8>,
    /// The audio as PCM.
    pub samples: Vec<i16>,
    /// Its rate (24000 for PCM, 8000 for G.711).
    pub rate: u32,
}

/// An upgrade request.
#[derive(Debug, Clone)]
pub struct Upgrade {
    /// The request target (path and query).
    pub uri: String,
    /// Its headers, names lowercase.
    pub headers: Vec<(String, String)>,
}

/// What an item the fake spoke was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// The first response of the session.
    Greeting,
    /// A reply to the caller.
    Reply,
    /// The announcement of a transfer (followed by the tool call).
    Transfer,
}

/// An assistant audio item the fake sent.
#[derive(Debug, Clone)]
pub struct SpokenItem {
    /// Its id.
    pub item_id: String,
    /// What it was for.
    pub kind: ItemKind,
    /// Its tone (Hz).
    pub hz: f64,
    /// Audio samples actually sent (deltas that went out, late ones included).
    pub sent_samples: u64,
    /// The rate of those samples.
    pub rate: u32,
    /// The caller spoke over it and it was cut off.
    pub interrupted: bool,
}

impl SpokenItem {
    /// Its audio actually sent, in ms (rounded down).
    pub fn sent_ms(&self) -> u64 {
        self.sent_samples * 1000 / u64::from(self.rate)
    }
}

/// Everything the client sent so far, and what the fake spoke.
#[derive(Debug, Clone, Default)]
pub struct Received {
    /// Every upgrade request, refused ones included.
    pub upgrades: Vec<Upgrade>,
    /// Every client event, in order over all connections (audio appends included).
    pub events: Vec<ClientEvent>,
    /// The appended caller audio.
    pub audio: Vec<Appended>,
    /// The assistant audio items spoken.
    pub items: Vec<SpokenItem>,
    /// What the fake refused, in words (bad JSON, bad base64, binary frames, unknown events).
    pub errors: Vec<String>,
    /// Connections that ended.
    pub closed_connections: usize,
}

impl Received {
    /// The value of header `name` (any case) in the last upgrade.
    pub fn header(&self, name: &str) -> Option<&str> {
        let last = self.upgrades.last()?;
        last.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The value of query parameter `name` in the last upgrade's URI.
    pub fn query(&self, name: &str) -> Option<String> {
        let uri = &self.upgrades.last()?.uri;
        let query = uri.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| v.to_string())
        })
    }

    /// The types of all events but audio appends, in order.
    pub fn types(&self) -> Vec<String> {
        self.events.iter().map(|e| e.kind().to_string()).filter(|t| t != "input_audio_buffer.append").collect()
    }

    /// The events of type `kind`.
    pub fn of_type(&self, kind: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e.kind() == kind).map(|e| &e.json).collect()
    }

    /// The `session` object of the last `session.update`.
    pub fn session(&self) -> Option<&Value> {
        self.of_type("session.update").last().map(|e| &e["session"])
    }

    /// All caller audio as PCM, and its rate.
    pub fn caller_samples(&self) -> (Vec<i16>, u32) {
        let rate = self.audio.first().map_or(24000, |a| a.rate);
        (self.audio.iter().flat_map(|a| a.samples.iter().copied()).collect(), rate)
    }

    /// All caller audio bytes as sent.
    pub fn caller_bytes(&self) -> Vec<u8> {
        self.audio.iter().flat_map(|a| a.bytes.iter().copied()).collect()
    }

    /// The spoken item `id`.
    pub fn item(&self, id: &str) -> Option<&SpokenItem> {
        self.items.iter().find(|i| i.item_id == id)
    }
}

/// What a test asks the connection thread to do.
enum Command {
    Event(Value),
    Text(String),
    Binary(Vec<u8>),
    CallerSpeech(String),
    Speak(String),
    Close,
}

struct Shared {
    behaviour: Behaviour,
    received: Mutex<Received>,
    current: Mutex<Option<mpsc::Sender<Command>>>,
    stop: Arc<AtomicBool>,
}

/// The running fake; stops when dropped.
pub struct FakeOpenAi {
    shared: Arc<Shared>,
    server: LoopbackServer,
}

impl FakeOpenAi {
    /// Starts a fake on 127.0.0.1 (a free port) with `behaviour`.
    pub fn start(behaviour: Behaviour) -> FakeOpenAi {
        let shared = Arc::new(Shared {
            behaviour,
            received: Mutex::new(Received::default()),
            current: Mutex::new(None),
            stop: Arc::new(AtomicBool::new(false)),
        });
        let serving = Arc::clone(&shared);
        let server =
            LoopbackServer::start("fake OpenAI", Arc::clone(&shared.stop), move |stream| serve(stream, &serving));
        FakeOpenAi { server, shared }
    }

    /// The endpoint to configure: `ws://127.0.0.1:<port>/v1/realtime` (no model: the client adds
    /// it).
    pub fn url(&self) -> String {
        format!("ws://{}{PATH}", self.server.addr())
    }

    /// A copy of what the client sent so far.
    pub fn received(&self) -> Received {
        self.shared.received.lock().unwrap().clone()
    }

    /// Polls until `done` holds for what was received (true), or `timeout` passes (false).
    pub fn wait_until(&self, timeout: Duration, done: impl Fn(&Received) -> bool) -> bool {
        poll_until(timeout, || done(&self.shared.received.lock().unwrap()))
    }

    /// Sends a server event (an `error`, a stray event) on the current connection.
    pub fn send_event(&self, event: Value) {
        self.command(Command::Event(event));
    }

    /// Sends a raw text frame.
    pub fn send_text(&self, text: &str) {
        self.command(Command::Text(text.into()));
    }

    /// Sends a binary frame.
    pub fn send_binary(&self, bytes: Vec<u8>) {
        self.command(Command::Binary(bytes));
    }

    /// Plays a whole caller turn without audio: `speech_started` (cutting off its own reply if
    /// one is playing), `speech_stopped`, the transcription of `text` (when enabled), and the
    /// reply.
    pub fn caller_speech(&self, text: &str) {
        self.command(Command::CallerSpeech(text.into()));
    }

    /// Speaks a reply with transcript `text` (the reply tone), as if the model chose to.
    pub fn speak(&self, text: &str) {
        self.command(Command::Speak(text.into()));
    }

    /// Closes the current connection (close frame 1000).
    pub fn close(&self) {
        self.command(Command::Close);
    }

    fn command(&self, command: Command) {
        let current = self.shared.current.lock().unwrap();
        let tx = current.as_ref().expect("fake OpenAI: no client connected");
        tx.send(command).expect("fake OpenAI: the connection is gone");
    }
}

/// One connection: the upgrade, then events both ways until either side ends it.
fn serve(stream: TcpStream, shared: &Arc<Shared>) {
    stream.set_nonblocking(false).expect("blocking stream");
    let refuse = shared.behaviour.fault == Fault::Unauthorized;
    // tungstenite's callback type returns the whole refusal response as its error.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        let headers = request
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let uri = request.uri().to_string();
        shared.received.lock().unwrap().upgrades.push(Upgrade { uri, headers });
        if refuse || request.uri().path() != PATH {
            let status = if refuse { 401 } else { 404 };
            let refusal: ErrorResponse = tungstenite::http::Response::builder()
                .status(status)
                .body(Some(UNAUTHORIZED_BODY.to_string()))
                .unwrap();
            return Err(refusal);
        }
        Ok(response)
    };
    let Ok(ws) = tungstenite::accept_hdr(stream, callback) else { return };
    ws.get_ref().set_read_timeout(Some(Duration::from_millis(2))).expect("read timeout");
    let (tx, rx) = mpsc::channel();
    *shared.current.lock().unwrap() = Some(tx);
    let mut c = Connection {
        ws,
        shared: Arc::clone(shared),
        b: shared.behaviour.clone(),
        input: Format::Pcm,
        output: Format::Pcm,
        transcribe: false,
        create_response: true,
        interrupt_response: true,
        tools: Vec::new(),
        outbox: VecDeque::new(),
        active: None,
        responses: 0,
        transferred: false,
        ids: 0,
        vad: Vad::default(),
        open: true,
        closing_since: None,
    };
    c.send(json!({"type": "session.created", "session": {"id": "sess_fake", "object": "realtime.session",
        "type": "realtime", "model": "gpt-realtime"}}));
    c.run(&rx);
    shared.received.lock().unwrap().closed_connections += 1;
}

/// The audio format of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Pcm,
    Mulaw,
    Alaw,
}

impl Format {
    fn rate(self) -> u32 {
        if self == Format::Pcm {
            24000
        } else {
            8000
        }
    }

    fn encode(self, samples: &[i16]) -> Vec<u8> {
        match self {
            Format::Pcm => pcm_bytes(samples),
            Format::Mulaw => samples.iter().map(|&s| mulaw_encode(s)).collect(),
            Format::Alaw => samples.iter().map(|&s| alaw_encode(s)).collect(),
        }
    }

    fn decode(self, bytes: &[u8]) -> Vec<i16> {
        match self {
            Format::Pcm => pcm_samples(bytes),
            Format::Mulaw => bytes.iter().map(|&b| mulaw_decode(b)).collect(),
            Format::Alaw => bytes.iter().map(|&b| alaw_decode(b)).collect(),
        }
    }

    /// The format a GA `{type, rate}` object or a beta name means.
    fn parse(v: &Value) -> Result<Format, String> {
        let name = v.get("type").and_then(Value::as_str).or(v.as_str()).unwrap_or("");
        match name {
            "audio/pcm" if v.get("rate").and_then(Value::as_u64).is_some_and(|r| r != 24000) => {
                Err(format!("audio/pcm only supports a rate of 24000, not {}", v["rate"]))
            }
            "audio/pcm" | "pcm16" => Ok(Format::Pcm),
            "audio/pcmu" | "g711_ulaw" => Ok(Format::Mulaw),
            "audio/pcma" | "g711_alaw" => Ok(Format::Alaw),
            other => Err(format!("unknown audio format {other:?}")),
        }
    }
}

/// The fake's server VAD: 20 ms windows of the caller's audio, by level.
#[derive(Default)]
struct Vad {
    /// Samples of a window not yet complete.
    partial: Vec<i16>,
    /// Samples judged so far (the buffer position).
    position: u64,
    loud_run: u32,
    quiet_run: u32,
    speaking: bool,
    start_ms: u64,
}

/// What goes out, when its time comes.
enum Out {
    Json(Value),
    /// An audio delta: the event, and the item and samples it carries (for the record).
    Audio(Value, String, u64),
    /// The end of a response (`response.done`), which frees the conversation for the next.
    End(Value),
    /// The behaviour's fault.
    Fault,
}

/// The response being produced.
struct Active {
    response_id: String,
    item_id: String,
}

struct Connection {
    ws: WebSocket<TcpStream>,
    shared: Arc<Shared>,
    b: Behaviour,
    input: Format,
    output: Format,
    transcribe: bool,
    create_response: bool,
    interrupt_response: bool,
    tools: Vec<String>,
    outbox: VecDeque<(Instant, Out)>,
    active: Option<Active>,
    responses: usize,
    transferred: bool,
    ids: u64,
    vad: Vad,
    open: bool,
    closing_since: Option<Instant>,
}

impl Connection {
    fn run(&mut self, commands: &mpsc::Receiver<Command>) {
        while self.open && !self.shared.stop.load(Ordering::SeqCst) {
            match self.ws.read() {
                Ok(Message::Text(text)) => self.on_text(text.as_str()),
                Ok(Message::Binary(b)) => self.refuse(format!("a binary frame of {} bytes", b.len())),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
            while let Ok(command) = commands.try_recv() {
                self.on_command(command);
            }
            let now = Instant::now();
            while self.open && self.outbox.front().is_some_and(|(due, _)| *due <= now) {
                if let Some((_, out)) = self.outbox.pop_front() {
                    self.put(out);
                }
            }
            // A client that never answers our close frame is dropped.
            if self.closing_since.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
                return;
            }
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        self.ids += 1;
        format!("{prefix}_{:04}", self.ids)
    }

    fn send(&mut self, mut event: Value) {
        if event.get("event_id").is_none() {
            event["event_id"] = json!(self.id("event"));
        }
        if self.ws.send(Message::text(event.to_string())).is_err() {
            self.open = false;
        }
    }

    fn refuse(&mut self, what: String) {
        self.shared.received.lock().unwrap().errors.push(what.clone());
        self.send(json!({"type": "error", "error": {"type": "invalid_request_error", "code": "invalid_value",
            "message": what, "param": null}}));
    }

    fn put(&mut self, out: Out) {
        match out {
            Out::Json(event) => self.send(event),
            Out::Audio(event, item_id, samples) => {
                self.send(event);
                let mut r = self.shared.received.lock().unwrap();
                if let Some(item) = r.items.iter_mut().find(|i| i.item_id == item_id) {
                    item.sent_samples += samples;
                }
            }
            Out::End(event) => {
                self.active = None;
                self.send(event);
            }
            Out::Fault => {
                self.outbox.clear();
                self.active = None;
                match self.b.fault.clone() {
                    Fault::CloseMidSentence => {
                        let frame = CloseFrame { code: CloseCode::Error, reason: "internal error".into() };
                        let _ = self.ws.close(Some(frame));
                        self.closing_since = Some(Instant::now());
                    }
                    Fault::Malformed(Malformed::NotJson) => self.send_raw(Message::text("this is not JSON {")),
                    Fault::Malformed(Malformed::NoType) => {
                        self.send_raw(Message::text(r#"{"event_id":"event_x","delta":"AAAA"}"#))
                    }
                    Fault::Malformed(Malformed::BadBase64) => {
                        let kind = self.name_audio_delta();
                        self.send_raw(Message::text(
                            json!({"type": kind, "event_id": "event_y", "response_id": "resp_x", "item_id": "item_x",
                                "output_index": 0, "content_index": 0, "delta": "%%% not base64 %%%"})
                            .to_string(),
                        ));
                    }
                    Fault::Malformed(Malformed::Binary) => self.send_raw(Message::binary(vec![0u8, 159, 146, 150])),
                    Fault::ErrorEvent { kind, code, message } => {
                        self.send(json!({"type": "error", "error": {"type": kind, "code": code, "message": message,
                            "param": null, "event_id": null}}));
                    }
                    Fault::None | Fault::Unauthorized => {}
                }
            }
        }
    }

    fn send_raw(&mut self, message: Message) {
        if self.ws.send(message).is_err() {
            self.open = false;
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Event(event) => self.send(event),
            Command::Text(text) => self.send_raw(Message::text(text)),
            Command::Binary(bytes) => self.send_raw(Message::binary(bytes)),
            Command::CallerSpeech(text) => {
                let at = self.vad.position * 1000 / u64::from(self.input.rate());
                self.speech_started(at);
                self.speech_stopped(at + 500, &text);
            }
            Command::Speak(text) => {
                if self.active.is_none() {
                    self.respond(ItemKind::Reply, Some(text));
                }
            }
            Command::Close => {
                let _ = self.ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }));
                self.closing_since = Some(Instant::now());
            }
        }
    }

    fn on_text(&mut self, text: &str) {
        let json: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.shared.received.lock().unwrap().events.push(ClientEvent { at: Instant::now(), json: Value::Null });
                return self.refuse(format!("a frame that is not JSON ({e})"));
            }
        };
        let kind = json["type"].as_str().unwrap_or("").to_string();
        self.shared.received.lock().unwrap().events.push(ClientEvent { at: Instant::now(), json: json.clone() });
        match kind.as_str() {
            "session.update" => self.session_update(&json["session"]),
            "input_audio_buffer.append" => self.append(&json),
            "input_audio_buffer.commit" | "input_audio_buffer.clear" => {}
            "conversation.item.create" => {
                let id = json["item"]["id"].as_str().map(str::to_string).unwrap_or_else(|| self.id("item"));
                let mut item = json["item"].clone();
                item["id"] = json!(id);
                self.send(json!({"type": "conversation.item.created", "previous_item_id": null, "item": item}));
            }
            "response.create" => {
                if self.active.is_some() {
                    let refused = "a response.create while a response was in progress".to_string();
                    self.shared.received.lock().unwrap().errors.push(refused);
                    self.send(json!({"type": "error", "error": {"type": "invalid_request_error",
                        "code": "conversation_already_has_active_response",
                        "message": "Conversation already has an active response in progress.", "param": null}}));
                } else {
                    let kind = self.next_kind();
                    self.respond(kind, None);
                }
            }
            "response.cancel" => {
                if self.active.is_some() {
                    self.cut_off(0);
                } else {
                    self.send(json!({"type": "error", "error": {"type": "invalid_request_error",
                        "code": "response_cancel_not_active",
                        "message": "Cancellation failed: no active response found", "param": null}}));
                }
            }
            "conversation.item.truncate" => self.truncate(&json),
            "" => self.refuse("an event without a type".into()),
            other => self.refuse(format!("Invalid value: '{other}'. Supported values are the client events.")),
        }
    }

    /// Takes the session settings, GA (`session.type` "realtime", `audio.*`) or beta shape.
    fn session_update(&mut self, s: &Value) {
        let ga = s.get("type").is_some() || s.get("audio").is_some();
        let (input, output, transcription, vad) = if ga {
            let a = &s["audio"];
            (&a["input"]["format"], &a["output"]["format"], &a["input"]["transcription"], &a["input"]["turn_detection"])
        } else {
            (&s["input_audio_format"], &s["output_audio_format"], &s["input_audio_transcription"], &s["turn_detection"])
        };
        for (format, slot) in [(input, 0), (output, 1)] {
            if format.is_null() {
                continue;
            }
            match Format::parse(format) {
                Ok(f) if slot == 0 => self.input = f,
                Ok(f) => self.output = f,
                Err(e) => return self.refuse(e),
            }
        }
        if !transcription.is_null() {
            self.transcribe = transcription.get("model").and_then(Value::as_str).is_some_and(|m| !m.is_empty());
        }
        if !vad.is_null() {
            self.create_response = vad.get("create_response").and_then(Value::as_bool).unwrap_or(true);
            self.interrupt_response = vad.get("interrupt_response").and_then(Value::as_bool).unwrap_or(true);
        }
        if let Some(tools) = s.get("tools").and_then(Value::as_array) {
            self.tools = tools.iter().filter_map(|t| t["name"].as_str().map(str::to_string)).collect();
        }
        let mut session = s.clone();
        session["id"] = json!("sess_fake");
        self.send(json!({"type": "session.updated", "session": session}));
    }

    fn append(&mut self, json: &Value) {
        let Some(audio) = json["audio"].as_str() else { return self.refuse("an append without audio".into()) };
        let bytes = match BASE64.decode(audio) {
            Ok(b) => b,
            Err(e) => return self.refuse(format!("append audio is not base64 ({e})")),
        };
        let samples = self.input.decode(&bytes);
        let rate = self.input.rate();
        self.shared.received.lock().unwrap().audio.push(Appended {
            at: Instant::now(),
            bytes,
            samples: samples.clone(),
            rate,
        });
        self.hear(&samples);
    }

    /// Server VAD: two loud windows start a turn, `end_silence_ms` of quiet ends it.
    fn hear(&mut self, samples: &[i16]) {
        let window = (self.input.rate() / 50) as usize;
        let ms_per_sample = |n: u64, rate: u32| n * 1000 / u64::from(rate);
        self.vad.partial.extend_from_slice(samples);
        let mut windows = Vec::new();
        while self.vad.partial.len() >= window {
            windows.push(self.vad.partial.drain(..window).collect::<Vec<i16>>());
        }
        for w in windows {
            let rms = (w.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
            let loud = rms > 300.0;
            let rate = self.input.rate();
            let at = ms_per_sample(self.vad.position, rate);
            self.vad.position += w.len() as u64;
            if !self.vad.speaking {
                if loud {
                    self.vad.loud_run += 1;
                    if self.vad.loud_run == 1 {
                        self.vad.start_ms = at;
                    }
                    if self.vad.loud_run >= 2 {
                        self.vad.speaking = true;
                        self.vad.quiet_run = 0;
                        let start = self.vad.start_ms;
                        self.speech_started(start);
                    }
                } else {
                    self.vad.loud_run = 0;
                }
            } else if loud {
                self.vad.quiet_run = 0;
            } else {
                self.vad.quiet_run += 1;
                if self.vad.quiet_run * 20 >= self.b.end_silence_ms {
                    self.vad.speaking = false;
                    self.vad.loud_run = 0;
                    let heard = self.b.heard_text.clone();
                    self.speech_stopped(ms_per_sample(self.vad.position, rate), &heard);
                }
            }
        }
    }

    fn speech_started(&mut self, audio_start_ms: u64) {
        let item_id = self.id("item_user");
        self.send(json!({"type": "input_audio_buffer.speech_started", "audio_start_ms": audio_start_ms,
            "item_id": item_id}));
        if self.interrupt_response && self.active.is_some() {
            let late = self.b.late_chunks;
            self.cut_off(late);
        }
    }

    fn speech_stopped(&mut self, audio_end_ms: u64, heard: &str) {
        let item_id = self.id("item_user");
        self.send(json!({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": audio_end_ms,
            "item_id": item_id}));
        self.send(json!({"type": "input_audio_buffer.committed", "previous_item_id": null, "item_id": item_id}));
        self.send(json!({"type": "conversation.item.created", "previous_item_id": null, "item": {"id": item_id,
            "type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": null}]}}));
        if self.transcribe {
            let words: Vec<&str> = heard.split_whitespace().collect();
            let half = words.len().div_ceil(2);
            for part in [words[..half].join(" ") + " ", words[half..].join(" ")] {
                self.send(json!({"type": "conversation.item.input_audio_transcription.delta", "item_id": item_id,
                    "content_index": 0, "delta": part}));
            }
            self.send(json!({"type": "conversation.item.input_audio_transcription.completed", "item_id": item_id,
                "content_index": 0, "transcript": heard}));
        }
        if self.create_response && self.active.is_none() {
            let kind = self.next_kind();
            self.respond(kind, None);
        }
    }

    /// The caller spoke over the reply (or it was cancelled): `late` more of its deltas still go
    /// out, the rest never does, and the response ends as cancelled.
    fn cut_off(&mut self, late: usize) {
        let Some(active) = self.active.take() else { return };
        let pending: Vec<Out> = self.outbox.drain(..).map(|(_, out)| out).collect();
        let mut sent = 0;
        for out in pending {
            if sent < late && matches!(out, Out::Audio(..)) {
                self.put(out);
                sent += 1;
            }
        }
        if let Some(item) = self.shared.received.lock().unwrap().items.iter_mut().find(|i| i.item_id == active.item_id)
        {
            item.interrupted = true;
        }
        let item = json!({"id": active.item_id, "type": "message", "role": "assistant", "status": "incomplete"});
        self.send(json!({"type": "response.output_item.done", "response_id": active.response_id,
            "output_index": 0, "item": item}));
        self.send(json!({"type": "response.done", "response": {"id": active.response_id, "status": "cancelled",
            "status_details": {"type": "cancelled", "reason": "turn_detected"}, "output": [item],
            "usage": {"total_tokens": 60, "input_tokens": 40, "output_tokens": 20}}}));
    }

    fn next_kind(&self) -> ItemKind {
        if self.responses == 0 {
            ItemKind::Greeting
        } else if self.b.transfer_reason.is_some()
            && !self.transferred
            && self.tools.iter().any(|t| t == "transfer_to_human")
        {
            ItemKind::Transfer
        } else {
            ItemKind::Reply
        }
    }

    fn name_audio_delta(&self) -> &'static str {
        if self.b.names == Names::Ga {
            "response.output_audio.delta"
        } else {
            "response.audio.delta"
        }
    }

    /// Queues a whole response: its audio paced by `speed`, its transcript in pieces alongside,
    /// the done events, the tool call for a transfer, `response.done`.
    fn respond(&mut self, kind: ItemKind, text: Option<String>) {
        self.responses += 1;
        let b = self.b.clone();
        let (hz, ms, default_text) = match kind {
            ItemKind::Greeting => (b.greeting_hz, b.greeting_ms, b.greeting_text.clone()),
            ItemKind::Reply => (b.reply_hz, b.reply_ms, b.reply_text.clone()),
            ItemKind::Transfer => (b.reply_hz, b.reply_ms, b.transfer_text.clone()),
        };
        let text = text.unwrap_or(default_text);
        let (response_id, item_id) = (self.id("resp"), self.id("item"));
        let rate = self.output.rate();
        self.shared.received.lock().unwrap().items.push(SpokenItem {
            item_id: item_id.clone(),
            kind,
            hz,
            sent_samples: 0,
            rate,
            interrupted: false,
        });
        let (ga, audio_delta) = (b.names == Names::Ga, self.name_audio_delta());
        let audio_done = if ga { "response.output_audio.done" } else { "response.audio.done" };
        let tr_delta = if ga { "response.output_audio_transcript.delta" } else { "response.audio_transcript.delta" };
        let tr_done = if ga { "response.output_audio_transcript.done" } else { "response.audio_transcript.done" };
        let part_type = if ga { "output_audio" } else { "audio" };
        let ids = json!({"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0});
        let with = |extra: Value| {
            let mut v = ids.clone();
            for (k, x) in extra.as_object().into_iter().flatten() {
                v[k] = x.clone();
            }
            v
        };
        let start = self.outbox.back().map_or_else(Instant::now, |(d, _)| *d).max(Instant::now());
        let at = |ms: u64| {
            if b.speed.is_finite() && b.speed > 0.0 {
                start + Duration::from_secs_f64(ms as f64 / 1000.0 / b.speed)
            } else {
                start
            }
        };
        let message = json!({"id": item_id, "object": "realtime.item", "type": "message", "role": "assistant",
            "status": "in_progress", "content": []});
        self.active = Some(Active { response_id: response_id.clone(), item_id: item_id.clone() });
        let mut queue = vec![
            (
                start,
                Out::Json(json!({"type": "response.created", "response": {"id": response_id,
                "object": "realtime.response", "status": "in_progress", "output": []}})),
            ),
            (
                start,
                Out::Json(json!({"type": "response.output_item.added", "response_id": response_id,
                "output_index": 0, "item": message})),
            ),
            (
                start,
                Out::Json(with(json!({"type": "response.content_part.added",
                "part": {"type": part_type, "transcript": ""}}))),
            ),
        ];
        let samples = tone(hz, rate, ms);
        let chunk = (rate * b.audio_chunk_ms.max(1) / 1000) as usize;
        let chunks: Vec<&[i16]> = samples.chunks(chunk).collect();
        let words: Vec<&str> = text.split_whitespace().collect();
        let fault_at = (kind == ItemKind::Greeting && !matches!(b.fault, Fault::None | Fault::Unauthorized))
            .then_some(chunks.len() / 2);
        for (k, piece) in chunks.iter().enumerate() {
            let due = at(k as u64 * u64::from(b.audio_chunk_ms));
            if fault_at == Some(k) {
                queue.push((due, Out::Fault));
                self.outbox.extend(queue);
                return;
            }
            let delta = BASE64.encode(self.output.encode(piece));
            queue.push((
                due,
                Out::Audio(with(json!({"type": audio_delta, "delta": delta})), item_id.clone(), piece.len() as u64),
            ));
            let (from, to) = (k * words.len() / chunks.len(), (k + 1) * words.len() / chunks.len());
            if from < to {
                let mut piece_text = words[from..to].join(" ");
                if to < words.len() {
                    piece_text.push(' ');
                }
                queue.push((due, Out::Json(with(json!({"type": tr_delta, "delta": piece_text})))));
            }
        }
        let end = at(u64::from(ms));
        queue.push((end, Out::Json(with(json!({"type": audio_done})))));
        queue.push((end, Out::Json(with(json!({"type": tr_done, "transcript": text})))));
        queue.push((
            end,
            Out::Json(with(
                json!({"type": "response.content_part.done", "part": {"type": part_type, "transcript": text}}),
            )),
        ));
        let mut done_message = json!({"id": item_id, "object": "realtime.item", "type": "message",
            "role": "assistant", "status": "completed",
            "content": [{"type": part_type, "transcript": text}]});
        queue.push((
            end,
            Out::Json(json!({"type": "response.output_item.done", "response_id": response_id, "output_index": 0,
                "item": done_message.clone()})),
        ));
        let mut output = vec![done_message.take()];
        if kind == ItemKind::Transfer {
            self.transferred = true;
            let (call_id, fc_id) = (self.id("call"), self.id("item_fc"));
            let arguments = json!({"reason": b.transfer_reason.clone().unwrap_or_default()}).to_string();
            let call = json!({"id": fc_id, "object": "realtime.item", "type": "function_call", "status": "completed",
                "name": "transfer_to_human", "call_id": call_id, "arguments": arguments});
            queue.push((
                end,
                Out::Json(json!({"type": "response.output_item.added", "response_id": response_id,
                    "output_index": 1, "item": {"id": fc_id, "type": "function_call", "status": "in_progress",
                    "name": "transfer_to_human", "call_id": call_id, "arguments": ""}})),
            ));
            queue.push((
                end,
                Out::Json(json!({"type": "response.function_call_arguments.delta", "response_id": response_id,
                    "item_id": fc_id, "output_index": 1, "call_id": call_id, "delta": arguments})),
            ));
            queue.push((
                end,
                Out::Json(json!({"type": "response.function_call_arguments.done", "response_id": response_id,
                    "item_id": fc_id, "output_index": 1, "call_id": call_id, "name": "transfer_to_human",
                    "arguments": arguments})),
            ));
            queue.push((
                end,
                Out::Json(json!({"type": "response.output_item.done", "response_id": response_id,
                    "output_index": 1, "item": call})),
            ));
            output.push(call);
        }
        queue.push((
            end,
            Out::End(json!({"type": "response.done", "response": {"id": response_id, "object": "realtime.response",
                "status": "completed", "output": output,
                "usage": {"total_tokens": 200, "input_tokens": 120, "output_tokens": 80}}})),
        ));
        self.outbox.extend(queue);
    }

    /// Checks a truncate against the audio really sent of the item, as the service does.
    fn truncate(&mut self, json: &Value) {
        let item_id = json["item_id"].as_str().unwrap_or("").to_string();
        let Some(end_ms) = json["audio_end_ms"].as_u64() else {
            return self.refuse("a truncate without a whole audio_end_ms".into());
        };
        if json["content_index"].as_u64() != Some(0) {
            return self.refuse("a truncate whose content_index is not 0".into());
        }
        let sent = self.shared.received.lock().unwrap().item(&item_id).map(SpokenItem::sent_ms);
        match sent {
            None => self.refuse(format!("Conversation item '{item_id}' not found")),
            Some(sent) if end_ms > sent => {
                self.refuse(format!("Audio content of {sent}ms is already shorter than {end_ms}ms"))
            }
            Some(_) => self.send(json!({"type": "conversation.item.truncated", "item_id": item_id,
                "content_index": 0, "audio_end_ms": end_ms})),
        }
    }
}

/// G.711 µ-law encoding of one sample (ITU-T G.711: bias 0x84, 8 segments, bits inverted).
pub fn mulaw_encode(sample: i16) -> u8 {
    let mut x = i32::from(sample);
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    x = x.min(32635) + 0x84;
    let exponent = (31 - (x as u32).leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (x >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// G.711 µ-law decoding of one byte.
pub fn mulaw_decode(byte: u8) -> i16 {
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let magnitude = (((i32::from(u & 0x0F)) << 3) + 0x84) << exponent;
    let value = magnitude - 0x84;
    (if u & 0x80 != 0 { -value } else { value }) as i16
}

/// G.711 A-law encoding of one sample (even bits inverted with 0x55).
pub fn alaw_encode(sample: i16) -> u8 {
    let mut x = i32::from(sample);
    let sign = if x >= 0 {
        0x80
    } else {
        x = -x - 1;
        0
    };
    let (exponent, mantissa) = if x < 256 {
        (0, (x >> 4) & 0x0F)
    } else {
        let e = 31 - (x as u32).leading_zeros() as i32 - 7;
        (e, (x >> (e + 3)) & 0x0F)
    };
    ((sign | (exponent << 4) | mantissa) as u8) ^ 0x55
}

/// G.711 A-law decoding of one byte.
pub fn alaw_decode(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = (a >> 4) & 0x07;
    let mantissa = i32::from(a & 0x0F);
    let magnitude = if exponent == 0 { (mantissa << 4) + 8 } else { ((mantissa << 4) + 0x108) << (exponent - 1) };
    (if a & 0x80 != 0 { magnitude } else { -magnitude }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_round_trips_within_a_step() {
        for s in (-32000i32..32000).step_by(97) {
            let s = s as i16;
            for (enc, dec) in
                [(mulaw_encode as fn(i16) -> u8, mulaw_decode as fn(u8) -> i16), (alaw_encode, alaw_decode)]
            {
                let back = i32::from(dec(enc(s)));
                let step = (i32::from(s).abs() / 16).max(16);
                assert!((back - i32::from(s)).abs() <= step, "{s} -> {back}");
            }
        }
        assert_eq!(mulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
    }
}
