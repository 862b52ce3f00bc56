//! When the WAL is copied back into the database file, and on which thread.
//!
//! SQLite's default (`wal_autocheckpoint=1000`) checkpoints on the writer thread, inside
//! the `COMMIT` that brought the WAL to 1,000 pages: every write queued behind that
//! commit waits for the copy and its two fsyncs. Here the writer's WAL hook replaces it:
//!
//! - At `background_at` pages (once per WAL generation), the hook wakes the checkpointer
//!   thread, which has its own connection and runs a `PASSIVE` checkpoint while the
//!   writer goes on committing.
//! - At `pages`, the writer checkpoints inline (`PASSIVE`). The background checkpoint
//!   has usually copied most of the log by then, so only the frames written since remain.
//!   This inline checkpoint is what keeps the WAL bounded. A checkpoint lets the next
//!   write start the log again from its beginning only when it has copied every frame,
//!   and a background checkpoint racing the writer rarely manages that.
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
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use rusqlite::Connection;
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;

use crate::worker::{Counters, bump};

/// How long without a commit before the checkpointer copies what is left in the WAL.
pub(crate) const IDLE: Duration = Duration::from_millis(100);

/// When the writer's WAL hook checkpoints, and when it wakes the checkpointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// The writer checkpoints inline once the WAL holds this many pages. `0`: never.
    pub(crate) pages: u32,
    /// The checkpointer is woken when the WAL reaches this many pages; `None`: no
    /// background checkpoints.
    pub(crate) background_at: Option<u32>,
}

impl Policy {
    /// `pages` with a background checkpoint at 7/8 of it (the writer's inline checkpoint
    /// then finds ~1/8 of the log left to copy).
    pub(crate) fn new(pages: u32, background: bool) -> Policy {
        Policy {
            pages,
            background_at: (background && pages > 0).then(|| (pages - pages / 8).max(1)),
        }
    }
}

/// The writer's WAL hook: SQLite calls it after each commit with the WAL's size in pages.
struct Hook {
    policy: Policy,
    wake: Option<Sender<()>>,
    counters: Arc<Counters>,
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
        }
        self.last_pages = pages;
        if self.policy.pages > 0 && pages >= self.policy.pages {
            match wal.checkpoint_v2(CheckpointMode::PASSIVE) {
                Ok(_) => bump(&self.counters.inline_checkpoints, 1),
                // The checkpointer holds the lock: the next commit tries again.
                Err(rusqlite::Error::SqliteFailure(error, _))
                    if error.code == rusqlite::ErrorCode::DatabaseBusy => {}
                Err(error) => tracing::warn!(%error, "sqlite: WAL checkpoint on the writer failed"),
            }
            return;
        }
        if let (Some(at), Some(wake)) = (self.policy.background_at, &self.wake)
            && pages >= at
            && !self.woken
        {
            self.woken = true;
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
) -> rusqlite::Result<()> {
    let mut hook = Hook {
        policy,
        wake,
        counters,
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

/// The checkpointer thread's loop: a `PASSIVE` checkpoint per wake-up, and one when the
/// writer has committed since the last checkpoint but not for [`IDLE`]; ends when the
/// writer connection's hook (the only sender) is gone.
pub(crate) fn checkpointer_loop(conn: Connection, wake: Receiver<()>, counters: Arc<Counters>) {
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
        at_checkpoint = commits();
        at_tick = at_checkpoint;
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(0)
        }) {
            Ok(0) => bump(&counters.background_checkpoints, 1),
            // 1: another checkpoint (the writer's) held the lock.
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "sqlite: background WAL checkpoint failed"),
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
}
