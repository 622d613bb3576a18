//! A lock-free single-producer single-consumer ring of samples between a real-time audio thread
//! and a tokio task.
//!
//! Audio device callbacks must never block, lock or allocate. [`frame_ring`] allocates the
//! ring once; afterwards both ends only copy samples. The ring carries samples rather than
//! frames because a device callback asks for whatever buffer size the driver picked
//! (e.g. 441 or 1024 samples), while the media path works in 20 ms frames: [`RingSink`] and
//! [`RingSource`] are the frame-shaped ends, and `push_samples`/`pop_samples` are the
//! callback-shaped ends.

use rtrb::{Consumer, Producer, RingBuffer};

use super::frame::{Frame, FrameSink, FrameSource, SampleRate, SourcePoll};

/// Creates a ring holding up to `capacity_frames` 20 ms frames at `rate`.
pub fn frame_ring(rate: SampleRate, capacity_frames: usize) -> (RingSink, RingSource) {
    let (producer, consumer) = RingBuffer::new(rate.frame_samples() * capacity_frames.max(1));
    (RingSink { rate, producer, dropped: 0 }, RingSource { rate, consumer, ended: false })
}

/// The writing end: frames or raw samples in.
pub struct RingSink {
    rate: SampleRate,
    producer: Producer<i16>,
    dropped: u64,
}

impl RingSink {
    /// Pushes as many of `samples` as fit; returns how many were taken. Never blocks.
    pub fn push_samples(&mut self, samples: &[i16]) -> usize {
        let n = samples.len().min(self.producer.slots());
        if let Ok(mut chunk) = self.producer.write_chunk(n) {
            let (a, b) = chunk.as_mut_slices();
            a.copy_from_slice(&samples[..a.len()]);
            b.copy_from_slice(&samples[a.len()..n]);
            chunk.commit_all();
        }
        self.dropped += (samples.len() - n) as u64;
        n
    }

    /// Samples written and not yet read (what a sample pushed now waits behind).
    pub fn queued(&self) -> usize {
        self.producer.buffer().capacity() - self.producer.slots()
    }

    /// Samples dropped so far because the reader fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// True when the reading end has been dropped.
    pub fn is_abandoned(&self) -> bool {
        self.producer.is_abandoned()
    }
}

impl FrameSink for RingSink {
    fn rate(&self) -> SampleRate {
        self.rate
    }

    fn put_frame(&mut self, frame: &Frame) {
        // A frame at another rate would play at the wrong pitch: drop it and count it.
        if frame.rate() != self.rate {
            self.dropped += frame.samples().len() as u64;
            return;
        }
        self.push_samples(frame.samples());
    }

    fn latency(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.queued() as f64 / f64::from(self.rate.hz()))
    }
}

/// The reading end: frames or raw samples out.
pub struct RingSource {
    rate: SampleRate,
    consumer: Consumer<i16>,
    ended: bool,
}

impl RingSource {
    /// Pops up to `out.len()` samples; returns how many were written. Never blocks.
    pub fn pop_samples(&mut self, out: &mut [i16]) -> usize {
        let n = out.len().min(self.consumer.slots());
        if let Ok(chunk) = self.consumer.read_chunk(n) {
            let (a, b) = chunk.as_slices();
            out[..a.len()].copy_from_slice(a);
            out[a.len()..n].copy_from_slice(b);
            chunk.commit_all();
        }
        n
    }

    /// Samples waiting to be read.
    pub fn available(&self) -> usize {
        self.consumer.slots()
    }
}

impl FrameSource for RingSource {
    fn rate(&self) -> SampleRate {
        self.rate
    }

    fn poll_frame(&mut self, out: &mut Frame) -> SourcePoll {
        let need = self.rate.frame_samples();
        if self.consumer.slots() >= need {
            out.reset(self.rate);
            self.pop_samples(out.samples_mut());
            return SourcePoll::Ready;
        }
        // The writer is gone and what remains is less than a frame: nothing more will come.
        if self.consumer.is_abandoned() {
            self.ended = true;
        }
        if self.ended {
            SourcePoll::Ended
        } else {
            SourcePoll::NotYet
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_in_order() {
        let (mut sink, mut src) = frame_ring(SampleRate::Hz8000, 3);
        let mut out = Frame::silence(SampleRate::Hz8000);
        assert_eq!(src.poll_frame(&mut out), SourcePoll::NotYet);
        for v in 1..=2 {
            sink.put_frame(&Frame::from_samples(SampleRate::Hz8000, &[v; 160]).unwrap());
        }
        assert_eq!(src.poll_frame(&mut out), SourcePoll::Ready);
        assert_eq!(out.samples()[0], 1);
        assert_eq!(src.poll_frame(&mut out), SourcePoll::Ready);
        assert_eq!(out.samples()[159], 2);
        assert_eq!(src.poll_frame(&mut out), SourcePoll::NotYet);
    }

    #[test]
    fn callback_sized_pushes_make_whole_frames_and_overflow_is_counted() {
        let (mut sink, mut src) = frame_ring(SampleRate::Hz8000, 2);
        assert_eq!(sink.push_samples(&[3; 100]), 100);
        assert_eq!(sink.queued(), 100);
        let mut out = Frame::silence(SampleRate::Hz8000);
        assert_eq!(src.poll_frame(&mut out), SourcePoll::NotYet);
        assert_eq!(sink.push_samples(&[4; 300]), 220);
        assert_eq!(sink.dropped(), 80);
        assert_eq!(src.poll_frame(&mut out), SourcePoll::Ready);
        assert_eq!((out.samples()[99], out.samples()[100]), (3, 4));
        assert_eq!(sink.queued(), 160);
        let mut raw = [0i16; 500];
        assert_eq!(src.pop_samples(&mut raw), 160);
        assert_eq!(sink.queued(), 0);
    }

    #[test]
    fn wrong_rate_frames_are_dropped_and_a_gone_writer_ends_the_source() {
        let (mut sink, mut src) = frame_ring(SampleRate::Hz16000, 2);
        sink.put_frame(&Frame::silence(SampleRate::Hz8000));
        assert_eq!((src.available(), sink.dropped()), (0, 160));
        sink.push_samples(&[1; 10]);
        drop(sink);
        let mut out = Frame::silence(SampleRate::Hz16000);
        assert_eq!(src.poll_frame(&mut out), SourcePoll::Ended);
    }
}
