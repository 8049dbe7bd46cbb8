//! The on-disk spool of an HTTP output: alerts wait here until the receiver took them, across
//! outages and agent restarts.
//!
//! A spool is a directory of segment files (`00000000000000000007.seg`, oldest first), each a
//! run of records — one JSON document on one line, ended by `\n` —, a `cursor` file (the
//! segment and offset of the first record not yet delivered, replaced by a rename) and a `lock`
//! file (`flock`: one agent per spool). Records are appended in batches, one `write` per batch;
//! a record never spans two segments. A crash can leave at most the last batch cut short: on
//! open every segment is cut back to its last `\n`, and a line that does not parse as JSON is
//! skipped and counted, never sent.
//!
//! Bounded: the undelivered records take at most `max_bytes`; appending past that drops the
//! oldest ones first, which are counted ([`Spool::take_dropped`]). Delivered records go when
//! their whole segment is delivered, so the directory holds at most one segment (an eighth of
//! `max_bytes`, at most 4 MiB) more. Delivery is at least once: a crash between a delivery and
//! the cursor's update sends that alert again.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A spool that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {}: {error}", dir.display())]
    Io { dir: PathBuf, error: io::Error },
    #[error("spool {} is in use by another process", dir.display())]
    Locked { dir: PathBuf },
}

/// Where a record starts: its segment and byte offset (ordered oldest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub segment: u64,
    pub offset: u64,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    /// Bytes in the file.
    len: u64,
    /// Records not yet delivered (for the head segment: after `head`).
    records: u64,
}

/// One output's spool. Not shared by itself: the HTTP output puts it behind a mutex.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Oldest first; never empty (the last is the one appended to).
    segments: VecDeque<Segment>,
    /// Offset of the first undelivered record in `segments[0]`.
    head: u64,
    tail: File,
    /// Whole records waiting for [`Spool::flush`].
    pending: Vec<u8>,
    pending_records: u64,
    /// Records read ahead from the head segment, from `head` on.
    read_ahead: VecDeque<(Pos, Vec<u8>)>,
    /// Records dropped because the spool was full, not yet taken.
    dropped: u64,
    /// Unreadable records skipped, not yet taken.
    corrupt: u64,
    _lock: File,
}

fn segment_name(id: u64) -> String {
    format!("{id:020}.seg")
}

/// Bytes read at once from the head segment.
const READ_CHUNK: usize = 64 * 1024;

impl Spool {
    /// Opens (or creates) the spool in `dir`, keeping at most `max_bytes` of undelivered
    /// records.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        let io_err = |error| SpoolError::Io {
            dir: dir.to_path_buf(),
            error,
        };
        // Alerts carry command lines: the spool is the agent's alone.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(io_err)?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |e| {
                if e == rustix::io::Errno::WOULDBLOCK {
                    SpoolError::Locked {
                        dir: dir.to_path_buf(),
                    }
                } else {
                    io_err(e.into())
                }
            },
        )?;
        let mut ids: Vec<u64> = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            ids.push(id);
        }
        ids.sort_unstable();
        let cursor = read_cursor(&dir.join("cursor"));
        let mut segments = VecDeque::new();
        let mut head = 0;
        for id in ids {
            let path = dir.join(segment_name(id));
            if cursor.is_some_and(|c| id < c.segment) {
                // Delivered before the last stop.
                fs::remove_file(&path).map_err(io_err)?;
                continue;
            }
            let bytes = fs::read(&path).map_err(io_err)?;
            // A batch cut short by a crash: back to the last whole record.
            let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if whole < bytes.len() {
                tracing::warn!(segment = %path.display(), cut = bytes.len() - whole, "spool: a record cut short was removed");
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(whole as u64))
                    .map_err(io_err)?;
            }
            let mut start = 0;
            if segments.is_empty() {
                if let Some(c) = cursor.filter(|c| c.segment == id) {
                    start = usize::try_from(c.offset).unwrap_or(usize::MAX).min(whole);
                    // Not at a record boundary (a cursor from elsewhere): the next one.
                    if start > 0 && bytes[start - 1] != b'\n' {
                        start = bytes[start..whole]
                            .iter()
                            .position(|b| *b == b'\n')
                            .map_or(whole, |i| start + i + 1);
                    }
                }
                head = start as u64;
            }
            let records = bytes[start..whole].iter().filter(|b| **b == b'\n').count() as u64;
            segments.push_back(Segment {
                id,
                len: whole as u64,
                records,
            });
        }
        if segments.is_empty() {
            let id = cursor.map_or(0, |c| c.segment);
            segments.push_back(Segment {
                id,
                len: 0,
                records: 0,
            });
            head = 0;
        }
        let last = segments.back().map_or(0, |s| s.id);
        let tail = OpenOptions::new()
            .create(true)
            .mode(0o600)
            .append(true)
            .open(dir.join(segment_name(last)))
            .map_err(io_err)?;
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(4096, 4 * 1024 * 1024),
            segments,
            head,
            tail,
            pending: Vec::new(),
            pending_records: 0,
            read_ahead: VecDeque::new(),
            dropped: 0,
            corrupt: 0,
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Undelivered records (written and pending).
    pub fn len(&self) -> u64 {
        self.segments.iter().map(|s| s.records).sum::<u64>() + self.pending_records
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the undelivered records (written and pending).
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum::<u64>() - self.head + self.pending.len() as u64
    }

    /// Records dropped because the spool was full since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Unreadable records skipped since the last call.
    pub fn take_corrupt(&mut self) -> u64 {
        std::mem::take(&mut self.corrupt)
    }

    /// Adds one record (a JSON document without a line break) to the batch written by
    /// [`Spool::flush`], dropping the oldest records if the spool would grow past its bound.
    pub fn push(&mut self, record: &[u8]) {
        debug_assert!(!record.contains(&b'\n'), "a record is one line");
        let size = record.len() as u64 + 1;
        if size > self.max_bytes {
            self.dropped += 1;
            return;
        }
        while self.bytes() + size > self.max_bytes && self.drop_oldest() {}
        self.pending.extend_from_slice(record);
        self.pending.push(b'\n');
        self.pending_records += 1;
    }

    /// Drops the oldest undelivered record; false when there is none.
    fn drop_oldest(&mut self) -> bool {
        match self.advance() {
            Ok(true) => {
                self.dropped += 1;
                true
            }
            Ok(false) | Err(_) => {
                // Nothing on disk: the oldest pending record.
                match self.pending.iter().position(|b| *b == b'\n') {
                    Some(i) => {
                        self.pending.drain(..=i);
                        self.pending_records -= 1;
                        self.dropped += 1;
                        true
                    }
                    None => false,
                }
            }
        }
    }

    /// Moves the head past its record (delivered or dropped); false when there is none.
    fn advance(&mut self) -> io::Result<bool> {
        self.retire_delivered_segments()?;
        let Some((pos, rec)) = self.peek_raw()? else {
            return Ok(false);
        };
        self.read_ahead.pop_front();
        self.head = pos.offset + rec.len() as u64 + 1;
        if let Some(s) = self.segments.front_mut() {
            s.records = s.records.saturating_sub(1);
        }
        self.retire_delivered_segments()?;
        Ok(true)
    }

    /// Removes head segments wholly delivered (never the last one).
    fn retire_delivered_segments(&mut self) -> io::Result<()> {
        while self.segments.len() > 1 && self.segments.front().is_some_and(|s| self.head >= s.len) {
            if let Some(s) = self.segments.pop_front() {
                self.head = 0;
                self.read_ahead.clear();
                match fs::remove_file(self.dir.join(segment_name(s.id))) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// The record at the head (read ahead in chunks), whether it parses or not.
    fn peek_raw(&mut self) -> io::Result<Option<(Pos, Vec<u8>)>> {
        if let Some(r) = self.read_ahead.front() {
            return Ok(Some(r.clone()));
        }
        let Some(seg) = self.segments.front() else {
            return Ok(None);
        };
        if self.head >= seg.len {
            return Ok(None);
        }
        let (id, len) = (seg.id, seg.len);
        let mut f = File::open(self.dir.join(segment_name(id)))?;
        f.seek(SeekFrom::Start(self.head))?;
        let want = usize::try_from(len - self.head).unwrap_or(usize::MAX);
        let mut buf = Vec::new();
        let mut chunk = READ_CHUNK.min(want);
        // At least one whole record: read on until a line break.
        loop {
            let start = buf.len();
            buf.resize(start + chunk, 0);
            let n = f.read(&mut buf[start..])?;
            buf.truncate(start + n);
            if n == 0 || buf[start..].contains(&b'\n') || buf.len() >= want {
                break;
            }
            chunk = READ_CHUNK.min(want - buf.len());
        }
        let mut offset = self.head;
        let mut rest = &buf[..];
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            self.read_ahead.push_back((
                Pos {
                    segment: id,
                    offset,
                },
                rest[..i].to_vec(),
            ));
            offset += i as u64 + 1;
            rest = &rest[i + 1..];
        }
        if self.read_ahead.is_empty() {
            // A segment that does not end with a line break (changed under us): skip it.
            self.corrupt += 1;
            self.head = len;
            return Ok(None);
        }
        Ok(self.read_ahead.front().cloned())
    }

    /// The oldest undelivered record that parses as JSON (unreadable ones are skipped and
    /// counted), or `None` when every written record was delivered.
    pub fn oldest(&mut self) -> io::Result<Option<(Pos, Vec<u8>)>> {
        loop {
            self.retire_delivered_segments()?;
            let Some((pos, rec)) = self.peek_raw()? else {
                return Ok(None);
            };
            if serde_json::from_slice::<serde::de::IgnoredAny>(&rec).is_ok() {
                return Ok(Some((pos, rec)));
            }
            tracing::warn!(spool = %self.dir.display(), segment = pos.segment, offset = pos.offset, "spool: an unreadable record was skipped");
            self.corrupt += 1;
            self.advance()?;
            self.save_cursor()?;
        }
    }

    /// The record at `pos` was delivered (or given up on): the head moves past it and the
    /// cursor is saved. A record dropped meanwhile (the spool was full) is ignored.
    pub fn ack(&mut self, pos: Pos) -> io::Result<()> {
        let head = Pos {
            segment: self.segments.front().map_or(0, |s| s.id),
            offset: self.head,
        };
        if pos != head {
            return Ok(());
        }
        self.advance()?;
        self.save_cursor()
    }

    fn save_cursor(&self) -> io::Result<()> {
        let segment = self.segments.front().map_or(0, |s| s.id);
        let tmp = self.dir.join("cursor.tmp");
        fs::write(&tmp, format!("{segment} {}\n", self.head))?;
        fs::rename(&tmp, self.dir.join("cursor"))
    }

    /// Writes the pending records (one `write`), starting a new segment when the last one is
    /// full. On failure the segment is cut back to its last whole record, the batch is lost
    /// and its records are counted as dropped.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let Some(last) = self.segments.back() else {
            return Ok(());
        };
        if last.len > 0 && last.len + self.pending.len() as u64 > self.segment_bytes {
            let id = last.id + 1;
            let file = OpenOptions::new()
                .create(true)
                .mode(0o600)
                .append(true)
                .open(self.dir.join(segment_name(id)));
            match file {
                Ok(f) => {
                    self.tail = f;
                    self.segments.push_back(Segment {
                        id,
                        len: 0,
                        records: 0,
                    });
                }
                Err(e) => return Err(self.lose_pending(e)),
            }
        }
        if let Err(e) = self.tail.write_all(&self.pending) {
            let len = self.segments.back().map_or(0, |s| s.len);
            let _ = self.tail.set_len(len);
            return Err(self.lose_pending(e));
        }
        if let Some(last) = self.segments.back_mut() {
            last.len += self.pending.len() as u64;
            last.records += self.pending_records;
        }
        self.pending.clear();
        self.pending_records = 0;
        Ok(())
    }

    fn lose_pending(&mut self, e: io::Error) -> io::Error {
        self.dropped += self.pending_records;
        self.pending.clear();
        self.pending_records = 0;
        e
    }

    /// Writes the pending records and makes the spool durable (shutdown).
    pub fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        self.tail.sync_data()?;
        self.save_cursor()
    }
}

fn read_cursor(path: &Path) -> Option<Pos> {
    let text = fs::read_to_string(path).ok()?;
    let mut it = text.split_whitespace();
    let segment = it.next()?.parse().ok()?;
    let offset = it.next()?.parse().ok()?;
    Some(Pos { segment, offset })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records of one size (the padding makes up for the digits).
    fn rec(i: usize) -> Vec<u8> {
        let pad = "x".repeat(100 - i.to_string().len());
        format!("{{\"n\":{i},\"pad\":\"{pad}\"}}").into_bytes()
    }

    fn n_of(r: &[u8]) -> u64 {
        let v: serde_json::Value = serde_json::from_slice(r).unwrap();
        v["n"].as_u64().unwrap()
    }

    /// Delivers (acks) everything; returns the record numbers in order.
    fn drain(s: &mut Spool) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some((pos, r)) = s.oldest().unwrap() {
            out.push(n_of(&r));
            s.ack(pos).unwrap();
        }
        out
    }

    #[test]
    fn records_come_out_in_order_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
            for i in 0..10 {
                s.push(&rec(i));
            }
            assert!(
                s.oldest().unwrap().is_none(),
                "nothing is readable before flush"
            );
            s.flush().unwrap();
            assert_eq!(s.len(), 10);
            for _ in 0..3 {
                let (pos, _) = s.oldest().unwrap().unwrap();
                s.ack(pos).unwrap();
            }
            // Acking a position twice changes nothing.
            let (pos, r) = s.oldest().unwrap().unwrap();
            assert_eq!(n_of(&r), 3);
            s.ack(pos).unwrap();
            s.ack(pos).unwrap();
            assert_eq!(s.len(), 6);
            // Not synced: a kill -9 leaves the written records in the page cache.
        }
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.len(), 6);
        assert_eq!(drain(&mut s), vec![4, 5, 6, 7, 8, 9]);
        assert!(s.is_empty());
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(s.is_empty(), "delivered records do not come back");
        s.push(&rec(10));
        s.flush().unwrap();
        assert_eq!(drain(&mut s), vec![10]);
    }

    #[test]
    fn a_spool_is_private_to_the_agent() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("a/b");
        let mut s = Spool::open(&spool, 1 << 20).unwrap();
        s.push(&rec(0));
        s.flush().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&spool), 0o700);
        assert_eq!(mode(&spool.join(segment_name(0))), 0o600);
    }

    #[test]
    fn a_spool_is_locked_to_one_owner() {
        let dir = tempfile::tempdir().unwrap();
        let _s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(matches!(
            Spool::open(dir.path(), 1 << 20),
            Err(SpoolError::Locked { .. })
        ));
    }

    #[test]
    fn a_full_spool_drops_the_oldest_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let max = 64 * 1024;
        let mut s = Spool::open(dir.path(), max).unwrap();
        let size = rec(0).len() as u64 + 1;
        let fits = max / size;
        let total = 3 * fits as usize;
        for i in 0..total {
            s.push(&rec(i));
            if i % 7 == 0 {
                s.flush().unwrap();
            }
            assert!(s.bytes() <= max, "bound kept: {}", s.bytes());
        }
        s.flush().unwrap();
        let dropped = s.take_dropped();
        assert_eq!(dropped + s.len(), total as u64);
        assert_eq!(s.len(), fits, "the spool stays full");
        assert_eq!(s.take_dropped(), 0, "taken once");
        // What is left is the newest, in order.
        let left = drain(&mut s);
        let first = (total as u64) - fits;
        assert_eq!(left, (first..total as u64).collect::<Vec<_>>());
        // The directory holds at most one segment more than the bound.
        let on_disk: u64 = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert!(on_disk <= max + s.segment_bytes, "{on_disk}");
        let segs = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            })
            .count();
        assert_eq!(segs, 1, "delivered segments are removed");
    }

    #[test]
    fn a_record_cut_short_by_a_crash_is_removed_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
            s.push(&rec(0));
            s.push(&rec(1));
            s.flush().unwrap();
        }
        let seg = dir.path().join(segment_name(0));
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"{\"n\":2,\"pad\":\"xx").unwrap();
        drop(f);
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.len(), 2);
        s.push(&rec(3));
        s.flush().unwrap();
        assert_eq!(
            drain(&mut s),
            vec![0, 1, 3],
            "the torn record is gone, no merge"
        );
        assert_eq!(s.take_corrupt(), 0);
    }

    #[test]
    fn an_unreadable_record_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(segment_name(5)),
            [rec(0), b"not json".to_vec(), rec(1), Vec::new()].join(&b'\n'),
        )
        .unwrap();
        // A cursor in the middle of a record moves to the next one.
        fs::write(dir.path().join("cursor"), "5 3\n").unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(drain(&mut s), vec![1]);
        assert_eq!(s.take_corrupt(), 1);
    }

    #[test]
    fn segments_roll_and_reading_crosses_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 64 * 1024).unwrap();
        for i in 0..300 {
            s.push(&rec(i));
            s.flush().unwrap();
        }
        // Bound 64 KiB, 8 KiB segments: records were dropped and several segments exist.
        assert!(s.segments.len() > 2, "{}", s.segments.len());
        let dropped = s.take_dropped();
        let left = drain(&mut s);
        assert_eq!(left.len() as u64 + dropped, 300);
        assert!(left.windows(2).all(|w| w[1] == w[0] + 1), "{left:?}");
        assert_eq!(left.last(), Some(&299));
    }
}
