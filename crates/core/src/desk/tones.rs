//! Tones the desk plays to the agent, locally: ringback while an outgoing call rings (the far end
//! sends no early media) on the chosen output, the ring of an incoming call on the chosen ring
//! device. Only with device audio: with file or null audio nobody is there to hear them.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::audio::CallAudio;
use super::AudioChoice;
use crate::media::frame::{Frame, FrameSink, FrameSource, SampleRate, SourcePoll};
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

/// Starts `spec` on the device for it, if calls use the devices: the incoming ring on the ring
/// device, any other tone on the output.
pub(super) fn play(audio: &CallAudio, spec: ToneSpec) -> Option<LocalTone> {
    if *audio.choice() != AudioChoice::Device {
        return None;
    }
    let role = if spec == ToneSpec::ring() { "ring" } else { "output" };
    let audio = audio.clone();
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        let rate = SampleRate::Hz8000;
        // Opening a device can take ~100 ms: keep it off the async threads. The chosen device, else the default (a `device` event says so); none: nothing to play on.
        let Ok(Some(mut speaker)) = tokio::task::spawn_blocking(move || audio.open_role(role, rate)).await else {
            return;
        };
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
        // Closing joins the device's stream thread: off the async threads too.
        let _ = tokio::task::spawn_blocking(move || drop(speaker)).await;
    });
    Some(LocalTone { stop })
}
