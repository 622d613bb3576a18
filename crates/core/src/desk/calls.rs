//! Calls: where `sip` and `media` meet. Requests arriving on an account's flow are routed here by
//! Call-ID; a new INVITE becomes an incoming call (checked, negotiated, rung or auto-answered),
//! later requests go to their call's task, and commands (answer, reject, hangup) reach it too.
//! Every change is published as a `call` event.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::incall::{InCall, Renegotiation};
use super::{AudioChoice, Desk, Event};
use crate::media::frame::{Endpoint as AudioEndpoint, NullEndpoint, SampleRate};
use crate::media::offer_answer::{Codec, LocalMedia, MediaPolicy, SdpSession};
use crate::media::rtp_session::{RtpSession, RtpSockets};
use crate::media::sdp::Direction;
use crate::media::switchboard::Switchboard;
use crate::media::wav::{WavSink, WavSource};
use crate::sip::endpoint::Endpoint;
use crate::sip::invite_server::{AnswerError, CallRequests, IncomingInvite, RING_TIMEOUT};
use crate::sip::session_timer::{self, UasTimer};
use crate::sip::transaction::{self, Outcome, Timers};
use crate::sip::{message, request};

/// RTP ports come from this range (even for RTP, odd for RTCP) unless `SIPDESK_RTP_PORTS=MIN-MAX`
/// says otherwise (firewalls often open only a fixed range).
fn rtp_ports() -> (u16, u16) {
    const DEFAULT: (u16, u16) = (16384, 32767);
    let Ok(v) = std::env::var("SIPDESK_RTP_PORTS") else { return DEFAULT };
    match v.split_once('-').map(|(a, b)| (a.trim().parse::<u16>(), b.trim().parse::<u16>())) {
        Some((Ok(min), Ok(max))) if min >= 1024 && max > min => (min, max),
        _ => {
            tracing::warn!(
                "SIPDESK_RTP_PORTS must look like 20000-20999 (from 1024 up); using {}-{}",
                DEFAULT.0,
                DEFAULT.1
            );
            DEFAULT
        }
    }
}

/// The address our SDP advertises for media: `SIPDESK_MEDIA_ADDRESS` when set (the public
/// address of a NAT that forwards the RTP port range unchanged), else the address we bind.
/// Symmetric RTP then latches onto whatever really sends from there.
pub(super) fn media_address(bound: std::net::IpAddr) -> std::net::IpAddr {
    let Ok(v) = std::env::var("SIPDESK_MEDIA_ADDRESS") else { return bound };
    match v.trim().parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_ipv4() == bound.is_ipv4() => ip,
        _ => {
            tracing::warn!(
                "SIPDESK_MEDIA_ADDRESS {v:?} is not an IP address of the call's family; advertising {bound}"
            );
            bound
        }
    }
}

/// Binds a call's RTP/RTCP port pair on `ip` from the configured range.
pub(super) async fn bind_rtp(ip: std::net::IpAddr) -> Result<RtpSockets, crate::media::rtp_session::RtpSessionError> {
    let (min, max) = rtp_ports();
    RtpSockets::bind(ip, min, max).await
}

/// The audio endpoint a new call plugs into, from `--audio`: with `device`, the devices chosen in
/// the settings (the default for one that cannot be opened; silence, and retries, without any).
/// It runs at the codec's rate: an Opus call is wideband all the way to the headset (and a
/// 48 kHz device needs no conversion), a G.711 call stays at 8 kHz.
pub(super) fn audio_endpoint(audio: &super::audio::CallAudio, codec: Codec) -> Result<AudioEndpoint, String> {
    let rate = SampleRate::from_hz(codec.clock_rate()).unwrap_or(SampleRate::Hz8000);
    match audio.choice() {
        AudioChoice::Null => Ok(NullEndpoint::endpoint(rate)),
        AudioChoice::Device => Ok(audio.call_endpoint(rate)),
        AudioChoice::File { input, output } => {
            let source = WavSource::open(input, rate).map_err(|e| e.to_string())?;
            let sink = WavSink::create(output, rate).map_err(|e| e.to_string())?;
            Ok(AudioEndpoint::new(Box::new(source), Box::new(sink)))
        }
    }
}

/// Stops a call's level reports when dropped.
pub(super) struct LevelReports(tokio::task::JoinHandle<()>);

impl Drop for LevelReports {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the desk can tell a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallCommand {
    /// Answer a ringing call.
    Answer,
    /// Decline a ringing call (486 Busy Here... 603 Decline).
    Reject,
    /// End the call (CANCEL, reject or BYE, as fits its state).
    Hangup,
    /// Mute (true) or unmute (false) the microphone towards the far end.
    Mute(bool),
    /// Put the far end on hold (re-INVITE, sendonly, music on hold).
    Hold,
    /// Take the far end off hold.
    Resume,
    /// Send one DTMF digit (`0-9 * # A-D`).
    Dtmf(char),
    /// Blind transfer: REFER the far end to this SIP URI, then hang up once it got there.
    Transfer(String),
    /// Accept (true) or decline a transfer the far end asked for.
    ReferAnswer(bool),
    /// Another call took this one's place (an INVITE with Replaces): end it.
    Replaced,
    /// Hand the call to the AI voice agent.
    Handoff,
    /// Take the call back from the AI.
    TakeBack,
}

/// A live call's handles, kept by the desk.
pub(super) struct CallEntry {
    pub(super) requests: mpsc::UnboundedSender<rsip::Request>,
    pub(super) commands: mpsc::UnboundedSender<CallCommand>,
    /// The last state published, for front ends that (re)start.
    pub(super) view: Option<CallView>,
    /// Once confirmed: our tag, the peer's tag and the peer's URI (attended transfer and
    /// Replaces need them).
    pub(super) dialog: Option<DialogTags>,
}

/// What identifies a confirmed call's dialog from outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DialogTags {
    pub(super) local_tag: String,
    pub(super) remote_tag: String,
    pub(super) remote_uri: String,
}

/// A live call as front ends list it (the last `call` event's fields).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CallView {
    /// Call id.
    pub call_id: String,
    /// Account.
    pub account_id: i64,
    /// `in` or `out`.
    pub direction: &'static str,
    /// Current state.
    pub state: &'static str,
    /// The other party.
    pub remote: String,
    /// Negotiated codec.
    pub codec: Option<&'static str>,
    /// When it became active (ms since the epoch), for the call timer.
    pub active_since_ms: Option<u64>,
}

/// Every live call, by Call-ID.
#[derive(Default)]
pub(super) struct Calls {
    pub(super) live: Mutex<HashMap<String, CallEntry>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Desk {
    /// Keeps the call history in step with the call's events.
    #[allow(clippy::too_many_arguments)]
    fn record_history(
        &self,
        call_id: &str,
        account_id: i64,
        direction: &str,
        state: &str,
        remote: &str,
        codec: Option<&str>,
        reason: Option<&str>,
    ) {
        let result = self.with_store_mut(|s| match state {
            "incoming" | "calling" => s.call_started(call_id, account_id, direction, remote),
            "active" => s.call_answered(call_id, codec),
            "ended" => {
                // A call refused before it was announced still gets its row.
                s.call_started(call_id, account_id, direction, remote)?;
                s.call_ended(call_id, reason.unwrap_or("unknown"))
            }
            _ => Ok(()),
        });
        if let Err(e) = result {
            tracing::warn!(call_id, "call history not written: {}", e.message);
        }
    }
}

impl Calls {
    /// The live calls.
    pub(super) fn views(&self) -> Vec<CallView> {
        lock(&self.live).values().filter_map(|e| e.view.clone()).collect()
    }

    /// Sends a command to a call; false when there is no such call.
    pub(super) fn command(&self, call_id: &str, cmd: CallCommand) -> bool {
        lock(&self.live).get(call_id).is_some_and(|c| c.commands.send(cmd).is_ok())
    }
}

/// `Call-Info: <...>;answer-after=N` (dialers ask for auto-answer this way): N seconds, capped.
fn answer_after(req: &rsip::Request) -> Option<std::time::Duration> {
    message::header_values(req, "Call-Info", None)
        .iter()
        .flat_map(|v| message::split_list(v))
        .find_map(|info| {
            info.split(';').skip(1).find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim().eq_ignore_ascii_case("answer-after").then(|| v.trim().parse::<u64>().ok())?
            })
        })
        .map(|s| std::time::Duration::from_secs(s.min(3600)))
}

/// Who is calling: P-Asserted-Identity, else From.
fn caller_id(req: &rsip::Request) -> String {
    let v = message::header_value(req, "P-Asserted-Identity", None)
        .or_else(|| message::header_value(req, "From", Some("f")))
        .unwrap_or_default();
    match v.find('>') {
        Some(end) => v[..=end].trim().to_string(),
        None => v.split(';').next().unwrap_or_default().trim().to_string(),
    }
}

impl Desk {
    /// Routes one request from an account's flow (called by the registration task; must not block).
    pub(super) fn on_sip_request(&self, account_id: i64, ep: Endpoint, req: rsip::Request) {
        let call_id = message::call_id(&req).unwrap_or_default();
        if let Some(entry) = lock(&self.inner.calls.live).get(&call_id) {
            let _ = entry.requests.send(req);
            return;
        }
        let plain = |ep: Endpoint, req: rsip::Request, code: u16, reason: &'static str| {
            tokio::spawn(async move {
                if let Some(r) = request::response_to(&req, code, reason) {
                    let _ = ep.send(r.as_bytes()).await;
                }
            });
        };
        match req.method {
            rsip::Method::Invite => self.incoming_call(account_id, ep, req, call_id),
            rsip::Method::Ack => {}
            rsip::Method::Bye | rsip::Method::Cancel => plain(ep, req, 481, "Call/Transaction Does Not Exist"),
            _ => {
                tokio::spawn(async move { transaction::answer_plainly(&ep, &req).await });
            }
        }
    }

    fn incoming_call(&self, account_id: i64, ep: Endpoint, req: rsip::Request, call_id: String) {
        let Some(account) = lock(&self.inner.loaded).get(&account_id).map(|l| l.account.clone()) else { return };
        let (req_tx, requests) = mpsc::unbounded_channel();
        let (cmd_tx, commands) = mpsc::unbounded_channel();
        lock(&self.inner.calls.live)
            .insert(call_id.clone(), CallEntry { requests: req_tx, commands: cmd_tx, view: None, dialog: None });
        let desk = self.clone();
        let contact = request::contact_uri(&account, ep.flow().local(), ep.flow().proto());
        let ours = req.uri.user().is_some_and(|u| u == account.username);
        tokio::spawn(async move {
            let inv = IncomingInvite::new(ep, req, contact, Timers::default());
            let reason = desk.run_incoming(account_id, inv, ours, requests, commands, &call_id).await;
            lock(&desk.inner.calls.live).remove(&call_id);
            tracing::info!(call_id = %call_id, reason, "call ended");
        });
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn call_event_dir(
        &self,
        direction: &'static str,
        call_id: &str,
        account_id: i64,
        state: &'static str,
        remote: &str,
        codec: Option<&'static str>,
        reason: Option<&'static str>,
    ) {
        {
            let mut live = lock(&self.inner.calls.live);
            if state == "ended" {
                // Once reported ended, the call takes no more commands.
                live.remove(call_id);
            } else if let Some(entry) = live.get_mut(call_id) {
                let since = entry.view.as_ref().and_then(|v| v.active_since_ms);
                let active_since_ms = if state == "active" { since.or(Some(crate::desk::now_ms())) } else { since };
                entry.view = Some(CallView {
                    call_id: call_id.to_string(),
                    account_id,
                    direction,
                    state,
                    remote: remote.to_string(),
                    codec,
                    active_since_ms,
                });
            }
        }
        self.record_history(call_id, account_id, direction, state, remote, codec, reason);
        self.emit(Event::Call {
            call_id: call_id.to_string(),
            account_id,
            direction,
            state,
            remote: remote.to_string(),
            codec,
            reason,
        });
    }

    /// The life of one incoming call; returns its end reason.
    async fn run_incoming(
        &self,
        account_id: i64,
        mut inv: IncomingInvite,
        ours: bool,
        mut requests: CallRequests,
        mut commands: mpsc::UnboundedReceiver<CallCommand>,
        call_id: &str,
    ) -> &'static str {
        let remote = caller_id(&inv.invite);
        let ev = |state, codec, reason| self.call_event_dir("in", call_id, account_id, state, &remote, codec, reason);
        if !ours {
            inv.reject(404, "Not Found", &[], &mut requests).await;
            ev("ended", None, Some("not_found"));
            return "not_found";
        }
        if self.dnd() {
            inv.reject(486, "Busy Here", &[], &mut requests).await;
            ev("ended", None, Some("dnd"));
            return "dnd";
        }
        // One call waiting at most: a third call is busy.
        let others = self.inner.calls.views().into_iter().filter(|v| v.call_id != call_id).count();
        if others >= 2 {
            inv.reject(486, "Busy Here", &[], &mut requests).await;
            ev("ended", None, Some("busy"));
            return "busy";
        }
        inv.provisional(100, "Trying", None).await;
        // Reserve our RTP ports now so the answer can name them.
        let local_ip = inv_local_ip(&inv);
        let rtp = match bind_rtp(local_ip).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("no RTP port: {e}");
                inv.reject(500, "Server Internal Error", &[], &mut requests).await;
                return "media_error";
            }
        };
        let local = LocalMedia { address: media_address(local_ip), port: rtp.port(), direction: Direction::SendRecv };
        let mut sdp = SdpSession::new(
            MediaPolicy::for_account(
                lock(&self.inner.loaded).get(&account_id).and_then(|l| l.account.codecs.as_deref()),
            ),
            crate::desk::now_ms(),
        );
        let offer = inv.offer().map(|b| String::from_utf8_lossy(b).into_owned());
        let (answer, negotiated) = match offer.as_deref().map(|o| sdp.answer(o, local)) {
            Some(Ok(x)) => x,
            Some(Err(e)) => {
                let code = e.sip_status();
                tracing::warn!(call_id, "rejecting the offer with {code}: {e}");
                let warning = [format!("Warning: 399 sipdesk \"{}\"", e.to_string().replace('"', "'"))];
                inv.reject(
                    code,
                    if code == 488 { "Not Acceptable Here" } else { "Bad Request" },
                    &warning,
                    &mut requests,
                )
                .await;
                let reason = if code == 488 { "incompatible_media" } else { "bad_request" };
                ev("ended", None, Some(reason));
                return reason;
            }
            None => {
                // Offerless INVITEs (offer in the 200, answer in the ACK) are not supported yet.
                inv.reject(488, "Not Acceptable Here", &[], &mut requests).await;
                ev("ended", None, Some("incompatible_media"));
                return "incompatible_media";
            }
        };
        let codec = Some(negotiated.codec.name());
        let (timer, timer_headers) = match session_timer::for_uas(&inv.invite) {
            UasTimer::None => (None, Vec::new()),
            UasTimer::Agreed(t, headers) => (Some(t), headers),
            UasTimer::TooSmall(headers) => {
                inv.reject(422, "Session Interval Too Small", &headers, &mut requests).await;
                ev("ended", None, Some("bad_request"));
                return "bad_request";
            }
        };
        // An INVITE with Replaces takes over one of our calls: answered at once, or 481 when it
        // names no call of ours (RFC 3891 §3).
        let replaces = message::header_value(&inv.invite, "Replaces", None);
        let replaced = replaces.as_deref().and_then(|r| self.replaced_call(r));
        if replaces.is_some() && replaced.is_none() {
            inv.reject(481, "Call/Transaction Does Not Exist", &[], &mut requests).await;
            ev("ended", None, Some("not_found"));
            return "not_found";
        }
        ev("incoming", codec, None);
        // The desk's AI policy may have the AI answer: at once, or when nobody did in time.
        let ai_after = if replaced.is_some() { None } else { self.ai_answers_after_now() };
        let mut ai_answers = ai_after == Some(std::time::Duration::ZERO);
        let auto = if replaced.is_some() || ai_answers {
            Some(std::time::Duration::ZERO)
        } else {
            answer_after(&inv.invite).or(self.inner.auto_answer.then_some(std::time::Duration::ZERO))
        };
        if auto != Some(std::time::Duration::ZERO) {
            inv.provisional(180, "Ringing", None).await;
            ev("ringing", codec, None);
            // Over a call, the headset beeps softly; otherwise the ring device rings.
            let tone = if others > 0 {
                crate::media::tone::ToneSpec::call_waiting()
            } else {
                crate::media::tone::ToneSpec::ring()
            };
            let _ring = super::tones::play(&self.inner.audio, tone);
            let ring = tokio::time::sleep(RING_TIMEOUT);
            tokio::pin!(ring);
            let auto_answer = async {
                match auto {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(auto_answer);
            let ai_timer = async {
                match ai_after {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(ai_timer);
            loop {
                tokio::select! {
                    _ = &mut auto_answer => break,
                    _ = &mut ai_timer => {
                        tracing::info!(call_id, "nobody answered: the AI takes the call");
                        ai_answers = true;
                        break;
                    }
                    _ = &mut ring => {
                        inv.reject(480, "Temporarily Unavailable", &[], &mut requests).await;
                        ev("ended", codec, Some("no_answer"));
                        return "no_answer";
                    }
                    cmd = commands.recv() => match cmd {
                        Some(CallCommand::Answer) => break,
                        Some(CallCommand::Reject | CallCommand::Hangup) | None => {
                            inv.reject(603, "Decline", &[], &mut requests).await;
                            ev("ended", codec, Some("rejected"));
                            return "rejected";
                        }
                        Some(_) => {}
                    },
                    req = requests.recv() => match req {
                        Some(req) => if let Err(AnswerError::Cancelled) = inv.on_pending_request(&req).await {
                            inv.reject(487, "Request Terminated", &[], &mut requests).await;
                            ev("ended", codec, Some("cancelled"));
                            return "cancelled";
                        },
                        None => return "network_down",
                    },
                }
            }
        }
        // Answering a waiting call holds the one in progress.
        for other in self.inner.calls.views().into_iter().filter(|v| v.call_id != call_id && v.state == "active") {
            self.inner.calls.command(&other.call_id, CallCommand::Hold);
        }
        let mut dialog = match inv.accept_with(answer.as_bytes(), &timer_headers, &mut requests).await {
            Ok((d, _)) => d,
            Err(e) => {
                let reason = match e {
                    AnswerError::ByeBeforeAck => "remote_hangup",
                    AnswerError::NoAck => "no_ack",
                    _ => "network_down",
                };
                ev("ended", codec, Some(reason));
                return reason;
            }
        };
        dialog.session_timer = timer;
        // The switchboard sits between the desk's audio and the call, for handoffs to the AI.
        let media =
            audio_endpoint(&self.inner.audio, negotiated.codec).map(Switchboard::wrap).and_then(|(board, ep)| {
                RtpSession::start(rtp, negotiated, ep).map(|m| (m, board)).map_err(|e| e.to_string())
            });
        let (mut media, board) = match media {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(call_id, "cannot start the call's audio: {e}");
                self.hangup(inv.endpoint(), &mut dialog).await;
                ev("ended", codec, Some("media_error"));
                return "media_error";
            }
        };
        self.register_dialog(call_id, &dialog);
        ev("active", codec, None);
        if let Some(old) = &replaced {
            tracing::info!(call_id, replaced = %old, "this call replaces another");
            self.inner.calls.command(old, CallCommand::Replaced);
        }
        let levels = self.report_levels(call_id, &media, negotiated.codec.name());
        let offers = Renegotiation { sdp: &mut sdp, local, contact: inv.contact().to_string() };
        let mut call = InCall::new(
            call_id,
            inv.endpoint(),
            &mut dialog,
            &mut requests,
            &mut commands,
            offers,
            &mut media,
            negotiated,
            &ev,
        );
        call.dtmf_mode = self.dtmf_mode(account_id);
        call.account_id = account_id;
        call.board = Some(board);
        if ai_answers {
            self.hand_to_ai(&mut call);
        }
        let reason = self.in_call(&mut call).await;
        if let Some(bridge) = call.bridge.take() {
            bridge.end().await;
        }
        drop(levels);
        if let Err(e) = media.stop().await {
            tracing::warn!(call_id, "closing the call's audio: {e}");
        }
        ev("ended", codec, Some(reason));
        reason
    }

    /// Publishes the call's audio levels every 200 ms and its reception figures every 5 s,
    /// until the returned guard is dropped.
    pub(super) fn report_levels(&self, call_id: &str, media: &RtpSession, codec: &'static str) -> LevelReports {
        let stats = media.stats_handle();
        let (desk, id) = (self.clone(), call_id.to_string());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
            for n in 1u64.. {
                tick.tick().await;
                let (rx_dbfs, tx_dbfs) =
                    ((stats.rx_dbfs() * 10.0).round() / 10.0, (stats.tx_dbfs() * 10.0).round() / 10.0);
                desk.emit(Event::CallLevel { call_id: id.clone(), rx_dbfs, tx_dbfs });
                if n % 25 == 0 {
                    desk.emit(super::events::call_stats(&id, codec, &stats));
                }
            }
        });
        LevelReports(task)
    }

    /// Sends BYE in the dialog and waits (bounded by timer F) for its answer.
    pub(super) async fn hangup(&self, ep: &Endpoint, dialog: &mut crate::sip::dialog::Dialog) {
        let via = format!("SIP/2.0/{} {}", ep.flow().proto().as_str(), request::host_port(ep.flow().local()));
        let bye = dialog.request("BYE", None, &via, &request::branch(), &[], None);
        if let Ok(bye) = rsip::Request::try_from(bye.as_str()) {
            if let Outcome::Final(r) = transaction::run(ep, &bye, Timers::default().timer_f, &Timers::default()).await {
                tracing::debug!(code = r.status_code.code(), "BYE answered");
            }
        }
    }
}

fn inv_local_ip(inv: &IncomingInvite) -> std::net::IpAddr {
    inv.endpoint().flow().local().ip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_after_from_call_info() {
        let invite = |info: &str| {
            rsip::Request::try_from(format!("INVITE sip:1001@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:1001@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n{info}Content-Length: 0\r\n\r\n")).unwrap()
        };
        assert_eq!(answer_after(&invite("Call-Info: <sip:h>;answer-after=0\r\n")), Some(std::time::Duration::ZERO));
        assert_eq!(
            answer_after(&invite("Call-Info: <http://x/a,b>;purpose=icon, <sip:h>;Answer-After=5\r\n")),
            Some(std::time::Duration::from_secs(5))
        );
        assert_eq!(answer_after(&invite("Call-Info: <sip:h>;answer-after=soon\r\n")), None);
        assert_eq!(answer_after(&invite("")), None);
    }
}
