//! When the WAL is copied back into the database file, and on which thread.
//!
//! SQLite's default (`wal_autocheckpoint=1000`) checkpoints on the writer thread, inside
//! the `COMMIT` that brought the WAL to 1,000 pages: every write queued behind that
//! commit waits for the copy and its two fsyncs. Here the writer's WAL hook replaces it:
//!
//! - At `background_at` pages (7/8 of `pages`), the hook wakes the checkpointer thread,
//!   which has its own connection and runs `PASSIVE` checkpoints while the writer goes on
//!   committing. Each pass copies what was committed before it started, so it runs passes
//!   until one leaves at most [`CAUGHT_UP`] frames behind (each pass is shorter than the
//!   one before, since fewer frames arrived meanwhile), or [`MAX_PASSES`] of them.
//! - From `pages` on, the writer checkpoints inline (`PASSIVE`) once the checkpointer's
//!   last pass is at most [`INLINE_AT`] frames behind the log, and at `hard_pages` in any
//!   case. Until then it wakes the checkpointer at every commit. This inline checkpoint
//!   is what keeps the WAL bounded: a checkpoint lets the next write start the log again
//!   from its beginning only when it has copied every frame, and a background checkpoint
//!   racing the writer rarely manages that. It holds up every write queued behind it.
//!   Under random updates a single background pass left ~500 frames to it and it took
//!   15-20 ms every time; after the checkpointer caught up (20-130 frames left) 4 in 5
//!   took under 5 ms. The rest still took ~15 ms in its fsync of the database file for
//!   reasons not found (not SQLite's same-size truncate before it: skipping that changed
//!   nothing).
//! - If the checkpointer holds the checkpoint lock at that moment, `PASSIVE` gives up at
//!   once (no busy wait) and the next commit tries again.
//! - When commits stop (none for [`IDLE`]) with frames not yet copied, the checkpointer
//!   copies them. A fully copied WAL is skipped by readers, which then read the database
//!   file through their mmap instead of looking pages up in the WAL: a count over 10k rows
//!   left in the WAL by their inserts took twice the CPU.
//!
//! A WAL of 4,000 pages instead of 1,000 also means a page rewritten by many commits is
//! copied once, not four times. See `ARCHITECTURE.md` and BENCHMARKS.md for the
//! measurements behind the defaults.
//!
//! Safety does not depend on any of this: checkpoints are SQLite's own, run by SQLite on
//! either connection (the bundled SQLite has the 3.51.3 fix for a checkpoint on one
//! connection racing a WAL reset on another).

use std::ffi::c_int;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use rusqlite::Connection;
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;

use crate::worker::{Counters, bump};

/// How long without a commit before the checkpointer copies what is left in the WAL.
pub(crate) const IDLE: Duration = Duration::from_millis(100);

/// The checkpointer stops its passes once the last one left at most this many frames.
pub(crate) const CAUGHT_UP: u32 = 64;

/// The writer's inline checkpoint waits (up to `hard_pages`) until the checkpointer's last
/// pass is at most this many frames behind the log.
pub(crate) const INLINE_AT: u32 = 2 * CAUGHT_UP;

/// Passes per wake-up at most: a writer that commits faster than the checkpointer copies
/// never lets it catch up.
pub(crate) const MAX_PASSES: u32 = 16;

/// How far the checkpointer has copied the current WAL, in frames: written by the
/// checkpointer after each pass, reset by the writer's hook when the log restarts. Only
/// a hint for when to checkpoint inline: a stale value changes timing, not safety.
pub(crate) type Copied = Arc<AtomicU32>;

/// When the writer's WAL hook checkpoints, and when it wakes the checkpointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// From this many pages in the WAL the writer checkpoints inline, as soon as the
    /// checkpointer has caught up. `0`: never.
    pub(crate) pages: u32,
    /// The writer checkpoints inline at this many pages whether or not the checkpointer
    /// has caught up (1.5x `pages`).
    pub(crate) hard_pages: u32,
    /// The checkpointer is woken when the WAL reaches this many pages; `None`: no
    /// background checkpoints.
    pub(crate) background_at: Option<u32>,
}

impl Policy {
    /// `pages` with background checkpoints from 7/8 of it, and the hard limit at 1.5x.
    pub(crate) fn new(pages: u32, background: bool) -> Policy {
        Policy {
            pages,
            hard_pages: pages.saturating_add(pages / 2),
            background_at: (background && pages > 0).then(|| (pages - pages / 8).max(1)),
        }
    }

    /// Whether the writer, with `pages` in the WAL (at least `self.pages`), checkpoints now.
    /// `copied`: how far the checkpointer has copied the log, `None` without one.
    fn inline_now(&self, pages: u32, copied: Option<u32>) -> bool {
        match copied {
            None => true,
            Some(copied) => pages >= self.hard_pages || pages.saturating_sub(copied) <= INLINE_AT,
        }
    }
}

/// The writer's WAL hook: SQLite calls it after each commit with the WAL's size in pages.
struct Hook {
    policy: Policy,
    wake: Option<Sender<()>>,
    counters: Arc<Counters>,
    copied: Copied,
    /// The WAL size at the previous commit: a smaller one means the log restarted.
    last_pages: u32,
    woken: bool,
}

impl Hook {
    fn after_commit(&mut self, wal: &mut Wal, pages: c_int) {
        bump(&self.counters.wal_commits, 1);
        let pages = u32::try_from(pages).unwrap_or(0);
        if pages < self.last_pages {
            self.woken = false;
            self.copied.store(0, Ordering::Relaxed);
        }
        self.last_pages = pages;
        if self.policy.pages > 0 && pages >= self.policy.pages {
            let copied = self
                .wake
                .as_ref()
                .map(|_| self.copied.load(Ordering::Relaxed));
            if !self.policy.inline_now(pages, copied) {
                self.wake_checkpointer();
                return;
            }
            match wal.checkpoint_v2(CheckpointMode::PASSIVE) {
                Ok(_) => bump(&self.counters.inline_checkpoints, 1),
                // The checkpointer holds the lock: the next commit tries again.
                Err(rusqlite::Error::SqliteFailure(error, _))
                    if error.code == rusqlite::ErrorCode::DatabaseBusy => {}
                Err(error) => tracing::warn!(%error, "sqlite: WAL checkpoint on the writer failed"),
            }
            return;
        }
        if let Some(at) = self.policy.background_at
            && pages >= at
            && !self.woken
        {
            self.woken = true;
            self.wake_checkpointer();
        }
    }

    fn wake_checkpointer(&mut self) {
        if let Some(wake) = &self.wake {
            match wake.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) => {}
                Err(TrySendError::Disconnected(())) => self.wake = None,
            }
        }
    }
}

/// Installs the checkpoint policy on the writer connection (replacing SQLite's
/// autocheckpoint). `wake` reaches the checkpointer thread, if there is one.
pub(crate) fn install(
    writer: &mut Connection,
    policy: Policy,
    wake: Option<Sender<()>>,
    counters: Arc<Counters>,
    copied: Copied,
) -> rusqlite::Result<()> {
    let mut hook = Hook {
        policy,
        wake,
        counters,
        copied,
        last_pages: 0,
        woken: false,
    };
    writer.wal_hook(Some(move |wal: &mut Wal, pages: c_int| {
        hook.after_commit(wal, pages);
        // An error here would make the COMMIT report it although it has happened.
        Ok(())
    }))
}

/// Removes the hook, which drops the checkpointer's wake-up sender: the checkpointer
/// thread then ends.
pub(crate) fn uninstall(writer: &mut Connection) {
    if let Err(error) = writer.wal_hook(None::<fn(&mut Wal, c_int) -> rusqlite::Result<()>>) {
        tracing::warn!(%error, "sqlite: cannot remove the WAL hook");
    }
}

/// The checkpointer thread's loop: `PASSIVE` passes until it has caught up with the
/// writer, per wake-up and when the writer has committed since the last checkpoint but
/// not for [`IDLE`] (then the first pass usually copies everything). Ends when the writer
/// connection's hook (the only sender) is gone.
pub(crate) fn checkpointer_loop(
    conn: Connection,
    wake: Receiver<()>,
    counters: Arc<Counters>,
    copied: Copied,
) {
    let commits = || counters.wal_commits.load(Ordering::Relaxed);
    // Commits seen at the last checkpoint and at the last tick.
    let mut at_checkpoint = commits();
    let mut at_tick = at_checkpoint;
    loop {
        match wake.recv_timeout(IDLE) {
            Ok(()) => {}
            Err(RecvTimeoutError::Timeout) => {
                let now = commits();
                let quiet = now == at_tick;
                at_tick = now;
                if !quiet || now == at_checkpoint {
                    continue;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
        for _ in 0..MAX_PASSES {
            at_checkpoint = commits();
            at_tick = at_checkpoint;
            let Some((log, done)) = pass(&conn, &counters) else {
                break;
            };
            copied.store(done, Ordering::Relaxed);
            if log.saturating_sub(done) <= CAUGHT_UP {
                break;
            }
        }
    }
}

/// One `PASSIVE` checkpoint: the WAL's frames and how many of them are copied, or `None`
/// when another checkpoint (the writer's) held the lock or it failed.
fn pass(conn: &Connection, counters: &Counters) -> Option<(u32, u32)> {
    let frames = |n: i64| u32::try_from(n).unwrap_or(0);
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
        ))
    }) {
        Ok((0, log, done)) => {
            bump(&counters.background_checkpoints, 1);
            Some((frames(log), frames(done)))
        }
        // 1: another checkpoint (the writer's) held the lock.
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(%error, "sqlite: background WAL checkpoint failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_checkpoints_start_at_seven_eighths_of_the_limit() {
        assert_eq!(Policy::new(4000, true).background_at, Some(3500));
        assert_eq!(Policy::new(8, true).background_at, Some(7));
        assert_eq!(Policy::new(1, true).background_at, Some(1));
        assert_eq!(Policy::new(4000, false).background_at, None);
        assert_eq!(Policy::new(0, true).background_at, None);
    }

    #[test]
    fn the_hard_limit_is_one_and_a_half_times_the_limit() {
        assert_eq!(Policy::new(4000, true).hard_pages, 6000);
        assert_eq!(Policy::new(64, true).hard_pages, 96);
        assert_eq!(Policy::new(u32::MAX, true).hard_pages, u32::MAX);
    }

    #[test]
    fn the_writer_checkpoints_once_the_checkpointer_is_close_enough_or_at_the_hard_limit() {
        let policy = Policy::new(4000, true);
        // Caught up: at most INLINE_AT frames behind.
        assert!(policy.inline_now(4000, Some(4000 - INLINE_AT)));
        assert!(!policy.inline_now(4000, Some(4000 - INLINE_AT - 1)));
        assert!(policy.inline_now(4500, Some(4500 - INLINE_AT)));
        // A stale count from the previous log (larger than the log) counts as caught up.
        assert!(policy.inline_now(4000, Some(5000)));
        // The hard limit, however far behind.
        assert!(!policy.inline_now(5999, Some(0)));
        assert!(policy.inline_now(6000, Some(0)));
        // Without a checkpointer the writer does it all, at the limit.
        assert!(policy.inline_now(4000, None));
    }
}
