//! Message framing on stream transports (RFC 3261 18.3): headers end at CRLFCRLF and
//! Content-Length says how much body follows. Also recognises RFC 5626 keepalives: a CRLFCRLF
//! ping and a lone CRLF pong. Sizes are bounded so a hostile peer cannot make us buffer forever.

/// Largest header block we accept.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest body we accept.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// One unit taken off the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole SIP message (headers and body).
    Message(Vec<u8>),
    /// A CRLFCRLF keepalive ping from the peer (answer with CRLF).
    Ping,
    /// A CRLF keepalive pong.
    Pong,
}

/// The stream cannot be framed any more; the connection must be closed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Headers or body larger than we accept.
    #[error("message too large on stream ({0} bytes)")]
    TooLarge(usize),
    /// A message without a usable Content-Length.
    #[error("stream message without a valid Content-Length")]
    NoContentLength,
}

/// Accumulates stream bytes and cuts them into frames.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
}

impl StreamFramer {
    /// Adds bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Takes the next complete frame, if there is one.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.drain(..4);
            return Ok(Some(Frame::Ping));
        }
        if self.buf.starts_with(b"\r\n") && self.buf.get(2) != Some(&b'\r') {
            self.buf.drain(..2);
            return Ok(Some(Frame::Pong));
        }
        let Some(end) = find(&self.buf, b"\r\n\r\n") else {
            return if self.buf.len() > MAX_HEADER_BYTES {
                Err(FramingError::TooLarge(self.buf.len()))
            } else {
                Ok(None)
            };
        };
        if end > MAX_HEADER_BYTES {
            return Err(FramingError::TooLarge(end));
        }
        let body_len = content_length(&self.buf[..end]).ok_or(FramingError::NoContentLength)?;
        if body_len > MAX_BODY_BYTES {
            return Err(FramingError::TooLarge(body_len));
        }
        let total = end + 4 + body_len;
        if self.buf.len() < total {
            return Ok(None);
        }
        let msg: Vec<u8> = self.buf.drain(..total).collect();
        Ok(Some(Frame::Message(msg)))
    }

    /// Bytes waiting for the rest of their message.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads Content-Length (or its compact form `l`) from a header block. Only this one header is
/// read here, to know where the message ends; rsip parses the whole message afterwards.
fn content_length(headers: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(headers).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l"))
            .then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_split_across_reads_and_keepalives() {
        let mut f = StreamFramer::default();
        let msg = b"SIP/2.0 200 OK\r\nl: 5\r\nCSeq: 1 OPTIONS\r\n\r\nhello";
        f.push(b"\r\n");
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Pong));
        f.push(&msg[..10]);
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(&msg[10..]);
        f.push(b"\r\n\r\n");
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Message(msg.to_vec())));
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Ping));
        assert_eq!((f.next_frame().unwrap(), f.pending()), (None, 0));
    }

    #[test]
    fn hostile_streams_are_bounded() {
        let mut f = StreamFramer::default();
        f.push(&vec![b'a'; MAX_HEADER_BYTES + 1]);
        assert!(matches!(f.next_frame(), Err(FramingError::TooLarge(_))));
        let mut f = StreamFramer::default();
        f.push(b"SIP/2.0 200 OK\r\nContent-Length: 99999999\r\n\r\n");
        assert!(matches!(f.next_frame(), Err(FramingError::TooLarge(_))));
        let mut f = StreamFramer::default();
        f.push(b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::NoContentLength));
        let mut f = StreamFramer::default();
        f.push(b"SIP/2.0 200 OK\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::NoContentLength));
    }
}
