//! Tests of the Doubao frame codec: the documentation's example frames byte for byte, and bad
//! input that must fail in words, never panic.

use super::*;
use serde_json::json;

/// StartConnection with payload `{}`, as printed in the API documentation (doc 6561/1594356).
const START_CONNECTION: [u8; 14] = [17, 20, 16, 0, 0, 0, 0, 1, 0, 0, 0, 2, 123, 125];

/// StartSession as printed in the API documentation (doc 6561/1594356, "StartSession事件二进制帧
/// 对应的字节数组示例"): session id `75a6126e-427f-49a1-a2c1-621143cb9db3`, payload
/// `{"dialog":{"bot_name":"豆包","dialog_id":"","extra":null}}`.
const START_SESSION: [u8; 112] = [
    17, 20, 16, 0, 0, 0, 0, 100, 0, 0, 0, 36, 55, 53, 97, 54, 49, 50, 54, 101, 45, 52, 50, 55, 102, 45, 52, 57, 97, 49,
    45, 97, 50, 99, 49, 45, 54, 50, 49, 49, 52, 51, 99, 98, 57, 100, 98, 51, 0, 0, 0, 60, 123, 34, 100, 105, 97, 108,
    111, 103, 34, 58, 123, 34, 98, 111, 116, 95, 110, 97, 109, 101, 34, 58, 34, 232, 177, 134, 229, 140, 133, 34, 44,
    34, 100, 105, 97, 108, 111, 103, 95, 105, 100, 34, 58, 34, 34, 44, 34, 101, 120, 116, 114, 97, 34, 58, 110, 117,
    108, 108, 125, 125,
];

/// The start of the documentation's TTSResponse example (it prints only the first bytes of a
/// 2044-byte OGG payload): a valid prefix whose payload size runs beyond the data.
const TTS_RESPONSE_PREFIX: [u8; 100] = [
    17, 180, 0, 0, 0, 0, 1, 96, 0, 0, 0, 36, 51, 99, 55, 57, 49, 97, 55, 100, 45, 50, 50, 55, 97, 45, 52, 52, 52, 54,
    45, 57, 57, 51, 98, 45, 50, 52, 102, 57, 101, 51, 48, 50, 99, 99, 57, 56, 0, 0, 7, 252, 79, 103, 103, 83, 0, 0, 64,
    129, 32, 0, 0, 0, 0, 0, 132, 149, 185, 182, 172, 8, 0, 0, 169, 57, 249, 174, 1, 71, 104, 139, 98, 229, 167, 232,
    122, 108, 0, 183, 60, 54, 43, 137, 197, 126, 20, 248, 201, 174,
];

#[test]
fn start_connection_matches_the_documented_bytes() {
    let frame = Frame::client_json(event::START_CONNECTION, None, &json!({}));
    assert_eq!(frame.encode().unwrap(), START_CONNECTION);
    let back = decode(&START_CONNECTION).unwrap();
    assert_eq!(back, frame);
}

#[test]
fn start_session_decodes_and_re_encodes_byte_for_byte() {
    let frame = decode(&START_SESSION).unwrap();
    assert_eq!(frame.kind, MessageType::FullClientRequest);
    assert_eq!((frame.serialization, frame.compression), (Serialization::Json, Compression::None));
    assert_eq!(frame.event, Some(event::START_SESSION));
    assert_eq!(frame.session_id.as_deref(), Some("75a6126e-427f-49a1-a2c1-621143cb9db3"));
    assert_eq!(frame.connect_id, None);
    assert_eq!(frame.json().unwrap(), json!({"dialog": {"bot_name": "豆包", "dialog_id": "", "extra": null}}));
    assert_eq!(frame.encode().unwrap(), START_SESSION);
}

#[test]
fn the_documented_tts_response_prefix_reads_as_truncated() {
    let err = decode(&TTS_RESPONSE_PREFIX).unwrap_err();
    assert_eq!(err, FrameError::Truncated { field: "payload", needed: 2044, left: 48 });
    // Completed with the rest of its payload, it is an audio response of session 3c79....
    let mut whole = TTS_RESPONSE_PREFIX.to_vec();
    whole.resize(TTS_RESPONSE_PREFIX.len() + 2044 - 48, 0);
    let frame = decode(&whole).unwrap();
    assert_eq!((frame.kind, frame.event), (MessageType::AudioOnlyResponse, Some(event::TTS_RESPONSE)));
    assert_eq!(frame.session_id.as_deref(), Some("3c791a7d-227a-4446-993b-24f9e302cc98"));
    assert_eq!(&frame.payload[..4], b"OggS");
}

#[test]
fn server_connection_events_carry_a_connect_id() {
    let mut frame = Frame::client_json(event::CONNECTION_STARTED, None, &json!({}));
    frame.kind = MessageType::FullServerResponse;
    frame.connect_id = Some("conn-1".into());
    let back = decode(&frame.encode().unwrap()).unwrap();
    assert_eq!((back.connect_id.as_deref(), back.session_id), (Some("conn-1"), None));
}

#[test]
fn error_frames_carry_their_code() {
    let frame = Frame {
        kind: MessageType::Error,
        serialization: Serialization::Json,
        compression: Compression::None,
        error_code: Some(55_000_001),
        sequence: None,
        event: Some(event::DIALOG_COMMON_ERROR),
        connect_id: None,
        session_id: Some("s".into()),
        payload: br#"{"error":"no audio"}"#.to_vec(),
    };
    let bytes = frame.encode().unwrap();
    assert_eq!(&bytes[..8], &[0x11, 0xF4, 0x10, 0, 0x03, 0x47, 0x3B, 0xC1]);
    assert_eq!(decode(&bytes).unwrap(), frame);
}

#[test]
fn gzip_payloads_are_inflated_and_sequences_kept() {
    let mut frame = Frame::client_json(event::ASR_RESPONSE, Some("s-1"), &json!({"results": [{"text": "hi"}]}));
    frame.kind = MessageType::FullServerResponse;
    frame.compression = Compression::Gzip;
    frame.sequence = Some(-1);
    let bytes = frame.encode().unwrap();
    assert_eq!(bytes[1], 0x9 << 4 | 0b0111);
    let back = decode(&bytes).unwrap();
    assert_eq!(back, frame);
    assert_eq!(back.json().unwrap()["results"][0]["text"], "hi");
}

#[test]
fn audio_requests_are_raw_with_the_session_id() {
    let frame = Frame::client_audio("sess", vec![1, 2, 3, 4]);
    let bytes = frame.encode().unwrap();
    assert_eq!(&bytes[..4], &[0x11, 0x24, 0x00, 0x00]);
    assert_eq!(&bytes[4..8], &200i32.to_be_bytes());
    assert_eq!(&bytes[8..16], &[0, 0, 0, 4, b's', b'e', b's', b's']);
    assert_eq!(&bytes[16..], &[0, 0, 0, 4, 1, 2, 3, 4]);
}

#[test]
fn a_truncated_header_is_an_error() {
    for n in 0..4 {
        assert!(matches!(decode(&START_CONNECTION[..n]), Err(FrameError::Truncated { field: "header", .. })), "{n}");
    }
}

#[test]
fn a_wrong_version_is_an_error() {
    let mut bytes = START_CONNECTION;
    bytes[0] = 0x21;
    assert_eq!(decode(&bytes), Err(FrameError::Version { version: 2, header_words: 1 }));
    bytes[0] = 0x10;
    assert_eq!(decode(&bytes), Err(FrameError::Version { version: 1, header_words: 0 }));
}

#[test]
fn unknown_types_and_encodings_are_errors() {
    let mut bytes = START_CONNECTION;
    bytes[1] = 0x34;
    assert_eq!(decode(&bytes), Err(FrameError::MessageType(3)));
    let mut bytes = START_CONNECTION;
    bytes[2] = 0x12;
    assert_eq!(decode(&bytes), Err(FrameError::Encoding { serialization: 1, compression: 2 }));
}

#[test]
fn a_payload_size_beyond_the_data_is_an_error() {
    let mut bytes = START_CONNECTION.to_vec();
    bytes[11] = 200;
    assert_eq!(decode(&bytes), Err(FrameError::Truncated { field: "payload", needed: 200, left: 2 }));
    // A session id length beyond the data, too.
    let mut bytes = START_SESSION.to_vec();
    bytes[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(decode(&bytes), Err(FrameError::Truncated { field: "session id", .. })));
}

#[test]
fn bytes_after_the_payload_are_an_error() {
    let mut bytes = START_CONNECTION.to_vec();
    bytes.push(0);
    assert_eq!(decode(&bytes), Err(FrameError::Trailing(1)));
}

#[test]
fn bad_gzip_is_an_error() {
    let mut bytes = vec![0x11, 0x94, 0x11, 0x00];
    bytes.extend_from_slice(&event::SESSION_STARTED.to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 1, b's']);
    bytes.extend_from_slice(&[0, 0, 0, 5, 1, 2, 3, 4, 5]);
    assert!(matches!(decode(&bytes), Err(FrameError::Gzip(_))), "{:?}", decode(&bytes));
}

#[test]
fn bad_json_is_an_error_when_read() {
    let mut frame = Frame::client_json(event::SESSION_STARTED, Some("s"), &json!({}));
    frame.payload = b"{not json".to_vec();
    let back = decode(&frame.encode().unwrap()).unwrap();
    assert!(matches!(back.json(), Err(FrameError::Json(_))));
}

#[test]
fn no_prefix_or_corruption_of_a_valid_frame_panics() {
    for valid in [&START_CONNECTION[..], &START_SESSION[..], &TTS_RESPONSE_PREFIX[..]] {
        for n in 0..valid.len() {
            let _ = decode(&valid[..n]);
        }
        for i in 0..valid.len() {
            for flip in [0x01u8, 0x10, 0x80, 0xFF] {
                let mut bytes = valid.to_vec();
                bytes[i] ^= flip;
                let _ = decode(&bytes);
            }
        }
    }
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..2000 {
        let len = rng.gen_range(0..64);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if len > 0 {
            bytes[0] = 0x11;
        }
        let _ = decode(&bytes);
    }
}
