//! Tones the desk plays to the agent, locally: ringback while an outgoing call rings (the far end
//! sends no early media), the ring of an incoming call. Only on the audio device: with file or
//! null audio nobody is there to hear them.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::AudioChoice;
use crate::media::device::DeviceEndpoint;
use crate::media::frame::{Frame, FrameSource, SampleRate, SourcePoll};
use crate::media::tone::{ToneSource, ToneSpec};

/// A tone playing on the device; it stops (and releases the device) when dropped.
pub(super) struct LocalTone {
    stop: CancellationToken,
}

impl Drop for LocalTone {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts `spec` on the output device, if calls use the device.
pub(super) fn play(choice: &AudioChoice, spec: ToneSpec) -> Option<LocalTone> {
    if *choice != AudioChoice::Device {
        return None;
    }
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        let rate = SampleRate::Hz8000;
        // Opening a device can take ~100 ms: keep it off the async threads.
        let endpoint = match tokio::task::spawn_blocking(move || DeviceEndpoint::open(None, None, rate)).await {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => return tracing::warn!("no device for the local tone: {e}"),
            Err(_) => return,
        };
        let (_mic, mut speaker) = endpoint.into_parts();
        let mut tone = ToneSource::new(spec, rate);
        let mut frame = Frame::silence(rate);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tick.tick() => {
                    if tone.poll_frame(&mut frame) == SourcePoll::Ready {
                        speaker.put_frame(&frame);
                    }
                }
            }
        }
        let _ = speaker.close();
    });
    Some(LocalTone { stop })
}
