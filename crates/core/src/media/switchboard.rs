//! The switchboard: the endpoint a call's RTP session talks to. It routes frames between the
//! desk's own endpoint (the headset, or a file) and, after a handoff, an AI agent, so handing a
//! call to the AI is a switch of where frames flow, not a second pipeline.
//!
//! With the desk in charge, frames pass straight through. With the AI in charge, what the caller
//! hears is the agent's audio (queued here by the bridge, one 20 ms frame per RTP tick, silence
//! when the queue is empty); the desk's microphone is still read, so its ring stays drained, but
//! not sent; what the caller says goes to the agent and, mixed with the agent's voice, to the
//! desk's speaker (listen-in). The switch happens between two frames, so nothing is played twice
//! and there is no gap. Only the RTP task and the bridge task touch the shared state, never a
//! real-time audio callback, so a short mutex is fine here.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::frame::{Endpoint, EndpointError, Frame, FrameSink, FrameSource, SampleRate, SourcePoll};

/// Agent audio queued beyond this is dropped (a provider far ahead of real time): 30 s.
const MAX_QUEUED_FRAMES: usize = 1500;

#[derive(Default)]
struct State {
    /// Where caller frames go while the AI has the call; None while the desk has it.
    to_agent: Option<mpsc::UnboundedSender<Frame>>,
    queue: VecDeque<Frame>,
    /// Agent audio played to the caller so far, ms (providers that truncate need it).
    played_ms: u64,
    /// The agent frame sent with the last tick, mixed into the desk's listen-in.
    last_agent: Option<Frame>,
}

/// The desk's handle on a call's switchboard.
#[derive(Clone)]
pub struct Switchboard {
    state: Arc<Mutex<State>>,
    rate: SampleRate,
}

impl Switchboard {
    /// Puts a switchboard in front of the desk's `endpoint`; returns its handle and the endpoint
    /// to give the RTP session.
    pub fn wrap(endpoint: Endpoint) -> (Switchboard, Endpoint) {
        let (source, sink) = endpoint.into_parts();
        let rate = sink.rate();
        let board = Switchboard { state: Arc::new(Mutex::new(State::default())), rate };
        let source = SwitchSource { inner: source, state: board.state.clone() };
        let sink = SwitchSink { inner: sink, state: board.state.clone(), mixed: Frame::silence(rate) };
        (board, Endpoint::new(Box::new(source), Box::new(sink)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The rate of the call side's frames (what agent audio must be converted to).
    pub fn rate(&self) -> SampleRate {
        self.rate
    }

    /// Gives the call to the AI from the next frame on; caller frames then arrive on the
    /// returned receiver.
    pub fn to_agent(&self) -> mpsc::UnboundedReceiver<Frame> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut s = self.lock();
        s.to_agent = Some(tx);
        s.queue.clear();
        s.played_ms = 0;
        rx
    }

    /// Gives the call back to the desk from the next frame on; agent audio not yet played is
    /// dropped.
    pub fn to_desk(&self) {
        let mut s = self.lock();
        s.to_agent = None;
        s.queue.clear();
        s.last_agent = None;
    }

    /// True while the AI has the call.
    pub fn agent_has_call(&self) -> bool {
        self.lock().to_agent.is_some()
    }

    /// Queues one frame of agent audio (at [`Switchboard::rate`]) for the caller.
    pub fn queue(&self, frame: Frame) {
        let mut s = self.lock();
        if s.to_agent.is_some() && s.queue.len() < MAX_QUEUED_FRAMES && frame.rate() == self.rate {
            s.queue.push_back(frame);
        }
    }

    /// Drops the agent audio not yet played (barge-in); returns how many frames.
    pub fn flush(&self) -> usize {
        let mut s = self.lock();
        let n = s.queue.len();
        s.queue.clear();
        n
    }

    /// Agent frames waiting to be played.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// Agent audio played to the caller since the handoff, ms.
    pub fn played_ms(&self) -> u64 {
        self.lock().played_ms
    }
}

/// What the RTP session sends: the desk's microphone, or the agent's voice.
struct SwitchSource {
    inner: Box<dyn FrameSource>,
    state: Arc<Mutex<State>>,
}

impl FrameSource for SwitchSource {
    fn rate(&self) -> SampleRate {
        self.inner.rate()
    }

    fn poll_frame(&mut self, out: &mut Frame) -> SourcePoll {
        let desk = self.inner.poll_frame(out);
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.to_agent.is_none() {
            return desk;
        }
        // The AI has the call: the desk's microphone is read (so it does not back up) but muted.
        match s.queue.pop_front() {
            Some(f) => {
                out.clone_from(&f);
                s.played_ms += 20;
                s.last_agent = Some(f);
            }
            None => {
                out.reset(self.inner.rate());
                s.last_agent = None;
            }
        }
        SourcePoll::Ready
    }
}

/// What the RTP session plays: to the desk, and while the AI has the call, to the agent too
/// (the desk then hears caller and agent mixed).
struct SwitchSink {
    inner: Box<dyn FrameSink>,
    state: Arc<Mutex<State>>,
    mixed: Frame,
}

impl FrameSink for SwitchSink {
    fn rate(&self) -> SampleRate {
        self.inner.rate()
    }

    fn put_frame(&mut self, frame: &Frame) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(to_agent) = &s.to_agent else {
            drop(s);
            return self.inner.put_frame(frame);
        };
        let _ = to_agent.send(frame.clone());
        self.mixed.clone_from(frame);
        if let Some(agent) = &s.last_agent {
            for (m, a) in self.mixed.samples_mut().iter_mut().zip(agent.samples()) {
                *m = m.saturating_add(*a);
            }
        }
        drop(s);
        self.inner.put_frame(&self.mixed);
    }

    fn latency(&self) -> std::time::Duration {
        self.inner.latency()
    }

    fn close(&mut self) -> Result<(), EndpointError> {
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that keeps the first sample of each frame it gets.
    struct Keep(Arc<Mutex<Vec<i16>>>);
    impl FrameSink for Keep {
        fn rate(&self) -> SampleRate {
            SampleRate::Hz8000
        }
        fn put_frame(&mut self, f: &Frame) {
            self.0.lock().unwrap().push(f.samples()[0]);
        }
    }

    /// A source of frames whose samples are all `n`, counting up.
    struct Count(i16);
    impl FrameSource for Count {
        fn rate(&self) -> SampleRate {
            SampleRate::Hz8000
        }
        fn poll_frame(&mut self, out: &mut Frame) -> SourcePoll {
            self.0 += 1;
            *out = Frame::from_samples(SampleRate::Hz8000, &[self.0; 160]).unwrap();
            SourcePoll::Ready
        }
    }

    fn frame(v: i16) -> Frame {
        Frame::from_samples(SampleRate::Hz8000, &[v; 160]).unwrap()
    }

    #[test]
    fn switches_on_a_frame_boundary_mutes_the_desk_and_mixes_the_listen_in() {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let desk = Endpoint::new(Box::new(Count(0)), Box::new(Keep(heard.clone())));
        let (board, ep) = Switchboard::wrap(desk);
        let (mut src, mut sink) = ep.into_parts();
        let mut out = Frame::silence(SampleRate::Hz8000);
        src.poll_frame(&mut out);
        assert_eq!(out.samples()[0], 1, "the desk's microphone goes out");
        sink.put_frame(&frame(100));
        let mut caller = board.to_agent();
        board.queue(frame(1000));
        board.queue(frame(2000));
        src.poll_frame(&mut out);
        assert_eq!(out.samples()[0], 1000, "the agent's voice goes out, the microphone does not");
        sink.put_frame(&frame(100));
        assert_eq!(caller.try_recv().unwrap().samples()[0], 100, "the caller reaches the agent");
        assert_eq!(board.flush(), 1, "barge-in drops what is queued");
        src.poll_frame(&mut out);
        assert_eq!(out.samples()[0], 0, "silence when the agent has nothing to say");
        assert_eq!(board.played_ms(), 20);
        board.to_desk();
        src.poll_frame(&mut out);
        assert_eq!(out.samples()[0], 4, "back to the desk's microphone, the next frame");
        assert_eq!(*heard.lock().unwrap(), vec![100, 1100], "the desk heard caller, then caller + agent");
    }
}
