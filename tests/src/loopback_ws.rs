//! What the loopback stand-ins for the cloud voice agents share ([`crate::fake_doubao`],
//! [`crate::fake_openai`]): a listener on 127.0.0.1 that gives each connection its own thread,
//! polling for what a fake received, and the PCM helpers their audio is made and checked with.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A listener on a free 127.0.0.1 port serving each connection on its own thread; dropping it
/// sets `stop` (which the connections watch too) and waits for every thread.
pub struct LoopbackServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl LoopbackServer {
    /// Starts serving; `name` names the fake in its thread and in panics.
    pub fn start(
        name: &'static str,
        stop: Arc<AtomicBool>,
        serve: impl Fn(TcpStream) + Clone + Send + 'static,
    ) -> LoopbackServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind the {name}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking listener");
        let addr = listener.local_addr().expect("listener address");
        let flag = Arc::clone(&stop);
        let acceptor = std::thread::Builder::new()
            .name(name.replace(' ', "-"))
            .spawn(move || accept_loop(&listener, &flag, name, serve))
            .expect("acceptor thread");
        LoopbackServer { addr, stop, acceptor: Some(acceptor) }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// Polls `done` every 5 ms until it holds (true) or `timeout` passes (false).
pub fn poll_until(timeout: Duration, done: impl Fn() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Accepts connections on the non-blocking `listener` until `stop` is set, serving each on its
/// own thread; then waits for those threads. `name` names the fake in a panic.
fn accept_loop(
    listener: &TcpListener,
    stop: &AtomicBool,
    name: &str,
    serve: impl Fn(TcpStream) + Clone + Send + 'static,
) {
    let mut connections = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let serve = serve.clone();
                connections.push(std::thread::spawn(move || serve(stream)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("{name} accept: {e}"),
        }
    }
    for c in connections {
        let _ = c.join();
    }
}

/// A sine of `hz` at `rate` for `ms`, at -12 dBFS.
pub fn tone(hz: f64, rate: u32, ms: u32) -> Vec<i16> {
    let n = (u64::from(rate) * u64::from(ms) / 1000) as usize;
    (0..n)
        .map(|i| (8231.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin()).round() as i16)
        .collect()
}

/// s16le bytes of samples.
pub fn pcm_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Samples of s16le bytes (an odd last byte is dropped).
pub fn pcm_samples(bytes: &[u8]) -> Vec<i16> {
    bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}
