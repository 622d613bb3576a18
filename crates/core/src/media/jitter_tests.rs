use std::time::Instant;

use super::*;

/// Drives a buffer with a simulated clock: packets sent every 20 ms, each arriving after
/// `delay(seq)` ms (None: lost), and playout every 20 ms. Returns what each tick took.
struct Sim {
    jb: JitterBuffer,
    t0: Instant,
    /// What the sink holds ahead of each frame handed to it (a device's ring), ms.
    queued_ms: f64,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Got {
    Packet(u8),
    Missing,
    Nothing,
}

impl Sim {
    fn new() -> Sim {
        Sim { jb: JitterBuffer::new(8000), t0: Instant::now(), queued_ms: 0.0 }
    }

    fn at(&self, ms: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(ms / 1000.0)
    }

    fn push(&mut self, seq: u64, arrive_ms: f64) -> Pushed {
        let now = self.at(arrive_ms);
        self.jb.push(seq, (seq * 160) as u32, &[seq as u8; 160], now)
    }

    fn take(&mut self, ms: f64) -> Got {
        match self.jb.take(self.at(ms)) {
            Take::Packet(p) => Got::Packet(p[0]),
            Take::Missing { .. } => Got::Missing,
            Take::Nothing => Got::Nothing,
        }
    }

    /// Runs `secs` of a stream; returns the takes after the first packet played.
    fn run(&mut self, secs: f64, mut delay: impl FnMut(u64) -> Option<f64>) -> Vec<Got> {
        let mut arrivals: Vec<(f64, u64)> =
            (0..(secs * 50.0) as u64).filter_map(|s| delay(s).map(|d| (s as f64 * 20.0 + d, s))).collect();
        arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut got = Vec::new();
        let mut next_arrival = 0;
        // Playout ticks every 20 ms, starting at a phase of 7 ms, moved as the session moves it,
        // through the real stretcher.
        let mut stretcher = super::super::playout::Stretcher::new(160);
        let mut advance = TickAdvance::default();
        let mut out = [0i16; 160];
        let mut tick = 7.0;
        while tick < secs * 1000.0 + 300.0 {
            while next_arrival < arrivals.len() && arrivals[next_arrival].0 <= tick {
                let (at, seq) = arrivals[next_arrival];
                self.push(seq, at);
                next_arrival += 1;
            }
            // As the session does: a frame taken now plays after what the stretcher holds.
            self.jb.set_ahead(stretcher.buffered() as f64 / 8.0, self.queued_ms);
            let ratio = if advance.moving() { 1.0 } else { self.jb.rate_ratio() };
            let now = self.at(tick);
            let jb = &mut self.jb;
            stretcher.produce(&mut out, ratio, |buf: &mut [i16]| {
                let g = match jb.take(now) {
                    Take::Packet(p) => Got::Packet(p[0]),
                    Take::Missing { .. } => Got::Missing,
                    Take::Nothing => Got::Nothing,
                };
                if !got.is_empty() || g != Got::Nothing {
                    got.push(g);
                }
                buf.fill(0);
            });
            tick += 20.0 - advance.step(&self.jb);
        }
        got
    }
}

#[test]
fn plays_in_order_after_the_start_target() {
    let mut sim = Sim::new();
    sim.push(1, 5.0);
    sim.push(0, 6.0);
    assert_eq!(sim.take(10.0), Got::Nothing, "waits for the start target");
    assert_eq!(sim.take(80.0), Got::Packet(0));
    assert_eq!(sim.take(100.0), Got::Packet(1));
    assert_eq!(sim.take(120.0), Got::Missing);
}

#[test]
fn duplicates_late_and_oversized_packets_are_refused() {
    let mut sim = Sim::new();
    sim.push(10, 0.0);
    assert_eq!(sim.push(10, 1.0), Pushed::Duplicate);
    assert_eq!(sim.take(100.0), Got::Packet(10));
    assert_eq!(sim.push(9, 101.0), Pushed::Late);
    assert_eq!(sim.push(10, 101.0), Pushed::Late);
    assert_eq!(sim.jb.push(11, 0, &[0; 2000], Instant::now()), Pushed::TooLarge);
    let s = sim.jb.stats();
    assert_eq!((s.played, s.late, s.duplicates), (1, 2, 1));
}

#[test]
fn a_lost_packet_is_reported_with_the_next_one_for_fec() {
    let mut sim = Sim::new();
    for s in [0u64, 1, 3] {
        sim.push(s, s as f64);
    }
    assert_eq!(sim.take(100.0), Got::Packet(0));
    assert_eq!(sim.take(120.0), Got::Packet(1));
    match sim.jb.take(sim.at(140.0)) {
        Take::Missing { next: Some(p) } => assert_eq!(p[0], 3),
        other => panic!("expected a miss with the next packet, got {other:?}"),
    }
    assert_eq!(sim.take(160.0), Got::Packet(3));
}

#[test]
fn a_long_gap_goes_quiet_then_refills_and_a_jump_resyncs() {
    let mut sim = Sim::new();
    sim.push(0, 0.0);
    assert_eq!(sim.take(100.0), Got::Packet(0));
    let quiet: Vec<Got> = (1..=7).map(|k| sim.take(100.0 + 20.0 * k as f64)).collect();
    assert_eq!(&quiet[..5], &[Got::Missing; 5]);
    assert_eq!(quiet[5], Got::Nothing);
    sim.push(5000, 300.0);
    assert_eq!(sim.take(400.0), Got::Packet((5000 % 256) as u8));
    assert_eq!(sim.push(9000, 401.0), Pushed::Resynced);
    assert_eq!(sim.take(500.0), Got::Packet((9000 % 256) as u8));
}

#[test]
fn steady_network_settles_at_the_lowest_target_and_plays_everything() {
    // Whatever the phase between arrivals and the playout tick (which ticks at 7 ms past each
    // 20 ms), including arrivals just before the tick while the buffer sheds its start delay.
    for transit in [0.5, 3.0, 6.5, 12.0, 19.5] {
        let mut sim = Sim::new();
        let got = sim.run(10.0, |_| Some(transit));
        assert_eq!(sim.jb.target_ms(), MIN_TARGET_MS);
        assert!(sim.jb.delay_ms() <= MIN_TARGET_MS + 15.0, "transit {transit}: delay {}", sim.jb.delay_ms());
        let played = got.iter().filter(|g| matches!(g, Got::Packet(_))).count();
        assert!(played >= 495, "transit {transit}: played {played} of 500");
        assert_eq!(sim.jb.stats().late, 0, "transit {transit}");
    }
}

#[test]
fn a_packet_not_yet_here_keeps_its_place_until_a_later_one_comes() {
    let mut sim = Sim::new();
    sim.push(0, 0.0);
    sim.push(1, 20.0);
    assert_eq!(sim.take(100.0), Got::Packet(0));
    assert_eq!(sim.take(120.0), Got::Packet(1));
    // 2 is late: concealed, but still played when it comes.
    assert_eq!(sim.take(140.0), Got::Missing);
    assert_eq!(sim.push(2, 150.0), Pushed::Accepted);
    assert_eq!(sim.take(160.0), Got::Packet(2));
    // 3 is lost: 4 came, so 3 is given up and 4 plays next.
    sim.push(4, 175.0);
    assert_eq!(sim.take(180.0), Got::Missing);
    assert_eq!(sim.take(200.0), Got::Packet(4));
    assert_eq!(sim.push(3, 201.0), Pushed::Late);
    let s = sim.jb.stats();
    assert_eq!((s.played, s.concealed, s.late), (4, 2, 1));
}

#[test]
fn a_sender_whose_clock_runs_slow_loses_nothing() {
    // 2.5% slow (a packet every 20.5 ms): more than the playout drift can follow, so the buffer
    // runs dry now and then; each time a frame is concealed and the packet still plays.
    let mut sim = Sim::new();
    let got = sim.run(10.0, |seq| Some(3.0 + seq as f64 * 0.5));
    let played = got.iter().filter(|g| matches!(g, Got::Packet(_))).count();
    assert_eq!((played, sim.jb.stats().late), (500, 0));
}

#[test]
fn jitter_raises_the_target_and_few_packets_come_too_late() {
    // Delays spread uniformly over 0-60 ms (which reorders packets), 10% lost.
    let mut rng = 12345u64;
    let mut rand = move || {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (rng >> 33) as f64 / (1u64 << 31) as f64
    };
    let mut sim = Sim::new();
    sim.run(20.0, |_| {
        let lose = rand() < 0.10;
        let d = rand() * 60.0;
        (!lose).then_some(d)
    });
    let target = sim.jb.target_ms();
    assert!((55.0..=80.0).contains(&target), "target {target}");
    assert!(sim.jb.delay_ms() < 200.0 && (sim.jb.delay_ms() - target).abs() < 20.0, "delay {}", sim.jb.delay_ms());
    let s = sim.jb.stats();
    let arrived = s.played + s.late;
    assert!((s.late as f64) < arrived as f64 * 0.03, "late {} of {arrived}", s.late);
}

#[test]
fn the_target_stays_within_bounds_under_huge_jitter() {
    let mut k = 0u64;
    let mut sim = Sim::new();
    sim.run(10.0, |_| {
        k += 1;
        Some(if k.is_multiple_of(5) { 400.0 } else { 0.0 })
    });
    assert_eq!(sim.jb.target_ms(), MAX_TARGET_MS);
}

#[test]
fn the_fec_floor_rises_on_a_second_loss_and_falls_after_a_quiet_spell() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut floor = FecFloor::default();
    assert_eq!(floor.after_frame(false, at(0)), MIN_TARGET_MS);
    // One late packet is only concealed.
    assert_eq!(floor.after_frame(true, at(20)), MIN_TARGET_MS);
    assert_eq!(floor.after_frame(false, at(5_000)), MIN_TARGET_MS);
    // A second within the hold: losses recur, so the next packet's FEC is worth waiting for.
    assert_eq!(floor.after_frame(true, at(9_000)), FEC_FLOOR_MS);
    assert_eq!(floor.after_frame(false, at(18_980)), FEC_FLOOR_MS);
    assert_eq!(floor.after_frame(false, at(19_000)), MIN_TARGET_MS);
    // Long after, a lone loss starts over.
    assert_eq!(floor.after_frame(true, at(40_000)), MIN_TARGET_MS);
    assert_eq!(floor.after_frame(true, at(40_020)), FEC_FLOOR_MS);
}

#[test]
fn any_arrival_phase_gets_the_slack_it_needs_and_the_delay_meets_the_floor() {
    // Without moving the tick, the slack is wherever the arrivals' phase puts it: as little as
    // a millisecond (a sender's hiccup then costs a concealed frame) or 20 ms more than needed.
    for queued in [0.0, 8.0] {
        for k in 0..14 {
            let transit = 0.5 + 1.4 * k as f64;
            let mut sim = Sim::new();
            sim.queued_ms = queued;
            let got = sim.run(10.0, |_| Some(transit));
            let (slack, need) = (sim.jb.slack_ms(), sim.jb.slack_target_ms());
            let (delay, target) = (sim.jb.delay_ms(), sim.jb.target_ms());
            eprintln!("queued {queued} transit {transit}: slack {slack:.1} (needs {need:.1}), delay {delay:.1} (target {target:.1})");
            // No more slack than needed, unless the floor asks for the delay anyway.
            let most = need.max(target - queued) + 4.5;
            assert!(
                slack >= need - 0.5 && slack <= most,
                "queued {queued} transit {transit}: slack {slack} for {need}"
            );
            assert_eq!(target, MIN_TARGET_MS.max(need + queued));
            assert!((delay - target).abs() <= 4.5, "queued {queued} transit {transit}: delay {delay} for {target}");
            let played = got.iter().filter(|g| matches!(g, Got::Packet(_))).count();
            assert!(played >= 495, "transit {transit}: played {played} of 500");
            assert_eq!(sim.jb.stats().late, 0, "transit {transit}");
        }
    }
}

#[test]
fn the_tick_moves_once_per_fresh_figures_never_on_old_ones() {
    // Every packet taken 35 ms after it came: 25 ms more slack than the 10 ms it needs.
    let mut sim = Sim::new();
    for seq in 0..60u64 {
        let at = seq as f64 * 20.0;
        sim.push(seq, at);
        assert_eq!(sim.take(at + 35.0), Got::Packet(seq as u8));
    }
    let spare = sim.jb.spare_ms();
    assert!((13.0..=15.0).contains(&spare), "spare {spare}");
    // The stream pauses (hold, DTX): the tick moves by the spare once, 1 ms a tick, and no more.
    let mut advance = TickAdvance::default();
    let steps: Vec<f64> = (0..200).map(|_| advance.step(&sim.jb)).collect();
    assert!(steps[..13].iter().all(|&s| s == 1.0), "{steps:?}");
    assert!((steps.iter().sum::<f64>() - spare).abs() < 1e-9, "{steps:?}");
}
