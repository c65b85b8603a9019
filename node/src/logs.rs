//! Container logs on disk, and reading them with `kubectl logs` semantics.
//!
//! Layout: one directory per container; each attempt (a container start) writes
//! `<attempt>.<segment>.log` files in the CRI format, one record a line:
//! `2026-11-26T01:02:03.123456789Z stdout F text` (`F` a full line, `P` a partial one that
//! continues in the next record of the same stream). Invariants:
//! - Only the current and the previous attempt are kept (`--previous` reads the latter).
//! - An attempt keeps at most two segments of `max_bytes / 2` each: when the current segment
//!   is full a new one starts and the oldest is deleted, so the oldest half of the log is
//!   dropped (Kubernetes rotates files the same way). The newest output is always kept.
//! - Records are written whole under the state lock; readers only consume complete lines.
//! - Output that arrives while no attempt is running is discarded.
//! - `kubectl attach` taps the running attempt ([`ContainerLogs::attach`]): each tap gets
//!   the raw output from the moment it attached, in order, and ends with the attempt. A tap
//!   whose reader falls [`TAP_BACKLOG`] chunks behind is dropped (that attach ends) rather
//!   than slowing the container or growing without bound.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::{mpsc, watch};

use crate::runtime::{OutputSink, Stream};

/// Longest content of one record; longer lines are split into `P` records.
const MAX_RECORD: usize = 16 * 1024;
/// Smallest segment size, whatever `max_bytes` says.
const MIN_SEGMENT: u64 = 4 * 1024;
/// Output is handed to the reader's channel in chunks of about this size.
const CHUNK: usize = 32 * 1024;
/// Chunks of output an attach may fall behind before it is dropped.
pub const TAP_BACKLOG: usize = 1024;

/// Options of a log read, as `kubectl logs` sends them.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<u64>,
    pub since_seconds: Option<u64>,
    /// RFC3339 time; lines before it are skipped.
    pub since_time: Option<String>,
    pub limit_bytes: Option<u64>,
}

/// One attempt's files.
#[derive(Clone, Copy, Debug)]
struct Attempt {
    n: u64,
    running: bool,
    first_seg: u64,
    last_seg: u64,
    /// Bytes in `last_seg`.
    last_len: u64,
}

#[derive(Default)]
struct State {
    current: Option<Attempt>,
    previous: Option<Attempt>,
    /// Append handle of the current attempt's last segment while it runs.
    file: Option<File>,
    /// Unterminated output per stream (stdout, stderr) of the running attempt.
    partial: [Vec<u8>; 2],
    /// Attached readers of the running attempt's output.
    taps: Vec<mpsc::Sender<(Stream, Bytes)>>,
}

/// The logs of one container across its restarts.
pub struct ContainerLogs {
    dir: PathBuf,
    segment_max: u64,
    state: Mutex<State>,
    /// Bumped on every change; followers wait on it.
    changed: watch::Sender<u64>,
}

fn seg_path(dir: &Path, attempt: u64, seg: u64) -> PathBuf {
    dir.join(format!("{attempt}.{seg}.log"))
}

fn stream_index(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

/// The kubelet's timestamp format: RFC3339 with exactly nine fractional digits, UTC.
fn format_ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// One parsed record.
struct Record<'a> {
    ts: DateTime<Utc>,
    full: bool,
    content: &'a [u8],
}

/// Parses `TS STREAM TAG CONTENT` (without the newline); None for a malformed line.
fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let ts = std::str::from_utf8(parts.next()?).ok()?;
    let ts = DateTime::parse_from_rfc3339(ts).ok()?.with_timezone(&Utc);
    let _stream = parts.next()?;
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    let content = parts.next().unwrap_or(b"");
    Some(Record { ts, full, content })
}

impl ContainerLogs {
    /// Opens (creating) the log directory of a container; `max_bytes` caps each attempt's
    /// files. Logs left by an earlier process are kept as finished attempts.
    pub fn open(dir: PathBuf, max_bytes: u64) -> std::io::Result<Arc<ContainerLogs>> {
        std::fs::create_dir_all(&dir)?;
        // (attempt, seg, len) of files already there.
        let mut found: Vec<(u64, u64, u64)> = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(stem) = name.strip_suffix(".log") else { continue };
            let Some((a, s)) = stem.split_once('.') else { continue };
            if let (Ok(a), Ok(s)) = (a.parse::<u64>(), s.parse::<u64>()) {
                found.push((a, s, entry.metadata()?.len()));
            }
        }
        let mut attempts: Vec<u64> = found.iter().map(|f| f.0).collect();
        attempts.sort_unstable();
        attempts.dedup();
        let mut state = State::default();
        let mut keep = attempts.iter().rev().take(2).copied().collect::<Vec<_>>();
        keep.reverse();
        for (a, s, _) in &found {
            if !keep.contains(a) {
                let _ = std::fs::remove_file(seg_path(&dir, *a, *s));
            }
        }
        let restore = |n: u64| {
            let segs: Vec<&(u64, u64, u64)> = found.iter().filter(|f| f.0 == n).collect();
            let first = segs.iter().map(|f| f.1).min().unwrap_or(0);
            let (last, len) = segs.iter().map(|f| (f.1, f.2)).max().unwrap_or((0, 0));
            Attempt { n, running: false, first_seg: first, last_seg: last, last_len: len }
        };
        match keep.as_slice() {
            [prev, cur] => {
                state.previous = Some(restore(*prev));
                state.current = Some(restore(*cur));
            }
            [cur] => state.current = Some(restore(*cur)),
            _ => {}
        }
        Ok(Arc::new(ContainerLogs {
            dir,
            segment_max: (max_bytes / 2).max(MIN_SEGMENT),
            state: Mutex::new(state),
            changed: watch::Sender::new(0),
        }))
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Starts a new attempt: the current one (finished first if still running) becomes the
    /// "previous" one, and the attempt before that is deleted.
    pub fn start_attempt(&self) {
        let mut st = self.state.lock().expect("logs lock");
        if st.current.is_some_and(|a| a.running) {
            self.finish_locked(&mut st);
        }
        if let Some(old) = st.previous.take() {
            for seg in old.first_seg..=old.last_seg {
                let _ = std::fs::remove_file(seg_path(&self.dir, old.n, seg));
            }
        }
        let n = st.current.map_or(0, |a| a.n + 1);
        st.previous = st.current.take();
        // The file is created now (an attempt that printed nothing still reads as empty,
        // also after a restart) but opened for writing only on first output: an idle pod
        // holds no descriptor.
        if let Err(error) = open_append(&seg_path(&self.dir, n, 0)) {
            tracing::warn!(%error, dir = %self.dir.display(), "cannot create log file");
        }
        st.file = None;
        st.current = Some(Attempt { n, running: true, first_seg: 0, last_seg: 0, last_len: 0 });
        drop(st);
        self.notify();
    }

    /// Marks the current attempt finished: unterminated output is written as a partial
    /// line, and followers of the attempt reach the end of their stream.
    pub fn finish_attempt(&self) {
        let mut st = self.state.lock().expect("logs lock");
        if st.current.is_some_and(|a| a.running) {
            self.finish_locked(&mut st);
        }
        drop(st);
        self.notify();
    }

    fn finish_locked(&self, st: &mut State) {
        let now = Utc::now();
        for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            let rest = std::mem::take(&mut st.partial[i]);
            if !rest.is_empty() {
                self.write_record(st, stream, now, &rest, false);
            }
        }
        st.file = None;
        st.taps.clear();
        if let Some(a) = st.current.as_mut() {
            a.running = false;
        }
    }

    /// True when there is an attempt to read (`previous`: a finished earlier one).
    pub fn has_attempt(&self, previous: bool) -> bool {
        let st = self.state.lock().expect("logs lock");
        if previous { st.previous.is_some() } else { st.current.is_some() }
    }

    /// The running attempt's output from now on, as written (not split into lines); the
    /// channel ends with the attempt. None when no attempt runs.
    pub fn attach(&self) -> Option<mpsc::Receiver<(Stream, Bytes)>> {
        let mut st = self.state.lock().expect("logs lock");
        if !st.current.is_some_and(|a| a.running) {
            return None;
        }
        let (tx, rx) = mpsc::channel(TAP_BACKLOG);
        st.taps.push(tx);
        Some(rx)
    }

    /// True while the current attempt is running.
    pub fn is_running(&self) -> bool {
        self.state.lock().expect("logs lock").current.is_some_and(|a| a.running)
    }

    /// A sink writing timestamped lines. It belongs to the attempt running when it is
    /// made, or else to the next one started; its output is dropped in any other attempt
    /// (so a late writer of an old attempt cannot pollute a new one). So call it after
    /// `start_attempt()`, or after `finish_attempt()` of the previous run, never while the
    /// previous attempt still runs.
    pub fn sink(self: &Arc<Self>) -> Arc<dyn OutputSink> {
        let attempt = {
            let st = self.state.lock().expect("logs lock");
            match st.current {
                Some(a) if a.running => a.n,
                Some(a) => a.n + 1,
                None => 0,
            }
        };
        Arc::new(LogSink { logs: self.clone(), attempt })
    }

    /// Appends output of `stream` written at `now` to attempt `attempt` (if it is running).
    fn write_at(&self, attempt: u64, stream: Stream, mut bytes: &[u8], now: DateTime<Utc>) {
        if bytes.is_empty() {
            return;
        }
        let mut st = self.state.lock().expect("logs lock");
        if !st.current.is_some_and(|a| a.running && a.n == attempt) {
            return;
        }
        if !st.taps.is_empty() {
            let chunk = Bytes::copy_from_slice(bytes);
            st.taps.retain(|tap| match tap.try_send((stream, chunk.clone())) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(dir = %self.dir.display(), "an attached client fell behind the container's output; detaching it");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        }
        let i = stream_index(stream);
        let mut wrote = false;
        while let Some(pos) = bytes.iter().position(|b| *b == b'\n') {
            let mut line = std::mem::take(&mut st.partial[i]);
            line.extend_from_slice(&bytes[..pos]);
            self.write_line(&mut st, stream, now, &line);
            bytes = &bytes[pos + 1..];
            wrote = true;
        }
        st.partial[i].extend_from_slice(bytes);
        // An over-long unterminated line is flushed in partial records.
        while st.partial[i].len() >= MAX_RECORD {
            let head: Vec<u8> = st.partial[i].drain(..MAX_RECORD).collect();
            self.write_record(&mut st, stream, now, &head, false);
            wrote = true;
        }
        drop(st);
        if wrote {
            self.notify();
        }
    }

    /// Writes one complete line, split into `P` records if it is long.
    fn write_line(&self, st: &mut State, stream: Stream, now: DateTime<Utc>, line: &[u8]) {
        let mut chunks = line.chunks(MAX_RECORD).peekable();
        if chunks.peek().is_none() {
            self.write_record(st, stream, now, b"", true);
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            self.write_record(st, stream, now, chunk, last);
        }
    }

    fn write_record(&self, st: &mut State, stream: Stream, now: DateTime<Utc>, content: &[u8], full: bool) {
        let mut rec = Vec::with_capacity(content.len() + 48);
        rec.extend_from_slice(format_ts(now).as_bytes());
        rec.extend_from_slice(match stream {
            Stream::Stdout => b" stdout ",
            Stream::Stderr => b" stderr ",
        });
        rec.extend_from_slice(if full { b"F " } else { b"P " });
        rec.extend_from_slice(content);
        rec.push(b'\n');
        let Some(mut a) = st.current else { return };
        if a.last_len > 0 && a.last_len + rec.len() as u64 > self.segment_max {
            // Rotate: a new segment; drop the oldest beyond two.
            a.last_seg += 1;
            a.last_len = 0;
            st.file = match open_append(&seg_path(&self.dir, a.n, a.last_seg)) {
                Ok(f) => Some(f),
                Err(error) => {
                    tracing::warn!(%error, dir = %self.dir.display(), "cannot rotate log file");
                    None
                }
            };
            while a.last_seg - a.first_seg > 1 {
                let _ = std::fs::remove_file(seg_path(&self.dir, a.n, a.first_seg));
                a.first_seg += 1;
            }
        }
        if st.file.is_none() && a.running {
            st.file = match open_append(&seg_path(&self.dir, a.n, a.last_seg)) {
                Ok(f) => Some(f),
                Err(error) => {
                    tracing::warn!(%error, dir = %self.dir.display(), "cannot open log file");
                    None
                }
            };
        }
        if let Some(f) = st.file.as_mut() {
            match f.write_all(&rec) {
                Ok(()) => a.last_len += rec.len() as u64,
                Err(error) => tracing::warn!(%error, dir = %self.dir.display(), "cannot write log"),
            }
        }
        st.current = Some(a);
    }

    /// The attempt a read targets, as it stands now.
    fn snapshot(&self, previous: bool, n: Option<u64>) -> Option<Attempt> {
        let st = self.state.lock().expect("logs lock");
        let pick = |a: Option<Attempt>| a.filter(|a| n.is_none_or(|n| n == a.n));
        match n {
            None if previous => st.previous,
            None => st.current,
            Some(_) => pick(st.current).or(pick(st.previous)),
        }
    }

    /// Streams the log per `opts` into `out` until done (or the receiver goes away).
    /// Errors with `NotFound` when there is no such attempt (see [`Self::has_attempt`]),
    /// and with `InvalidInput` for an unparseable `since_time`.
    pub async fn read(&self, opts: LogOptions, out: mpsc::Sender<Bytes>) -> std::io::Result<()> {
        self.read_at(opts, out, Utc::now()).await
    }

    async fn read_at(&self, opts: LogOptions, out: mpsc::Sender<Bytes>, now: DateTime<Utc>) -> std::io::Result<()> {
        let mut since: Option<DateTime<Utc>> = None;
        if let Some(secs) = opts.since_seconds {
            let secs = i64::try_from(secs).unwrap_or(i64::MAX);
            since = now.checked_sub_signed(chrono::TimeDelta::try_seconds(secs).unwrap_or(chrono::TimeDelta::MAX));
            since = since.or(Some(DateTime::<Utc>::MIN_UTC));
        }
        if let Some(t) = &opts.since_time {
            let t = DateTime::parse_from_rfc3339(t)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("invalid sinceTime {t:?}: {e}")))?
                .with_timezone(&Utc);
            since = Some(since.map_or(t, |s| s.max(t)));
        }
        let mut w = Writer { out, buf: BytesMut::new(), remaining: opts.limit_bytes, timestamps: opts.timestamps, since };
        let mut rx = self.changed.subscribe();
        let Some(att) = self.snapshot(opts.previous, None) else {
            let what = if opts.previous { "no previous attempt" } else { "no attempt yet" };
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, what));
        };
        // Everything there now, so --tail can count from the end.
        let mut pos = Pos { seg: att.first_seg, offset: 0 };
        let mut initial = Vec::new();
        for seg in att.first_seg..=att.last_seg {
            let (data, consumed) = read_complete(&seg_path(&self.dir, att.n, seg), 0).await;
            initial.extend_from_slice(&data);
            pos = Pos { seg, offset: consumed };
        }
        let lines: Vec<&[u8]> = initial.split_inclusive(|b| *b == b'\n').collect();
        let skip = match opts.tail_lines {
            Some(t) => lines.len().saturating_sub(usize::try_from(t).unwrap_or(usize::MAX)),
            None => 0,
        };
        for line in &lines[skip..] {
            if !w.line(line) {
                return w.flush().await;
            }
        }
        if !opts.follow {
            return w.flush().await;
        }
        if !w.flush_follow().await {
            return Ok(());
        }
        // Follow until the attempt is finished and drained.
        loop {
            let Some(att) = self.snapshot(false, Some(att.n)) else { return w.flush().await };
            if pos.seg < att.first_seg {
                pos = Pos { seg: att.first_seg, offset: 0 };
            }
            loop {
                let (data, consumed) = read_complete(&seg_path(&self.dir, att.n, pos.seg), pos.offset).await;
                pos.offset += consumed;
                for line in data.split_inclusive(|b| *b == b'\n') {
                    if !w.line(line) {
                        return w.flush().await;
                    }
                }
                if pos.seg < att.last_seg {
                    pos = Pos { seg: pos.seg + 1, offset: 0 };
                } else {
                    break;
                }
            }
            if !w.flush_follow().await {
                return Ok(());
            }
            if !att.running {
                return Ok(());
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return Ok(()) },
                () = w.out.closed() => return Ok(()),
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Pos {
    seg: u64,
    offset: u64,
}

/// Reads `path` from `offset` up to its last complete line: (bytes, bytes consumed).
/// A missing file (rotated away) reads as empty.
async fn read_complete(path: &Path, offset: u64) -> (Vec<u8>, u64) {
    let path = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut f = File::open(&path)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut data = Vec::new();
        f.read_to_end(&mut data)?;
        Ok(data)
    })
    .await;
    let mut data = match read {
        Ok(Ok(d)) => d,
        _ => return (Vec::new(), 0),
    };
    let end = data.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    data.truncate(end);
    (data, end as u64)
}

fn open_append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

/// Formats records for the reader, applying since, timestamps and limitBytes.
struct Writer {
    out: mpsc::Sender<Bytes>,
    buf: BytesMut,
    remaining: Option<u64>,
    timestamps: bool,
    since: Option<DateTime<Utc>>,
}

impl Writer {
    /// Adds one stored line; false once limitBytes is reached.
    fn line(&mut self, stored: &[u8]) -> bool {
        let stored = stored.strip_suffix(b"\n").unwrap_or(stored);
        let Some(rec) = parse_record(stored) else { return true };
        if self.since.is_some_and(|s| rec.ts < s) {
            return true;
        }
        let start = self.buf.len();
        if self.timestamps {
            self.buf.extend_from_slice(format_ts(rec.ts).as_bytes());
            self.buf.extend_from_slice(b" ");
        }
        self.buf.extend_from_slice(rec.content);
        if rec.full {
            self.buf.extend_from_slice(b"\n");
        }
        if let Some(rem) = self.remaining.as_mut() {
            let added = (self.buf.len() - start) as u64;
            if added >= *rem {
                self.buf.truncate(start + usize::try_from(*rem).unwrap_or(usize::MAX));
                *rem = 0;
                return false;
            }
            *rem -= added;
        }
        true
    }

    /// Sends what is buffered.
    async fn flush(&mut self) -> std::io::Result<()> {
        self.send().await;
        Ok(())
    }

    async fn send(&mut self) -> bool {
        while !self.buf.is_empty() {
            let n = self.buf.len().min(CHUNK);
            let chunk = self.buf.split_to(n).freeze();
            if self.out.send(chunk).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Sends what is buffered while following; false when the reader is gone.
    async fn flush_follow(&mut self) -> bool {
        self.send().await
    }
}

/// The sink handed to the runtime for one attempt.
struct LogSink {
    logs: Arc<ContainerLogs>,
    attempt: u64,
}

impl OutputSink for LogSink {
    fn write(&self, stream: Stream, bytes: &[u8]) {
        self.logs.write_at(self.attempt, stream, bytes, Utc::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("test time").with_timezone(&Utc)
    }

    async fn read_all(logs: &ContainerLogs, opts: LogOptions) -> std::io::Result<String> {
        read_all_at(logs, opts, Utc::now()).await
    }

    async fn read_all_at(logs: &ContainerLogs, opts: LogOptions, now: DateTime<Utc>) -> std::io::Result<String> {
        let (tx, mut rx) = mpsc::channel(16);
        let reader = logs.read_at(opts, tx, now);
        let collect = async {
            let mut s = Vec::new();
            while let Some(b) = rx.recv().await {
                s.extend_from_slice(&b);
            }
            s
        };
        let (r, s) = tokio::join!(reader, collect);
        r?;
        Ok(String::from_utf8(s).expect("utf8 output"))
    }

    fn setup(max: u64) -> (tempfile::TempDir, Arc<ContainerLogs>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = ContainerLogs::open(dir.path().join("c"), max).expect("open");
        (dir, logs)
    }

    /// Writes three lines at fixed times in attempt 0.
    fn three_lines(logs: &Arc<ContainerLogs>) {
        logs.start_attempt();
        logs.write_at(0, Stream::Stdout, b"one\n", ts("2026-01-01T00:00:01Z"));
        logs.write_at(0, Stream::Stderr, b"two\n", ts("2026-01-01T00:00:02.5Z"));
        logs.write_at(0, Stream::Stdout, b"three\n", ts("2026-01-01T00:00:03Z"));
    }

    #[tokio::test]
    async fn stores_cri_records_and_reads_plain() {
        let (_d, logs) = setup(1 << 20);
        three_lines(&logs);
        let file = std::fs::read_to_string(logs.dir.join("0.0.log")).expect("file");
        assert_eq!(
            file,
            "2026-01-01T00:00:01.000000000Z stdout F one\n\
             2026-01-01T00:00:02.500000000Z stderr F two\n\
             2026-01-01T00:00:03.000000000Z stdout F three\n"
        );
        assert_eq!(read_all(&logs, LogOptions::default()).await.expect("read"), "one\ntwo\nthree\n");
    }

    #[tokio::test]
    async fn sink_buffers_partial_lines_until_newline_or_finish() {
        let (_d, logs) = setup(1 << 20);
        logs.start_attempt();
        let sink = logs.sink();
        sink.write(Stream::Stdout, b"hel");
        sink.write(Stream::Stderr, b"err\n");
        sink.write(Stream::Stdout, b"lo\nwor");
        sink.write(Stream::Stdout, b"ld");
        assert_eq!(read_all(&logs, LogOptions::default()).await.expect("read"), "err\nhello\n");
        logs.finish_attempt();
        // The unterminated tail is kept, without a newline, as a partial record.
        assert_eq!(read_all(&logs, LogOptions::default()).await.expect("read"), "err\nhello\nworld");
        let file = std::fs::read_to_string(logs.dir.join("0.0.log")).expect("file");
        assert!(file.lines().last().is_some_and(|l| l.ends_with(" stdout P world")), "{file}");
        // Writes after the attempt finished are dropped.
        sink.write(Stream::Stdout, b"late\n");
        assert_eq!(read_all(&logs, LogOptions::default()).await.expect("read"), "err\nhello\nworld");
    }

    #[tokio::test]
    async fn long_lines_are_split_into_partial_records_and_rejoined() {
        let (_d, logs) = setup(1 << 20);
        logs.start_attempt();
        let long = "x".repeat(MAX_RECORD * 2 + 10);
        logs.sink().write(Stream::Stdout, format!("{long}\nend\n").as_bytes());
        let file = std::fs::read_to_string(logs.dir.join("0.0.log")).expect("file");
        let tags: Vec<&str> = file.lines().map(|l| l.split(' ').nth(2).unwrap_or("?")).collect();
        assert_eq!(tags, ["P", "P", "F", "F"]);
        assert_eq!(read_all(&logs, LogOptions::default()).await.expect("read"), format!("{long}\nend\n"));
    }

    #[tokio::test]
    async fn timestamps_prefix_each_line() {
        let (_d, logs) = setup(1 << 20);
        three_lines(&logs);
        let out = read_all(&logs, LogOptions { timestamps: true, ..Default::default() }).await.expect("read");
        assert_eq!(
            out,
            "2026-01-01T00:00:01.000000000Z one\n\
             2026-01-01T00:00:02.500000000Z two\n\
             2026-01-01T00:00:03.000000000Z three\n"
        );
    }

    #[tokio::test]
    async fn tail_lines() {
        let (_d, logs) = setup(1 << 20);
        three_lines(&logs);
        let tail = |n| LogOptions { tail_lines: Some(n), ..Default::default() };
        assert_eq!(read_all(&logs, tail(2)).await.expect("read"), "two\nthree\n");
        assert_eq!(read_all(&logs, tail(0)).await.expect("read"), "");
        assert_eq!(read_all(&logs, tail(10)).await.expect("read"), "one\ntwo\nthree\n");
    }

    #[tokio::test]
    async fn since_time_and_since_seconds() {
        let (_d, logs) = setup(1 << 20);
        three_lines(&logs);
        let opts = LogOptions { since_time: Some("2026-01-01T00:00:02Z".into()), ..Default::default() };
        assert_eq!(read_all(&logs, opts).await.expect("read"), "two\nthree\n");
        // Boundary: a line exactly at the since time is included.
        let opts = LogOptions { since_time: Some("2026-01-01T00:00:03Z".into()), ..Default::default() };
        assert_eq!(read_all(&logs, opts).await.expect("read"), "three\n");
        let now = ts("2026-01-01T00:00:04Z");
        let opts = LogOptions { since_seconds: Some(2), ..Default::default() };
        assert_eq!(read_all_at(&logs, opts, now).await.expect("read"), "two\nthree\n");
        // Both given: the later bound wins, as in the kubelet.
        let opts = LogOptions { since_seconds: Some(10), since_time: Some("2026-01-01T00:00:03Z".into()), ..Default::default() };
        assert_eq!(read_all_at(&logs, opts, now).await.expect("read"), "three\n");
        let bad = LogOptions { since_time: Some("yesterday".into()), ..Default::default() };
        assert_eq!(read_all(&logs, bad).await.map_err(|e| e.kind()), Err(std::io::ErrorKind::InvalidInput));
    }

    #[tokio::test]
    async fn tail_is_counted_before_since() {
        let (_d, logs) = setup(1 << 20);
        three_lines(&logs);
        let opts = LogOptions { tail_lines: Some(2), since_time: Some("2026-01-01T00:00:03Z".into()), ..Default::default() };
        assert_eq!(read_all(&logs, opts).await.expect("read"), "three\n");
    }

    #[tokio::test]
    async fn limit_bytes_cuts_mid_line_and_counts_timestamps() {
        let (_d, logs) = setup(1 << 20);
        three_lines(&logs);
        let opts = LogOptions { limit_bytes: Some(6), ..Default::default() };
        assert_eq!(read_all(&logs, opts).await.expect("read"), "one\ntw");
        let opts = LogOptions { limit_bytes: Some(4), ..Default::default() };
        assert_eq!(read_all(&logs, opts).await.expect("read"), "one\n");
        let opts = LogOptions { limit_bytes: Some(33), timestamps: true, ..Default::default() };
        assert_eq!(read_all(&logs, opts).await.expect("read"), "2026-01-01T00:00:01.000000000Z on");
    }

    #[tokio::test]
    async fn previous_attempt() {
        let (_d, logs) = setup(1 << 20);
        assert!(!logs.has_attempt(false));
        let err = read_all(&logs, LogOptions::default()).await.map_err(|e| e.kind());
        assert_eq!(err, Err(std::io::ErrorKind::NotFound));
        three_lines(&logs);
        assert!(!logs.has_attempt(true));
        let prev = LogOptions { previous: true, ..Default::default() };
        assert_eq!(read_all(&logs, prev.clone()).await.map_err(|e| e.kind()), Err(std::io::ErrorKind::NotFound));
        logs.finish_attempt();
        logs.start_attempt();
        logs.sink().write(Stream::Stdout, b"second run\n");
        assert!(logs.has_attempt(true));
        assert_eq!(read_all(&logs, prev.clone()).await.expect("read"), "one\ntwo\nthree\n");
        assert_eq!(read_all(&logs, LogOptions::default()).await.expect("read"), "second run\n");
        // A third attempt: only two are kept on disk.
        logs.start_attempt();
        assert_eq!(read_all(&logs, prev).await.expect("read"), "second run\n");
        assert!(!logs.dir.join("0.0.log").exists());
    }

    #[tokio::test]
    async fn reopen_keeps_finished_attempts() {
        let (d, logs) = setup(1 << 20);
        three_lines(&logs);
        logs.start_attempt();
        logs.sink().write(Stream::Stdout, b"again\n");
        logs.finish_attempt();
        drop(logs);
        let logs = ContainerLogs::open(d.path().join("c"), 1 << 20).expect("reopen");
        assert!(!logs.is_running());
        assert_eq!(read_all(&logs, LogOptions::default()).await.expect("read"), "again\n");
        let prev = LogOptions { previous: true, ..Default::default() };
        assert_eq!(read_all(&logs, prev).await.expect("read"), "one\ntwo\nthree\n");
        logs.start_attempt();
        logs.sink().write(Stream::Stdout, b"third\n");
        assert_eq!(read_all(&logs, LogOptions::default()).await.expect("read"), "third\n");
        assert!(logs.dir.join("2.0.log").exists());
    }

    #[tokio::test]
    async fn cap_drops_the_oldest_half() {
        let (_d, logs) = setup(2 * MIN_SEGMENT);
        logs.start_attempt();
        let sink = logs.sink();
        for i in 0..1000 {
            sink.write(Stream::Stdout, format!("line {i:04}\n").as_bytes());
        }
        let total: u64 = std::fs::read_dir(&logs.dir).expect("dir").map(|e| e.expect("entry").metadata().expect("meta").len()).sum();
        assert!(total <= 2 * MIN_SEGMENT, "{total} bytes on disk");
        let out = read_all(&logs, LogOptions::default()).await.expect("read");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.last(), Some(&"line 0999"));
        assert!(lines.len() > 50 && lines.len() < 1000, "{} lines kept", lines.len());
        // What is kept is contiguous: no holes.
        let first: usize = lines[0]["line ".len()..].parse().expect("number");
        assert_eq!(lines.len(), 1000 - first);
    }

    #[tokio::test]
    async fn follow_streams_until_attempt_finishes() {
        let (_d, logs) = setup(1 << 20);
        logs.start_attempt();
        let sink = logs.sink();
        sink.write(Stream::Stdout, b"a\nb\n");
        let (tx, mut rx) = mpsc::channel(16);
        let reader = {
            let logs = logs.clone();
            tokio::spawn(async move { logs.read(LogOptions { follow: true, tail_lines: Some(1), ..Default::default() }, tx).await })
        };
        async fn recv(rx: &mut mpsc::Receiver<Bytes>) -> Option<Bytes> {
            tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await.expect("timely")
        }
        assert_eq!(recv(&mut rx).await.as_deref(), Some(&b"b\n"[..]));
        sink.write(Stream::Stdout, b"c\n");
        assert_eq!(recv(&mut rx).await.as_deref(), Some(&b"c\n"[..]));
        sink.write(Stream::Stdout, b"tail-without-newline");
        logs.finish_attempt();
        assert_eq!(recv(&mut rx).await.as_deref(), Some(&b"tail-without-newline"[..]));
        assert_eq!(recv(&mut rx).await, None, "stream ends with the attempt");
        reader.await.expect("join").expect("read");
    }

    #[tokio::test]
    async fn follow_across_rotation_and_restart() {
        let (_d, logs) = setup(2 * MIN_SEGMENT);
        logs.start_attempt();
        let sink = logs.sink();
        let (tx, mut rx) = mpsc::channel(1024);
        let reader = {
            let logs = logs.clone();
            tokio::spawn(async move { logs.read(LogOptions { follow: true, ..Default::default() }, tx).await })
        };
        let mut got = String::new();
        for i in 0..300 {
            sink.write(Stream::Stdout, format!("line {i:04}\n").as_bytes());
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        // A restart ends the follow of the old attempt.
        logs.start_attempt();
        logs.sink().write(Stream::Stdout, b"new attempt\n");
        let done = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while let Some(b) = rx.recv().await {
                got.push_str(std::str::from_utf8(&b).expect("utf8"));
            }
        })
        .await;
        assert!(done.is_ok(), "follow did not end");
        reader.await.expect("join").expect("read");
        assert!(got.ends_with("line 0299\n"), "{got}");
        assert!(!got.contains("new attempt"));
    }

    #[tokio::test]
    async fn follow_limit_bytes_ends_stream() {
        let (_d, logs) = setup(1 << 20);
        logs.start_attempt();
        let sink = logs.sink();
        let (tx, mut rx) = mpsc::channel(16);
        let reader = {
            let logs = logs.clone();
            tokio::spawn(async move { logs.read(LogOptions { follow: true, limit_bytes: Some(5), ..Default::default() }, tx).await })
        };
        sink.write(Stream::Stdout, b"abc\n");
        sink.write(Stream::Stdout, b"defgh\n");
        let mut got = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while let Some(b) = rx.recv().await {
                got.extend_from_slice(&b);
            }
        })
        .await
        .expect("limit ends the follow");
        assert_eq!(got, b"abc\nd");
        reader.await.expect("join").expect("read");
    }

    #[tokio::test]
    async fn attach_taps_raw_output_of_the_running_attempt_until_it_ends() {
        let (_d, logs) = setup(1 << 20);
        assert!(logs.attach().is_none(), "nothing runs yet");
        logs.start_attempt();
        let sink = logs.sink();
        sink.write(Stream::Stdout, b"before\n");
        let mut tap = logs.attach().expect("running");
        sink.write(Stream::Stdout, b"par");
        sink.write(Stream::Stderr, b"err\n");
        sink.write(Stream::Stdout, b"tial\n");
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(tap.recv().await.expect("chunk"));
        }
        assert_eq!(
            got,
            [(Stream::Stdout, Bytes::from_static(b"par")), (Stream::Stderr, Bytes::from_static(b"err\n")), (Stream::Stdout, Bytes::from_static(b"tial\n"))]
        );
        logs.finish_attempt();
        assert_eq!(tap.recv().await, None, "the tap ends with the attempt");
        // A tap that falls too far behind is dropped; the log still gets everything.
        logs.start_attempt();
        let sink = logs.sink();
        let mut slow = logs.attach().expect("running");
        for i in 0..=TAP_BACKLOG {
            sink.write(Stream::Stdout, format!("{i}\n").as_bytes());
        }
        let mut n = 0;
        while slow.recv().await.is_some() {
            n += 1;
        }
        assert_eq!(n, TAP_BACKLOG);
        let all = read_all(&logs, LogOptions::default()).await.expect("read");
        assert_eq!(all.lines().count(), TAP_BACKLOG + 1);
    }

    #[tokio::test]
    async fn follow_ends_when_reader_goes_away() {
        let (_d, logs) = setup(1 << 20);
        logs.start_attempt();
        let (tx, rx) = mpsc::channel(16);
        let reader = {
            let logs = logs.clone();
            tokio::spawn(async move { logs.read(LogOptions { follow: true, ..Default::default() }, tx).await })
        };
        drop(rx);
        tokio::time::timeout(std::time::Duration::from_secs(5), reader).await.expect("ends").expect("join").expect("read");
    }
}
