//! Device halves that survive their device: when the headset fails or is unplugged mid-call,
//! [`FallbackSource`] and [`FallbackSink`] reopen the system default and go on, so the call
//! continues on the computer's own microphone and speaker. Started without a device (none could
//! be opened), they try the default again after 2 s, then less and less often (up to once a
//! minute: each failed open makes ALSA print its complaints).
//!
//! *Choice: reopen on a helper thread, hand over through a channel polled with `try_recv`.*
//! Opening a device takes tens of milliseconds and closing the dead one joins its stream thread;
//! the RTP task that drives these halves every 20 ms must wait for neither. Until the new device
//! is there the source yields nothing (the session sends silence) and the sink drops frames.
//! Each switch is reported through [`OnSwitch`], from the helper thread.

use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::device::{DeviceError, DeviceSink, DeviceSource, Direction};
use super::frame::{EndpointError, Frame, FrameSink, FrameSource, SampleRate, SourcePoll};

/// After a reopen fails, the next try waits this long, doubling up to [`MAX_RETRY`].
const RETRY: Duration = Duration::from_secs(2);
/// The longest wait between tries.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// A move from a device that stopped working to another one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    /// Which half moved.
    pub direction: Direction,
    /// The device that stopped working (`None`: the system default).
    pub lost: Option<String>,
    /// The device now used; `None` when none could be opened (silence; tried again later).
    pub used: Option<String>,
    /// Why the old device was left, and why the default failed too if it did.
    pub detail: String,
    /// True when this is a retry that finally opened the default after a time without any device.
    pub recovered: bool,
}

/// Told about every switch (called from a helper thread, never from the media path).
pub type OnSwitch = Arc<dyn Fn(Switch) + Send + Sync>;

/// What the two device halves have in common here.
trait Half: Send + Sized + 'static {
    const DIRECTION: Direction;
    fn open_default(rate: SampleRate) -> Result<Self, DeviceError>;
    fn id(&self) -> &str;
    fn failed(&self) -> Option<&str>;
}

impl Half for DeviceSource {
    const DIRECTION: Direction = Direction::Input;
    fn open_default(rate: SampleRate) -> Result<Self, DeviceError> {
        DeviceSource::open(None, rate)
    }
    fn id(&self) -> &str {
        self.device()
    }
    fn failed(&self) -> Option<&str> {
        self.failure()
    }
}

impl Half for DeviceSink {
    const DIRECTION: Direction = Direction::Output;
    fn open_default(rate: SampleRate) -> Result<Self, DeviceError> {
        DeviceSink::open(None, rate)
    }
    fn id(&self) -> &str {
        self.device()
    }
    fn failed(&self) -> Option<&str> {
        self.failure()
    }
}

/// The device in use, the reopen in flight, and when to try again.
struct Reopener<T: Half> {
    current: Option<T>,
    pending: Option<Receiver<Option<T>>>,
    retry_at: Option<Instant>,
    /// The wait before the next try after a failed one.
    backoff: Duration,
    /// The device last lost, named in the report when a retry finally succeeds.
    lost: Option<String>,
    rate: SampleRate,
    on_switch: OnSwitch,
}

impl<T: Half> Reopener<T> {
    fn new(current: Option<T>, wanted: Option<String>, rate: SampleRate, on_switch: OnSwitch) -> Reopener<T> {
        let retry_at = current.is_none().then(|| Instant::now() + RETRY);
        Reopener { current, pending: None, retry_at, backoff: RETRY, lost: wanted, rate, on_switch }
    }

    /// The device to use now, if any. Never blocks: notices a failure, collects a reopened
    /// device, starts a retry that is due.
    fn device(&mut self) -> Option<&mut T> {
        if let Some(why) = self.current.as_ref().and_then(|d| d.failed()).map(str::to_string) {
            let dead = self.current.take();
            self.lost = dead.as_ref().map(|d| d.id().to_string());
            self.start(dead, Some(why));
        }
        if let Some(rx) = &self.pending {
            match rx.try_recv() {
                Ok(Some(dev)) => {
                    self.current = Some(dev);
                    self.pending = None;
                    self.backoff = RETRY;
                }
                Ok(None) | Err(TryRecvError::Disconnected) => {
                    self.pending = None;
                    self.retry_at = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(MAX_RETRY);
                }
                Err(TryRecvError::Empty) => {}
            }
        }
        if self.current.is_none() && self.pending.is_none() && self.retry_at.is_some_and(|t| Instant::now() >= t) {
            self.retry_at = None;
            self.start(None, None);
        }
        self.current.as_mut()
    }

    /// Closes `dead` and opens the default on a helper thread. `why` is set for a fresh failure
    /// (always reported); a retry is reported only when it succeeds.
    fn start(&mut self, dead: Option<T>, why: Option<String>) {
        let (tx, rx) = mpsc::sync_channel(1);
        let (rate, on_switch, lost) = (self.rate, self.on_switch.clone(), self.lost.clone());
        let spawned = std::thread::Builder::new().name("sipdesk-audio-reopen".into()).spawn(move || {
            drop(dead);
            let opened = T::open_default(rate);
            let used = opened.as_ref().ok().map(|d| d.id().to_string());
            let detail = match (&why, &opened) {
                (Some(why), Ok(_)) => why.clone(),
                (Some(why), Err(e)) => format!("{why}; the default device failed too: {e}"),
                (None, _) => "the default device can be used again".to_string(),
            };
            if why.is_some() || used.is_some() {
                on_switch(Switch { direction: T::DIRECTION, lost, used, detail, recovered: why.is_none() });
            }
            let _ = tx.send(opened.ok());
        });
        match spawned {
            Ok(_) => self.pending = Some(rx),
            Err(_) => self.retry_at = Some(Instant::now() + self.backoff),
        }
    }
}

/// A capture half that moves to the default device when its own fails.
pub struct FallbackSource {
    inner: Reopener<DeviceSource>,
}

impl FallbackSource {
    /// Wraps `current` (`None`: nothing could be opened; `wanted` names what was asked for).
    pub fn new(current: Option<DeviceSource>, wanted: Option<String>, rate: SampleRate, on_switch: OnSwitch) -> Self {
        FallbackSource { inner: Reopener::new(current, wanted, rate, on_switch) }
    }
}

impl FrameSource for FallbackSource {
    fn rate(&self) -> SampleRate {
        self.inner.rate
    }

    fn poll_frame(&mut self, out: &mut Frame) -> SourcePoll {
        match self.inner.device().map(|d| d.poll_frame(out)) {
            Some(SourcePoll::Ready) => SourcePoll::Ready,
            // Ended means the device failed: the next poll moves on.
            Some(SourcePoll::NotYet | SourcePoll::Ended) | None => SourcePoll::NotYet,
        }
    }
}

/// A playback half that moves to the default device when its own fails.
pub struct FallbackSink {
    inner: Reopener<DeviceSink>,
}

impl FallbackSink {
    /// Wraps `current` (`None`: nothing could be opened; `wanted` names what was asked for).
    pub fn new(current: Option<DeviceSink>, wanted: Option<String>, rate: SampleRate, on_switch: OnSwitch) -> Self {
        FallbackSink { inner: Reopener::new(current, wanted, rate, on_switch) }
    }
}

impl FrameSink for FallbackSink {
    fn rate(&self) -> SampleRate {
        self.inner.rate
    }

    fn put_frame(&mut self, frame: &Frame) {
        if let Some(dev) = self.inner.device() {
            dev.put_frame(frame);
        }
    }

    fn latency(&self) -> std::time::Duration {
        self.inner.current.as_ref().map_or(std::time::Duration::ZERO, |d| d.latency())
    }

    fn close(&mut self) -> Result<(), EndpointError> {
        self.inner.current.as_mut().map_or(Ok(()), |d| d.close())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    use super::*;

    /// A device half whose default opens slowly, to show the media path never waits for it.
    struct Fake {
        id: &'static str,
        broken: Arc<AtomicBool>,
    }

    impl Half for Fake {
        const DIRECTION: Direction = Direction::Output;
        fn open_default(_rate: SampleRate) -> Result<Self, DeviceError> {
            std::thread::sleep(Duration::from_millis(200));
            Ok(Fake { id: "default", broken: Arc::new(AtomicBool::new(false)) })
        }
        fn id(&self) -> &str {
            self.id
        }
        fn failed(&self) -> Option<&str> {
            self.broken.load(Ordering::Relaxed).then_some("unplugged")
        }
    }

    #[test]
    fn a_failed_device_is_replaced_by_the_default_without_waiting_for_it() {
        let broken = Arc::new(AtomicBool::new(false));
        let switches = Arc::new(Mutex::new(Vec::new()));
        let seen = switches.clone();
        let on_switch: OnSwitch = Arc::new(move |s| seen.lock().unwrap().push(s));
        let headset = Fake { id: "headset", broken: broken.clone() };
        let mut r = Reopener::new(Some(headset), Some("headset".into()), SampleRate::Hz8000, on_switch);
        assert_eq!(r.device().map(|d| d.id), Some("headset"));

        broken.store(true, Ordering::Relaxed);
        let t0 = Instant::now();
        assert!(r.device().is_none(), "nothing while the default opens");
        assert!(t0.elapsed() < Duration::from_millis(50), "the caller waited {:?}", t0.elapsed());
        let t0 = Instant::now();
        while r.device().is_none() {
            assert!(t0.elapsed() < Duration::from_secs(2), "the default never arrived");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(r.device().map(|d| d.id), Some("default"));
        let got = switches.lock().unwrap().clone();
        assert_eq!(
            got,
            vec![Switch {
                direction: Direction::Output,
                lost: Some("headset".into()),
                used: Some("default".into()),
                detail: "unplugged".into(),
                recovered: false,
            }]
        );
    }
}
