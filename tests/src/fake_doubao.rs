//! A loopback server that speaks the Doubao (Volcengine) realtime dialogue wire protocol, so
//! SipDesk's Doubao client can be tested without the cloud, and end-to-end call tests can hand
//! a real call to it.
//!
//! It checks and records the upgrade headers, answers StartConnection and StartSession, speaks
//! a reply (TTSSentenceStart, 24 kHz s16le PCM of a tone or a WAV, TTSEnded) on SayHello, on a
//! ChatTextQuery and after the caller's speech (found by level in the TaskRequest audio, with
//! ASRInfo/ASRResponse/ASREnded first), and finishes the session and connection when asked. A
//! [`Fault`] makes it fail in one of the ways the real service can. Tests drive it further
//! with [`FakeDoubao::speak`], [`FakeDoubao::caller_speech`], [`FakeDoubao::send_event`] and
//! friends, and read what the client sent with [`FakeDoubao::received`].
//!
//! *Choice: its own frame decoder and encoder*, written from the documentation and not shared
//! with the core's, so a mistake in the core's codec cannot hide in both ends.

use std::collections::VecDeque;
use std::io::Read;
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::loopback_ws::{pcm_bytes, pcm_samples, tone};
use crate::loopback_ws::{poll_until, LoopbackServer};
use serde_json::{json, Value};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::{Message, WebSocket};

/// The path the fake serves (the real endpoint's).
pub const PATH: &str = "/api/v3/realtime/dialogue";
/// The `X-Tt-Logid` the fake answers the upgrade with.
pub const LOGID: &str = "20250101000000FAKEDOUBAOLOGID";
/// Message types of the protocol.
pub mod msg {
    /// Client JSON event.
    pub const FULL_CLIENT: u8 = 0b0001;
    /// Client audio.
    pub const AUDIO_CLIENT: u8 = 0b0010;
    /// Server JSON event.
    pub const FULL_SERVER: u8 = 0b1001;
    /// Server audio.
    pub const AUDIO_SERVER: u8 = 0b1011;
    /// Server error.
    pub const ERROR: u8 = 0b1111;
}

/// How the fake misbehaves.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// It behaves.
    None,
    /// The upgrade is refused with HTTP 401 (a wrong access key).
    Unauthorized,
    /// StartConnection is answered with ConnectionFailed (51).
    ConnectionFailed,
    /// StartSession is answered with SessionFailed (153).
    SessionFailed,
    /// The first reply's socket is dropped (no close frame) after this many audio frames.
    CloseMidSentence {
        /// Audio frames sent before the drop.
        after_frames: usize,
    },
    /// The first reply's audio is replaced by a frame whose payload size runs past its end.
    MalformedFrame,
    /// The first reply's audio is replaced by an error frame (type 0b1111).
    ErrorFrame {
        /// The error code.
        code: u32,
        /// The `error` text.
        message: String,
    },
}

/// What the fake says and how.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// How it misbehaves.
    pub fault: Fault,
    /// The reply's tone, when no WAV is given (Hz).
    pub reply_tone_hz: f64,
    /// The tone's length (ms).
    pub reply_ms: u32,
    /// A WAV to speak instead of the tone (any rate; resampled to 24 kHz).
    pub reply_wav: Option<PathBuf>,
    /// The text of replies to the caller's speech and text.
    pub reply_text: String,
    /// What its speech recognition "hears" when the caller makes sound.
    pub heard_text: String,
    /// Whether the caller's sound is recognised and answered.
    pub answer_speech: bool,
    /// Silence after sound that ends the caller's turn (ms).
    pub end_silence_ms: u32,
    /// Send reply audio in real time (one chunk per its length) instead of at once.
    pub pace_audio: bool,
    /// Length of each TTSResponse's audio (ms).
    pub audio_chunk_ms: u32,
}

impl Default for Behaviour {
    fn default() -> Behaviour {
        Behaviour {
            fault: Fault::None,
            reply_tone_hz: 700.0,
            reply_ms: 600,
            reply_wav: None,
            reply_text: "I can help with that.".into(),
            heard_text: "hello there".into(),
            answer_speech: true,
            end_silence_ms: 400,
            pace_audio: false,
            audio_chunk_ms: 20,
        }
    }
}

/// One frame the client sent, decoded by the fake's own decoder.
#[derive(Debug, Clone)]
pub struct ClientFrame {
    /// When it arrived.
    pub at: Instant,
    /// The header's message type (upper 4 bits of byte 1).
    pub msg_type: u8,
    /// The header's flags (lower 4 bits of byte 1).
    pub flags: u8,
    /// Serialization (0 raw, 1 JSON).
    pub serialization: u8,
    /// Compression (0 none, 1 gzip).
    pub compression: u8,
    /// The event number, when flagged.
    pub event: Option<i32>,
    /// The connect id, on connection events.
    pub connect_id: Option<String>,
    /// The session id, on session events.
    pub session_id: Option<String>,
    /// The payload, uncompressed.
    pub payload: Vec<u8>,
    /// The frame's bytes as sent (empty for TaskRequests, to keep memory small).
    pub raw: Vec<u8>,
}

impl ClientFrame {
    /// The payload as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or(Value::Null)
    }
}

/// Everything the client sent so far.
#[derive(Debug, Clone, Default)]
pub struct Received {
    /// The headers of each upgrade request (names lowercase), refused ones included.
    pub upgrades: Vec<Vec<(String, String)>>,
    /// Every frame, in order, over all connections.
    pub frames: Vec<ClientFrame>,
    /// Binary messages the fake could not decode, in words.
    pub errors: Vec<String>,
    /// Connections that ended (closed by either side).
    pub closed_connections: usize,
}

impl Received {
    /// The value of upgrade header `name` (any case) in the last upgrade.
    pub fn header(&self, name: &str) -> Option<&str> {
        let last = self.upgrades.last()?;
        last.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The events of all frames but TaskRequests, in order.
    pub fn events(&self) -> Vec<i32> {
        self.frames.iter().filter_map(|f| f.event).filter(|e| *e != 200).collect()
    }

    /// The first frame with `event`.
    pub fn first(&self, event: i32) -> Option<&ClientFrame> {
        self.frames.iter().find(|f| f.event == Some(event))
    }

    /// The TaskRequests (caller audio).
    pub fn task_requests(&self) -> Vec<&ClientFrame> {
        self.frames.iter().filter(|f| f.event == Some(200)).collect()
    }

    /// All caller audio as samples (s16le decoded).
    pub fn audio_samples(&self) -> Vec<i16> {
        self.task_requests().iter().flat_map(|f| pcm_samples(&f.payload)).collect()
    }
}

/// What a test asks the connection thread to do.
enum Command {
    Speak(String),
    CallerSpeech(String),
    Event(i32, Value),
    Audio(Vec<i16>),
    Raw(Vec<u8>),
    CloseAbruptly,
}

struct Shared {
    behaviour: Behaviour,
    reply_audio: Vec<i16>,
    received: Mutex<Received>,
    current: Mutex<Option<mpsc::Sender<Command>>>,
    stop: Arc<AtomicBool>,
}

/// The running fake; stops when dropped.
pub struct FakeDoubao {
    shared: Arc<Shared>,
    server: LoopbackServer,
}

impl FakeDoubao {
    /// Starts a fake on 127.0.0.1 (a free port) with `behaviour`.
    pub fn start(behaviour: Behaviour) -> FakeDoubao {
        let reply_audio = match &behaviour.reply_wav {
            Some(path) => {
                let (samples, rate) = crate::audio::read_wav(path);
                sipdesk_core::media::resample::resample(&samples, rate, 24000)
            }
            None => tone(behaviour.reply_tone_hz, 24000, behaviour.reply_ms),
        };
        let shared = Arc::new(Shared {
            behaviour,
            reply_audio,
            received: Mutex::new(Received::default()),
            current: Mutex::new(None),
            stop: Arc::new(AtomicBool::new(false)),
        });
        let serving = Arc::clone(&shared);
        let server =
            LoopbackServer::start("fake Doubao", Arc::clone(&shared.stop), move |stream| serve(stream, &serving));
        FakeDoubao { server, shared }
    }

    /// The endpoint to configure: `ws://127.0.0.1:<port>/api/v3/realtime/dialogue`.
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

    /// Speaks a reply with `text` on the current connection (with the behaviour's fault, if
    /// this is its first reply).
    pub fn speak(&self, text: &str) {
        self.command(Command::Speak(text.into()));
    }

    /// Plays the caller speaking `text`: ASRInfo (450), an interim ASRResponse (451) with its
    /// first word, the final one, and ASREnded (459). No reply follows.
    pub fn caller_speech(&self, text: &str) {
        self.command(Command::CallerSpeech(text.into()));
    }

    /// Sends a JSON server event for the session.
    pub fn send_event(&self, event: i32, payload: Value) {
        self.command(Command::Event(event, payload));
    }

    /// Sends one TTSResponse (352) with these 24 kHz samples.
    pub fn send_tts_audio(&self, samples: &[i16]) {
        self.command(Command::Audio(samples.to_vec()));
    }

    /// Sends these bytes as one binary WebSocket message.
    pub fn send_raw(&self, bytes: Vec<u8>) {
        self.command(Command::Raw(bytes));
    }

    /// Drops the current connection without a close frame.
    pub fn close_abruptly(&self) {
        self.command(Command::CloseAbruptly);
    }

    fn command(&self, command: Command) {
        let current = self.shared.current.lock().unwrap();
        let tx = current.as_ref().expect("fake Doubao: no client connected");
        tx.send(command).expect("fake Doubao: the connection is gone");
    }
}

/// One connection: the upgrade, then frames both ways until either side ends it.
fn serve(stream: TcpStream, shared: &Arc<Shared>) {
    stream.set_nonblocking(false).expect("blocking stream");
    let refuse = shared.behaviour.fault == Fault::Unauthorized;
    let mut connect_id = String::new();
    // tungstenite's refusal type is what it is.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, mut response: Response| {
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        connect_id = headers.iter().find(|(n, _)| n == "x-api-connect-id").map(|(_, v)| v.clone()).unwrap_or_default();
        shared.received.lock().unwrap().upgrades.push(headers);
        if refuse || request.uri().path() != PATH {
            let body = r#"{"error":"requested grant not found"}"#;
            let status = if refuse { 401 } else { 404 };
            let refusal: ErrorResponse =
                tungstenite::http::Response::builder().status(status).body(Some(body.to_string())).unwrap();
            return Err(refusal);
        }
        response.headers_mut().insert("X-Tt-Logid", LOGID.parse().unwrap());
        Ok(response)
    };
    let Ok(ws) = tungstenite::accept_hdr(stream, callback) else { return };
    ws.get_ref().set_read_timeout(Some(Duration::from_millis(5))).expect("read timeout");
    let (tx, rx) = mpsc::channel();
    *shared.current.lock().unwrap() = Some(tx);
    let mut c = Connection {
        ws,
        shared: Arc::clone(shared),
        connect_id,
        session_id: String::new(),
        replies: 0,
        outbox: VecDeque::new(),
        sound_ms: 0,
        quiet_ms: 0,
        announced: false,
        open: true,
    };
    c.run(&rx);
    shared.received.lock().unwrap().closed_connections += 1;
}

enum Out {
    Bytes(Vec<u8>),
    Drop,
}

struct Connection {
    ws: WebSocket<TcpStream>,
    shared: Arc<Shared>,
    connect_id: String,
    session_id: String,
    replies: usize,
    /// What to send, and when.
    outbox: VecDeque<(Instant, Out)>,
    /// Sound heard in the caller's current turn (ms), and the silence after it.
    sound_ms: u32,
    quiet_ms: u32,
    /// ASRInfo was sent for the current turn.
    announced: bool,
    open: bool,
}

impl Connection {
    fn run(&mut self, commands: &mpsc::Receiver<Command>) {
        while self.open && !self.shared.stop.load(Ordering::SeqCst) {
            match self.ws.read() {
                Ok(Message::Binary(bytes)) => self.on_binary(&bytes),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
            while let Ok(command) = commands.try_recv() {
                self.on_command(command);
            }
            let now = Instant::now();
            while self.outbox.front().is_some_and(|(due, _)| *due <= now) {
                let Some((_, out)) = self.outbox.pop_front() else { break };
                let sent = match out {
                    Out::Bytes(bytes) => self.ws.send(Message::binary(bytes)).is_ok(),
                    Out::Drop => {
                        let _ = self.ws.get_mut().shutdown(Shutdown::Both);
                        false
                    }
                };
                if !sent {
                    return;
                }
            }
        }
    }

    fn on_binary(&mut self, bytes: &[u8]) {
        let frame = match decode(bytes) {
            Ok(f) => f,
            Err(e) => {
                self.shared.received.lock().unwrap().errors.push(e);
                return;
            }
        };
        let (event, json) = (frame.event, frame.json());
        let audio = (frame.event == Some(200)).then(|| frame.payload.clone());
        self.shared.received.lock().unwrap().frames.push(frame);
        match event {
            Some(1) => {
                if self.shared.behaviour.fault == Fault::ConnectionFailed {
                    self.push_event(51, json!({"error": "app id and access key do not match"}));
                } else {
                    self.push_event(50, json!({}));
                }
            }
            Some(100) => {
                self.session_id = self.last_session_id();
                if self.shared.behaviour.fault == Fault::SessionFailed {
                    self.push_event(153, json!({"error": "resource not granted: volc.speech.dialog"}));
                } else {
                    self.push_event(150, json!({"dialog_id": "fake-dialog-1"}));
                }
            }
            Some(102) => self.push_event(152, json!({})),
            Some(2) => {
                self.push_event(52, json!({}));
                let _ = self.flush_now();
                let _ = self.ws.close(None);
            }
            Some(300) => self.speak(json["content"].as_str().unwrap_or_default()),
            Some(501) => {
                self.push_event(553, json!({"question_id": "fake-q"}));
                let reply = self.shared.behaviour.reply_text.clone();
                self.speak(&reply);
            }
            Some(200) => self.hear(&audio.unwrap_or_default()),
            _ => {}
        }
    }

    fn last_session_id(&self) -> String {
        let r = self.shared.received.lock().unwrap();
        r.frames.last().and_then(|f| f.session_id.clone()).unwrap_or_default()
    }

    /// Follows the caller's level: sound starts a turn (ASRInfo after 100 ms), silence ends it
    /// (final transcript, ASREnded, then the reply).
    fn hear(&mut self, pcm: &[u8]) {
        if !self.shared.behaviour.answer_speech {
            return;
        }
        let samples = pcm_samples(pcm);
        let ms = (samples.len() / 16) as u32;
        let mean_square = samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len().max(1) as f64;
        let sounding = mean_square.sqrt() > 300.0;
        let heard = self.shared.behaviour.heard_text.clone();
        if sounding {
            self.sound_ms += ms;
            self.quiet_ms = 0;
            if self.sound_ms >= 100 && !self.announced {
                self.announced = true;
                self.push_event(450, json!({"question_id": "fake-q"}));
                let first = heard.split_whitespace().next().unwrap_or_default().to_string();
                self.push_event(451, json!({"results": [{"text": first, "is_interim": true}]}));
            }
        } else if self.announced {
            self.quiet_ms += ms;
            if self.quiet_ms >= self.shared.behaviour.end_silence_ms {
                self.push_event(451, json!({"results": [{"text": heard, "is_interim": false}]}));
                self.push_event(459, json!({}));
                let reply = self.shared.behaviour.reply_text.clone();
                self.speak(&reply);
                (self.announced, self.sound_ms, self.quiet_ms) = (false, 0, 0);
            }
        } else {
            self.sound_ms = 0;
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Speak(text) => self.speak(&text),
            Command::CallerSpeech(text) => {
                self.push_event(450, json!({"question_id": "fake-q"}));
                let first = text.split_whitespace().next().unwrap_or_default().to_string();
                self.push_event(451, json!({"results": [{"text": first, "is_interim": true}]}));
                self.push_event(451, json!({"results": [{"text": text, "is_interim": false}]}));
                self.push_event(459, json!({}));
            }
            Command::Event(event, payload) => self.push_event(event, payload),
            Command::Audio(samples) => {
                let bytes = encode(msg::AUDIO_SERVER, 0, None, 352, Some(&self.session_id), &pcm_bytes(&samples));
                self.push(Instant::now(), Out::Bytes(bytes));
            }
            Command::Raw(bytes) => self.push(Instant::now(), Out::Bytes(bytes)),
            Command::CloseAbruptly => self.push(Instant::now(), Out::Drop),
        }
    }

    /// A whole reply: the text (ChatResponse, ChatEnded), the sentence, its audio, the end.
    fn speak(&mut self, text: &str) {
        self.replies += 1;
        let first = self.replies == 1;
        self.push_event(550, json!({"content": text, "question_id": "fake-q", "reply_id": "fake-r"}));
        self.push_event(559, json!({"question_id": "fake-q", "reply_id": "fake-r"}));
        self.push_event(
            350,
            json!({"tts_type": "default", "text": text, "question_id": "fake-q", "reply_id": "fake-r"}),
        );
        let chunk = (24 * self.shared.behaviour.audio_chunk_ms.max(1)) as usize;
        let audio = self.shared.reply_audio.clone();
        let mut due = self.outbox.back().map_or_else(Instant::now, |(d, _)| *d);
        let step = Duration::from_millis(u64::from(self.shared.behaviour.audio_chunk_ms));
        let fault = if first { self.shared.behaviour.fault.clone() } else { Fault::None };
        for (i, samples) in audio.chunks(chunk).enumerate() {
            match &fault {
                Fault::CloseMidSentence { after_frames } if i == *after_frames => {
                    self.push(due, Out::Drop);
                    return;
                }
                Fault::MalformedFrame => {
                    // A payload size of 1000 over 2 bytes of data.
                    let mut bytes = encode(msg::AUDIO_SERVER, 0, None, 352, Some(&self.session_id), b"ab");
                    let n = bytes.len();
                    bytes[n - 6..n - 2].copy_from_slice(&1000u32.to_be_bytes());
                    self.push(due, Out::Bytes(bytes));
                    return;
                }
                Fault::ErrorFrame { code, message } => {
                    let bytes =
                        encode(msg::ERROR, 1, Some(*code), 0, None, json!({"error": message}).to_string().as_bytes());
                    self.push(due, Out::Bytes(bytes));
                    return;
                }
                _ => {}
            }
            let bytes = encode(msg::AUDIO_SERVER, 0, None, 352, Some(&self.session_id), &pcm_bytes(samples));
            self.push(due, Out::Bytes(bytes));
            if self.shared.behaviour.pace_audio {
                due += step;
            }
        }
        self.push_event(351, json!({"question_id": "fake-q", "reply_id": "fake-r"}));
        self.push_event(359, json!({"question_id": "fake-q", "reply_id": "fake-r"}));
    }

    /// Queues a JSON server event after what is already queued.
    fn push_event(&mut self, event: i32, payload: Value) {
        let id = if matches!(event, 50..=52) { &self.connect_id } else { &self.session_id };
        let bytes = encode(msg::FULL_SERVER, 1, None, event, Some(id), payload.to_string().as_bytes());
        let due = self.outbox.back().map_or_else(Instant::now, |(d, _)| *d);
        self.push(due, Out::Bytes(bytes));
    }

    fn push(&mut self, due: Instant, out: Out) {
        self.outbox.push_back((due, out));
    }

    /// Sends everything queued now, whatever its time.
    fn flush_now(&mut self) -> tungstenite::Result<()> {
        while let Some((_, out)) = self.outbox.pop_front() {
            if let Out::Bytes(bytes) = out {
                self.ws.send(Message::binary(bytes))?;
            }
        }
        Ok(())
    }
}

/// A server frame: type, serialization (0 raw, 1 JSON), an error code for error frames, the
/// event (0: none) and its id (connect id for 50-52, session id otherwise), the payload.
pub fn encode(
    msg_type: u8,
    serialization: u8,
    code: Option<u32>,
    event: i32,
    id: Option<&str>,
    payload: &[u8],
) -> Vec<u8> {
    let flags = if event != 0 { 0b0100 } else { 0 };
    let mut out = vec![0x11, msg_type << 4 | flags, serialization << 4, 0];
    if let Some(code) = code {
        out.extend_from_slice(&code.to_be_bytes());
    }
    if event != 0 {
        out.extend_from_slice(&event.to_be_bytes());
        if let Some(id) = id {
            out.extend_from_slice(&(id.len() as u32).to_be_bytes());
            out.extend_from_slice(id.as_bytes());
        }
    }
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Decodes a client frame by the documented layout; an error in words for anything off.
pub fn decode(bytes: &[u8]) -> Result<ClientFrame, String> {
    let mut at = 0usize;
    let mut take = |n: usize, what: &str| -> Result<&[u8], String> {
        let end = at.checked_add(n).filter(|e| *e <= bytes.len()).ok_or(format!("{what}: truncated at {at}"))?;
        let out = &bytes[at..end];
        at = end;
        Ok(out)
    };
    let head = take(4, "header")?;
    if head[0] != 0x11 || head[3] != 0 {
        return Err(format!("bad header {head:02x?}"));
    }
    let (msg_type, flags, serialization, compression) = (head[1] >> 4, head[1] & 0xF, head[2] >> 4, head[2] & 0xF);
    if !matches!(msg_type, msg::FULL_CLIENT | msg::AUDIO_CLIENT) {
        return Err(format!("a client sent message type {msg_type:#06b}"));
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    if matches!(flags & 0b11, 0b01 | 0b11) {
        take(4, "sequence")?;
    }
    let event = if flags & 0b0100 != 0 { Some(be(take(4, "event")?) as i32) } else { None };
    let mut id = |what: &str| -> Result<String, String> {
        let n = be(take(4, what)?) as usize;
        String::from_utf8(take(n, what)?.to_vec()).map_err(|_| format!("{what} not UTF-8"))
    };
    let (mut connect_id, mut session_id) = (None, None);
    match event {
        Some(50..=52) => connect_id = Some(id("connect id")?),
        Some(1 | 2) | None => {}
        Some(_) => session_id = Some(id("session id")?),
    }
    let size = be(take(4, "payload size")?) as usize;
    let raw_payload = take(size, "payload")?.to_vec();
    if at != bytes.len() {
        return Err(format!("{} bytes after the payload", bytes.len() - at));
    }
    let payload = match compression {
        0 => raw_payload,
        1 => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw_payload[..]).read_to_end(&mut out).map_err(|e| format!("gzip: {e}"))?;
            out
        }
        c => return Err(format!("compression {c}")),
    };
    let raw = if event == Some(200) { Vec::new() } else { bytes.to_vec() };
    Ok(ClientFrame {
        at: Instant::now(),
        msg_type,
        flags,
        serialization,
        compression,
        event,
        connect_id,
        session_id,
        payload,
        raw,
    })
}
