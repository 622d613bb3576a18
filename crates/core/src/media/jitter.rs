//! An adaptive jitter buffer for 20 ms RTP audio packets.
//!
//! Packets go in still encoded, keyed by extended sequence number, as they arrive; playout takes
//! them out in order, one per 20 ms, and the caller decodes there, so Opus's decoder sees its
//! packets in order and can rebuild a lost one from the next packet's FEC.
//!
//! *Slack and delay.* A packet is taken at a playout tick and heard later, after what still
//! plays ahead of it: the stretcher's remainder and the sink's queue (the device's ring), which
//! the caller reports ([`JitterBuffer::set_ahead`]). Two figures are measured on each packet
//! played, both as for the window's fastest packet (a late-comer waits less for the same
//! playout point): its *slack*, arrival to take, which is all a late packet has; and its
//! *delay*, arrival to being heard, slack plus what plays ahead.
//!
//! *Targets.* Every arrival's transit (arrival clock minus RTP timestamp) goes into a window of
//! the last 5 s. The spread from the window's minimum to its 95th percentile is the jitter to
//! absorb: the slack must be that plus [`MARGIN_MS`]. The target delay is that slack plus the
//! sink's queue, held within 20..=200 ms: the 20 ms floor counts the whole way to the ear.
//!
//! *Adjustment.* [`JitterBuffer::rate_ratio`] tells the caller's [`super::playout::Stretcher`]
//! to consume 1-2% faster or slower until the delay meets the target, so the playout clock drifts
//! (no ear hears 2%) instead of jumping (a click); it goes slower whenever the slack is short.
//! Drift alone leaves the slack wherever the arrivals' phase against the 20 ms tick puts it
//! (anywhere in 20 ms), so [`TickAdvance`] moves the tick itself earlier, a millisecond a frame,
//! while slack and delay are both more than needed. A missing packet is reported so the caller
//! conceals it; it is given up as lost only once a later one is here (until then it is only late,
//! and keeps its place), and a packet whose turn was given up is dropped as late. Slots are
//! allocated once.

use std::time::{Duration, Instant};

/// Lowest target delay, arrival to ear (one packet).
pub const MIN_TARGET_MS: f64 = 20.0;
/// Highest target delay.
pub const MAX_TARGET_MS: f64 = 200.0;
/// Safety added to the measured jitter: the least slack a packet is given.
pub const MARGIN_MS: f64 = 10.0;
/// Target until the window holds a second of arrivals: enough for common jitter, and little
/// enough that a quiet network sheds the excess within a second.
const START_TARGET_MS: f64 = 40.0;
/// Arrivals in the window (5 s of 20 ms packets).
const WINDOW: usize = 250;
/// Slots: room for the highest target plus as much again of early arrivals.
const SLOTS: usize = 24;
/// Largest payload kept (an Opus packet is at most 1275 bytes).
const MAX_PAYLOAD: usize = 1500;
/// Missing packets in a row that are concealed before the buffer skips ahead or refills.
pub const MAX_CONCEAL: u32 = 5;
/// One step of playout clock drift while adjusting (1%: a pitch change no ear notices; two
/// steps when the delay is far off).
const DRIFT: f64 = 0.01;
/// The stretcher's remainder under which it is not sped up: the next frame would be taken a
/// tick early, with 20 ms less slack (the tick moves earlier instead: [`TickAdvance`]).
const MIN_HELD_MS: f64 = 2.0;
/// Spare slack and delay worth moving the tick for, and the slack kept beyond the need.
const ADVANCE_OVER_MS: f64 = 3.0;
const ADVANCE_KEEP_MS: f64 = 1.0;
/// How far the tick moves per frame (5%: the device's ring takes it up; no sample changes).
const ADVANCE_STEP_MS: f64 = 1.0;
/// Packets played to let the measures settle (after a move, or at the start) before the next:
/// counted in packets, so a pause in the stream (hold, DTX) never moves the tick on old figures.
const ADVANCE_SETTLE: u64 = 25;

/// Opus's lowest target while packets are being lost: two packets, so the next one's FEC is
/// there to rebuild a loss.
pub const FEC_FLOOR_MS: f64 = 40.0;
/// How long a loss counts: a second one within this raises the FEC floor, and the floor holds
/// until this passes without one. A single late packet (a sender's hiccup) is concealed and
/// should not double the delay for the rest of the call.
pub const FEC_FLOOR_HOLD: Duration = Duration::from_secs(10);

/// Opus's lowest target over a call: one packet while packets are rarely lost, [`FEC_FLOOR_MS`]
/// from the second loss within [`FEC_FLOOR_HOLD`] until that long passes without one.
#[derive(Debug, Default)]
pub struct FecFloor {
    last_loss: Option<Instant>,
    raised: bool,
}

impl FecFloor {
    /// The lowest target after a frame played at `now`; `lost` when it had to be concealed.
    pub fn after_frame(&mut self, lost: bool, now: Instant) -> f64 {
        let recent = self.last_loss.is_some_and(|t| now.saturating_duration_since(t) < FEC_FLOOR_HOLD);
        if lost {
            self.raised |= recent;
            self.last_loss = Some(now);
        } else if !recent {
            self.last_loss = None;
            self.raised = false;
        }
        if self.raised {
            FEC_FLOOR_MS
        } else {
            MIN_TARGET_MS
        }
    }
}

/// What happened to a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Stored for playout.
    Accepted,
    /// Already held.
    Duplicate,
    /// Its turn to play has passed.
    Late,
    /// Too big to be one 20 ms audio packet.
    TooLarge,
    /// So far ahead of playout that the stream must have jumped: the buffer restarted from it.
    Resynced,
}

/// What playout got for the next 20 ms.
#[derive(Debug, PartialEq, Eq)]
pub enum Take<'a> {
    /// The packet to decode.
    Packet(&'a [u8]),
    /// The packet is missing: conceal it (from `next`'s FEC when that one is here).
    Missing {
        /// The following packet, if it has arrived.
        next: Option<&'a [u8]>,
    },
    /// Nothing to play (filling up, or after a long gap): silence.
    Nothing,
}

/// Counters for statistics and RTCP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets played as received.
    pub played: u64,
    /// Packets concealed.
    pub concealed: u64,
    /// Packets dropped as late.
    pub late: u64,
    /// Packets dropped as duplicates.
    pub duplicates: u64,
    /// Times the buffer restarted on a jump.
    pub resyncs: u64,
}

struct Slot {
    seq: u64,
    full: bool,
    len: usize,
    arrival: Instant,
    transit_ms: f64,
    payload: Box<[u8; MAX_PAYLOAD]>,
}

/// The buffer (see the module's doc).
pub struct JitterBuffer {
    slots: Vec<Slot>,
    clock_rate: f64,
    epoch: Instant,
    /// Next sequence to play; None while filling.
    next: Option<u64>,
    held: usize,
    missing_run: u32,
    /// Timestamp unwrapping: last raw timestamp and its extended value.
    last_ts: Option<(u32, i64)>,
    window: [f64; WINDOW],
    window_len: usize,
    window_at: usize,
    scratch: [f64; WINDOW],
    min_transit: f64,
    target_ms: f64,
    /// Slack the jitter asks for (spread plus margin).
    slack_target_ms: f64,
    delay_ms: Option<f64>,
    slack_ms: Option<f64>,
    /// What plays ahead of a packet taken now: the stretcher's remainder and the sink's queue.
    held_ms: f64,
    queued_ms: f64,
    /// In steps of [`DRIFT`]: negative slower, 0 steady, positive faster.
    drift: i8,
    /// The lowest target for this stream (see [`JitterBuffer::set_min_target_ms`]).
    min_target_ms: f64,
    stats: JitterStats,
}

impl JitterBuffer {
    /// An empty buffer for a stream whose RTP clock runs at `clock_rate` Hz.
    pub fn new(clock_rate: u32) -> JitterBuffer {
        let epoch = Instant::now();
        let slots = (0..SLOTS)
            .map(|_| Slot {
                seq: 0,
                full: false,
                len: 0,
                arrival: epoch,
                transit_ms: 0.0,
                payload: Box::new([0; MAX_PAYLOAD]),
            })
            .collect();
        JitterBuffer {
            slots,
            clock_rate: f64::from(clock_rate.max(1)),
            epoch,
            next: None,
            held: 0,
            missing_run: 0,
            last_ts: None,
            window: [0.0; WINDOW],
            window_len: 0,
            window_at: 0,
            scratch: [0.0; WINDOW],
            min_transit: 0.0,
            target_ms: START_TARGET_MS,
            slack_target_ms: MARGIN_MS,
            delay_ms: None,
            slack_ms: None,
            held_ms: 0.0,
            queued_ms: 0.0,
            drift: 0,
            min_target_ms: MIN_TARGET_MS,
            stats: JitterStats::default(),
        }
    }

    /// Sets the lowest target (Opus raises it while packets are lost: see [`FecFloor`]).
    pub fn set_min_target_ms(&mut self, ms: f64) {
        self.min_target_ms = ms.clamp(MIN_TARGET_MS, MAX_TARGET_MS);
    }

    /// Tells what will play before a packet taken at the next [`JitterBuffer::take`]: `held_ms`
    /// still in the stretcher, `queued_ms` in the sink (a device's ring and its rate converter).
    pub fn set_ahead(&mut self, held_ms: f64, queued_ms: f64) {
        self.held_ms = held_ms.clamp(0.0, MAX_TARGET_MS);
        self.queued_ms = queued_ms.clamp(0.0, MAX_TARGET_MS);
    }

    /// Counters so far.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.held
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// The delay the buffer aims at, ms.
    pub fn target_ms(&self) -> f64 {
        self.target_ms
    }

    /// The delay from arrival to ear now (smoothed), ms; 0 before anything played.
    pub fn delay_ms(&self) -> f64 {
        self.delay_ms.unwrap_or(0.0)
    }

    /// The slack packets get now, arrival to take (smoothed), ms; 0 before anything played.
    pub fn slack_ms(&self) -> f64 {
        self.slack_ms.unwrap_or(0.0)
    }

    /// The slack the measured jitter asks for, ms.
    pub fn slack_target_ms(&self) -> f64 {
        self.slack_target_ms
    }

    /// How fast playout should consume frames: 1.0 steady, a little above to shrink the delay,
    /// a little below to grow it. Never faster once the stretcher holds almost nothing: that
    /// would take the next packet a tick early.
    pub fn rate_ratio(&self) -> f64 {
        if self.drift > 0 && self.held_ms < MIN_HELD_MS {
            return 1.0;
        }
        1.0 + f64::from(self.drift) * DRIFT
    }

    /// How much earlier the playout tick could come (ms, 0 for none): what both the slack and
    /// the delay have beyond their targets, less a millisecond kept.
    pub fn spare_ms(&self) -> f64 {
        let (Some(delay), Some(slack)) = (self.delay_ms, self.slack_ms) else { return 0.0 };
        let spare = (delay - self.target_ms).min(slack - self.slack_target_ms);
        if spare > ADVANCE_OVER_MS {
            spare - ADVANCE_KEEP_MS
        } else {
            0.0
        }
    }

    /// Forgets the stream (a new SSRC starts a new one); the counters stay.
    pub fn reset(&mut self) {
        self.slots.iter_mut().for_each(|s| s.full = false);
        self.held = 0;
        self.next = None;
        self.missing_run = 0;
        self.last_ts = None;
        self.window_len = 0;
        self.window_at = 0;
        self.target_ms = START_TARGET_MS;
        self.delay_ms = None;
        self.slack_ms = None;
        self.drift = 0;
    }

    /// Stores packet `seq` (extended sequence number) with RTP `timestamp`, arrived at `now`.
    pub fn push(&mut self, seq: u64, timestamp: u32, payload: &[u8], now: Instant) -> Pushed {
        if payload.len() > MAX_PAYLOAD {
            return Pushed::TooLarge;
        }
        let mut result = Pushed::Accepted;
        let base = self.next.or_else(|| self.lowest_held()).unwrap_or(seq);
        let behind = self.next.is_none() && seq + (SLOTS as u64) <= base;
        if seq >= base + SLOTS as u64 || behind {
            // Far outside the window: the sender jumped. Start over from this packet.
            self.reset();
            self.stats.resyncs += 1;
            result = Pushed::Resynced;
        }
        // Every arrival, even a late one, tells how much jitter there is.
        let transit = self.observe_transit(timestamp, now);
        if self.next.is_some_and(|n| seq < n) {
            self.stats.late += 1;
            return Pushed::Late;
        }
        let slot = &mut self.slots[(seq % SLOTS as u64) as usize];
        if slot.full && slot.seq == seq {
            self.stats.duplicates += 1;
            return Pushed::Duplicate;
        }
        if !slot.full {
            self.held += 1;
        }
        slot.seq = seq;
        slot.full = true;
        slot.len = payload.len();
        slot.payload[..payload.len()].copy_from_slice(payload);
        slot.arrival = now;
        slot.transit_ms = transit;
        result
    }

    /// Takes what plays next, at `now` (heard after what plays ahead: [`JitterBuffer::set_ahead`]).
    pub fn take(&mut self, now: Instant) -> Take<'_> {
        let next = match self.next {
            Some(n) => n,
            None => {
                // Start once the oldest packet has waited the target delay.
                let Some(low) = self.lowest_held() else { return Take::Nothing };
                let slot = &self.slots[(low % SLOTS as u64) as usize];
                let waited = now.saturating_duration_since(slot.arrival).as_secs_f64() * 1000.0;
                let ahead = self.held_ms + self.queued_ms;
                if waited + ahead + (slot.transit_ms - self.min_transit) < self.target_ms - 10.0 {
                    return Take::Nothing;
                }
                low
            }
        };
        let i = (next % SLOTS as u64) as usize;
        if self.slots[i].full && self.slots[i].seq == next {
            self.next = Some(next + 1);
            self.missing_run = 0;
            self.held -= 1;
            self.slots[i].full = false;
            let (arrival, transit) = (self.slots[i].arrival, self.slots[i].transit_ms);
            self.measure_delay(now, arrival, transit);
            self.stats.played += 1;
            let slot = &self.slots[i];
            return Take::Packet(&slot.payload[..slot.len]);
        }
        self.missing_run += 1;
        if self.held == 0 && self.missing_run <= MAX_CONCEAL {
            // Nothing after it has come either: it is late, not lost (a sender running a little
            // slow, a burst of jitter). Conceal this turn but keep its place, so it still plays
            // when it comes (20 ms later than planned) instead of being dropped as late.
            self.stats.concealed += 1;
            return Take::Missing { next: None };
        }
        if self.missing_run > MAX_CONCEAL {
            // A long gap: skip to what is held, or go quiet and refill.
            self.missing_run = 0;
            match self.lowest_held() {
                Some(low) => {
                    self.next = Some(low);
                    return self.take(now);
                }
                None => {
                    self.next = None;
                    return Take::Nothing;
                }
            }
        }
        self.next = Some(next + 1);
        self.stats.concealed += 1;
        let j = ((next + 1) % SLOTS as u64) as usize;
        let following = &self.slots[j];
        let next_payload = (following.full && following.seq == next + 1).then(|| &following.payload[..following.len]);
        Take::Missing { next: next_payload }
    }

    fn lowest_held(&self) -> Option<u64> {
        self.slots.iter().filter(|s| s.full).map(|s| s.seq).min()
    }

    /// Records an arrival's transit in the window and updates the target; returns the transit.
    fn observe_transit(&mut self, timestamp: u32, now: Instant) -> f64 {
        let ext = match self.last_ts {
            Some((raw, ext)) => ext + i64::from(timestamp.wrapping_sub(raw) as i32),
            None => 0,
        };
        self.last_ts = Some((timestamp, ext));
        let arrival_ms = now.saturating_duration_since(self.epoch).as_secs_f64() * 1000.0;
        let transit = arrival_ms - ext as f64 * 1000.0 / self.clock_rate;
        let previous = self.window[(self.window_at + WINDOW - 1) % WINDOW];
        if self.window_len > 0 && (transit - previous).abs() > 2000.0 {
            // The sender's clock jumped (a restart, a new talk spurt numbered oddly): old
            // transits say nothing about the new ones.
            self.window_len = 0;
            self.window_at = 0;
        }
        self.window[self.window_at] = transit;
        self.window_at = (self.window_at + 1) % WINDOW;
        self.window_len = (self.window_len + 1).min(WINDOW);
        let n = self.window_len;
        self.scratch[..n].copy_from_slice(&self.window[..n]);
        let values = &mut self.scratch[..n];
        let k95 = (n * 95 / 100).min(n - 1);
        let (_, p95, _) = values.select_nth_unstable_by(k95, f64::total_cmp);
        let p95 = *p95;
        self.min_transit = values.iter().copied().fold(f64::INFINITY, f64::min);
        self.slack_target_ms = (p95 - self.min_transit + MARGIN_MS).min(MAX_TARGET_MS);
        let target = (self.slack_target_ms + self.queued_ms).clamp(self.min_target_ms, MAX_TARGET_MS);
        // Until a second of arrivals is in, do not trust a low estimate.
        self.target_ms = if n < 50 { target.max(START_TARGET_MS) } else { target };
        transit
    }

    /// Updates the smoothed slack and delay from a packet taken now and chooses the drift.
    fn measure_delay(&mut self, now: Instant, arrival: Instant, transit: f64) {
        let waited = now.saturating_duration_since(arrival).as_secs_f64() * 1000.0;
        let slack = waited + (transit - self.min_transit).max(0.0);
        let delay = slack + self.held_ms + self.queued_ms;
        let smooth = |old: Option<f64>, new: f64, k: f64| old.map_or(new, |o| o + (new - o) * k);
        // The slack follows faster: a moved tick changes it at once, and it has no noise of
        // its own (the fastest packet's, whatever the arrivals' jitter).
        self.slack_ms = Some(smooth(self.slack_ms, slack, 0.3));
        let smoothed = smooth(self.delay_ms, delay, 0.1);
        self.delay_ms = Some(smoothed);
        let error = smoothed - self.target_ms;
        // Hysteresis: adjust by 1% beyond 4 ms off and 2% beyond 25 ms, stop within 2 ms. The
        // small step keeps the delay near its target without audible pitch change; the narrow
        // band keeps a quiet network's delay within a few ms of the target.
        let step = if error.abs() > 25.0 { 2 } else { 1 };
        self.drift = if error > 4.0 {
            step
        } else if error < -4.0 {
            -step
        } else if error.abs() < 2.0 {
            0
        } else {
            self.drift.signum()
        };
        if self.slack() < self.slack_target_ms - 2.0 {
            // Too little slack for the jitter, whatever the delay: take packets later (the
            // stretcher's remainder grows until a frame is taken a tick later).
            self.drift = self.drift.min(-1);
        }
    }

    fn slack(&self) -> f64 {
        self.slack_ms.unwrap_or(self.slack_target_ms)
    }
}

/// Moves the playout tick earlier when the buffer has slack and delay to spare
/// ([`JitterBuffer::spare_ms`]): by [`ADVANCE_STEP_MS`] a frame, so a sink with a clock of its
/// own (the device) takes it up in its queue, which it trims on quiet audio; a file sink simply
/// gets its frames sooner. The stretcher should play at ratio 1 while it moves
/// ([`TickAdvance::moving`]), so one change settles before the next.
#[derive(Debug)]
pub struct TickAdvance {
    left_ms: f64,
    /// The buffer's count of played packets from which the next move may be weighed.
    settled_at: u64,
}

impl Default for TickAdvance {
    fn default() -> TickAdvance {
        TickAdvance { left_ms: 0.0, settled_at: ADVANCE_SETTLE }
    }
}

impl TickAdvance {
    /// How much sooner than 20 ms after this tick the next should come, ms; call once a tick.
    pub fn step(&mut self, jitter: &JitterBuffer) -> f64 {
        if self.left_ms <= 0.0 {
            if jitter.stats().played < self.settled_at {
                return 0.0;
            }
            self.left_ms = jitter.spare_ms();
        }
        let step = self.left_ms.min(ADVANCE_STEP_MS);
        self.left_ms -= step;
        if step > 0.0 && self.left_ms <= 0.0 {
            self.settled_at = jitter.stats().played + ADVANCE_SETTLE;
        }
        step
    }

    /// True while the tick is moving.
    pub fn moving(&self) -> bool {
        self.left_ms > 0.0
    }
}

#[cfg(test)]
#[path = "jitter_tests.rs"]
mod tests;
