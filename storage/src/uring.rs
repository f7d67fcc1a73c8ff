//! A minimal io_uring driver for one shard: a ring per thread, driven by
//! the shard's current-thread Tokio runtime. Operations are submitted at
//! once and complete through an eventfd the runtime polls, so no file
//! syscall ever blocks the shard thread. Every operation owns its buffer
//! and file until the kernel is done with them, even when the waiting
//! future is dropped early.

use std::any::Any;
use std::cell::RefCell;
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use io_uring::{opcode, squeue, types, IoUring};
use tokio::io::unix::AsyncFd;

/// Submission queue size; completions are unbounded (IORING_FEAT_NODROP).
const RING_ENTRIES: u32 = 256;

enum Slot {
    Free {
        next: usize,
    },
    Waiting {
        waker: Option<Waker>,
        keep: Box<dyn Any>,
    },
    /// `_keep` is never read: holding it keeps the kernel's buffers alive.
    Done {
        result: i32,
        _keep: Box<dyn Any>,
    },
    /// The future was dropped; free the slot when the completion arrives.
    Orphaned {
        _keep: Box<dyn Any>,
    },
}

struct Inner {
    ring: IoUring,
    slots: Vec<Slot>,
    free: usize,
}

/// One shard's ring. `!Send`: it belongs to the thread that made it.
pub struct Ring {
    inner: RefCell<Inner>,
    eventfd: AsyncFd<OwnedFd>,
    /// Wakes the submitter task, which enters the kernel once for all the
    /// operations queued since it last ran.
    submit_needed: tokio::sync::Notify,
}

impl Ring {
    /// Creates the ring and starts its completion task on the current
    /// `LocalSet`.
    pub fn new() -> io::Result<Rc<Self>> {
        let ring = IoUring::new(RING_ENTRIES)?;
        // SAFETY: eventfd returns a new descriptor or -1, checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just created and is owned by nothing else.
        let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
        ring.submitter().register_eventfd(eventfd.as_raw_fd())?;
        // SAFETY: the OwnedFd is moved into the AsyncFd and stays open, the
        // same descriptor, for exactly the AsyncFd's lifetime.
        let eventfd = unsafe { AsyncFd::register_with_interest(eventfd, tokio::io::Interest::READABLE) }
            .map_err(|e| io::Error::other(e.to_string()))?;
        let this = Rc::new(Self {
            inner: RefCell::new(Inner { ring, slots: Vec::new(), free: usize::MAX }),
            eventfd,
            submit_needed: tokio::sync::Notify::new(),
        });
        tokio::task::spawn_local(complete_forever(Rc::downgrade(&this)));
        tokio::task::spawn_local(submit_forever(Rc::downgrade(&this)));
        Ok(this)
    }

    /// Writes all of `buf` at `offset`, resubmitting after short writes.
    pub async fn write_all_at(self: &Rc<Self>, file: &Rc<File>, buf: Vec<u8>, offset: u64) -> io::Result<()> {
        let buf = Rc::new(buf);
        let mut done = 0usize;
        while done < buf.len() {
            let chunk = (buf.len() - done).min(u32::MAX as usize) as u32;
            // SAFETY (for the kernel): the pointer stays valid because `keep`
            // holds the buffer until the completion is reaped.
            let ptr = buf[done..].as_ptr();
            let entry =
                opcode::Write::new(types::Fd(file.as_raw_fd()), ptr, chunk).offset(offset + done as u64).build();
            let n = self.submit(entry, Box::new((buf.clone(), file.clone()))).await?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0 bytes"));
            }
            done += n;
        }
        Ok(())
    }

    /// Reads exactly `len` bytes at `offset` (fewer only at end of file).
    pub async fn read_at(self: &Rc<Self>, file: &Rc<File>, len: usize, offset: u64) -> io::Result<Vec<u8>> {
        let mut filled = 0usize;
        let mut out = Vec::new();
        while filled < len {
            let chunk = (len - filled).min(u32::MAX as usize);
            let buf = Rc::new(RefCell::new(vec![0u8; chunk]));
            let ptr = buf.borrow_mut().as_mut_ptr();
            let entry = opcode::Read::new(types::Fd(file.as_raw_fd()), ptr, chunk as u32)
                .offset(offset + filled as u64)
                .build();
            let n = self.submit(entry, Box::new((buf.clone(), file.clone()))).await?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf.borrow()[..n]);
            filled += n;
        }
        Ok(out)
    }

    /// fdatasync(2) through the ring.
    pub async fn fdatasync(self: &Rc<Self>, file: &Rc<File>) -> io::Result<()> {
        let entry = opcode::Fsync::new(types::Fd(file.as_raw_fd())).flags(types::FsyncFlags::DATASYNC).build();
        self.submit(entry, Box::new(file.clone())).await.map(drop)
    }

    /// fsync(2) of a directory, so new file names survive a crash.
    pub async fn fsync(self: &Rc<Self>, file: &Rc<File>) -> io::Result<()> {
        let entry = opcode::Fsync::new(types::Fd(file.as_raw_fd())).build();
        self.submit(entry, Box::new(file.clone())).await.map(drop)
    }

    /// Queues `entry`, keeping `keep` alive until it completes, and resolves
    /// to the operation's non-negative result.
    fn submit(self: &Rc<Self>, entry: squeue::Entry, keep: Box<dyn Any>) -> Op {
        let mut inner = self.inner.borrow_mut();
        let slot = match inner.free {
            usize::MAX => {
                inner.slots.push(Slot::Free { next: usize::MAX });
                inner.slots.len() - 1
            }
            i => i,
        };
        if let Slot::Free { next } = inner.slots[slot] {
            inner.free = next;
        }
        inner.slots[slot] = Slot::Waiting { waker: None, keep };
        let entry = entry.user_data(slot as u64);
        // SAFETY: everything the entry points at is owned by `keep`, which
        // the slot holds until the completion for `slot` is reaped.
        let pushed = unsafe {
            let mut queue = inner.ring.submission();
            if queue.is_full() {
                drop(queue);
                let _ = inner.ring.submit();
                queue = inner.ring.submission();
            }
            queue.push(&entry).is_ok()
        };
        if !pushed {
            // Nothing reached the kernel: release the slot now.
            inner.slots[slot] = Slot::Free { next: inner.free };
            inner.free = slot;
            let error = Some(io::Error::other("submission queue full"));
            return Op { ring: self.clone(), slot: usize::MAX, error };
        }
        // Submitted in one syscall with everything else queued this tick.
        self.submit_needed.notify_one();
        Op { ring: self.clone(), slot, error: None }
    }

    fn reap(&self) {
        let mut inner = self.inner.borrow_mut();
        loop {
            let Inner { ring, slots, free } = &mut *inner;
            for cqe in ring.completion() {
                let slot = cqe.user_data() as usize;
                let Some(state) = slots.get_mut(slot) else { continue };
                match std::mem::replace(state, Slot::Free { next: *free }) {
                    Slot::Waiting { waker, keep } => {
                        *state = Slot::Done { result: cqe.result(), _keep: keep };
                        if let Some(w) = waker {
                            w.wake();
                        }
                    }
                    Slot::Orphaned { .. } => *free = slot,
                    other => *state = other,
                }
            }
            // Completions that did not fit the queue wait in the kernel until
            // it is entered again (IORING_FEAT_NODROP): fetch them now.
            if !ring.submission().cq_overflow() {
                break;
            }
            let _ = ring.submit();
        }
        // Entries a failed submit left queued must not wait for new work.
        if !inner.ring.submission().is_empty() {
            self.submit_needed.notify_one();
        }
    }

    fn in_flight(&self) -> bool {
        self.inner.borrow().slots.iter().any(|s| matches!(s, Slot::Waiting { .. } | Slot::Orphaned { .. }))
    }
}

impl Drop for Ring {
    /// Waits for the kernel to finish with every buffer still lent to it
    /// before the buffers and the ring are freed.
    fn drop(&mut self) {
        for _ in 0..10_000 {
            if !self.in_flight() {
                return;
            }
            let waited = self.inner.borrow_mut().ring.submit_and_wait(1);
            self.reap();
            if waited.is_err() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        tracing::error!("io_uring dropped with operations still in flight");
    }
}

/// Reaps completions whenever the eventfd fires, for as long as the ring exists.
async fn complete_forever(ring: Weak<Ring>) {
    while let Some(ring) = ring.upgrade() {
        let Ok(mut guard) = ring.eventfd.readable().await else { return };
        let mut counter = [0u8; 8];
        // SAFETY: reading 8 bytes into an 8-byte buffer from our own eventfd.
        let n = unsafe { libc::read(ring.eventfd.as_raw_fd(), counter.as_mut_ptr().cast(), 8) };
        if n < 0 {
            guard.clear_ready();
        }
        ring.reap();
    }
}

/// Enters the kernel once per wake-up for every queued operation.
async fn submit_forever(ring: Weak<Ring>) {
    while let Some(ring) = ring.upgrade() {
        ring.submit_needed.notified().await;
        if let Err(e) = ring.inner.borrow_mut().ring.submit() {
            // Entries stay queued; the next wake-up retries them.
            tracing::warn!(error = %e, "io_uring submit failed");
        }
    }
}

/// A submitted operation; resolves to its result (bytes moved, or 0).
pub struct Op {
    ring: Rc<Ring>,
    slot: usize,
    error: Option<io::Error>,
}

impl Future for Op {
    type Output = io::Result<usize>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(e) = self.error.take() {
            return Poll::Ready(Err(e));
        }
        let mut inner = self.ring.inner.borrow_mut();
        let free = inner.free;
        let state = &mut inner.slots[self.slot];
        match state {
            Slot::Done { result, .. } => {
                let result = *result;
                *state = Slot::Free { next: free };
                inner.free = self.slot;
                drop(inner);
                self.slot = usize::MAX;
                Poll::Ready(if result < 0 { Err(io::Error::from_raw_os_error(-result)) } else { Ok(result as usize) })
            }
            Slot::Waiting { waker, .. } => {
                *waker = Some(cx.waker().clone());
                Poll::Pending
            }
            _ => Poll::Ready(Err(io::Error::other("io_uring slot in an unexpected state"))),
        }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        if self.slot == usize::MAX {
            return;
        }
        let mut inner = self.ring.inner.borrow_mut();
        let free = inner.free;
        match std::mem::replace(&mut inner.slots[self.slot], Slot::Free { next: free }) {
            // Still in the kernel's hands: keep its buffers until it completes.
            Slot::Waiting { keep, .. } => inner.slots[self.slot] = Slot::Orphaned { _keep: keep },
            _ => inner.free = self.slot,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_local_runtime<F: Future<Output = ()>>(f: impl FnOnce() -> F) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        tokio::task::LocalSet::new().block_on(&rt, f());
    }

    #[test]
    fn writes_reads_and_syncs_through_the_ring() {
        on_local_runtime(|| async {
            let ring = Ring::new().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            let file = Rc::new(File::options().create(true).truncate(true).read(true).write(true).open(&path).unwrap());
            ring.write_all_at(&file, b"hello ".to_vec(), 0).await.unwrap();
            ring.write_all_at(&file, b"world".to_vec(), 6).await.unwrap();
            ring.fdatasync(&file).await.unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
            assert_eq!(ring.read_at(&file, 5, 6).await.unwrap(), b"world");
            assert_eq!(ring.read_at(&file, 100, 6).await.unwrap(), b"world", "short at end of file");
            // Many operations in flight at once, completing in any order.
            let writes: Vec<_> =
                (0..500u64).map(|i| ring.write_all_at(&file, vec![b'a' + (i % 26) as u8; 10], 100 + i * 10)).collect();
            for w in writes {
                w.await.unwrap();
            }
            let back = ring.read_at(&file, 5000, 100).await.unwrap();
            assert!(back.chunks(10).enumerate().all(|(i, c)| c == vec![b'a' + (i % 26) as u8; 10]));
        });
    }

    #[test]
    fn dropped_operations_do_not_free_buffers_early() {
        on_local_runtime(|| async {
            let ring = Ring::new().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let file = Rc::new(File::create(dir.path().join("g")).unwrap());
            for i in 0..100u64 {
                // Poll once so the write is submitted, then abandon it.
                let mut write = Box::pin(ring.write_all_at(&file, vec![1u8; 4096], i * 4096));
                tokio::select! { biased; _ = &mut write => {}, _ = async {} => {} }
                drop(write);
            }
            ring.fdatasync(&file).await.unwrap();
            let bad = Rc::new(File::open(dir.path().join("g")).unwrap());
            assert!(ring.write_all_at(&bad, vec![1], 0).await.is_err(), "errors come back as io::Error");
        });
    }
}
