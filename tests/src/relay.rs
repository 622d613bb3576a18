//! An impairing UDP relay for RTP and RTCP, standing where a NAT would: the desk advertises the
//! relay's address in its SDP (`SIPDESK_MEDIA_ADDRESS`, same port), the phone sends there, and
//! the relay forwards to the desk's real port; the desk's symmetric RTP then answers through the
//! relay. On the RTP port every packet, both ways, is dropped with probability `loss` and delayed
//! by a uniform 0..`max_delay_ms` (so some overtake others). RTCP passes unharmed.
//! (This kernel has no netem qdisc, so the impairment lives here.)

use std::collections::BinaryHeap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Counters of one relayed port.
#[derive(Debug, Default)]
pub struct RelayCounts {
    /// Datagrams received.
    pub received: AtomicU64,
    /// Datagrams dropped on purpose.
    pub dropped: AtomicU64,
    /// Datagrams sent on later than one that arrived after them.
    pub reordered: AtomicU64,
    /// Every datagram the inside sent out, in order of arrival (what the far end was sent).
    pub outbound: std::sync::Mutex<Vec<Vec<u8>>>,
}

/// A running relay for one RTP/RTCP port pair; stops when dropped.
pub struct Relay {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// RTP counters.
    pub rtp: Arc<RelayCounts>,
}

impl Relay {
    /// Relays `public:port` (and port + 1) to `inside:port` (and port + 1).
    pub fn start(public: std::net::IpAddr, inside: std::net::IpAddr, port: u16, loss: f64, max_delay_ms: u64) -> Relay {
        let stop = Arc::new(AtomicBool::new(false));
        let rtp = Arc::new(RelayCounts::default());
        let mut threads = Vec::new();
        for (p, loss, delay, counts) in
            [(port, loss, max_delay_ms, rtp.clone()), (port + 1, 0.0, 0, Arc::new(RelayCounts::default()))]
        {
            let sock = UdpSocket::bind((public, p)).unwrap_or_else(|e| panic!("relay bind {public}:{p}: {e}"));
            sock.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
            let inside = SocketAddr::new(inside, p);
            let stop = stop.clone();
            let seed = 0x5EED ^ u64::from(p);
            threads.push(std::thread::spawn(move || relay_loop(sock, inside, loss, delay, seed, &stop, &counts)));
        }
        Relay { stop, threads, rtp }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A datagram waiting for its time, ordered so the earliest pops first.
struct Due(Instant, u64, SocketAddr, Vec<u8>);

impl PartialEq for Due {
    fn eq(&self, o: &Self) -> bool {
        (self.0, self.1) == (o.0, o.1)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Due {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.0, o.1).cmp(&(self.0, self.1))
    }
}

fn relay_loop(
    sock: UdpSocket,
    inside: SocketAddr,
    loss: f64,
    max_delay_ms: u64,
    mut seed: u64,
    stop: &AtomicBool,
    counts: &RelayCounts,
) {
    let mut rand = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut outside: Option<SocketAddr> = None;
    let mut queue = BinaryHeap::new();
    let mut buf = [0u8; 2048];
    let (mut n_in, mut last_sent_index) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            counts.received.fetch_add(1, Ordering::Relaxed);
            let to = if from == inside {
                counts.outbound.lock().unwrap().push(buf[..n].to_vec());
                outside
            } else {
                outside = Some(from);
                Some(inside)
            };
            if let Some(to) = to {
                if rand() < loss {
                    counts.dropped.fetch_add(1, Ordering::Relaxed);
                } else {
                    n_in += 1;
                    let delay = Duration::from_secs_f64(rand() * max_delay_ms as f64 / 1000.0);
                    queue.push(Due(Instant::now() + delay, n_in, to, buf[..n].to_vec()));
                }
            }
        }
        while queue.peek().is_some_and(|d| d.0 <= Instant::now()) {
            let Due(_, index, to, data) = queue.pop().unwrap();
            if index < last_sent_index {
                counts.reordered.fetch_add(1, Ordering::Relaxed);
            }
            last_sent_index = last_sent_index.max(index);
            let _ = sock.send_to(&data, to);
        }
    }
}

/// An even port whose pair (port, port + 1) is free on every one of `ips`.
pub fn free_port_pair(ips: &[std::net::IpAddr]) -> u16 {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    for k in 0..500u32 {
        let p = 42000 + 2 * ((seed / 7 + k * 37 + std::process::id()) % 4000) as u16;
        if ips.iter().all(|ip| UdpSocket::bind((*ip, p)).is_ok() && UdpSocket::bind((*ip, p + 1)).is_ok()) {
            return p;
        }
    }
    panic!("no free port pair");
}
