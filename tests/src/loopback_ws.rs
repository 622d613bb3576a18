//! What the loopback stand-ins for the cloud voice agents share ([`crate::fake_doubao`],
//! [`crate::fake_openai`]): the accept loop that gives each connection its own thread, and the
//! PCM helpers their audio is made and checked with.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Accepts connections on the non-blocking `listener` until `stop` is set, serving each on its
/// own thread; then waits for those threads. `name` names the fake in a panic.
pub fn accept_loop(
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
