//! An RTP session: one audio stream (G.711 or Opus) over UDP between an [`Endpoint`] and the far
//! end.
//!
//! One tokio task owns all of the session's state, so nothing is shared or locked: every 20 ms it
//! pulls a frame from the endpoint's source, encodes and sends it, and plays one frame out of the
//! jitter buffer into the endpoint's sink; between ticks it receives RTP and RTCP. Receiving does
//! symmetric RTP: it sends to the address packets actually come from (a NAT may rewrite the one
//! in the SDP), latching only onto packets that parse and carry a negotiated payload type.
//! Outside callers see counters through atomics and stop the task with a cancellation token.
//!
//! *Choice: the endpoint keeps its own rate; the session resamples.* The codec ([`AudioCodec`])
//! works at its rate (G.711 8 kHz, Opus 48 kHz) and the endpoint at its own. Calls open their
//! endpoint at the codec's rate, so audio passes straight through; when a re-INVITE changes the
//! codec mid-call, a [`StreamResampler`] (polyphase, band-limited) converts here, on the session
//! task, so a device callback never resamples.
//! The adaptive jitter buffer ([`JitterBuffer`]) holds packets still encoded; they are decoded at
//! playout, in order, so a lost packet is rebuilt from the next one's FEC (Opus) or concealed
//! (Opus PLC, G.711 repeat-and-fade), and a stream that stops (DTX) goes quiet after 100 ms. The
//! [`Stretcher`] plays decoded frames a little faster or slower when the buffer's delay is off
//! its target, then the frame is resampled to the sink's rate.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::codec::{for_codec, AudioCodec, CodecError, StreamResampler};
use super::dtmf::{DtmfReceiver, DtmfSender, DtmfSlot};
use super::frame::{Endpoint, EndpointError, Frame, FrameSink, FrameSource, SourcePoll};
use super::hold_music::HoldMusic;
use super::jitter::{FecFloor, JitterBuffer, Pushed, Take, TickAdvance};
use super::offer_answer::Codec;
use super::offer_answer::Negotiated;
use super::playout::Stretcher;
use super::rtcp::{build_compound, ntp_now, parse_compound, randomised_interval, ReportBlock, RtcpReport, SenderInfo};
use super::rtp::{RtpHeader, RtpPacket, SequenceTracker, TelephoneEvent};

/// Base RTCP report interval (RFC 3550 §6.2 recommends 5 s).
const RTCP_INTERVAL: Duration = Duration::from_secs(5);

/// Why a session could not start or stop cleanly.
#[derive(Debug, Error)]
pub enum RtpSessionError {
    /// No even port with a free odd neighbour in the range.
    #[error("no free RTP/RTCP port pair in {ip} {min}..={max}")]
    NoFreePort {
        /// Address tried.
        ip: IpAddr,
        /// Range start.
        min: u16,
        /// Range end.
        max: u16,
    },
    /// The codec could not be set up.
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    /// A socket call failed.
    #[error("RTP socket: {0}")]
    Io(#[from] std::io::Error),
    /// The sink reported a failure when closed.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
}

/// A bound RTP socket (even port) and its RTCP socket (port + 1).
pub struct RtpSockets {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

impl RtpSockets {
    /// Binds the first free even port in `min..=max` on `ip`, with RTCP on the next port.
    pub async fn bind(ip: IpAddr, min: u16, max: u16) -> Result<RtpSockets, RtpSessionError> {
        let first = min + (min % 2);
        // Start at a random even port so simultaneous calls do not race for the same one.
        let count = (max.saturating_sub(first) / 2 + 1) as usize;
        let offset = rand::thread_rng().gen_range(0..count.max(1));
        for k in 0..count {
            let port = first + 2 * ((offset + k) % count) as u16;
            if port == u16::MAX {
                continue;
            }
            let Ok(rtp) = UdpSocket::bind((ip, port)).await else { continue };
            if let Ok(rtcp) = UdpSocket::bind((ip, port + 1)).await {
                return Ok(RtpSockets { rtp, rtcp });
            }
        }
        Err(RtpSessionError::NoFreePort { ip, min, max })
    }

    /// The RTP port (RTCP is one above).
    pub fn port(&self) -> u16 {
        self.rtp.local_addr().map(|a| a.port()).unwrap_or(0)
    }
}

/// Counters a running session keeps, readable from any thread.
#[derive(Debug, Default)]
pub struct RtpStats {
    /// RTP packets sent.
    pub sent: AtomicU64,
    /// RTP packets received and accepted.
    pub received: AtomicU64,
    /// Datagrams dropped as malformed or with an unknown payload type.
    pub rejected: AtomicU64,
    /// Frames concealed by the jitter buffer.
    pub concealed: AtomicU64,
    /// Telephone-events received (counted once per event, at its end).
    pub telephone_events: AtomicU64,
    /// RTCP compound packets sent.
    pub rtcp_sent: AtomicU64,
    /// RTCP compound packets received.
    pub rtcp_received: AtomicU64,
    /// Set when the source has ended (end of a WAV file).
    pub source_ended: AtomicBool,
    /// Level of the last frame played to the sink, in hundredths of dBFS (0 = never measured).
    pub rx_level_cdb: std::sync::atomic::AtomicI32,
    /// Level of the last frame sent, in hundredths of dBFS (0 = never measured).
    pub tx_level_cdb: std::sync::atomic::AtomicI32,
    /// Microphone mute: while set, silence is sent in place of the source's audio.
    pub muted: AtomicBool,
    /// Packets that arrived after their turn to play (dropped).
    pub late: AtomicU64,
    /// Packets lost on the way in (expected minus received, RFC 3550 A.3).
    pub lost: AtomicU64,
    /// Interarrival jitter (RFC 3550), microseconds.
    pub jitter_us: AtomicU64,
    /// Delay the jitter buffer adds now, microseconds.
    pub buffer_us: AtomicU64,
    /// Delay the jitter buffer aims at, microseconds.
    pub target_us: AtomicU64,
    /// What the far end last reported of our stream: fraction lost (0-255), or [`NOT_REPORTED`].
    pub remote_fraction_lost: AtomicU64,
    /// What the far end last reported of our stream: jitter in its timestamp units, or [`NOT_REPORTED`].
    pub remote_jitter: AtomicU64,
}

/// Marks a far-end figure no receiver report has given yet.
pub const NOT_REPORTED: u64 = u64::MAX;

impl RtpStats {
    /// Level received (dBFS; -120 for silence or before the first frame).
    pub fn rx_dbfs(&self) -> f64 {
        level(self.rx_level_cdb.load(Ordering::Relaxed))
    }

    /// Level sent (dBFS; -120 for silence or before the first frame).
    pub fn tx_dbfs(&self) -> f64 {
        level(self.tx_level_cdb.load(Ordering::Relaxed))
    }
}

fn level(cdb: i32) -> f64 {
    if cdb == 0 {
        FLOOR_DBFS
    } else {
        f64::from(cdb) / 100.0
    }
}

/// The level reported for silence.
pub const FLOOR_DBFS: f64 = -120.0;

/// RMS level of a frame in dBFS (a full-scale sine is 0 dBFS), as hundredths, never 0.
fn frame_level_cdb(samples: &[i16]) -> i32 {
    let energy: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / samples.len().max(1) as f64;
    let dbfs =
        if energy > 0.0 { 20.0 * ((energy.sqrt() * std::f64::consts::SQRT_2) / 32767.0).log10() } else { FLOOR_DBFS };
    ((dbfs.max(FLOOR_DBFS) * 100.0).round() as i32).min(-1)
}

/// A running session; [`RtpSession::stop`] ends it.
pub struct RtpSession {
    cancel: CancellationToken,
    task: JoinHandle<Box<dyn FrameSink>>,
    stats: Arc<RtpStats>,
    port: u16,
    control: mpsc::UnboundedSender<Control>,
    events: Option<mpsc::UnboundedReceiver<MediaEvent>>,
}

/// What a running session can be told.
#[derive(Debug, Clone, Copy)]
enum Control {
    Update(Negotiated),
    Dtmf(char),
    HoldMusic(bool),
}

/// What a running session reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    /// The far end sent a DTMF digit as an RFC 4733 telephone-event.
    Dtmf(char),
}

impl RtpSession {
    /// Starts sending and receiving per `neg` between `endpoint` and the far end.
    pub fn start(sockets: RtpSockets, neg: Negotiated, endpoint: Endpoint) -> Result<RtpSession, RtpSessionError> {
        let (source, sink) = endpoint.into_parts();
        let codec = for_codec(neg.codec)?;
        let port = sockets.port();
        let cancel = CancellationToken::new();
        let stats = Arc::new(RtpStats::default());
        stats.remote_fraction_lost.store(NOT_REPORTED, Ordering::Relaxed);
        stats.remote_jitter.store(NOT_REPORTED, Ordering::Relaxed);
        let (control, control_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let mut state = Loop::new(sockets, neg, codec, source, sink, stats.clone());
        state.control = Some(control_rx);
        state.events = Some(events_tx);
        let task = tokio::spawn(state.run(cancel.clone()));
        Ok(RtpSession { cancel, task, stats, port, control, events: Some(events) })
    }

    /// The local RTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A shared handle on the live counters, for a task that reports them.
    pub fn stats_handle(&self) -> Arc<RtpStats> {
        self.stats.clone()
    }

    /// Applies a new offer/answer outcome (hold, resume, a new address or codec) without a gap.
    pub fn update(&self, neg: Negotiated) {
        let _ = self.control.send(Control::Update(neg));
    }

    /// Queues a DTMF digit as an RFC 4733 event; false if it is not `0-9 * # A-D`. Only
    /// meaningful when telephone-event was negotiated (the caller falls back to SIP INFO).
    pub fn send_dtmf(&self, digit: char) -> bool {
        super::rtp::TelephoneEvent::dtmf_code(digit).is_some() && self.control.send(Control::Dtmf(digit)).is_ok()
    }

    /// Sends music on hold in place of the source (on) or the source again (off).
    pub fn set_hold_music(&self, on: bool) {
        let _ = self.control.send(Control::HoldMusic(on));
    }

    /// The session's reports (received DTMF); only the first caller gets them.
    pub fn take_events(&mut self) -> Option<mpsc::UnboundedReceiver<MediaEvent>> {
        self.events.take()
    }

    /// Mutes or unmutes what we send (the source is still drained, so it stays in step).
    pub fn set_muted(&self, on: bool) {
        self.stats.muted.store(on, Ordering::Relaxed);
    }

    /// Counters of this session.
    pub fn stats(&self) -> &RtpStats {
        &self.stats
    }

    /// Sends RTCP BYE, stops the task and closes the sink (finishing a WAV recording).
    pub async fn stop(self) -> Result<(), RtpSessionError> {
        self.cancel.cancel();
        let mut sink = self.task.await.map_err(|e| std::io::Error::other(e.to_string()))?;
        sink.close()?;
        Ok(())
    }
}

/// Everything the session task owns.
struct Loop {
    sockets: RtpSockets,
    neg: Negotiated,
    codec: Box<dyn AudioCodec>,
    /// Endpoint source rate to codec rate.
    up: StreamResampler,
    /// Codec rate to endpoint sink rate.
    down: StreamResampler,
    /// A frame at the codec's rate, for encoding.
    coded: Frame,
    /// A frame at the codec's rate, for playout.
    decoded: Frame,
    stretcher: Stretcher,
    source: Box<dyn FrameSource>,
    sink: Box<dyn FrameSink>,
    stats: Arc<RtpStats>,
    remote: SocketAddr,
    remote_rtcp: SocketAddr,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    octets: u32,
    tracker: SequenceTracker,
    jitter: JitterBuffer,
    /// Opus's lowest jitter target, raised while packets are lost.
    fec_floor: FecFloor,
    /// Moves the playout tick to where packets have the slack they need and no more.
    advance: TickAdvance,
    first_ext_seq: Option<u64>,
    received: u64,
    last_expected: u64,
    last_received: u64,
    arrival_jitter: f64,
    last_transit: Option<i64>,
    last_sr: Option<(u32, Instant)>,
    started: Instant,
    /// When the latched source last sent a packet we kept.
    last_from_remote: Option<Instant>,
    control: Option<mpsc::UnboundedReceiver<Control>>,
    events: Option<mpsc::UnboundedSender<MediaEvent>>,
    dtmf_out: DtmfSender,
    dtmf_in: DtmfReceiver,
    hold_music: Option<HoldMusic>,
}

/// A jitter buffer for `codec` (the lowest target rises for Opus once loss is seen; see
/// [`Loop::play_frame`]).
fn jitter_for(_codec: Codec, clock_rate: u32) -> JitterBuffer {
    JitterBuffer::new(clock_rate)
}

/// Most packets taken from the socket before one playout (a flood must not starve the clock).
const MAX_DRAIN: usize = 64;

/// How long the latched RTP source must be quiet before another may take its place.
const RELATCH_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

impl Loop {
    fn new(
        sockets: RtpSockets,
        neg: Negotiated,
        codec: Box<dyn AudioCodec>,
        source: Box<dyn FrameSource>,
        sink: Box<dyn FrameSink>,
        stats: Arc<RtpStats>,
    ) -> Loop {
        let mut rng = rand::thread_rng();
        let remote_rtcp = SocketAddr::new(neg.remote.ip(), neg.remote.port().wrapping_add(1));
        let rate = codec.rate();
        let clock_rate = codec.clock_rate();
        Loop {
            sockets,
            neg,
            up: StreamResampler::new(source.rate(), rate),
            down: StreamResampler::new(rate, sink.rate()),
            coded: Frame::silence(rate),
            decoded: Frame::silence(rate),
            stretcher: Stretcher::new(rate.frame_samples()),
            codec,
            source,
            sink,
            stats,
            remote: neg.remote,
            remote_rtcp,
            ssrc: rng.gen(),
            seq: rng.gen(),
            timestamp: rng.gen(),
            octets: 0,
            tracker: SequenceTracker::new(),
            jitter: jitter_for(neg.codec, clock_rate),
            fec_floor: FecFloor::default(),
            advance: TickAdvance::default(),
            first_ext_seq: None,
            received: 0,
            last_expected: 0,
            last_received: 0,
            arrival_jitter: 0.0,
            last_transit: None,
            last_sr: None,
            started: Instant::now(),
            last_from_remote: None,
            control: None,
            events: None,
            dtmf_out: DtmfSender::default(),
            dtmf_in: DtmfReceiver::default(),
            hold_music: None,
        }
    }

    async fn run(mut self, cancel: CancellationToken) -> Box<dyn FrameSink> {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut rtcp_at = tokio::time::Instant::now() + randomised_interval(RTCP_INTERVAL, rand::random::<f64>()) / 2;
        let (mut rtp_buf, mut rtcp_buf) = (vec![0u8; 2048], vec![0u8; 2048]);
        let mut frame = Frame::silence(self.source.rate());
        // Playout has a clock of its own: its tick moves (TickAdvance) while sending keeps its
        // 20 ms. Overdue playout ticks come at once, as a burst.
        let mut played = Frame::silence(self.sink.rate());
        let play = tokio::time::sleep(Duration::from_millis(20));
        tokio::pin!(play);
        let mut control = self.control.take().unwrap_or_else(|| mpsc::unbounded_channel().1);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(c) = control.recv() => self.on_control(c),
                due = tick.tick() => {
                    let behind = due.elapsed();
                    if behind > Duration::from_millis(30) {
                        tracing::debug!(?behind, "rtp: the 20 ms tick ran late (a busy machine)");
                    }
                    self.send_frame(&mut frame, &mut rtp_buf).await;
                }
                () = &mut play => {
                    let behind = play.deadline().elapsed();
                    if behind > Duration::from_millis(30) {
                        tracing::debug!(?behind, "rtp: the playout tick ran late (a busy machine)");
                    }
                    self.drain_rtp(&mut rtp_buf);
                    self.play_frame(&mut played);
                    let sooner = self.advance.step(&self.jitter);
                    let next = play.deadline() + Duration::from_secs_f64((20.0 - sooner) / 1000.0);
                    play.as_mut().reset(next);
                }
                r = self.sockets.rtp.recv_from(&mut rtp_buf) => match r {
                    Ok((n, from)) => self.on_rtp(&rtp_buf[..n], from),
                    Err(e) => tracing::debug!("rtp recv: {e}"),
                },
                r = self.sockets.rtcp.recv_from(&mut rtcp_buf) => match r {
                    Ok((n, from)) => self.on_rtcp(&rtcp_buf[..n], from),
                    Err(e) => tracing::debug!("rtcp recv: {e}"),
                },
                _ = tokio::time::sleep_until(rtcp_at) => {
                    self.send_rtcp(false).await;
                    rtcp_at = tokio::time::Instant::now() + randomised_interval(RTCP_INTERVAL, rand::random::<f64>());
                }
            }
        }
        self.send_rtcp(true).await;
        self.sink
    }

    async fn send_frame(&mut self, frame: &mut Frame, buf: &mut [u8]) {
        if !self.neg.direction.sends() {
            return;
        }
        match self.source.poll_frame(frame) {
            SourcePoll::Ready => {}
            // Nothing yet, or the source ended: keep sending silence so the far end's timing
            // and any NAT binding stay alive.
            SourcePoll::NotYet => frame.reset(self.source.rate()),
            SourcePoll::Ended => {
                if !self.stats.source_ended.swap(true, Ordering::Relaxed) {
                    tracing::debug!("rtp: source ended");
                }
                frame.reset(self.source.rate());
            }
        }
        if frame.rate() != self.source.rate() || self.stats.muted.load(Ordering::Relaxed) {
            // Muted, or a source that broke its promise of a rate: send silence.
            frame.reset(self.source.rate());
        }
        if let Some(music) = self.hold_music.as_mut() {
            // Held: the far end hears music, never the microphone.
            music.fill(frame.samples_mut(), self.source.rate());
        }
        if self.neg.telephone_event.is_some() && self.dtmf_out.busy() {
            if let DtmfSlot::Event { event, timestamp, marker } = self.dtmf_out.next(self.timestamp, 8000) {
                return self.send_event(event, timestamp, marker, buf).await;
            }
        }
        self.stats.tx_level_cdb.store(frame_level_cdb(frame.samples()), Ordering::Relaxed);
        self.up.process(frame.samples(), self.coded.samples_mut());
        let mut payload = [0u8; 1500];
        let n = match self.codec.encode(self.coded.samples(), &mut payload) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("rtp: encoding failed: {e}");
                return;
            }
        };
        let header = RtpHeader {
            marker: self.stats.sent.load(Ordering::Relaxed) == 0,
            payload_type: self.neg.payload_type,
            sequence: self.seq,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        };
        if let Ok(len) = header.write(&payload[..n], buf) {
            if let Err(e) = self.sockets.rtp.send_to(&buf[..len], self.remote).await {
                tracing::debug!("rtp send to {}: {e}", self.remote);
            }
        }
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.codec.clock_rate() / 50);
        self.octets = self.octets.wrapping_add(n as u32);
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends one telephone-event packet in the place of this 20 ms of audio.
    async fn send_event(&mut self, event: TelephoneEvent, timestamp: u32, marker: bool, buf: &mut [u8]) {
        let Some(pt) = self.neg.telephone_event else { return };
        let header = RtpHeader { marker, payload_type: pt, sequence: self.seq, timestamp, ssrc: self.ssrc };
        if let Ok(len) = header.write(&event.to_bytes(), buf) {
            if let Err(e) = self.sockets.rtp.send_to(&buf[..len], self.remote).await {
                tracing::debug!("rtp send to {}: {e}", self.remote);
            }
        }
        // The audio clock runs on under the event, so audio resumes in step.
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.codec.clock_rate() / 50);
        self.octets = self.octets.wrapping_add(4);
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
    }

    fn on_control(&mut self, c: Control) {
        match c {
            Control::Dtmf(d) => {
                if !self.dtmf_out.push(d) {
                    tracing::warn!("rtp: DTMF {d:?} not queued (not a digit, or 64 queued)");
                }
            }
            Control::HoldMusic(on) => self.hold_music = on.then(HoldMusic::default),
            Control::Update(neg) => self.apply(neg),
        }
    }

    /// Takes a new negotiation: direction and address at once; a new codec gets a new encoder,
    /// decoder and buffer (what was buffered belonged to the old one).
    fn apply(&mut self, neg: Negotiated) {
        if neg.remote != self.neg.remote {
            tracing::info!("rtp: far end moved to {}", neg.remote);
            self.remote = neg.remote;
            self.remote_rtcp = SocketAddr::new(neg.remote.ip(), neg.remote.port().wrapping_add(1));
            self.last_from_remote = None;
        }
        if (neg.codec, neg.payload_type) != (self.neg.codec, self.neg.payload_type) {
            match for_codec(neg.codec) {
                Ok(codec) => {
                    let rate = codec.rate();
                    self.up = StreamResampler::new(self.source.rate(), rate);
                    self.down = StreamResampler::new(rate, self.sink.rate());
                    self.coded = Frame::silence(rate);
                    self.decoded = Frame::silence(rate);
                    self.stretcher = Stretcher::new(rate.frame_samples());
                    self.jitter = jitter_for(neg.codec, codec.clock_rate());
                    self.codec = codec;
                    tracing::info!("rtp: codec now {}", neg.codec.name());
                }
                Err(e) => {
                    tracing::warn!("rtp: cannot switch to {}: {e}", neg.codec.name());
                    return;
                }
            }
        }
        self.neg = neg;
    }

    /// Takes every packet already waiting in the socket. After the task was held up (a busy
    /// machine), `select!` may run several overdue ticks before the receive branch: without
    /// this, packets sitting in the socket would be concealed as lost and then arrive late.
    fn drain_rtp(&mut self, buf: &mut [u8]) {
        for _ in 0..MAX_DRAIN {
            match self.sockets.rtp.try_recv_from(buf) {
                Ok((n, from)) => self.on_rtp(&buf[..n], from),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => return tracing::debug!("rtp recv: {e}"),
            }
        }
    }

    fn play_frame(&mut self, frame: &mut Frame) {
        // Nothing goes to the sink before the first packet, so a recording starts with the call's audio.
        if self.first_ext_seq.is_none() {
            return;
        }
        // A frame taken now is heard after what the stretcher still holds and the sink has
        // queued: the buffer's delay (and the drift that steers it) counts both.
        let held = self.stretcher.buffered() as f64 / f64::from(self.decoded.rate().hz());
        self.jitter.set_ahead(held * 1000.0, self.sink.latency().as_secs_f64() * 1000.0);
        let tick = Instant::now();
        let ratio = if self.advance.moving() { 1.0 } else { self.jitter.rate_ratio() };
        let mut lost = false;
        let (jitter, codec, stats) = (&mut self.jitter, &mut self.codec, &self.stats);
        self.stretcher.produce(self.decoded.samples_mut(), ratio, |pcm: &mut [i16]| {
            let concealed = match jitter.take(tick) {
                Take::Packet(payload) => match codec.decode(payload, pcm) {
                    Ok(()) => return,
                    Err(e) => {
                        if stats.rejected.fetch_add(1, Ordering::Relaxed) < 10 {
                            tracing::warn!("rtp: undecodable payload: {e}");
                        }
                        codec.conceal(pcm)
                    }
                },
                Take::Missing { next } => {
                    lost = true;
                    stats.concealed.fetch_add(1, Ordering::Relaxed);
                    next.is_some_and(|n| codec.recover(n, pcm)) || codec.conceal(pcm)
                }
                Take::Nothing => false,
            };
            if !concealed {
                pcm.fill(0);
            }
        });
        if matches!(self.neg.codec, Codec::Opus) {
            let floor = self.fec_floor.after_frame(lost, tick);
            self.jitter.set_min_target_ms(floor);
        }
        self.down.process(self.decoded.samples(), frame.samples_mut());
        self.publish_buffer_stats();
        self.stats.rx_level_cdb.store(frame_level_cdb(frame.samples()), Ordering::Relaxed);
        self.sink.put_frame(frame);
    }

    fn reject(&self, from: SocketAddr, why: &dyn std::fmt::Display) {
        // Log the first few only: a flood of junk must not flood the log.
        if self.stats.rejected.fetch_add(1, Ordering::Relaxed) < 10 {
            tracing::warn!("rtp: dropped a packet from {from}: {why}");
        }
    }

    fn on_rtp(&mut self, data: &[u8], from: SocketAddr) {
        let pkt = match RtpPacket::parse(data) {
            Ok(p) => p,
            Err(e) => return self.reject(from, &e),
        };
        let pt = pkt.header.payload_type;
        let is_event = Some(pt) == self.neg.telephone_event;
        if pt != self.neg.payload_type && !is_event {
            return self.reject(from, &format_args!("unknown payload type {pt}"));
        }
        if from != self.remote {
            // The address the SDP named always wins. Another one (a peer behind NAT) may take
            // over only before anything arrived or once the current source has gone quiet, so a
            // stray sender cannot take the call's audio over while the real one talks.
            let signalled = from == self.neg.remote;
            let quiet = self.last_from_remote.is_none_or(|t| t.elapsed() > RELATCH_AFTER);
            if !signalled && !quiet {
                return self.reject(from, &format_args!("RTP from {from} while {} is still sending", self.remote));
            }
            tracing::info!("rtp: latching onto {from} (was {})", self.remote);
            self.remote = from;
            self.remote_rtcp = SocketAddr::new(from.ip(), from.port().wrapping_add(1));
        }
        let arrived = Instant::now();
        let gap = self.last_from_remote.replace(arrived).map(|t| arrived - t);
        let seen = self.tracker.observe(&pkt.header);
        if seen.ssrc_changed {
            tracing::info!("rtp: new SSRC {:#010x}", pkt.header.ssrc);
            self.jitter.reset();
            self.first_ext_seq = None;
            self.last_transit = None;
        }
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        self.received += 1;
        self.first_ext_seq.get_or_insert(seen.extended_seq);
        if is_event {
            match TelephoneEvent::parse(pkt.payload) {
                Ok(ev) => {
                    if let Some(digit) = self.dtmf_in.on_packet(&ev, pkt.header.timestamp) {
                        self.stats.telephone_events.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("rtp: DTMF {digit}");
                        if let Some(tx) = &self.events {
                            let _ = tx.send(MediaEvent::Dtmf(digit));
                        }
                    }
                }
                Err(e) => self.reject(from, &e),
            }
            return;
        }
        // Events repeat one timestamp, so only audio tells the interarrival jitter.
        self.update_jitter(pkt.header.timestamp);
        if !matches!(self.neg.codec, Codec::Opus) && pkt.payload.len() != 160 {
            return self.reject(from, &CodecError::G711Length(pkt.payload.len()));
        }
        match self.jitter.push(seen.extended_seq, pkt.header.timestamp, pkt.payload, arrived) {
            Pushed::TooLarge => self.reject(from, &format_args!("{} byte payload", pkt.payload.len())),
            Pushed::Late => tracing::debug!(seq = seen.extended_seq, ?gap, "rtp: packet came after its turn"),
            _ => {}
        }
    }

    /// Copies the jitter buffer's figures to the shared counters.
    fn publish_buffer_stats(&self) {
        let j = self.jitter.stats();
        self.stats.late.store(j.late, Ordering::Relaxed);
        self.stats.buffer_us.store((self.jitter.delay_ms() * 1000.0) as u64, Ordering::Relaxed);
        self.stats.target_us.store((self.jitter.target_ms() * 1000.0) as u64, Ordering::Relaxed);
        let jitter_us = self.arrival_jitter * 1e6 / f64::from(self.codec.clock_rate());
        self.stats.jitter_us.store(jitter_us as u64, Ordering::Relaxed);
        if let (Some(high), Some(first)) = (self.tracker.highest(), self.first_ext_seq) {
            let expected = high + 1 - first.min(high);
            self.stats.lost.store(expected.saturating_sub(self.received), Ordering::Relaxed);
        }
    }

    /// Interarrival jitter, RFC 3550 §6.4.1 / A.8, in timestamp units.
    fn update_jitter(&mut self, ts: u32) {
        let arrival = (self.started.elapsed().as_micros() as i64) * i64::from(self.codec.clock_rate()) / 1_000_000;
        let transit = arrival - ts as i64;
        if let Some(prev) = self.last_transit {
            let d = (transit - prev).abs() as f64;
            self.arrival_jitter += (d - self.arrival_jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    fn on_rtcp(&mut self, data: &[u8], from: SocketAddr) {
        match parse_compound(data) {
            Ok(reports) => {
                self.stats.rtcp_received.fetch_add(1, Ordering::Relaxed);
                self.remote_rtcp = from;
                for r in reports {
                    match r {
                        RtcpReport::Sender { ntp_middle, .. } => self.last_sr = Some((ntp_middle, Instant::now())),
                        RtcpReport::Block(b) if b.ssrc == self.ssrc => {
                            self.stats.remote_fraction_lost.store(u64::from(b.fraction_lost), Ordering::Relaxed);
                            self.stats.remote_jitter.store(u64::from(b.jitter), Ordering::Relaxed);
                        }
                        RtcpReport::Bye { ssrc } => tracing::debug!("rtcp: BYE from {ssrc:#010x}"),
                        _ => {}
                    }
                }
            }
            Err(e) => tracing::debug!("rtcp: dropped a packet from {from}: {e}"),
        }
    }

    async fn send_rtcp(&mut self, bye: bool) {
        let sent = self.stats.sent.load(Ordering::Relaxed);
        let sender = (sent > 0).then(|| SenderInfo {
            ntp: ntp_now(),
            rtp_timestamp: self.timestamp,
            packets: sent as u32,
            octets: self.octets,
        });
        let block = match (self.tracker.ssrc(), self.tracker.highest(), self.first_ext_seq) {
            (Some(ssrc), Some(high), Some(first)) => {
                let expected = high + 1 - first.min(high);
                let lost = expected as i64 - self.received as i64;
                let (exp_int, rec_int) = (expected - self.last_expected, self.received - self.last_received);
                let fraction =
                    if exp_int == 0 || rec_int >= exp_int { 0 } else { ((exp_int - rec_int) * 256 / exp_int) as u8 };
                self.last_expected = expected;
                self.last_received = self.received;
                let (lsr, dlsr) =
                    self.last_sr.map(|(m, at)| (m, (at.elapsed().as_secs_f64() * 65536.0) as u32)).unwrap_or((0, 0));
                Some(ReportBlock {
                    ssrc,
                    fraction_lost: fraction,
                    cumulative_lost: lost as i32,
                    highest_seq: high as u32,
                    jitter: self.arrival_jitter as u32,
                    last_sr: lsr,
                    delay_since_last_sr: dlsr,
                })
            }
            _ => None,
        };
        let cname =
            format!("sipdesk@{}", self.sockets.rtp.local_addr().map(|a| a.ip().to_string()).unwrap_or_default());
        let mut buf = Vec::with_capacity(128);
        build_compound(self.ssrc, sender, block, &cname, bye, &mut buf);
        match self.sockets.rtcp.send_to(&buf, self.remote_rtcp).await {
            Ok(_) => {
                self.stats.rtcp_sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!("rtcp send to {}: {e}", self.remote_rtcp),
        }
    }
}

#[cfg(test)]
#[path = "rtp_session_tests.rs"]
mod tests;
