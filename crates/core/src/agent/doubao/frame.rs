//! Doubao's binary WebSocket protocol: one message per WebSocket binary frame.
//!
//! Layout (big-endian): a 4-byte header (`0x11`: version 1, header of 1 word; message type and
//! its flags; serialization and compression; a reserved zero byte), then the optional fields
//! in this order: error code (error frames), sequence (when the flags say so), event (flag
//! `0b0100`), connect id (length + bytes, only on the server's connection events 50/51/52),
//! session id (length + bytes, on session-level events), and last the payload size and the
//! payload (JSON or audio, optionally gzip).
//!
//! *Choice: which ids a frame carries follows from its event number, not from a flag*, as the
//! protocol has no flag for them: a decoder must know the event table. [`decode`] checks every
//! length against the data and never panics on bad input (the server is remote input).

use std::io::{Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use thiserror::Error;

/// Byte 0 of every frame: protocol version 1, header size 1 (× 4 bytes).
const VERSION_AND_HEADER_SIZE: u8 = 0x11;
/// Flag bit: an event number follows the header.
const FLAG_EVENT: u8 = 0b0100;
/// A gzip payload may not inflate beyond this (a corrupt or hostile frame must not eat memory).
const MAX_INFLATED: u64 = 16 * 1024 * 1024;

/// The event numbers of the realtime dialogue API.
pub mod event {
    /// Client: open the connection (payload `{}`).
    pub const START_CONNECTION: i32 = 1;
    /// Client: close the connection.
    pub const FINISH_CONNECTION: i32 = 2;
    /// Server: the connection is up.
    pub const CONNECTION_STARTED: i32 = 50;
    /// Server: the connection was refused (`{"error": ...}`).
    pub const CONNECTION_FAILED: i32 = 51;
    /// Server: the connection is over.
    pub const CONNECTION_FINISHED: i32 = 52;
    /// Client: start a session (its configuration as JSON).
    pub const START_SESSION: i32 = 100;
    /// Client: end the session.
    pub const FINISH_SESSION: i32 = 102;
    /// Client: caller audio (s16le mono 16 kHz, audio-only frame).
    pub const TASK_REQUEST: i32 = 200;
    /// Client: say this greeting (`{"content": ...}`).
    pub const SAY_HELLO: i32 = 300;
    /// Client: a text query from the caller (`{"content": ...}`).
    pub const CHAT_TEXT_QUERY: i32 = 501;
    /// Server: the session is up (`{"dialog_id": ...}`).
    pub const SESSION_STARTED: i32 = 150;
    /// Server: the session is over.
    pub const SESSION_FINISHED: i32 = 152;
    /// Server: the session failed (`{"error": ...}`).
    pub const SESSION_FAILED: i32 = 153;
    /// Server: usage of one round (`{"usage": {...}}`).
    pub const USAGE_RESPONSE: i32 = 154;
    /// Server: a spoken sentence starts (`{"text": ...}`).
    pub const TTS_SENTENCE_START: i32 = 350;
    /// Server: a spoken sentence ends.
    pub const TTS_SENTENCE_END: i32 = 351;
    /// Server: agent audio (audio-only frame).
    pub const TTS_RESPONSE: i32 = 352;
    /// Server: the reply's audio is complete.
    pub const TTS_ENDED: i32 = 359;
    /// Server: the caller started speaking (barge-in).
    pub const ASR_INFO: i32 = 450;
    /// Server: what the caller said (`{"results": [{"text", "is_interim"}]}`).
    pub const ASR_RESPONSE: i32 = 451;
    /// Server: the caller stopped speaking.
    pub const ASR_ENDED: i32 = 459;
    /// Server: a piece of the reply's text (`{"content": ...}`).
    pub const CHAT_RESPONSE: i32 = 550;
    /// Server: the reply's text is complete.
    pub const CHAT_ENDED: i32 = 559;
    /// Server: an error during the dialogue (`{"status_code", "message"}`).
    pub const DIALOG_COMMON_ERROR: i32 = 599;

    /// True for the server's connection events, which carry a connect id.
    pub fn has_connect_id(event: i32) -> bool {
        matches!(event, CONNECTION_STARTED | CONNECTION_FAILED | CONNECTION_FINISHED)
    }

    /// True for session-level events, which carry a session id.
    pub fn has_session_id(event: i32) -> bool {
        !matches!(event, START_CONNECTION | FINISH_CONNECTION) && !has_connect_id(event)
    }
}

/// The kind of message (the header's upper 4 bits of byte 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// A client event with a JSON payload.
    FullClientRequest,
    /// A client event carrying audio.
    AudioOnlyRequest,
    /// A server event with a JSON payload.
    FullServerResponse,
    /// A server event carrying audio.
    AudioOnlyResponse,
    /// A server error, with an error code.
    Error,
}

impl MessageType {
    fn bits(self) -> u8 {
        match self {
            MessageType::FullClientRequest => 0b0001,
            MessageType::AudioOnlyRequest => 0b0010,
            MessageType::FullServerResponse => 0b1001,
            MessageType::AudioOnlyResponse => 0b1011,
            MessageType::Error => 0b1111,
        }
    }

    fn from_bits(bits: u8) -> Option<MessageType> {
        Some(match bits {
            0b0001 => MessageType::FullClientRequest,
            0b0010 => MessageType::AudioOnlyRequest,
            0b1001 => MessageType::FullServerResponse,
            0b1011 => MessageType::AudioOnlyResponse,
            0b1111 => MessageType::Error,
            _ => return None,
        })
    }
}

/// How the payload is serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serialization {
    /// Raw bytes (audio).
    Raw,
    /// JSON text.
    Json,
}

/// How the payload is compressed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed (what the documentation recommends, and what we send).
    None,
    /// gzip.
    Gzip,
}

/// Why bytes are not a valid frame.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the header (or a field) needs.
    #[error("frame truncated: {field} needs {needed} bytes, {left} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left.
        left: usize,
    },
    /// The header's version or size is not protocol version 1.
    #[error("unsupported protocol version {version} (header size {header_words} words)")]
    Version {
        /// The version nibble.
        version: u8,
        /// The header-size nibble.
        header_words: u8,
    },
    /// An unknown message type.
    #[error("unknown message type {0:#06b}")]
    MessageType(u8),
    /// An unknown serialization or compression method.
    #[error("unknown payload encoding: serialization {serialization}, compression {compression}")]
    Encoding {
        /// The serialization nibble.
        serialization: u8,
        /// The compression nibble.
        compression: u8,
    },
    /// Bytes left over after the payload.
    #[error("{0} unexpected bytes after the payload")]
    Trailing(usize),
    /// An id is not UTF-8.
    #[error("the {0} is not UTF-8")]
    Id(&'static str),
    /// The gzip payload does not inflate.
    #[error("bad gzip payload: {0}")]
    Gzip(String),
    /// The payload is not the JSON expected.
    #[error("bad JSON payload: {0}")]
    Json(String),
    /// A field too long for its 32-bit length.
    #[error("{0} too long for the protocol")]
    TooLong(&'static str),
}

/// One protocol message, its payload uncompressed.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// What kind of message.
    pub kind: MessageType,
    /// How the payload is serialized.
    pub serialization: Serialization,
    /// How the payload goes on the wire ([`Frame::payload`] is always inflated).
    pub compression: Compression,
    /// The error code (error frames only).
    pub error_code: Option<u32>,
    /// The sequence number, when the flags carry one.
    pub sequence: Option<i32>,
    /// The event number.
    pub event: Option<i32>,
    /// The connect id (server connection events).
    pub connect_id: Option<String>,
    /// The session id (session-level events).
    pub session_id: Option<String>,
    /// The payload, uncompressed.
    pub payload: Vec<u8>,
}

// Audio payloads would flood a log: the payload shows as its length, or as text when JSON.
impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Frame");
        d.field("kind", &self.kind).field("event", &self.event);
        if let Some(code) = self.error_code {
            d.field("error_code", &code);
        }
        if let Some(id) = &self.session_id {
            d.field("session_id", id);
        }
        match self.serialization {
            Serialization::Json => d.field("payload", &String::from_utf8_lossy(&self.payload)),
            Serialization::Raw => d.field("payload_len", &self.payload.len()),
        };
        d.finish()
    }
}

impl Frame {
    /// A client event with a JSON payload, uncompressed (the session id on session events).
    pub fn client_json(event: i32, session_id: Option<&str>, json: &serde_json::Value) -> Frame {
        Frame {
            kind: MessageType::FullClientRequest,
            serialization: Serialization::Json,
            compression: Compression::None,
            error_code: None,
            sequence: None,
            event: Some(event),
            connect_id: None,
            session_id: session_id.map(str::to_string),
            payload: json.to_string().into_bytes(),
        }
    }

    /// A TaskRequest: caller audio (s16le mono 16 kHz) for the session.
    pub fn client_audio(session_id: &str, pcm: Vec<u8>) -> Frame {
        Frame {
            kind: MessageType::AudioOnlyRequest,
            serialization: Serialization::Raw,
            compression: Compression::None,
            error_code: None,
            sequence: None,
            event: Some(event::TASK_REQUEST),
            connect_id: None,
            session_id: Some(session_id.to_string()),
            payload: pcm,
        }
    }

    /// The payload as JSON (an empty payload reads as `{}`).
    pub fn json(&self) -> Result<serde_json::Value, FrameError> {
        if self.payload.is_empty() {
            return Ok(serde_json::Value::Object(Default::default()));
        }
        serde_json::from_slice(&self.payload).map_err(|e| FrameError::Json(e.to_string()))
    }

    /// The frame's bytes. The ids present are written; gzip is applied when asked for.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let payload = match self.compression {
            Compression::None => std::borrow::Cow::Borrowed(&self.payload),
            Compression::Gzip => {
                let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&self.payload)
                    .and_then(|()| gz.finish())
                    .map(std::borrow::Cow::Owned)
                    .map_err(|e| FrameError::Gzip(e.to_string()))?
            }
        };
        let mut flags = 0;
        if let Some(seq) = self.sequence {
            flags |= if seq < 0 { 0b0011 } else { 0b0001 };
        }
        if self.event.is_some() {
            flags |= FLAG_EVENT;
        }
        let serialization = match self.serialization {
            Serialization::Raw => 0,
            Serialization::Json => 1,
        };
        let compression = match self.compression {
            Compression::None => 0,
            Compression::Gzip => 1,
        };
        let mut out = Vec::with_capacity(32 + payload.len());
        out.extend_from_slice(&[
            VERSION_AND_HEADER_SIZE,
            self.kind.bits() << 4 | flags,
            serialization << 4 | compression,
            0,
        ]);
        if let Some(code) = self.error_code {
            out.extend_from_slice(&code.to_be_bytes());
        }
        if let Some(seq) = self.sequence {
            out.extend_from_slice(&seq.to_be_bytes());
        }
        if let Some(event) = self.event {
            out.extend_from_slice(&event.to_be_bytes());
        }
        for (name, id) in [("connect id", &self.connect_id), ("session id", &self.session_id)] {
            if let Some(id) = id {
                put_bytes(&mut out, name, id.as_bytes())?;
            }
        }
        put_bytes(&mut out, "payload", &payload)?;
        Ok(out)
    }
}

fn put_bytes(out: &mut Vec<u8>, name: &'static str, bytes: &[u8]) -> Result<(), FrameError> {
    let len = u32::try_from(bytes.len()).map_err(|_| FrameError::TooLong(name))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Reads one frame; every length is checked against the data.
pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
    let mut r = Reader { bytes, at: 0 };
    let head = r.take("header", 4)?;
    let (version, header_words) = (head[0] >> 4, head[0] & 0x0F);
    if version != 1 || header_words == 0 {
        return Err(FrameError::Version { version, header_words });
    }
    // A longer header (extensions) is skipped whole.
    r.take("header extension", usize::from(header_words - 1) * 4)?;
    let kind = MessageType::from_bits(head[1] >> 4).ok_or(FrameError::MessageType(head[1] >> 4))?;
    let flags = head[1] & 0x0F;
    let (serialization, compression) = match (head[2] >> 4, head[2] & 0x0F) {
        (s @ (0 | 1), c @ (0 | 1)) => (
            if s == 0 { Serialization::Raw } else { Serialization::Json },
            if c == 0 { Compression::None } else { Compression::Gzip },
        ),
        (s, c) => return Err(FrameError::Encoding { serialization: s, compression: c }),
    };
    let error_code = if kind == MessageType::Error { Some(r.u32("error code")?) } else { None };
    let sequence = if matches!(flags & 0b0011, 0b0001 | 0b0011) { Some(r.u32("sequence")? as i32) } else { None };
    let event = if flags & FLAG_EVENT != 0 { Some(r.u32("event")? as i32) } else { None };
    let (mut connect_id, mut session_id) = (None, None);
    if let Some(e) = event {
        if event::has_connect_id(e) {
            connect_id = Some(r.id("connect id")?);
        } else if event::has_session_id(e) {
            session_id = Some(r.id("session id")?);
        }
    }
    let size = r.u32("payload size")? as usize;
    let raw = r.take("payload", size)?;
    if r.left() > 0 {
        return Err(FrameError::Trailing(r.left()));
    }
    let payload = match compression {
        Compression::None => raw.to_vec(),
        Compression::Gzip => inflate(raw)?,
    };
    Ok(Frame { kind, serialization, compression, error_code, sequence, event, connect_id, session_id, payload })
}

fn inflate(raw: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    GzDecoder::new(raw).take(MAX_INFLATED + 1).read_to_end(&mut out).map_err(|e| FrameError::Gzip(e.to_string()))?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(FrameError::Gzip(format!("inflates beyond {MAX_INFLATED} bytes")));
    }
    Ok(out)
}

/// A cursor that checks each read against the data left.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, field: &'static str, needed: usize) -> Result<&'a [u8], FrameError> {
        if needed > self.left() {
            return Err(FrameError::Truncated { field, needed, left: self.left() });
        }
        let out = &self.bytes[self.at..self.at + needed];
        self.at += needed;
        Ok(out)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, FrameError> {
        let b = self.take(field, 4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn id(&mut self, field: &'static str) -> Result<String, FrameError> {
        let len = self.u32(field)? as usize;
        let bytes = self.take(field, len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| FrameError::Id(field))
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
