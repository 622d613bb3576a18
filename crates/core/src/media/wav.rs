//! The file endpoint: a WAV file as a frame source (paced by the clock) and a frame sink.
//!
//! The source reads the file a frame at a time at the file's own rate (a long recording played
//! into a call costs no memory; converted whole to 48 kHz for an Opus call, an 8 kHz prompt took
//! six times its size) and converts each frame as it hands it out, one per 20 ms of wall-clock
//! time, so a caller that polls too often still plays it at real speed. Both ends do file I/O,
//! so drive them from a task, never from a device callback. The sink writes through a buffer;
//! an I/O failure is kept and reported by `close`, never in the audio path.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::codec::StreamResampler;
use super::frame::{EndpointError, Frame, FrameSink, FrameSource, SampleRate, SourcePoll, FRAME_MS};
use super::resample::resample;

/// Why a WAV file cannot be used.
#[derive(Debug, Error)]
pub enum WavError {
    /// Could not open, read or create the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the WAV library said.
        source: hound::Error,
    },
    /// A WAV we do not play: we take mono 16-bit PCM at 8, 16, 24 or 48 kHz.
    #[error("{path}: unsupported WAV ({reason}); use mono 16-bit PCM at 8, 16, 24 or 48 kHz")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Where a source's samples come from.
enum Samples {
    /// All in memory ([`WavSource::from_samples`]).
    Memory(Vec<i16>),
    /// Read from the file a frame at a time, so a long file costs no memory.
    File(Box<hound::WavReader<BufReader<File>>>),
}

/// Plays a WAV file as frames.
pub struct WavSource {
    samples: Samples,
    /// Samples in all, at the file's rate.
    total: usize,
    /// Named in the log if reading fails midway.
    path: Option<PathBuf>,
    file_rate: SampleRate,
    rate: SampleRate,
    /// File rate to `rate`, when they differ.
    converter: Option<StreamResampler>,
    /// One frame at the file's rate.
    piece: Vec<i16>,
    next: usize,
    start: Option<Instant>,
    paced: bool,
}

impl WavSource {
    /// Opens `path`, to be played at `rate`. Frames are paced by the clock.
    pub fn open(path: &Path, rate: SampleRate) -> Result<WavSource, WavError> {
        let reader = hound::WavReader::open(path).map_err(|source| WavError::Io { path: path.into(), source })?;
        let spec = reader.spec();
        let unsupported = |reason: String| WavError::Unsupported { path: path.into(), reason };
        if spec.channels != 1 {
            return Err(unsupported(format!("{} channels", spec.channels)));
        }
        if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
            return Err(unsupported(format!("{} bits {:?}", spec.bits_per_sample, spec.sample_format)));
        }
        let file_rate =
            SampleRate::from_hz(spec.sample_rate).map_err(|_| unsupported(format!("{} Hz", spec.sample_rate)))?;
        let total = reader.len() as usize;
        let mut source = WavSource::new(Samples::File(Box::new(reader)), total, file_rate, rate);
        source.path = Some(path.into());
        Ok(source)
    }

    /// A source playing `samples` (already at `rate`).
    pub fn from_samples(samples: Vec<i16>, rate: SampleRate) -> WavSource {
        let total = samples.len();
        WavSource::new(Samples::Memory(samples), total, rate, rate)
    }

    fn new(samples: Samples, total: usize, file_rate: SampleRate, rate: SampleRate) -> WavSource {
        WavSource {
            samples,
            total,
            path: None,
            file_rate,
            rate,
            converter: (file_rate != rate).then(|| StreamResampler::new(file_rate, rate)),
            piece: vec![0; file_rate.frame_samples()],
            next: 0,
            start: None,
            paced: true,
        }
    }

    /// Hands out frames as fast as they are asked for (offline processing and tests).
    pub fn unpaced(mut self) -> WavSource {
        self.paced = false;
        self
    }

    /// Length of the audio.
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.total as u64 * 1000 / self.file_rate.hz() as u64)
    }

    /// Frames in the file (the last one padded with silence).
    pub fn frame_count(&self) -> usize {
        self.total.div_ceil(self.file_rate.frame_samples())
    }

    /// Reads the next `len` samples into the start of `piece`; a file that fails midway ends
    /// there (logged once).
    fn read_piece(&mut self, len: usize) {
        let piece = &mut self.piece[..len];
        let got = match &mut self.samples {
            Samples::Memory(all) => {
                piece.copy_from_slice(&all[self.next..self.next + len]);
                len
            }
            Samples::File(reader) => {
                let mut got = 0;
                for sample in reader.samples::<i16>().take(len) {
                    match sample {
                        Ok(v) => {
                            piece[got] = v;
                            got += 1;
                        }
                        Err(e) => {
                            tracing::warn!(path = ?self.path, "wav source: {e}; it ends here");
                            break;
                        }
                    }
                }
                got
            }
        };
        if got < len {
            piece[got..].fill(0);
            self.total = self.next + got;
        }
    }
}

impl FrameSource for WavSource {
    fn rate(&self) -> SampleRate {
        self.rate
    }

    fn poll_frame(&mut self, out: &mut Frame) -> SourcePoll {
        let n = self.file_rate.frame_samples();
        let index = self.next / n;
        if self.next >= self.total {
            return SourcePoll::Ended;
        }
        if self.paced {
            // Frame k is due k × 20 ms after the first poll. Half a frame of slack: a 20 ms
            // ticker that fires a hair early must still get its frame, not silence.
            let start = *self.start.get_or_insert_with(Instant::now);
            let due = Duration::from_millis(index as u64 * FRAME_MS as u64);
            if start.elapsed() + Duration::from_millis(FRAME_MS as u64 / 2) < due {
                return SourcePoll::NotYet;
            }
        }
        // The last frame is padded with silence.
        let len = n.min(self.total - self.next);
        self.read_piece(len);
        self.piece[len..].fill(0);
        out.reset(self.rate);
        match self.converter.as_mut() {
            None => out.samples_mut().copy_from_slice(&self.piece),
            Some(converter) => converter.process(&self.piece, out.samples_mut()),
        }
        self.next += n;
        SourcePoll::Ready
    }
}

/// Records frames to a WAV file (mono 16-bit at its rate).
pub struct WavSink {
    path: PathBuf,
    rate: SampleRate,
    writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
    error: Option<String>,
    frames: u64,
}

impl WavSink {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path, rate: SampleRate) -> Result<WavSink, WavError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate.hz(),
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer =
            hound::WavWriter::create(path, spec).map_err(|source| WavError::Io { path: path.into(), source })?;
        Ok(WavSink { path: path.into(), rate, writer: Some(writer), error: None, frames: 0 })
    }

    /// Frames written so far.
    pub fn frames_written(&self) -> u64 {
        self.frames
    }

    fn write(&mut self, samples: &[i16]) {
        let Some(w) = self.writer.as_mut() else { return };
        for &s in samples {
            if let Err(e) = w.write_sample(s) {
                self.error.get_or_insert_with(|| e.to_string());
                self.writer = None;
                return;
            }
        }
        self.frames += 1;
    }
}

impl FrameSink for WavSink {
    fn rate(&self) -> SampleRate {
        self.rate
    }

    fn put_frame(&mut self, frame: &Frame) {
        if frame.rate() == self.rate {
            self.write(frame.samples());
        } else {
            let converted = resample(frame.samples(), frame.rate().hz(), self.rate.hz());
            self.write(&converted);
        }
    }

    fn close(&mut self) -> Result<(), EndpointError> {
        if let Some(w) = self.writer.take() {
            if let Err(e) = w.finalize() {
                self.error.get_or_insert_with(|| e.to_string());
            }
        }
        match self.error.take() {
            None => Ok(()),
            Some(message) => Err(EndpointError { endpoint: format!("wav sink {}", self.path.display()), message }),
        }
    }
}

impl Drop for WavSink {
    fn drop(&mut self) {
        // hound finalises on drop too, but silently; closing here keeps one path.
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        samples.iter().for_each(|&s| w.write_sample(s).unwrap());
        w.finalize().unwrap();
    }

    #[test]
    fn round_trip_through_a_file_with_the_last_frame_padded() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.wav");
        let samples: Vec<i16> = (0..400).map(|i| i as i16).collect();
        write_wav(&input, 8000, 1, &samples);
        let mut src = WavSource::open(&input, SampleRate::Hz8000).unwrap().unpaced();
        assert_eq!((src.frame_count(), src.duration()), (3, Duration::from_millis(50)));
        let out = dir.path().join("out.wav");
        let mut sink = WavSink::create(&out, SampleRate::Hz8000).unwrap();
        let mut f = Frame::silence(SampleRate::Hz8000);
        while src.poll_frame(&mut f) == SourcePoll::Ready {
            sink.put_frame(&f);
        }
        assert_eq!(src.poll_frame(&mut f), SourcePoll::Ended);
        assert_eq!(sink.frames_written(), 3);
        sink.close().unwrap();
        let back: Vec<i16> = hound::WavReader::open(&out).unwrap().samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(back.len(), 480);
        assert_eq!(&back[..400], &samples[..]);
        assert!(back[400..].iter().all(|&s| s == 0));
    }

    #[test]
    fn frames_are_paced_by_the_clock() {
        let mut src = WavSource::from_samples(vec![1; 8000], SampleRate::Hz8000);
        let mut f = Frame::silence(SampleRate::Hz8000);
        let start = Instant::now();
        let mut got = 0;
        while start.elapsed() < Duration::from_millis(110) {
            if src.poll_frame(&mut f) == SourcePoll::Ready {
                got += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // Frames due at 0, 20, ..., 100 ms: six, give or take one for scheduling.
        assert!((5..=7).contains(&got), "got {got} frames in 110 ms");
    }

    #[test]
    fn other_rates_are_converted_and_bad_files_rejected_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let wide = dir.path().join("48k.wav");
        write_wav(&wide, 48000, 1, &[100; 4800]);
        let src = WavSource::open(&wide, SampleRate::Hz8000).unwrap();
        assert_eq!(src.frame_count(), 5);
        let stereo = dir.path().join("stereo.wav");
        write_wav(&stereo, 8000, 2, &[0; 320]);
        let err = WavSource::open(&stereo, SampleRate::Hz8000).err().unwrap();
        assert!(err.to_string().contains("2 channels"), "{err}");
        let odd = dir.path().join("44k.wav");
        write_wav(&odd, 44100, 1, &[0; 441]);
        assert!(WavSource::open(&odd, SampleRate::Hz8000).err().unwrap().to_string().contains("44100 Hz"));
        let missing = WavSource::open(&dir.path().join("nope.wav"), SampleRate::Hz8000).err().unwrap();
        assert!(matches!(missing, WavError::Io { .. }) && missing.to_string().contains("nope.wav"));
    }

    #[test]
    fn a_narrowband_file_plays_into_a_wideband_call_frame_by_frame() {
        // A 1 kHz prompt at 8 kHz in a 48 kHz (Opus) call: read and converted a frame at a time.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("8k.wav");
        let tone: Vec<i16> = (0..8000)
            .map(|i| (8000.0 * (std::f64::consts::TAU * 1000.0 * f64::from(i) / 8000.0).sin()) as i16)
            .collect();
        write_wav(&path, 8000, 1, &tone);
        let mut src = WavSource::open(&path, SampleRate::Hz48000).unwrap().unpaced();
        assert_eq!((src.total, src.frame_count(), src.duration()), (8000, 50, Duration::from_secs(1)));
        let mut all = Vec::new();
        let mut frame = Frame::silence(SampleRate::Hz48000);
        while src.poll_frame(&mut frame) == SourcePoll::Ready {
            assert_eq!(frame.rate(), SampleRate::Hz48000);
            all.extend_from_slice(frame.samples());
        }
        assert_eq!(all.len(), 48000);
        let steady = &all[4800..43200];
        let crossings = steady.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        let hz = crossings as f64 / 2.0 / 0.8;
        assert!((hz - 1000.0).abs() < 5.0, "{hz} Hz");
    }

    #[test]
    fn sink_converts_frames_at_another_rate() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("16k.wav");
        let mut sink = WavSink::create(&out, SampleRate::Hz16000).unwrap();
        sink.put_frame(&Frame::from_samples(SampleRate::Hz8000, &[500; 160]).unwrap());
        sink.close().unwrap();
        let r = hound::WavReader::open(&out).unwrap();
        assert_eq!((r.spec().sample_rate, r.len()), (16000, 320));
    }
}
