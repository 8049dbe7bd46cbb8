//! Async reader over the `dw_events` ring buffer.
//!
//! The pipeline reads [`driftwatch_event::Event`]s ([`EventStream::for_each_event`]): each
//! record is decoded straight from the ring's shared memory and its slot released when the
//! callback returns, so callbacks should forward quickly (e.g. `try_send` on a bounded channel,
//! counting drops). Tests and tools that look at the kernel ABI itself read the raw records
//! ([`EventStream::for_each_record`]).

use std::fmt;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::decode::{decode, Clock};
use crate::error::BpfError;
use driftwatch_abi::DecodeError;
use driftwatch_event::Event;

/// How often the reader looks at the ring when the kernel did not wake it up.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

/// The kernel → userspace event stream of an [`crate::ExecSensor`].
pub struct EventStream {
    ring: AsyncFd<RingBuf<MapData>>,
    clock: Clock,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl EventStream {
    // The one `unsafe` of the crate: tokio's fd registration is `unsafe` since 1.54 because it
    // cannot see fd ownership through `AsRawFd`.
    #[allow(
        unsafe_code,
        reason = "AsyncFd registration of the ring's fd; see the SAFETY note"
    )]
    pub(crate) fn new(ring: RingBuf<MapData>) -> Result<Self, BpfError> {
        // SAFETY: `RingBuf<MapData>` owns the map's `OwnedFd` (and its mmap) and never replaces
        // it, so the fd is open and refers to the same ring buffer until the `AsyncFd` (which
        // owns the `RingBuf`) is dropped or `into_inner` is called.
        let ring =
            unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }.map_err(|e| {
                BpfError::RingBuffer {
                    action: "registration with tokio",
                    source: e.into_parts().1,
                }
            })?;
        Ok(Self {
            ring,
            clock: Clock::new(),
        })
    }

    /// Waits until at least one record is available, then calls `f` on up to `max` of them,
    /// decoded (a record the decoder rejects is handed out as its error). Returns how many
    /// records were handed out (≥ 1 unless `max` is 0). Cancel-safe, as
    /// [`EventStream::for_each_record`].
    pub async fn for_each_event<F>(&mut self, max: usize, mut f: F) -> Result<usize, BpfError>
    where
        F: FnMut(Result<Event, DecodeError>),
    {
        let clock = self.clock;
        self.for_each_record(max, |r| f(decode(r, &clock))).await
    }

    /// Calls `f` on up to `max` decoded records already in the ring, without waiting; returns
    /// how many.
    pub fn drain_events<F>(&mut self, max: usize, mut f: F) -> usize
    where
        F: FnMut(Result<Event, DecodeError>),
    {
        let clock = self.clock;
        self.drain_records(max, |r| f(decode(r, &clock)))
    }

    /// Waits until at least one record is available, then calls `f` on up to `max` raw records
    /// (each a complete record as written by the kernel, for `driftwatch_abi::decode`). Returns
    /// how many records were handed out (≥ 1 unless `max` is 0).
    ///
    /// The kernel wakes the reader only when a large backlog is waiting (one wakeup per record
    /// costs more than the rest of the pipeline), so this also looks at the ring every
    /// [`POLL_INTERVAL`]: a record waits at most that long.
    ///
    /// Cancel-safe: dropping the future loses no record (a record is only consumed after its
    /// callback returned).
    pub async fn for_each_record<F>(&mut self, max: usize, mut f: F) -> Result<usize, BpfError>
    where
        F: FnMut(&[u8]),
    {
        if max == 0 {
            return Ok(0);
        }
        loop {
            let n = self.drain_records(max, &mut f);
            if n > 0 {
                return Ok(n);
            }
            tokio::select! {
                r = self.ring.readable_mut() => {
                    let mut guard = r.map_err(|source| BpfError::RingBuffer {
                        action: "poll",
                        source,
                    })?;
                    // Readiness is consumed here; the records are read by `drain_records` above, and a
                    // later wakeup sets readiness again.
                    guard.clear_ready();
                }
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }

    /// Calls `f` on up to `max` raw records already in the ring, without waiting; returns how
    /// many.
    pub fn drain_records<F>(&mut self, max: usize, mut f: F) -> usize
    where
        F: FnMut(&[u8]),
    {
        let ring = self.ring.get_mut();
        let mut n = 0;
        while n < max {
            let Some(item) = ring.next() else { break };
            f(&item);
            n += 1;
        }
        n
    }

    /// Copies the next record into `buf` (cleared first; its capacity is reused, so a buffer
    /// kept across calls allocates only while growing to the largest record).
    pub async fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<(), BpfError> {
        self.for_each_record(1, |rec| {
            buf.clear();
            buf.extend_from_slice(rec);
        })
        .await
        .map(|_| ())
    }
}
