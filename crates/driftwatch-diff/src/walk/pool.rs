//! The file workers, and the queue that hands entries to the sink in walk order.
//!
//! The walking thread numbers every entry it meets. Entries it decides itself go straight into
//! the queue; regular files go, [`BATCH`] at a time, through a channel of at most
//! [`JOB_QUEUE`] batches to the workers (`--threads`), which read and decide them and send the
//! results back with their numbers. The queue keeps a slot per number and hands its decided
//! front to the sink, so the output does not depend on scheduling; while [`MAX_IN_FLIGHT`]
//! entries wait, the walking thread waits for the workers, which bounds memory and open files.
//! With no workers, files are read on the walking thread as they come.

use super::read::{Bufs, FileJob};
use super::{Ctx, Done, WalkSink, MAX_IN_FLIGHT};
use crate::error::DiffError;
use std::collections::VecDeque;
use std::io;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

/// Files go to the workers, and come back, this many at a time (fewer wake-ups).
const BATCH: usize = 32;
/// Batches waiting for a worker, at most. A file not yet read holds its upper and lower
/// directories open: at most (`JOB_QUEUE` + 1 + workers) × `BATCH` files wait or are being read,
/// so at most 448 directory descriptors with 4 workers besides those on the walker's path,
/// whatever the shape of the tree (a file per directory included).
const JOB_QUEUE: usize = 2;

/// A batch of files to read, or of their results, each with its number in the walk.
type Batch<T> = Vec<(u64, T)>;

/// Run `body` with the walk's output queue: fed by `workers` file workers (started here and
/// stopped when `body` has returned and dropped the queue), or reading files itself with 0.
pub(super) fn run<'c, 'a, R>(
    ctx: &'c Ctx<'a>,
    workers: usize,
    body: impl FnOnce(Ordered<'c, 'a>) -> R,
) -> R {
    if workers == 0 {
        return body(Ordered::new(ctx, None));
    }
    std::thread::scope(|scope| {
        let (job_tx, job_rx) = mpsc::sync_channel::<Batch<FileJob>>(JOB_QUEUE);
        let (res_tx, res_rx) = mpsc::channel::<Batch<Done>>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        for _ in 0..workers {
            let job_rx = Arc::clone(&job_rx);
            let res_tx = res_tx.clone();
            scope.spawn(move || work(ctx, &job_rx, &res_tx));
        }
        drop(res_tx);
        body(Ordered::new(
            ctx,
            Some(Pool {
                jobs: job_tx,
                results: res_rx,
                batch: Vec::with_capacity(BATCH),
            }),
        ))
    })
}

/// One file worker: read and decide batches of files until the walking thread stops sending.
fn work(
    ctx: &Ctx<'_>,
    jobs: &Mutex<Receiver<Batch<FileJob>>>,
    results: &mpsc::Sender<Batch<Done>>,
) {
    let mut bufs = Bufs::new();
    loop {
        // One worker waits on the channel, the others on the lock.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(jobs) = job else { return };
        let mut out = Vec::with_capacity(jobs.len());
        for (seq, job) in jobs {
            // A panic must not leave the walking thread waiting for this entry.
            let done =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctx.file(job, &mut bufs)))
                    .unwrap_or_else(|_| {
                        tracing::error!(entry = seq, "file worker panicked: entry left out");
                        bufs = Bufs::new();
                        Done::default()
                    });
            out.push((seq, done));
        }
        if results.send(out).is_err() {
            return;
        }
    }
}

/// The channels to the file workers.
struct Pool {
    jobs: SyncSender<Batch<FileJob>>,
    results: Receiver<Batch<Done>>,
    /// Files not sent yet.
    batch: Batch<FileJob>,
}

impl Pool {
    /// Send the files gathered so far, waiting while [`JOB_QUEUE`] batches wait.
    fn send_batch(&mut self) -> Result<(), DiffError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.jobs.send(batch).map_err(|_| workers_stopped())
    }
}

fn workers_stopped() -> DiffError {
    DiffError::output(io::Error::other("file workers stopped"))
}

/// The entries of a walk between the walking thread and the sink, in walk order.
pub(super) struct Ordered<'c, 'a> {
    ctx: &'c Ctx<'a>,
    /// Entries not yet given to the sink (`None`: at a worker); the front is number `base` of
    /// the walk.
    queue: VecDeque<Option<Done>>,
    base: u64,
    pool: Option<Pool>,
    /// Buffers for files read on the walking thread (no workers).
    bufs: Option<Bufs>,
}

impl<'c, 'a> Ordered<'c, 'a> {
    fn new(ctx: &'c Ctx<'a>, pool: Option<Pool>) -> Self {
        Ordered {
            ctx,
            queue: VecDeque::with_capacity(MAX_IN_FLIGHT),
            base: 0,
            bufs: pool.is_none().then(Bufs::new),
            pool,
        }
    }

    /// Queue a decided entry.
    pub(super) fn emit<S: WalkSink>(&mut self, done: Done, sink: &mut S) -> Result<(), DiffError> {
        self.queue.push_back(Some(done));
        self.drain(false, sink)
    }

    /// Queue a regular file: read by a worker, or here when there is none.
    pub(super) fn submit<S: WalkSink>(
        &mut self,
        job: FileJob,
        sink: &mut S,
    ) -> Result<(), DiffError> {
        let seq = self.base + self.queue.len() as u64;
        if let Some(pool) = &mut self.pool {
            self.queue.push_back(None);
            pool.batch.push((seq, job));
            if pool.batch.len() >= BATCH {
                pool.send_batch()?;
            }
            return self.drain(false, sink);
        }
        let mut bufs = self.bufs.take().unwrap_or_else(Bufs::new);
        let done = self.ctx.file(job, &mut bufs);
        self.bufs = Some(bufs);
        self.emit(done, sink)
    }

    /// Hand every entry left to the sink, waiting for the workers.
    pub(super) fn finish<S: WalkSink>(&mut self, sink: &mut S) -> Result<(), DiffError> {
        self.drain(true, sink)
    }

    /// Put a worker's result in its slot.
    fn store(&mut self, seq: u64, done: Done) {
        let idx = seq
            .checked_sub(self.base)
            .and_then(|i| usize::try_from(i).ok());
        if let Some(slot) = idx.and_then(|i| self.queue.get_mut(i)) {
            *slot = Some(done);
        }
    }

    /// Hand the decided front of the queue to the sink; wait for workers while the queue is
    /// full (or, with `all`, until it is empty).
    fn drain<S: WalkSink>(&mut self, all: bool, sink: &mut S) -> Result<(), DiffError> {
        loop {
            self.collect();
            self.hand_front(sink)?;
            let must_wait = if all {
                !self.queue.is_empty()
            } else {
                self.queue.len() >= MAX_IN_FLIGHT
            };
            if !must_wait {
                return Ok(());
            }
            let Some(pool) = &mut self.pool else {
                return Ok(());
            };
            // Whatever waits must be on its way before waiting for it.
            pool.send_batch()?;
            let done = pool.results.recv().map_err(|_| workers_stopped())?;
            for (seq, d) in done {
                self.store(seq, d);
            }
        }
    }

    /// Store the results the workers have sent, without waiting.
    fn collect(&mut self) {
        let Some(pool) = &self.pool else { return };
        let mut got = Vec::new();
        while let Ok(r) = pool.results.try_recv() {
            got.push(r);
        }
        for (seq, done) in got.into_iter().flatten() {
            self.store(seq, done);
        }
    }

    /// Hand the decided front of the queue to the sink.
    fn hand_front<S: WalkSink>(&mut self, sink: &mut S) -> Result<(), DiffError> {
        while let Some(Some(_)) = self.queue.front() {
            if let Some(Some(done)) = self.queue.pop_front() {
                self.base += 1;
                if let Some(u) = done.unmanaged {
                    sink.unmanaged(u);
                }
                if let Some(e) = done.entry {
                    sink.entry(e)?;
                }
            }
        }
        Ok(())
    }
}
