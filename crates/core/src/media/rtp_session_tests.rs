//! Loopback tests of the RTP session: a tone file through one session into a recording at the
//! other, symmetric RTP, rejected junk, RTCP on stop, port pairs.

use super::*;
use crate::media::frame::{NullEndpoint, SampleRate};
use crate::media::offer_answer::Codec;
use crate::media::sdp::Direction;
use crate::media::tone::{ToneSource, ToneSpec};
use crate::media::wav::{WavSink, WavSource};

const LO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn neg(codec: Codec, remote: SocketAddr) -> Negotiated {
    Negotiated {
        codec,
        payload_type: codec.static_payload_type(),
        telephone_event: Some(101),
        remote,
        direction: Direction::SendRecv,
        ptime: 20,
    }
}

fn tone_samples(freq: f64, ms: u32) -> Vec<i16> {
    let mut v = vec![0; (8 * ms) as usize];
    ToneSource::new(ToneSpec::sine(freq, -6.0), SampleRate::Hz8000).fill(&mut v);
    v
}

fn dominant_crossing_freq(s: &[i16]) -> f64 {
    let crossings = s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f64 / 2.0 / (s.len() as f64 / 8000.0)
}

#[tokio::test]
async fn tone_file_crosses_loopback_into_a_recording() {
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let dir = tempfile::tempdir().unwrap();
        let rec = dir.path().join("rec.wav");
        let a_sock = RtpSockets::bind(LO, 30000, 39999).await.unwrap();
        let b_sock = RtpSockets::bind(LO, 30000, 39999).await.unwrap();
        let (a_port, b_port) = (a_sock.port(), b_sock.port());
        assert_eq!((a_port % 2, b_port % 2), (0, 0));
        let a_ep = Endpoint::new(
            Box::new(WavSource::from_samples(tone_samples(1020.0, 1000), SampleRate::Hz8000)),
            Box::new(NullEndpoint::new(SampleRate::Hz8000)),
        );
        let b_ep = Endpoint::new(
            Box::new(NullEndpoint::new(SampleRate::Hz8000)),
            Box::new(WavSink::create(&rec, SampleRate::Hz8000).unwrap()),
        );
        let a = RtpSession::start(a_sock, neg(codec, SocketAddr::new(LO, b_port)), a_ep).unwrap();
        let b = RtpSession::start(b_sock, neg(codec, SocketAddr::new(LO, a_port)), b_ep).unwrap();
        let started = Instant::now();
        while !a.stats().source_ended.load(Ordering::Relaxed) {
            assert!(started.elapsed() < Duration::from_secs(5), "the tone did not end");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Paced: a one-second file takes about a second, not a burst.
        assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(b.stats().received.load(Ordering::Relaxed) >= 50);
        assert_eq!(b.stats().rejected.load(Ordering::Relaxed), 0);
        // Loopback loses nothing: at most the tail after the last packet is concealed.
        assert!(
            b.stats().concealed.load(Ordering::Relaxed) <= 5,
            "concealed {}",
            b.stats().concealed.load(Ordering::Relaxed)
        );
        a.stop().await.unwrap();
        b.stop().await.unwrap();
        let got: Vec<i16> = hound::WavReader::open(&rec).unwrap().samples::<i16>().map(Result::unwrap).collect();
        assert!(got.len() >= 8000, "{codec:?}: recorded {} samples", got.len());
        let loud: Vec<i16> = got.iter().copied().skip_while(|&s| s == 0).take(8000).collect();
        let f = dominant_crossing_freq(&loud[..7000]);
        assert!((f - 1020.0).abs() < 10.0, "{codec:?}: recorded {f} Hz");
    }
}

#[tokio::test]
async fn symmetric_rtp_latches_onto_the_real_source_and_junk_is_rejected() {
    let a_sock = RtpSockets::bind(LO, 40000, 44999).await.unwrap();
    let b_sock = RtpSockets::bind(LO, 40000, 44999).await.unwrap();
    let (a_port, b_port) = (a_sock.port(), b_sock.port());
    // B was told a wrong address for A (as behind a NAT); A's packets correct it.
    let nowhere = SocketAddr::new(LO, 9);
    let (a_sink, mut a_heard) = crate::media::ring::frame_ring(SampleRate::Hz8000, 100);
    let a_ep =
        Endpoint::new(Box::new(ToneSource::new(ToneSpec::sine(400.0, -10.0), SampleRate::Hz8000)), Box::new(a_sink));
    let b_ep = Endpoint::new(
        Box::new(ToneSource::new(ToneSpec::sine(800.0, -10.0), SampleRate::Hz8000)),
        Box::new(NullEndpoint::new(SampleRate::Hz8000)),
    );
    let a = RtpSession::start(a_sock, neg(Codec::Pcmu, SocketAddr::new(LO, b_port)), a_ep).unwrap();
    let b = RtpSession::start(b_sock, neg(Codec::Pcmu, nowhere), b_ep).unwrap();
    let junk = std::net::UdpSocket::bind((LO, 0)).unwrap();
    junk.send_to(&[1, 2, 3], (LO, b_port)).unwrap();
    // A well-formed packet with a payload type nobody negotiated is also dropped, and must not
    // steal the latch.
    let mut pkt = [0u8; 172];
    let n = RtpHeader { payload_type: 18, ..Default::default() }.write(&[0; 160], &mut pkt).unwrap();
    junk.send_to(&pkt[..n], (LO, b_port)).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(b.stats().rejected.load(Ordering::Relaxed), 2);
    let mut f = Frame::silence(SampleRate::Hz8000);
    let mut loud = 0;
    while a_heard.poll_frame(&mut f) == SourcePoll::Ready {
        loud += usize::from(!f.is_silent());
    }
    assert!(loud >= 8, "A heard {loud} frames from B");
    // RTCP: stopping A sends a BYE that B receives.
    a.stop().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(b.stats().rtcp_received.load(Ordering::Relaxed) >= 1);
    b.stop().await.unwrap();
    let _ = a_port;
}

#[tokio::test]
async fn ports_come_in_even_odd_pairs_and_a_full_range_is_an_error() {
    let s = RtpSockets::bind(LO, 45001, 45003).await.unwrap();
    assert_eq!(s.port(), 45002);
    assert!(std::net::UdpSocket::bind((LO, 45003)).is_err(), "RTCP holds port + 1");
    let err = RtpSockets::bind(LO, 45002, 45003).await.err().unwrap();
    assert!(matches!(err, RtpSessionError::NoFreePort { min: 45002, .. }), "{err}");
}

/// Forwards UDP from `from` to `to` (one way only), dropping every packet whose index `drop` picks.
async fn lossy_relay(from: u16, to: SocketAddr, drop: fn(u64) -> bool) -> (u16, tokio::task::JoinHandle<()>) {
    let sock = tokio::net::UdpSocket::bind((LO, 0)).await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        let mut k = 0u64;
        while let Ok((n, src)) = sock.recv_from(&mut buf).await {
            if src.port() != from {
                continue;
            }
            k += 1;
            if !drop(k) {
                let _ = sock.send_to(&buf[..n], to).await;
            }
        }
    });
    (port, task)
}

#[tokio::test]
async fn opus_carries_a_tone_between_8khz_endpoints_and_conceals_losses() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.wav");
    let a_sock = RtpSockets::bind(LO, 46000, 47999).await.unwrap();
    let b_sock = RtpSockets::bind(LO, 46000, 47999).await.unwrap();
    let b_port = b_sock.port();
    // Every 10th packet from A to B is lost on the way (10%: what the encoder plans for).
    let (relay, relay_task) = lossy_relay(a_sock.port(), SocketAddr::new(LO, b_port), |k| k > 20 && k % 10 == 0).await;
    let mut na = neg(Codec::Opus, SocketAddr::new(LO, relay));
    na.payload_type = 111;
    let a_ep = Endpoint::new(
        Box::new(WavSource::from_samples(tone_samples(1020.0, 2000), SampleRate::Hz8000)),
        Box::new(NullEndpoint::new(SampleRate::Hz8000)),
    );
    let b_ep = Endpoint::new(
        Box::new(NullEndpoint::new(SampleRate::Hz8000)),
        Box::new(WavSink::create(&rec, SampleRate::Hz8000).unwrap()),
    );
    let a = RtpSession::start(a_sock, na, a_ep).unwrap();
    let mut nb = neg(Codec::Opus, SocketAddr::new(LO, 9));
    nb.payload_type = 111;
    let b = RtpSession::start(b_sock, nb, b_ep).unwrap();
    let started = Instant::now();
    while !a.stats().source_ended.load(Ordering::Relaxed) {
        assert!(started.elapsed() < Duration::from_secs(6), "the tone did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let received = b.stats().received.load(Ordering::Relaxed);
    assert!(received >= 80, "received {received}");
    assert_eq!(b.stats().rejected.load(Ordering::Relaxed), 0);
    // Each lost packet (one in ten) and only those was concealed, by the decoder's FEC or PLC:
    // the recording below has no quiet frame.
    let concealed = b.stats().concealed.load(Ordering::Relaxed);
    assert!((5..=12).contains(&concealed), "concealed {concealed}");
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    relay_task.abort();
    let got: Vec<i16> = hound::WavReader::open(&rec).unwrap().samples::<i16>().map(Result::unwrap).collect();
    assert!(got.len() >= 14000, "recorded {} samples", got.len());
    // Past the codec's start-up, the tone is there at the right pitch and level, with no dropout.
    let steady = &got[1600..14000];
    let f = dominant_crossing_freq(steady);
    assert!((f - 1020.0).abs() < 15.0, "recorded {f} Hz");
    let level = frame_level_cdb(steady) as f64 / 100.0;
    assert!((level + 6.0).abs() < 2.0, "recorded at {level} dBFS");
    for (i, w) in steady.chunks(160).enumerate() {
        let peak = w.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak > 5000, "frame {i} is quiet (peak {peak})");
    }
}

#[tokio::test]
async fn any_codec_runs_on_an_endpoint_at_any_rate() {
    // A 48 kHz endpoint on G.711 (an Opus call that a re-INVITE moved to PCMA) and an 8 kHz one
    // on Opus: 1020 Hz crosses both ways at the right pitch, with nothing folded or imaged.
    for (codec, pt, rate) in [(Codec::Pcma, 8, SampleRate::Hz48000), (Codec::Opus, 111, SampleRate::Hz8000)] {
        let dir = tempfile::tempdir().unwrap();
        let rec = dir.path().join("rec.wav");
        let (a_sock, b_sock) =
            (RtpSockets::bind(LO, 45100, 45199).await.unwrap(), RtpSockets::bind(LO, 45100, 45199).await.unwrap());
        let (a_port, b_port) = (a_sock.port(), b_sock.port());
        let mut tone = vec![0; rate.hz() as usize];
        ToneSource::new(ToneSpec::sine(1020.0, -6.0), rate).fill(&mut tone);
        let a_ep = Endpoint::new(Box::new(WavSource::from_samples(tone, rate)), Box::new(NullEndpoint::new(rate)));
        let b_ep = Endpoint::new(Box::new(NullEndpoint::new(rate)), Box::new(WavSink::create(&rec, rate).unwrap()));
        let mut n = neg(codec, SocketAddr::new(LO, b_port));
        n.payload_type = pt;
        let a = RtpSession::start(a_sock, n, a_ep).unwrap();
        n.remote = SocketAddr::new(LO, a_port);
        let b = RtpSession::start(b_sock, n, b_ep).unwrap();
        while !a.stats().source_ended.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        a.stop().await.unwrap();
        b.stop().await.unwrap();
        let got: Vec<i16> = hound::WavReader::open(&rec).unwrap().samples::<i16>().map(Result::unwrap).collect();
        let per_ms = rate.hz() as usize / 1000;
        let steady = &got[100 * per_ms..700 * per_ms];
        let crossings = steady.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        let f = crossings as f64 / 2.0 / 0.6;
        assert!((f - 1020.0).abs() < 15.0, "{}: recorded {f} Hz", codec.name());
        let level = frame_level_cdb(steady) as f64 / 100.0;
        assert!((level + 6.0).abs() < 2.0, "{}: recorded at {level} dBFS", codec.name());
        if rate == SampleRate::Hz48000 {
            // Going up from 8 kHz, the first image of 1020 Hz would sit at 6980 Hz.
            let image = power_at(steady, 6980.0, rate) / power_at(steady, 1020.0, rate);
            assert!(image < 1e-5, "image at {:.0} dB", 10.0 * image.log10());
        }
    }
}

/// The power of `freq` in `s` (Goertzel).
fn power_at(s: &[i16], freq: f64, rate: SampleRate) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate.hz());
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in s {
        let s0 = f64::from(x) + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2
}
