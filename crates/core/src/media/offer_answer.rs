//! SDP offer/answer (RFC 3264) for one audio stream with G.711, Opus and RFC 4733 telephone-events.
//!
//! [`SdpSession`] is the one place a call's SDP is made: it builds our offer or answer, keeps the
//! o= session id for the whole call and raises the o= version only when the content changes
//! (RFC 3264 §8: a re-offer that changes nothing keeps its version). The SIP layer passes bodies
//! in and out as text and maps a [`SdpError`] to its status (400 or 488).
//!
//! Choices: our codec preference order wins when answering (RFC 3264 §6.1 lets the answerer
//! choose), and the answer carries only the chosen codec plus telephone-event, so both sides
//! send the same codec; payload numbers are always the offer's, which matters for the dynamic
//! telephone-event type.
//!
//! Opus (RFC 7587) has no static number: we offer it on [`OPUS_PT`], always as `opus/48000/2`
//! (the RFC's fixed spelling; mono is said in the fmtp), with [`OPUS_FMTP`]. The peer's fmtp for
//! the chosen codec is kept ([`SdpSession::peer_fmtp`]) for whoever needs its parameters.

use std::net::{IpAddr, SocketAddr};

use super::g711::Law;
use super::sdp::{Direction, Media, Origin, RtpFormat, SdpError, SessionDescription};

/// A codec we can negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// Opus (RFC 7587), dynamic payload type ([`OPUS_PT`] when we offer).
    Opus,
}

/// The payload type we offer Opus on.
pub const OPUS_PT: u8 = 111;

/// Our Opus format parameters: FEC on, mono both ways (RFC 7587 §6.1).
pub const OPUS_FMTP: &str = "useinbandfec=1;stereo=0;sprop-stereo=0";

/// Every codec we know, in the default order of preference.
const ALL: [Codec; 3] = [Codec::Pcmu, Codec::Pcma, Codec::Opus];

impl Codec {
    /// The codec's name as events and the call history show it (upper case, like the rtpmap
    /// names of G.711).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "OPUS",
        }
    }

    /// The encoding name we write in a=rtpmap (RFC 7587 writes `opus` in lower case).
    pub fn rtpmap_name(self) -> &'static str {
        match self {
            Codec::Opus => "opus",
            c => c.name(),
        }
    }

    /// The payload type we offer it on: the static one (RFC 3551) for G.711, [`OPUS_PT`] for Opus.
    pub fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
            Codec::Opus => OPUS_PT,
        }
    }

    /// The RTP clock rate (Opus is always 48000, RFC 7587 §4.1).
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::Opus => 48000,
        }
    }

    /// The rtpmap channel count (Opus is always written `/2`, RFC 7587 §7).
    fn channels(self) -> Option<u8> {
        match self {
            Codec::Opus => Some(2),
            _ => None,
        }
    }

    /// The fmtp we offer and answer with.
    fn fmtp(self) -> Option<&'static str> {
        match self {
            Codec::Opus => Some(OPUS_FMTP),
            _ => None,
        }
    }

    /// The G.711 law it uses (None for Opus).
    pub fn law(self) -> Option<Law> {
        match self {
            Codec::Pcmu => Some(Law::Mu),
            Codec::Pcma => Some(Law::A),
            Codec::Opus => None,
        }
    }

    /// The codec for a name as `SIPDESK_CODECS` or an account spells it (`opus`, `pcmu`, `PCMA`).
    pub fn from_name(name: &str) -> Option<Codec> {
        ALL.into_iter().find(|c| name.trim().eq_ignore_ascii_case(c.name()))
    }

    /// The codec a payload format describes, by rtpmap name or else by static number.
    fn of_format(f: &RtpFormat) -> Option<Codec> {
        match (&f.encoding, f.clock_rate) {
            (Some(enc), Some(8000)) if f.channels.unwrap_or(1) == 1 => {
                [Codec::Pcmu, Codec::Pcma].into_iter().find(|c| enc.eq_ignore_ascii_case(c.name()))
            }
            // RFC 7587 §7: opus/48000/2, always; a missing channel count is tolerated.
            (Some(enc), Some(48000)) if enc.eq_ignore_ascii_case("opus") && f.channels.unwrap_or(2) == 2 => {
                Some(Codec::Opus)
            }
            (Some(_), _) => None,
            (None, _) => [Codec::Pcmu, Codec::Pcma].into_iter().find(|c| c.static_payload_type() == f.payload_type),
        }
    }
}

fn is_telephone_event(f: &RtpFormat) -> bool {
    f.encoding.as_deref().is_some_and(|e| e.eq_ignore_ascii_case("telephone-event")) && f.clock_rate == Some(8000)
}

/// What we are willing to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPolicy {
    /// Codecs in order of preference (at least one).
    pub codecs: Vec<Codec>,
    /// Offer and accept RFC 4733 telephone-events.
    pub telephone_event: bool,
    /// Payload type we offer telephone-event on.
    pub telephone_event_pt: u8,
    /// Packet time we ask for, in ms.
    pub ptime: u32,
}

impl MediaPolicy {
    /// The default policy with the codec order from `SIPDESK_CODECS` (e.g. `opus,pcmu,pcma`), if
    /// set; unknown names are skipped with a warning, and a list with no known codec is ignored.
    pub fn from_env() -> MediaPolicy {
        MediaPolicy::for_account(None)
    }

    /// The policy for a call of an account: the account's codec order (`codecs`, as the store
    /// keeps it, e.g. `pcma,pcmu`) when it has one, else `SIPDESK_CODECS`, else the default order.
    pub fn for_account(codecs: Option<&str>) -> MediaPolicy {
        MediaPolicy::with_codecs(codecs, std::env::var("SIPDESK_CODECS").ok().as_deref())
    }

    /// [`MediaPolicy::for_account`] with the value of `SIPDESK_CODECS` given.
    pub fn with_codecs(account: Option<&str>, env: Option<&str>) -> MediaPolicy {
        let chosen = account
            .and_then(|list| parse_list(list, "the account's codec order"))
            .or_else(|| env.and_then(|list| parse_list(list, "SIPDESK_CODECS")));
        MediaPolicy { codecs: chosen.unwrap_or_else(|| MediaPolicy::default().codecs), ..MediaPolicy::default() }
    }
}

/// A codec list like `opus, pcmu,PCMA`, in order, without repeats; None if it names no codec.
pub fn parse_codecs(list: &str) -> Option<Vec<Codec>> {
    parse_list(list, "SIPDESK_CODECS")
}

/// [`parse_codecs`], naming where the list comes from in its warnings.
fn parse_list(list: &str, source: &str) -> Option<Vec<Codec>> {
    let mut codecs = Vec::new();
    for name in list.split(',').filter(|n| !n.trim().is_empty()) {
        match Codec::from_name(name) {
            Some(c) if !codecs.contains(&c) => codecs.push(c),
            Some(_) => {}
            None => tracing::warn!("unknown codec {name:?} in {source} (known: pcmu, pcma, opus)"),
        }
    }
    if codecs.is_empty() {
        tracing::warn!("{source} {list:?} names no known codec; ignored");
        return None;
    }
    Some(codecs)
}

impl Default for MediaPolicy {
    fn default() -> MediaPolicy {
        MediaPolicy {
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            telephone_event: true,
            telephone_event_pt: 101,
            ptime: 20,
        }
    }
}

/// Where we receive and which way we want media to flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalMedia {
    /// Address put in c= and o=.
    pub address: IpAddr,
    /// Our RTP port.
    pub port: u16,
    /// What we want (sendonly to hold, sendrecv normally).
    pub direction: Direction,
}

/// The outcome of a completed offer/answer: what the RTP session needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The codec both sides send.
    pub codec: Codec,
    /// Its payload type on the wire.
    pub payload_type: u8,
    /// The telephone-event payload type, if both sides support it.
    pub telephone_event: Option<u8>,
    /// Where to send RTP (the symmetric-RTP latch may correct it later).
    pub remote: SocketAddr,
    /// Our direction: whether we send and/or receive.
    pub direction: Direction,
    /// Packet time in ms.
    pub ptime: u32,
}

/// Builds a call's offers and answers and keeps its o= line.
#[derive(Debug, Clone)]
pub struct SdpSession {
    policy: MediaPolicy,
    session_id: u64,
    version: u64,
    last: Option<SessionDescription>,
    last_offer: Option<SessionDescription>,
    peer_fmtp: Option<String>,
}

impl SdpSession {
    /// A session for one call. `session_id` should be unique (e.g. from the clock or random).
    pub fn new(policy: MediaPolicy, session_id: u64) -> SdpSession {
        SdpSession { policy, session_id, version: session_id, last: None, last_offer: None, peer_fmtp: None }
    }

    /// The o= version of the last description made.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The peer's fmtp for the codec agreed last (e.g. Opus's `maxplaybackrate=...`), as sent.
    pub fn peer_fmtp(&self) -> Option<&str> {
        self.peer_fmtp.as_deref()
    }

    /// Our offer for `local`.
    pub fn offer(&mut self, local: LocalMedia) -> String {
        let mut rtp: Vec<RtpFormat> =
            self.policy.codecs.iter().map(|c| codec_format(*c, c.static_payload_type())).collect();
        if self.policy.telephone_event {
            rtp.push(format(self.policy.telephone_event_pt, "telephone-event", Some("0-16")));
        }
        let audio = audio_media(local, rtp, self.policy.ptime);
        let sd = self.stamp(local.address, vec![audio]);
        self.last_offer = Some(sd.clone());
        sd.render()
    }

    /// Our answer to `offer`, and what was agreed.
    pub fn answer(&mut self, offer: &str, local: LocalMedia) -> Result<(String, Negotiated), SdpError> {
        let offer = SessionDescription::parse(offer)?;
        let (idx, audio) = offer.audio().ok_or(SdpError::NoAudio)?;
        let conn = offer.connection_of(audio).ok_or(SdpError::NoConnection)?;
        let (codec, pt) = self.choose(audio)?;
        self.peer_fmtp = audio.format(pt).and_then(|f| f.fmtp.clone());
        let te = audio.rtp.iter().find(|f| self.policy.telephone_event && is_telephone_event(f));
        let offered = offer.direction_of(audio);
        // c=0.0.0.0 is RFC 2543 hold: the offerer does not want to receive.
        let they_receive = offered.receives() && !conn.is_unspecified();
        let ours = Direction::from_flags(
            local.direction.sends() && they_receive,
            local.direction.receives() && offered.sends(),
        );
        let mut rtp = vec![codec_format(codec, pt)];
        if let Some(te) = te {
            rtp.push(format(te.payload_type, "telephone-event", Some(te.fmtp.as_deref().unwrap_or("0-16"))));
        }
        let ptime = audio.ptime.unwrap_or(self.policy.ptime);
        let media = offer
            .media
            .iter()
            .enumerate()
            .map(|(i, m)| {
                if i == idx {
                    audio_media(LocalMedia { direction: ours, ..local }, rtp.clone(), ptime)
                } else {
                    rejected(m)
                }
            })
            .collect();
        let sd = self.stamp(local.address, media);
        let negotiated = Negotiated {
            codec,
            payload_type: pt,
            telephone_event: te.map(|f| f.payload_type),
            remote: SocketAddr::new(conn, audio.port),
            direction: ours,
            ptime,
        };
        Ok((sd.render(), negotiated))
    }

    /// Reads the answer to our last offer.
    pub fn accept_answer(&mut self, answer: &str) -> Result<Negotiated, SdpError> {
        let offer = self.last_offer.as_ref().ok_or_else(|| SdpError::AnswerMismatch("no offer was made".into()))?;
        let ans = SessionDescription::parse(answer)?;
        if ans.media.len() != offer.media.len() {
            return Err(SdpError::AnswerMismatch(format!(
                "{} m-lines answered to {} offered",
                ans.media.len(),
                offer.media.len()
            )));
        }
        let (_, audio) = ans.audio().ok_or(SdpError::NoAudio)?;
        let conn = ans.connection_of(audio).ok_or(SdpError::NoConnection)?;
        let ours = &offer.media[0];
        // The first answered format that is a codec we offered under that number.
        let (codec, pt) = audio
            .rtp
            .iter()
            .filter_map(|f| Codec::of_format(f).map(|c| (c, f.payload_type)))
            .find(|(c, pt)| ours.format(*pt).and_then(Codec::of_format) == Some(*c))
            .ok_or_else(|| SdpError::NoCommonCodec { offered: names(audio), accepted: self.accepted() })?;
        self.peer_fmtp = audio.format(pt).and_then(|f| f.fmtp.clone());
        let te = audio
            .rtp
            .iter()
            .find(|f| is_telephone_event(f) && ours.format(f.payload_type).is_some_and(is_telephone_event))
            .map(|f| f.payload_type);
        let theirs = ans.direction_of(audio);
        let wanted = ours.direction.unwrap_or_default();
        let direction = Direction::from_flags(
            wanted.sends() && theirs.receives() && !conn.is_unspecified(),
            wanted.receives() && theirs.sends(),
        );
        Ok(Negotiated {
            codec,
            payload_type: pt,
            telephone_event: te,
            remote: SocketAddr::new(conn, audio.port),
            direction,
            ptime: audio.ptime.unwrap_or(self.policy.ptime),
        })
    }

    fn choose(&self, audio: &Media) -> Result<(Codec, u8), SdpError> {
        self.policy
            .codecs
            .iter()
            .find_map(|want| {
                audio.rtp.iter().find(|f| Codec::of_format(f) == Some(*want)).map(|f| (*want, f.payload_type))
            })
            .ok_or_else(|| SdpError::NoCommonCodec { offered: names(audio), accepted: self.accepted() })
    }

    fn accepted(&self) -> Vec<String> {
        self.policy.codecs.iter().map(|c| c.name().to_string()).collect()
    }

    /// Gives `media` our o= line, raising the version only if the content differs from last time.
    fn stamp(&mut self, address: IpAddr, media: Vec<Media>) -> SessionDescription {
        let mut sd = SessionDescription {
            origin: Origin { username: "-".into(), session_id: self.session_id, version: self.version, address },
            session_name: "SipDesk".into(),
            connection: None,
            direction: None,
            media,
        };
        // `last` carries the current version, so only a change of content makes them differ.
        if self.last.as_ref().is_some_and(|last| *last != sd) {
            self.version += 1;
            sd.origin.version = self.version;
        }
        self.last = Some(sd.clone());
        sd
    }
}

fn format(pt: u8, name: &str, fmtp: Option<&str>) -> RtpFormat {
    RtpFormat {
        payload_type: pt,
        encoding: Some(name.into()),
        clock_rate: Some(8000),
        channels: None,
        fmtp: fmtp.map(String::from),
    }
}

/// The format we write for `codec` on payload type `pt`.
fn codec_format(codec: Codec, pt: u8) -> RtpFormat {
    RtpFormat {
        payload_type: pt,
        encoding: Some(codec.rtpmap_name().into()),
        clock_rate: Some(codec.clock_rate()),
        channels: codec.channels(),
        fmtp: codec.fmtp().map(String::from),
    }
}

fn audio_media(local: LocalMedia, rtp: Vec<RtpFormat>, ptime: u32) -> Media {
    Media {
        kind: "audio".into(),
        port: local.port,
        proto: "RTP/AVP".into(),
        fmts: rtp.iter().map(|f| f.payload_type.to_string()).collect(),
        rtp,
        connection: Some(local.address),
        direction: Some(local.direction),
        ptime: Some(ptime),
    }
}

/// An offered stream we do not take: same type and formats, port 0 (RFC 3264 §6).
fn rejected(m: &Media) -> Media {
    Media { port: 0, rtp: Vec::new(), connection: None, direction: None, ptime: None, ..m.clone() }
}

fn names(m: &Media) -> Vec<String> {
    m.rtp.iter().map(|f| format!("{} {}", f.payload_type, f.encoding.as_deref().unwrap_or("?"))).collect()
}

#[cfg(test)]
#[path = "offer_answer_tests.rs"]
mod tests;
