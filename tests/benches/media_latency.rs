//! Latency sipdesk adds to a call's audio, both ways, measured with clicks (printed, never
//! asserted). Run with `bash scripts/bench.sh`; `SIPDESK_BENCH_CLICKS` sets the clicks per
//! measurement (default 200).
//!
//! A click is a 2 ms burst of 1 kHz at -6 dBFS after at least 60 ms of digital silence; it is
//! found wherever it lands by the first sample above -18 dBFS after such a silence. Clicks come
//! every [`CLICK_EVERY_FRAMES`] frames (300 ms), so each one found is paired with the last click
//! sent before it. The far end is a UDP socket in this bench that sends RTP on its own 20 ms
//! clock and decodes what it receives, timestamping both with [`Instant`].
//!
//! **(a) Through the core, file-like endpoint.** The core's own [`RtpSession`] on loopback, as
//! a call runs it (endpoint at the codec's rate: 8 kHz for G.711, 48 for Opus; the desk's jitter
//! buffer), with a
//! [`FrameSource`] and [`FrameSink`] written here instead of WAV files, since files are not
//! timed: the source stamps the moment it yields a frame whose first sample is a click, the sink
//! the moment it is handed a frame holding one.
//! - *source->wire*: from the source yielding the click's frame to the far end receiving the
//!   packet that carries it. The frame is complete when yielded, so all of it is beyond
//!   packetization.
//! - *wire->sink*: from the far end sending a packet whose first sample is a click to the click
//!   starting to play: the sink being handed the frame holding it, plus its offset in that frame
//!   (the playout stretcher moves it away from the frame's start). Jitter buffer and playout tick.
//!
//! **(b) Through the audio device.** The same session on [`DeviceEndpoint`] (cpal's PulseAudio
//! host on a private PipeWire, the rig of the device tests): the default source is the monitor
//! of null sink `mic`, the default sink is null sink `spk`. Two reference capture streams in this
//! process, opened as the endpoint opens its devices (48 kHz mono f32, the buffer size the
//! endpoint asks for, [`device::buffer_frames`]), read
//! `mic.monitor` and `spk.monitor`; a click's time is the callback's [`Instant`] less the
//! samples that follow it in that callback's buffer.
//! - *mic->wire*: clicks are played into `mic` (paplay). Reference: when the reference stream on
//!   `mic.monitor` got the click, i.e. when any app capturing that source (the endpoint's own
//!   stream too) could have it. End: the far end receiving the packet. *Beyond packetization*
//!   subtracts the time the rest of the packet's frame still had to be captured after the
//!   click: (frame length - the click's offset in the decoded packet) / rate.
//! - *wire->speaker*: the far end sends clicks; the reference stream on `spk.monitor` finds them.
//!   The audio system's own share is calibrated first, without sipdesk: an output stream opened
//!   like the endpoint's writes clicks into `spk` and the same reference finds them; its median
//!   (time from the callback that wrote the click to the monitor) is subtracted to give
//!   sipdesk's share (packet arrival to the sample being written into the device's buffer).
//!
//! The endpoint's halves are wrapped (they stamp the frames holding a click as the session takes
//! or hands them), which splits each direction in two: mic->wire into the capture side (device
//! callback, capture ring, waiting for the session's 20 ms tick) and the session (resample,
//! encode, send); wire->speaker into the session (jitter buffer, playout tick) and the playback
//! side (rate conversion, playback ring up to the device's buffer). The playout stretcher moves
//! a click away from the start of the frame it arrived in, so the split is made where the click
//! itself stands: the time a frame is handed over plus the click's offset in it (the moment it
//! would start playing were the sink to play the frame at once). The devices are opened right
//! before the session starts, as a call does, and anew for each of the [`CALLS`] calls.
//!
//! **(c) Incidents**, one device call each: the session's task blocked once for 100 ms mid-call
//! (a busy machine), and the session starting 100 ms after the devices opened; each prints the
//! latency after the incident (and before it, for the stall).
//!
//! Opus figures include the codec's 6.5 ms algorithmic delay (its look-ahead), which is the
//! same in every Opus phone: mic->wire holds sipdesk's encoder's; wire->ear holds the far end's
//! encoder's, which shows only once sipdesk has decoded, so those figures are also printed less
//! it (measured by encoding and decoding a click). Loopback only; the machine is shared, so figures move by a few ms
//! between runs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use sipdesk_core::media::codec::for_codec;
use sipdesk_core::media::device::{self, DeviceEndpoint};
use sipdesk_core::media::frame::{Endpoint, Frame, FrameSink, FrameSource, SampleRate, SourcePoll};
use sipdesk_core::media::offer_answer::{Codec, Negotiated};
use sipdesk_core::media::rate_convert::RateConverter;
use sipdesk_core::media::rtp::{RtpHeader, RtpPacket};
use sipdesk_core::media::rtp_session::{RtpSession, RtpSockets, RtpStats};
use sipdesk_core::media::sdp::Direction;
use sipdesk_e2e::pipewire::{self, PipeWire};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Frames (20 ms) from one click to the next: 300 ms, more than any latency measured here.
const CLICK_EVERY_FRAMES: u32 = 15;
/// Frames before the first click: 3 s, for the jitter buffer to settle from its starting target
/// to what the (clean) loopback needs, so the figures are a call's steady state.
const WARMUP_FRAMES: u32 = 150;
/// Click amplitude (-6 dBFS) and the level that finds it (-18 dBFS).
const CLICK_PEAK: f64 = 16384.0;
const THRESHOLD: i32 = 4096;
/// Silence a click must follow.
const QUIET_MS: u32 = 60;
/// The devices' rate (and the PipeWire null sinks').
const DEVICE_HZ: u32 = 48_000;

/// Calls (sessions) each measurement is spread over: each has its own phase between the far
/// end's clock, the session's 20 ms tick and the device's clock, which sets part of the latency
/// for the whole call.
const CALLS: usize = 10;

fn clicks() -> usize {
    std::env::var("SIPDESK_BENCH_CLICKS").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(200)
}

/// A pseudo-random delay below 20 ms (from the clock's nanoseconds), so each call's far end
/// starts at another phase of the session's tick.
fn random_phase() -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    Duration::from_micros(u64::from(nanos / 1000 % 20_000))
}

/// The click's samples at `rate`.
fn click(rate: u32) -> Vec<i16> {
    let n = rate as usize / 500;
    (0..n)
        .map(|i| (CLICK_PEAK * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / f64::from(rate)).cos()) as i16)
        .collect()
}

/// Finds click onsets in a stream of samples fed piece by piece.
struct Onsets {
    quiet: usize,
    needed: usize,
}

impl Onsets {
    fn new(rate: u32) -> Onsets {
        let needed = (rate * QUIET_MS / 1000) as usize;
        Onsets { quiet: 0, needed }
    }

    /// Index (in this piece) of the first onset in `samples`, if any.
    fn feed(&mut self, samples: impl Iterator<Item = i32>) -> Option<usize> {
        let mut found = None;
        for (i, s) in samples.enumerate() {
            if s.abs() >= THRESHOLD {
                if self.quiet >= self.needed && found.is_none() {
                    found = Some(i);
                }
                self.quiet = 0;
            } else {
                self.quiet += 1;
            }
        }
        found
    }
}

/// Pairs each detection with the last emission before it (each emission once): (emission index,
/// detection index). Detections with no emission within `max` before them are left out.
fn pair_indices<A, B>(emitted: &[(Instant, A)], found: &[(Instant, B)], max: Duration) -> Vec<(usize, usize)> {
    let mut used = vec![false; emitted.len()];
    let mut out = Vec::new();
    for (j, (t, _)) in found.iter().enumerate() {
        let Some(i) = emitted.iter().rposition(|(e, _)| e <= t) else { continue };
        if used[i] || t.duration_since(emitted[i].0) > max {
            continue;
        }
        used[i] = true;
        out.push((i, j));
    }
    out
}

/// Latencies in ms of [`pair_indices`], with what the detection carried.
fn pair<T: Copy>(emitted: &[Instant], found: &[(Instant, T)], max: Duration) -> Vec<(f64, T)> {
    let emitted: Vec<(Instant, ())> = emitted.iter().map(|t| (*t, ())).collect();
    pair_indices(&emitted, found, max)
        .into_iter()
        .map(|(i, j)| (found[j].0.duration_since(emitted[i].0).as_secs_f64() * 1000.0, found[j].1))
        .collect()
}

/// "p50 X, p95 Y, max Z ms (min W; N clicks in C calls, per-call medians A-B)" of latencies in
/// ms, one list per call.
fn summary(calls: &[Vec<f64>]) -> String {
    let mut v: Vec<f64> = calls.iter().flatten().copied().collect();
    if v.is_empty() {
        return "no clicks found".into();
    }
    v.sort_by(f64::total_cmp);
    let pct = |p: f64| v[((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    let medians: Vec<f64> = calls.iter().filter(|c| !c.is_empty()).map(|c| median(c)).collect();
    let (lo, hi) = medians.iter().fold((f64::MAX, f64::MIN), |(lo, hi), m| (lo.min(*m), hi.max(*m)));
    format!(
        "p50 {:.1}, p95 {:.1}, max {:.1} ms (min {:.1}; {} clicks in {} calls, per-call medians {:.1}-{:.1})",
        pct(50.0),
        pct(95.0),
        v[v.len() - 1],
        v[0],
        v.len(),
        medians.len(),
        lo,
        hi
    )
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn neg(codec: Codec, remote: SocketAddr) -> Negotiated {
    Negotiated {
        codec,
        payload_type: codec.static_payload_type(),
        telephone_event: None,
        remote,
        direction: Direction::SendRecv,
        ptime: 20,
    }
}

/// The far end: sends RTP with clicks on its own clock, receives and decodes the desk's.
struct FarEnd {
    stop: Arc<AtomicBool>,
    sender: std::thread::JoinHandle<Vec<Instant>>,
    receiver: std::thread::JoinHandle<Vec<(Instant, f64)>>,
}

/// What the far end saw.
struct FarEndLog {
    /// When each click packet was sent.
    sent: Vec<Instant>,
    /// When a packet holding a click onset arrived, with the time from the onset to the end of
    /// that packet's frame (s).
    received: Vec<(Instant, f64)>,
}

impl FarEnd {
    fn start(sock: UdpSocket, desk: SocketAddr, codec: Codec, clicks: usize) -> FarEnd {
        let stop = Arc::new(AtomicBool::new(false));
        let tx = sock.try_clone().expect("clone far-end socket");
        let stop_tx = stop.clone();
        let sender = std::thread::spawn(move || {
            let mut enc = for_codec(codec).expect("codec");
            let rate = enc.rate();
            let mut pcm = vec![0i16; rate.frame_samples()];
            let burst = click(rate.hz());
            let (mut payload, mut buf) = ([0u8; 1500], [0u8; 1600]);
            let mut sent = Vec::new();
            let t0 = Instant::now();
            for n in 0u32.. {
                if stop_tx.load(Ordering::Relaxed) {
                    break;
                }
                pcm.fill(0);
                let is_click =
                    n >= WARMUP_FRAMES && (n - WARMUP_FRAMES).is_multiple_of(CLICK_EVERY_FRAMES) && sent.len() < clicks;
                if is_click {
                    pcm[..burst.len()].copy_from_slice(&burst);
                }
                let len = enc.encode(&pcm, &mut payload).expect("encode");
                let header = RtpHeader {
                    marker: n == 0,
                    payload_type: codec.static_payload_type(),
                    sequence: n as u16,
                    timestamp: n.wrapping_mul(enc.clock_rate() / 50),
                    ssrc: 0x5eed_c11c,
                };
                let size = header.write(&payload[..len], &mut buf).expect("rtp header");
                let at = Instant::now();
                let _ = tx.send_to(&buf[..size], desk);
                if is_click {
                    sent.push(at);
                }
                let due = t0 + Duration::from_millis(20 * u64::from(n + 1));
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            sent
        });
        let stop_rx = stop.clone();
        sock.set_read_timeout(Some(Duration::from_millis(50))).expect("read timeout");
        let receiver = std::thread::spawn(move || {
            let mut dec = for_codec(codec).expect("codec");
            let rate = dec.rate();
            let mut pcm = vec![0i16; rate.frame_samples()];
            let mut onsets = Onsets::new(rate.hz());
            let mut found = Vec::new();
            let mut buf = [0u8; 2048];
            while !stop_rx.load(Ordering::Relaxed) {
                let Ok((n, _)) = sock.recv_from(&mut buf) else { continue };
                let at = Instant::now();
                let Ok(pkt) = RtpPacket::parse(&buf[..n]) else { continue };
                if pkt.header.payload_type != codec.static_payload_type() || dec.decode(pkt.payload, &mut pcm).is_err()
                {
                    continue;
                }
                if let Some(i) = onsets.feed(pcm.iter().map(|s| i32::from(*s))) {
                    found.push((at, (pcm.len() - i) as f64 / f64::from(rate.hz())));
                }
            }
            found
        });
        FarEnd { stop, sender, receiver }
    }

    fn stop(self) -> FarEndLog {
        self.stop.store(true, Ordering::Relaxed);
        FarEndLog {
            sent: self.sender.join().expect("far-end sender"),
            received: self.receiver.join().expect("far-end receiver"),
        }
    }
}

/// A source like a paced WAV file: a frame at every poll, a click every [`CLICK_EVERY_FRAMES`].
struct ClickSource {
    rate: SampleRate,
    polls: u32,
    left: usize,
    burst: Vec<i16>,
    yielded: Arc<Mutex<Vec<Instant>>>,
}

impl FrameSource for ClickSource {
    fn rate(&self) -> SampleRate {
        self.rate
    }

    fn poll_frame(&mut self, out: &mut Frame) -> SourcePoll {
        out.reset(self.rate);
        let n = self.polls;
        self.polls += 1;
        if n >= WARMUP_FRAMES && (n - WARMUP_FRAMES).is_multiple_of(CLICK_EVERY_FRAMES) && self.left > 0 {
            self.left -= 1;
            out.samples_mut()[..self.burst.len()].copy_from_slice(&self.burst);
            self.yielded.lock().unwrap().push(Instant::now());
        }
        SourcePoll::Ready
    }
}

/// A sink that stamps every click onset: the moment it is handed the frame holding it plus the
/// onset's offset in that frame (when it would start playing were the frame played at once).
struct ClickSink {
    rate: SampleRate,
    onsets: Onsets,
    got: Arc<Mutex<Vec<(Instant, ())>>>,
}

impl FrameSink for ClickSink {
    fn rate(&self) -> SampleRate {
        self.rate
    }

    fn put_frame(&mut self, frame: &Frame) {
        let handed = Instant::now();
        if let Some(i) = self.onsets.feed(frame.samples().iter().map(|s| i32::from(*s))) {
            let at = handed + Duration::from_secs_f64(i as f64 / f64::from(frame.rate().hz()));
            self.got.lock().unwrap().push((at, ()));
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    // As the sipdesk binary builds its runtime.
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

fn stats_line(s: &RtpStats) -> String {
    format!(
        "desk sent {}, received {}, concealed {}, late {}, jitter buffer delay {:.1} ms for a target of {:.1} ms",
        s.sent.load(Ordering::Relaxed),
        s.received.load(Ordering::Relaxed),
        s.concealed.load(Ordering::Relaxed),
        s.late.load(Ordering::Relaxed),
        s.buffer_us.load(Ordering::Relaxed) as f64 / 1000.0,
        s.target_us.load(Ordering::Relaxed) as f64 / 1000.0
    )
}

/// Runs a session on `endpoint` against a far end (started at a random phase of the session's
/// tick) for `clicks` clicks each way; returns the far end's log and the session's counters.
fn run_session(
    rt: &tokio::runtime::Runtime,
    codec: Codec,
    endpoint: impl FnOnce() -> Endpoint,
    started: impl FnOnce(),
    clicks: usize,
) -> (FarEndLog, String) {
    let far = UdpSocket::bind((LO, 0)).expect("far-end socket");
    let far_addr = far.local_addr().unwrap();
    rt.block_on(async {
        let sockets = RtpSockets::bind(LO, 40000, 59999).await.expect("RTP ports");
        let desk = SocketAddr::new(LO, sockets.port());
        // As a call does: the endpoint is made (the devices opened) right before the session.
        let session = RtpSession::start(sockets, neg(codec, far_addr), endpoint()).expect("session");
        started();
        tokio::time::sleep(random_phase()).await;
        let far = FarEnd::start(far, desk, codec, clicks);
        let frames = WARMUP_FRAMES + CLICK_EVERY_FRAMES * clicks as u32 + 25;
        tokio::time::sleep(Duration::from_millis(20 * u64::from(frames))).await;
        let stats = stats_line(session.stats());
        let _ = session.stop().await;
        (far.stop(), stats)
    })
}

/// The rate a call's endpoint runs at for `codec`, as the desk opens it.
fn call_rate(codec: Codec) -> SampleRate {
    SampleRate::from_hz(codec.clock_rate()).expect("a supported rate")
}

/// (a): the core's session between a click source/sink and the far end, over [`CALLS`] calls.
fn through_the_core(rt: &tokio::runtime::Runtime, codec: Codec, clicks: usize) {
    let rate = call_rate(codec);
    let max = Duration::from_millis(u64::from(20 * CLICK_EVERY_FRAMES));
    let (mut out, mut inn, mut stats) = (Vec::new(), Vec::new(), Vec::new());
    for n in 1..=CALLS {
        let per_call = clicks.div_ceil(CALLS);
        let yielded = Arc::new(Mutex::new(Vec::new()));
        let got = Arc::new(Mutex::new(Vec::new()));
        let source = ClickSource { rate, polls: 0, left: per_call, burst: click(rate.hz()), yielded: yielded.clone() };
        let sink = ClickSink { rate, onsets: Onsets::new(rate.hz()), got: got.clone() };
        let endpoint = || Endpoint::new(Box::new(source), Box::new(sink));
        let (log, s) = run_session(rt, codec, endpoint, || {}, per_call);
        out.push(pair(&yielded.lock().unwrap(), &log.received, max).into_iter().map(|(ms, _)| ms).collect::<Vec<_>>());
        inn.push(pair(&log.sent, &got.lock().unwrap(), max).into_iter().map(|(ms, _)| ms).collect::<Vec<_>>());
        let medians = |v: &[Vec<f64>]| v.last().map_or(0.0, |c| median(c));
        eprintln!(
            "media_latency: {} call {n}: medians source->wire {:.1}, wire->sink {:.1} ms; {s}",
            codec.name(),
            medians(&out),
            medians(&inn)
        );
        stats.push(s);
    }
    println!(
        "  {}, {} kHz endpoint (last call: {}):",
        codec.name(),
        rate.hz() / 1000,
        stats.last().cloned().unwrap_or_default()
    );
    println!("    source->wire: {}", summary(&out));
    println!("    wire->sink:   {}", summary(&inn));
    print_less_look_ahead(codec, "wire->sink", &inn);
}

/// For Opus, a wire->ear figure less the far end's encoder look-ahead ([`codec_delay_ms`]):
/// the far end's share, though it shows only once sipdesk has decoded.
fn print_less_look_ahead(codec: Codec, what: &str, calls: &[Vec<f64>]) {
    if codec != Codec::Opus {
        return;
    }
    let d = codec_delay_ms(codec);
    let less: Vec<Vec<f64>> = calls.iter().map(|c| c.iter().map(|ms| ms - d).collect()).collect();
    println!("      {what} less the far end's encoder look-ahead ({d:.1} ms): {}", summary(&less));
}

/// A reference capture stream on the source `name` (a PulseAudio/PipeWire name such as
/// `mic.monitor`), opened like the endpoint opens its devices; returns the stream and the times
/// it found click onsets.
fn reference_capture(name: &str) -> (cpal::Stream, Found) {
    reference_capture_sized(name).0
}

/// Times a reference stream found click onsets.
type Found = Arc<Mutex<Vec<(Instant, ())>>>;

/// [`reference_capture`], also returning the size of each callback's buffer, in samples.
fn reference_capture_sized(name: &str) -> ((cpal::Stream, Found), Arc<Mutex<Vec<usize>>>) {
    let host = cpal::default_host();
    let dev = host
        .input_devices()
        .expect("list capture devices")
        .find(|d| d.id().is_ok_and(|id| id.id() == name))
        .unwrap_or_else(|| panic!("no capture device {name} (is cpal on its PulseAudio host?)"));
    let cfg = cpal::StreamConfig {
        channels: 1,
        sample_rate: DEVICE_HZ,
        buffer_size: cpal::BufferSize::Fixed(device::buffer_frames(DEVICE_HZ)),
    };
    let found = Arc::new(Mutex::new(Vec::new()));
    let log = found.clone();
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let size_log = sizes.clone();
    let mut onsets = Onsets::new(DEVICE_HZ);
    let stream = dev
        .build_input_stream(
            cfg,
            move |data: &[f32], _: &cpal::InputCallbackInfo| {
                let now = Instant::now();
                if let Ok(mut s) = size_log.try_lock() {
                    if s.len() < 2000 {
                        s.push(data.len());
                    }
                }
                if let Some(i) = onsets.feed(data.iter().map(|s| (s * 32768.0) as i32)) {
                    let behind = Duration::from_secs_f64((data.len() - i) as f64 / f64::from(DEVICE_HZ));
                    log.lock().unwrap().push((now - behind, ()));
                }
            },
            |e| eprintln!("reference capture: {e}"),
            None,
        )
        .unwrap_or_else(|e| panic!("reference capture on {name}: {e}"));
    stream.play().expect("start reference capture");
    ((stream, found), sizes)
}

/// Clicks written into the default output (the `spk` sink) by a stream opened like the
/// endpoint's; returns when each click's first sample was written (callback time plus its
/// offset in the buffer).
fn calibration_clicks(count: usize) -> Vec<Instant> {
    let dev = cpal::default_host().default_output_device().expect("default output");
    let cfg = cpal::StreamConfig {
        channels: 1,
        sample_rate: DEVICE_HZ,
        buffer_size: cpal::BufferSize::Fixed(device::buffer_frames(DEVICE_HZ)),
    };
    let written = Arc::new(Mutex::new(Vec::new()));
    let log = written.clone();
    let burst: Vec<f32> = click(DEVICE_HZ).iter().map(|s| f32::from(*s) / 32768.0).collect();
    let every = (DEVICE_HZ / 50 * CLICK_EVERY_FRAMES) as u64;
    let start = u64::from(DEVICE_HZ / 2);
    let mut pos = 0u64;
    let stream = dev
        .build_output_stream(
            cfg,
            move |data: &mut [f32], _: &cpal::OutputCallbackInfo| {
                let now = Instant::now();
                for (i, out) in data.iter_mut().enumerate() {
                    let p = pos + i as u64;
                    let phase = p.checked_sub(start).map(|q| (q % every, q / every));
                    *out = match phase {
                        Some((k, n)) if (n as usize) < count && (k as usize) < burst.len() => {
                            if k == 0 {
                                let ahead = Duration::from_secs_f64(i as f64 / f64::from(DEVICE_HZ));
                                log.lock().unwrap().push(now + ahead);
                            }
                            burst[k as usize]
                        }
                        _ => 0.0,
                    };
                }
                pos += data.len() as u64;
            },
            |e| eprintln!("calibration output: {e}"),
            None,
        )
        .expect("calibration output stream");
    stream.play().expect("start calibration output");
    std::thread::sleep(Duration::from_millis(500 + 20 * u64::from(CLICK_EVERY_FRAMES) * count as u64 + 500));
    drop(stream);
    let v = written.lock().unwrap().clone();
    v
}

/// A WAV of `count` clicks, 300 ms apart, after the session's warm-up in silence, at the
/// devices' rate.
fn click_wav(path: &Path, count: usize) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: DEVICE_HZ,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("click WAV");
    let every = (DEVICE_HZ / 50 * CLICK_EVERY_FRAMES) as usize;
    let burst = click(DEVICE_HZ);
    let lead = (DEVICE_HZ / 50 * WARMUP_FRAMES) as usize;
    let mut samples = vec![0i16; lead + every * count + DEVICE_HZ as usize];
    for n in 0..count {
        let at = lead + n * every;
        samples[at..at + burst.len()].copy_from_slice(&burst);
    }
    for s in samples {
        w.write_sample(s).expect("click WAV");
    }
    w.finalize().expect("click WAV");
}

/// Wraps the device endpoint's source: stamps the poll that hands the session a frame holding a
/// click onset, with the time from the onset to the end of that frame (s).
struct TimedSource {
    inner: Box<dyn FrameSource>,
    onsets: Onsets,
    log: Arc<Mutex<Vec<(Instant, f64)>>>,
}

impl FrameSource for TimedSource {
    fn rate(&self) -> SampleRate {
        self.inner.rate()
    }

    fn poll_frame(&mut self, out: &mut Frame) -> SourcePoll {
        let r = self.inner.poll_frame(out);
        if r == SourcePoll::Ready {
            let at = Instant::now();
            let n = out.samples().len();
            if let Some(i) = self.onsets.feed(out.samples().iter().map(|s| i32::from(*s))) {
                let rest = (n - i) as f64 / f64::from(out.rate().hz());
                self.log.lock().unwrap().push((at, rest));
            }
        }
        r
    }
}

/// A stall to make: after this many clicks, for this long; when it began is noted.
type Stall = (usize, Duration, Arc<Mutex<Option<Instant>>>);

/// Wraps the device endpoint's sink: stamps each frame holding a click onset as it is handed
/// over, before the sink's own work (resampling, the playback ring), plus the onset's offset in
/// the frame.
struct TimedSink {
    inner: Box<dyn FrameSink>,
    onsets: Onsets,
    log: Arc<Mutex<Vec<(Instant, ())>>>,
    /// Blocks the session's task this long once, after this many clicks (a hiccup of the
    /// machine), and notes when.
    stall: Option<Stall>,
}

impl FrameSink for TimedSink {
    fn rate(&self) -> SampleRate {
        self.inner.rate()
    }

    fn put_frame(&mut self, frame: &Frame) {
        let handed = Instant::now();
        if let Some(i) = self.onsets.feed(frame.samples().iter().map(|s| i32::from(*s))) {
            let at = handed + Duration::from_secs_f64(i as f64 / f64::from(frame.rate().hz()));
            let clicks = {
                let mut log = self.log.lock().unwrap();
                log.push((at, ()));
                log.len()
            };
            if let Some((after, how_long, when)) = &self.stall {
                if clicks == *after {
                    *when.lock().unwrap() = Some(Instant::now());
                    std::thread::sleep(*how_long);
                }
            }
        }
        self.inner.put_frame(frame);
    }

    fn latency(&self) -> Duration {
        self.inner.latency()
    }

    fn close(&mut self) -> Result<(), sipdesk_core::media::frame::EndpointError> {
        self.inner.close()
    }
}

/// Latencies of one measurement, one list per call.
#[derive(Default)]
struct PerCall(Vec<Vec<f64>>);

impl PerCall {
    fn push(&mut self, v: Vec<f64>) {
        self.0.push(v);
    }
}

/// (b): the session on the audio device endpoint, against the far end, over [`CALLS`] calls
/// (each opens the devices anew, as a call does). The endpoint's halves are wrapped so each
/// direction splits in two: the device side (capture ring, playback ring) and the session side.
fn through_the_device(rt: &tokio::runtime::Runtime, rig: &PipeWire, codec: Codec, clicks: usize, os_out_ms: f64) {
    let (mic_ref, at_mic) = reference_capture("mic.monitor");
    let (spk_ref, at_spk) = reference_capture("spk.monitor");
    std::thread::sleep(Duration::from_millis(300));
    let max = Duration::from_millis(u64::from(20 * CLICK_EVERY_FRAMES));
    let per_call = clicks.div_ceil(CALLS);
    let wav = rig.dir().join("clicks.wav");
    click_wav(&wav, per_call);
    let [mut raw, mut beyond, mut capture, mut sending, mut inn, mut own, mut receiving, mut playback] =
        std::array::from_fn(|_| PerCall::default());
    let (mut open_ms, mut stats) = (Vec::new(), Vec::new());
    let ms = |v: Vec<(f64, ())>| v.into_iter().map(|(ms, ())| ms).collect::<Vec<f64>>();
    for call in 1..=CALLS {
        at_mic.lock().unwrap().clear();
        at_spk.lock().unwrap().clear();
        let (polled, handed) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        let endpoint = || {
            let opened = Instant::now();
            let endpoint = DeviceEndpoint::open(None, None, call_rate(codec)).expect("open the default devices");
            open_ms.push(opened.elapsed().as_secs_f64() * 1000.0);
            let (source, sink) = endpoint.into_parts();
            let rate = source.rate().hz();
            let source = TimedSource { inner: source, onsets: Onsets::new(rate), log: polled.clone() };
            let sink = TimedSink { inner: sink, onsets: Onsets::new(rate), log: handed.clone(), stall: None };
            Endpoint::new(Box::new(source), Box::new(sink))
        };
        let mut playing = None;
        let (log, s) = run_session(rt, codec, endpoint, || playing = Some(rig.play("mic", &wav)), per_call);
        drop(playing);
        let mic_times: Vec<Instant> = at_mic.lock().unwrap().iter().map(|(t, ())| *t).collect();
        let out = pair(&mic_times, &log.received, max);
        raw.push(out.iter().map(|(ms, _)| *ms).collect());
        beyond.push(out.iter().map(|(ms, rest)| ms - rest * 1000.0).collect());
        let polled = polled.lock().unwrap().clone();
        capture.push(pair(&mic_times, &polled, max).into_iter().map(|(ms, rest)| ms - rest * 1000.0).collect());
        // Both ends referred to the end of the frame holding the onset (for Opus the decoded
        // onset sits 6.5 ms later than the one polled, which this keeps in the figure).
        sending.push(
            pair_indices(&polled, &log.received, max)
                .into_iter()
                .map(|(i, j)| {
                    let (sent_at, rest_polled) = polled[i];
                    let (got_at, rest_got) = log.received[j];
                    (got_at.duration_since(sent_at).as_secs_f64() - rest_got + rest_polled) * 1000.0
                })
                .collect(),
        );
        let i = ms(pair(&log.sent, &at_spk.lock().unwrap(), max));
        let handed = handed.lock().unwrap().clone();
        receiving.push(ms(pair(&log.sent, &handed, max)));
        let handed_times: Vec<Instant> = handed.iter().map(|(t, ())| *t).collect();
        playback.push(ms(pair(&handed_times, &at_spk.lock().unwrap(), max)).iter().map(|v| v - os_out_ms).collect());
        let range = |v: &[f64]| {
            let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
            format!("{lo:.1}/{:.1}/{hi:.1}", median(v))
        };
        let last = |p: &PerCall| p.0.last().cloned().unwrap_or_default();
        eprintln!(
            "media_latency: {} device call {call}: opened in {:.0} ms; min/median/max ms: mic->wire beyond \
             packetization {} (capture ring {}), wire->speaker {} (jitter buffer {}, playback ring {})",
            codec.name(),
            open_ms.last().copied().unwrap_or_default(),
            range(&last(&beyond)),
            range(&last(&capture)),
            range(&i),
            range(&last(&receiving)),
            range(&last(&playback)),
        );
        own.push(i.iter().map(|ms| ms - os_out_ms).collect());
        inn.push(i);
        stats.push(s);
    }
    drop((mic_ref, spk_ref));
    println!(
        "  {}, {} kHz endpoint on the device (last call: {}; opening the devices took {:.0}-{:.0} ms):",
        codec.name(),
        call_rate(codec).hz() / 1000,
        stats.last().cloned().unwrap_or_default(),
        open_ms.iter().copied().fold(f64::MAX, f64::min),
        open_ms.iter().copied().fold(0.0, f64::max)
    );
    println!("    mic->wire, all:                     {}", summary(&raw.0));
    println!("    mic->wire, beyond packetization:    {}", summary(&beyond.0));
    println!("      of which capture ring, tick wait: {}", summary(&capture.0));
    println!("      of which session (encode, send):  {}", summary(&sending.0));
    if codec == Codec::Opus {
        println!("      (the session's share holds Opus's 6.5 ms look-ahead)");
    }
    println!("    wire->speaker monitor, all:         {}", summary(&inn.0));
    println!("    wire->speaker, sipdesk's share:     {}", summary(&own.0));
    print_less_look_ahead(codec, "sipdesk's share", &own.0);
    println!("      of which session (jitter buffer): {}", summary(&receiving.0));
    println!("      of which playback ring:           {}", summary(&playback.0));
}

/// Something that happens once in a device call.
#[derive(Clone, Copy)]
enum Incident {
    /// The session's task is blocked this long (the machine busy for a moment) after half the
    /// clicks.
    Stall(Duration),
    /// The session starts this long after the devices were opened.
    LateStart(Duration),
}

/// One device call with an [`Incident`]: the latency both ways before and after it (a late start
/// is before every click, so only "after" is printed).
fn device_incident(rt: &tokio::runtime::Runtime, rig: &PipeWire, codec: Codec, clicks: usize, incident: Incident) {
    let (mic_ref, at_mic) = reference_capture("mic.monitor");
    let (spk_ref, at_spk) = reference_capture("spk.monitor");
    std::thread::sleep(Duration::from_millis(300));
    let wav = rig.dir().join("clicks-incident.wav");
    click_wav(&wav, clicks);
    let when = Arc::new(Mutex::new(None));
    let handed = Arc::new(Mutex::new(Vec::new()));
    let endpoint = || {
        let endpoint = DeviceEndpoint::open(None, None, call_rate(codec)).expect("open the default devices");
        let (source, sink) = endpoint.into_parts();
        let rate = sink.rate().hz();
        let stall = match incident {
            Incident::Stall(d) => Some((clicks / 2, d, when.clone())),
            Incident::LateStart(d) => {
                std::thread::sleep(d);
                *when.lock().unwrap() = Some(Instant::now());
                None
            }
        };
        let sink = TimedSink { inner: sink, onsets: Onsets::new(rate), log: handed.clone(), stall };
        Endpoint::new(source, Box::new(sink))
    };
    let mut playing = None;
    let (log, _) = run_session(rt, codec, endpoint, || playing = Some(rig.play("mic", &wav)), clicks);
    drop(playing);
    drop((mic_ref, spk_ref));
    let Some(at) = *when.lock().unwrap() else {
        println!("  {}: the incident did not happen", codec.name());
        return;
    };
    let blocked = match incident {
        Incident::Stall(d) => d,
        Incident::LateStart(_) => Duration::ZERO,
    };
    let max = Duration::from_millis(u64::from(20 * CLICK_EVERY_FRAMES));
    let mic_times: Vec<Instant> = at_mic.lock().unwrap().iter().map(|(t, ())| *t).collect();
    let split = |found: &[(Instant, f64)], emitted: &[Instant]| {
        let emitted: Vec<(Instant, ())> = emitted.iter().map(|t| (*t, ())).collect();
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for (i, j) in pair_indices(&emitted, found, max) {
            let ms = (found[j].0.duration_since(emitted[i].0).as_secs_f64() - found[j].1) * 1000.0;
            // A click on its way during a stall counts in neither.
            if found[j].0 < at {
                before.push(ms);
            } else if emitted[i].0 > at + blocked {
                after.push(ms);
            }
        }
        (before, after)
    };
    let (out_before, out_after) = split(&log.received, &mic_times);
    let spk: Vec<(Instant, f64)> = at_spk.lock().unwrap().iter().map(|(t, ())| (*t, 0.0)).collect();
    let (in_before, in_after) = split(&spk, &log.sent);
    let handed: Vec<(Instant, f64)> = handed.lock().unwrap().iter().map(|(t, ())| (*t, 0.0)).collect();
    let (jb_before, jb_after) = split(&handed, &log.sent);
    match incident {
        Incident::Stall(d) => {
            println!(
                "  {}, one {} ms stall of the session's task mid-call; medians before -> after it:",
                codec.name(),
                d.as_millis()
            );
            println!(
                "    mic->wire beyond packetization {:.1} -> {:.1} ms; wire->speaker monitor {:.1} -> {:.1} ms, of \
                 which the session (jitter buffer) {:.1} -> {:.1} ms",
                median(&out_before),
                median(&out_after),
                median(&in_before),
                median(&in_after),
                median(&jb_before),
                median(&jb_after)
            );
        }
        Incident::LateStart(d) => println!(
            "  {}, the session starting {} ms after the devices opened: medians mic->wire beyond packetization \
             {:.1} ms; wire->speaker monitor {:.1} ms, of which the session (jitter buffer) {:.1} ms",
            codec.name(),
            d.as_millis(),
            median(&out_after),
            median(&in_after),
            median(&jb_after)
        ),
    }
}

/// How much later a click comes out of `codec` than it went in, ms: encoded and decoded again
/// with nothing between (Opus's look-ahead; none for G.711). The click starts a frame, as the far
/// end sends it.
fn codec_delay_ms(codec: Codec) -> f64 {
    let mut c = for_codec(codec).expect("the codec");
    let (rate, n) = (c.rate().hz(), c.rate().frame_samples());
    let at = n * 10;
    let mut input = vec![0i16; n * 20];
    let burst = click(rate);
    input[at..at + burst.len()].copy_from_slice(&burst);
    let (mut out, mut payload, mut pcm) = (Vec::new(), [0u8; 1500], vec![0i16; n]);
    for frame in input.chunks(n) {
        let len = c.encode(frame, &mut payload).expect("encode");
        c.decode(&payload[..len], &mut pcm).expect("decode");
        out.extend_from_slice(&pcm);
    }
    let mut onsets = Onsets::new(rate);
    onsets
        .feed(out.iter().map(|s| i32::from(*s)))
        .map_or(f64::NAN, |i| (i as f64 - at as f64) * 1000.0 / f64::from(rate))
}

/// How much later a click comes out of the core's rate converter (device rate <-> call rate)
/// than it went in, in ms, fed in pieces of a device callback's size.
fn conversion_delay_ms(from: u32, to: u32) -> f64 {
    let mut conv = RateConverter::new(from, to);
    let at = from as usize / 5;
    let mut input = vec![0i16; from as usize];
    let burst = click(from);
    input[at..at + burst.len()].copy_from_slice(&burst);
    let mut out = Vec::with_capacity(to as usize * 2);
    for piece in input.chunks(from as usize / 100) {
        conv.process(piece, &mut out);
    }
    let mut onsets = Onsets::new(to);
    onsets
        .feed(out.iter().map(|s| i32::from(*s)))
        .map_or(f64::NAN, |i| (i as f64 / f64::from(to) - at as f64 / f64::from(from)) * 1000.0)
}

fn main() {
    let clicks = clicks();
    let rt = runtime();
    println!(
        "Latency of a click through sipdesk's media path (one click every {} ms, 20 ms packets); see the bench's doc \
         for what each figure spans.",
        20 * CLICK_EVERY_FRAMES
    );
    println!("(a) through the core's RTP session, with a timed source and sink in place of files:");
    for codec in [Codec::Pcmu, Codec::Opus] {
        through_the_core(&rt, codec, clicks);
    }
    if !sipdesk_e2e::require_programs("bench_media_latency (device part)", pipewire::PROGRAMS) {
        return;
    }
    let rig = PipeWire::start();
    rig.null_sink("mic", DEVICE_HZ);
    rig.null_sink("spk", DEVICE_HZ);
    rig.set_default_sink("spk");
    rig.set_default_source("mic.monitor");
    // This bench is one process and has used no audio yet: the rig's environment can be its own.
    for (k, v) in rig.env() {
        std::env::set_var(k, v);
    }
    let ((spk_ref, at_spk), sizes) = reference_capture_sized("spk.monitor");
    std::thread::sleep(Duration::from_millis(300));
    let written = calibration_clicks(40);
    drop(spk_ref);
    let sizes: Vec<f64> = sizes.lock().unwrap().iter().map(|n| *n as f64).collect();
    let max = Duration::from_millis(u64::from(20 * CLICK_EVERY_FRAMES));
    let os_out: Vec<f64> = pair(&written, &at_spk.lock().unwrap(), max).into_iter().map(|(ms, _)| ms).collect();
    let os_out_ms = median(&os_out);
    println!(
        "(b) through the audio device (PipeWire null sinks, cpal, 48 kHz, buffers of {} samples asked for):",
        device::buffer_frames(DEVICE_HZ)
    );
    println!("  audio system alone, output callback -> spk.monitor: {}", summary(&[os_out]));
    println!(
        "  (a capture callback brings {:.0} samples, median; the core's rate conversion delays audio by {:.1} ms \
         from 48 to 8 kHz and {:.1} ms from 8 to 48 kHz, inside the G.711 figures below; none for Opus)",
        median(&sizes),
        conversion_delay_ms(DEVICE_HZ, 8000),
        conversion_delay_ms(8000, DEVICE_HZ)
    );
    for codec in [Codec::Pcmu, Codec::Opus] {
        through_the_device(&rt, &rig, codec, clicks, os_out_ms);
    }
    println!("(c) the device path after an incident (one call of 20 clicks each):");
    device_incident(&rt, &rig, Codec::Pcmu, 20, Incident::Stall(Duration::from_millis(100)));
    device_incident(&rt, &rig, Codec::Pcmu, 20, Incident::LateStart(Duration::from_millis(100)));
}
