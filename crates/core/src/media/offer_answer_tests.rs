//! Tests of offer/answer: codec choice, payload numbers, directions, rejections, o= versions.

use super::*;

fn local(port: u16, direction: Direction) -> LocalMedia {
    LocalMedia { address: "127.0.0.1".parse().unwrap(), port, direction }
}

fn offer_with(m_line: &str, attrs: &str) -> String {
    format!("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n{m_line}\r\n{attrs}")
}

#[test]
fn answer_uses_our_preference_and_the_offers_numbers() {
    let offer = offer_with("m=audio 4000 RTP/AVP 0 8 96", "a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n");
    let mut s = SdpSession::new(MediaPolicy { codecs: vec![Codec::Pcma, Codec::Pcmu], ..Default::default() }, 77);
    let (body, n) = s.answer(&offer, local(5000, Direction::SendRecv)).unwrap();
    assert_eq!(
        (n.codec, n.payload_type, n.telephone_event, n.direction),
        (Codec::Pcma, 8, Some(96), Direction::SendRecv)
    );
    assert_eq!(n.remote, "10.0.0.1:4000".parse().unwrap());
    assert!(body.contains("m=audio 5000 RTP/AVP 8 96\r\n"), "{body}");
    assert!(body.contains("a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n"), "{body}");
    assert!(body.contains("o=- 77 77 IN IP4 127.0.0.1\r\n"), "{body}");
}

#[test]
fn codecs_are_found_by_rtpmap_name_even_on_other_numbers() {
    let offer = offer_with("m=audio 4000 RTP/AVP 18 110", "a=rtpmap:110 pcmu/8000\r\n");
    let (_, n) = SdpSession::new(MediaPolicy::default(), 1).answer(&offer, local(5000, Direction::SendRecv)).unwrap();
    assert_eq!((n.codec, n.payload_type, n.telephone_event), (Codec::Pcmu, 110, None));
}

#[test]
fn no_common_codec_is_488() {
    let offer = offer_with("m=audio 4000 RTP/AVP 9 18", "");
    let err = SdpSession::new(MediaPolicy::default(), 1).answer(&offer, local(5000, Direction::SendRecv)).unwrap_err();
    assert!(matches!(&err, SdpError::NoCommonCodec { offered, .. } if offered.len() == 2), "{err:?}");
    assert_eq!(err.sip_status(), 488);
    // PCMU offered as stereo is not G.711 mono.
    let stereo = offer_with("m=audio 4000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000/2\r\n");
    assert!(matches!(
        SdpSession::new(MediaPolicy::default(), 1).answer(&stereo, local(5000, Direction::SendRecv)),
        Err(SdpError::NoCommonCodec { .. })
    ));
}

#[test]
fn missing_audio_or_connection_and_garbage_are_typed() {
    let mut s = SdpSession::new(MediaPolicy::default(), 1);
    let video = offer_with("m=video 4000 RTP/AVP 31", "");
    assert_eq!(s.answer(&video, local(5000, Direction::SendRecv)).unwrap_err(), SdpError::NoAudio);
    let no_c = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    assert_eq!(s.answer(no_c, local(5000, Direction::SendRecv)).unwrap_err(), SdpError::NoConnection);
    assert_eq!(s.answer("garbage", local(5000, Direction::SendRecv)).unwrap_err().sip_status(), 400);
}

#[test]
fn other_streams_are_rejected_with_port_zero_in_place() {
    let offer = offer_with("m=video 6000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\nm=audio 4000 RTP/AVP 0", "");
    let (body, _) =
        SdpSession::new(MediaPolicy::default(), 1).answer(&offer, local(5000, Direction::SendRecv)).unwrap();
    let answer = SessionDescription::parse(&body).unwrap();
    assert_eq!(answer.media.len(), 2);
    assert_eq!(
        (answer.media[0].kind.as_str(), answer.media[0].port, answer.media[0].fmts.clone()),
        ("video", 0, vec!["96".to_string()])
    );
    assert_eq!(answer.media[1].port, 5000);
}

#[test]
fn directions_are_answered_per_rfc_3264() {
    let cases = [
        ("a=sendonly\r\n", Direction::SendRecv, Direction::RecvOnly),
        ("a=recvonly\r\n", Direction::SendRecv, Direction::SendOnly),
        ("a=inactive\r\n", Direction::SendRecv, Direction::Inactive),
        ("", Direction::SendOnly, Direction::SendOnly),
        ("a=sendonly\r\n", Direction::SendOnly, Direction::Inactive),
    ];
    for (attr, want, got) in cases {
        let offer = offer_with("m=audio 4000 RTP/AVP 0", attr);
        let (body, n) = SdpSession::new(MediaPolicy::default(), 1).answer(&offer, local(5000, want)).unwrap();
        assert_eq!(n.direction, got, "{attr} with {want:?}");
        assert!(body.contains(&format!("a={}\r\n", got.as_str())));
    }
    // Old-style hold: c=0.0.0.0 means "do not send to me".
    let hold = offer_with("m=audio 4000 RTP/AVP 0", "").replace("c=IN IP4 10.0.0.1", "c=IN IP4 0.0.0.0");
    let (_, n) = SdpSession::new(MediaPolicy::default(), 1).answer(&hold, local(5000, Direction::SendRecv)).unwrap();
    assert_eq!(n.direction, Direction::RecvOnly);
}

#[test]
fn offer_then_answer_between_two_sessions() {
    let mut a = SdpSession::new(MediaPolicy::default(), 10);
    let mut b = SdpSession::new(
        MediaPolicy { codecs: vec![Codec::Pcma, Codec::Pcmu], telephone_event_pt: 97, ..Default::default() },
        20,
    );
    let offer = a.offer(local(4000, Direction::SendRecv));
    assert!(offer.contains("m=audio 4000 RTP/AVP 0 8 101\r\n") && offer.contains("a=fmtp:101 0-16\r\n"), "{offer}");
    let (answer, nb) = b.answer(&offer, local(6000, Direction::SendRecv)).unwrap();
    let na = a.accept_answer(&answer).unwrap();
    assert_eq!((na.codec, na.payload_type, na.telephone_event), (Codec::Pcma, 8, Some(101)));
    assert_eq!((nb.codec, nb.telephone_event), (Codec::Pcma, Some(101)));
    assert_eq!((na.remote.port(), nb.remote.port()), (6000, 4000));
    assert_eq!(na.direction, Direction::SendRecv);
}

#[test]
fn answers_that_do_not_fit_the_offer_are_rejected() {
    let mut a = SdpSession::new(MediaPolicy { codecs: vec![Codec::Pcmu], ..Default::default() }, 10);
    assert!(matches!(a.accept_answer("v=0\r\n"), Err(SdpError::AnswerMismatch(_))));
    a.offer(local(4000, Direction::SendRecv));
    let pcma = offer_with("m=audio 4000 RTP/AVP 8", "");
    assert!(matches!(a.accept_answer(&pcma), Err(SdpError::NoCommonCodec { .. })));
    let two = offer_with("m=audio 4000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31", "");
    assert!(matches!(a.accept_answer(&two), Err(SdpError::AnswerMismatch(_))));
    let rejected = offer_with("m=audio 0 RTP/AVP 0", "");
    assert_eq!(a.accept_answer(&rejected), Err(SdpError::NoAudio));
}

#[test]
fn version_rises_only_when_content_changes() {
    let mut s = SdpSession::new(MediaPolicy::default(), 500);
    let v = |body: &str| SessionDescription::parse(body).unwrap().origin.version;
    assert_eq!(v(&s.offer(local(4000, Direction::SendRecv))), 500);
    assert_eq!(v(&s.offer(local(4000, Direction::SendRecv))), 500, "same content keeps the version");
    assert_eq!(v(&s.offer(local(4000, Direction::SendOnly))), 501, "hold changes it");
    assert_eq!(v(&s.offer(local(4000, Direction::SendOnly))), 501);
    assert_eq!(v(&s.offer(local(4000, Direction::SendRecv))), 502, "resume changes it again");
    assert_eq!(s.version(), 502);
}

#[test]
fn opus_is_offered_as_opus_48000_2_with_fec_and_mono() {
    let policy = MediaPolicy { codecs: vec![Codec::Opus, Codec::Pcmu], ..Default::default() };
    let mut a = SdpSession::new(policy, 5);
    let offer = a.offer(local(6000, Direction::SendRecv));
    assert!(offer.contains("m=audio 6000 RTP/AVP 111 0 101\r\n"), "{offer}");
    assert!(offer.contains("a=rtpmap:111 opus/48000/2\r\n"), "{offer}");
    assert!(offer.contains("a=fmtp:111 useinbandfec=1;stereo=0;sprop-stereo=0\r\n"), "{offer}");
    // The default policy offers G.711 only.
    let plain = SdpSession::new(MediaPolicy::default(), 5).offer(local(6000, Direction::SendRecv));
    assert!(!plain.contains("opus"), "{plain}");
    // An answer on another dynamic number than ours is refused; one on ours is taken, fmtp kept.
    let answer = offer_with(
        "m=audio 4000 RTP/AVP 111 101",
        "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 maxplaybackrate=16000;useinbandfec=1\r\na=rtpmap:101 telephone-event/8000\r\n",
    );
    let n = a.accept_answer(&answer).unwrap();
    assert_eq!((n.codec, n.payload_type, n.telephone_event), (Codec::Opus, 111, Some(101)));
    assert_eq!(a.peer_fmtp(), Some("maxplaybackrate=16000;useinbandfec=1"));
    assert_eq!(Codec::Opus.name(), "OPUS");
    assert_eq!(Codec::Opus.clock_rate(), 48000);
}

#[test]
fn opus_is_answered_on_the_offers_number_when_preferred() {
    let offer = offer_with(
        "m=audio 4000 RTP/AVP 0 96 101",
        "a=rtpmap:96 OPUS/48000/2\r\na=fmtp:96 stereo=1; sprop-stereo=1\r\na=rtpmap:101 telephone-event/8000\r\n",
    );
    let prefer = MediaPolicy { codecs: vec![Codec::Opus, Codec::Pcmu, Codec::Pcma], ..Default::default() };
    let mut s = SdpSession::new(prefer, 3);
    let (body, n) = s.answer(&offer, local(5000, Direction::SendRecv)).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Opus, 96));
    assert!(body.contains("m=audio 5000 RTP/AVP 96 101\r\n"), "{body}");
    assert!(
        body.contains("a=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1;stereo=0;sprop-stereo=0\r\n"),
        "{body}"
    );
    assert_eq!(s.peer_fmtp(), Some("stereo=1; sprop-stereo=1"));
    // Without the preference, PCMU still wins; opus at a wrong clock is not Opus.
    let (_, n) = SdpSession::new(MediaPolicy::default(), 3).answer(&offer, local(5000, Direction::SendRecv)).unwrap();
    assert_eq!(n.codec, Codec::Pcmu);
    let odd = offer_with("m=audio 4000 RTP/AVP 96", "a=rtpmap:96 opus/8000\r\n");
    let mut s = SdpSession::new(MediaPolicy { codecs: vec![Codec::Opus], ..Default::default() }, 3);
    assert!(matches!(s.answer(&odd, local(5000, Direction::SendRecv)), Err(SdpError::NoCommonCodec { .. })));
}

#[test]
fn codec_lists_parse_in_order() {
    assert_eq!(parse_codecs("opus, PCMU,pcma"), Some(vec![Codec::Opus, Codec::Pcmu, Codec::Pcma]));
    assert_eq!(parse_codecs("pcma,g729,pcma"), Some(vec![Codec::Pcma]));
    assert_eq!(parse_codecs("g729, ,"), None);
    assert_eq!(parse_codecs(""), None);
}
