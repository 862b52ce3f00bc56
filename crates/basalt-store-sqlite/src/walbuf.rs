//! A VFS over SQLite's default one that gathers the writes to a WAL file and hands them to
//! the OS as one `pwrite` per commit instead of two per page.
//!
//! SQLite appends a commit to the WAL as a 24-byte frame header and a page, each its own
//! `write` system call: a group commit of ~40 pages made ~80 calls, a third of the writer
//! thread's time. Here the writes that follow each other in the file are kept in a buffer
//! and written at once (in writes of at most [`CHUNK`] bytes) before anything else happens
//! to that file: `xSync`, `xRead`,
//! `xTruncate`, `xFileSize`, `xFileControl`, `xClose`, a write that does not continue the
//! buffer, or the buffer reaching [`FLUSH_AT`].
//!
//! Why that is safe: other connections find WAL frames through the shared WAL index, which
//! SQLite updates only after a commit's frames are written *and* (with
//! `synchronous=FULL`) after `xSync` on the WAL, which flushes the buffer first. So no
//! connection can be told about a frame that is still in the buffer, and a commit is on
//! stable storage when it returns, as without this layer. Frames of a transaction that is
//! not committed yet (a spilled page cache) are read back only through this same file,
//! whose `xRead` flushes first. With `synchronous=NORMAL` there is no `xSync` at commit,
//! so the store uses this VFS only at FULL (see `lib.rs`).
//!
//! A flush that fails returns the OS error from the method that asked for it (usually
//! `xSync`, so the commit fails and SQLite rolls it back); the buffered bytes are dropped,
//! as they belong to frames SQLite will write again.
//!
//! Files other than WAL files are opened by the default VFS itself, untouched.
//!
//! This module is the only unsafe code of the workspace: it implements SQLite's C VFS
//! interface (`sqlite3_vfs`, `sqlite3_io_methods`) through `rusqlite::ffi`.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_void};
use std::mem::size_of;
use std::ptr;
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name the VFS is registered under.
pub(crate) const NAME: &str = "basalt-walbuf";
const NAME_C: &CStr = c"basalt-walbuf";

/// A buffer this large is written out without waiting for the commit (large transactions,
/// migrations): memory stays bounded and the writes stay large.
pub(crate) const FLUSH_AT: usize = 1 << 20;

/// The most one call to the default VFS's `xWrite` may carry: the unix VFS masks the
/// length of a write with `0x1ffff` (so a 128 KiB write would write nothing and report a
/// full disk). 124 KiB: 31 pages of 4 KiB.
const CHUNK: usize = 31 * 4096;

/// Registers the VFS once per process (not as the default). Returns whether it is usable.
pub(crate) fn register() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        // SAFETY: sqlite3_vfs_find initialises SQLite if needed and returns the default
        // VFS, which lives for the whole process. The VFS we register is leaked, so it
        // outlives every connection, as sqlite3_vfs_register requires.
        unsafe {
            let root = ffi::sqlite3_vfs_find(ptr::null());
            if root.is_null() {
                tracing::warn!("sqlite: no default VFS; WAL writes are not gathered");
                return false;
            }
            let vfs = ffi::sqlite3_vfs {
                iVersion: 2,
                szOsFile: REAL_OFFSET as c_int + (*root).szOsFile,
                mxPathname: (*root).mxPathname,
                pNext: ptr::null_mut(),
                zName: NAME_C.as_ptr(),
                pAppData: root.cast(),
                xOpen: Some(vfs_open),
                xDelete: Some(vfs_delete),
                xAccess: Some(vfs_access),
                xFullPathname: Some(vfs_full_pathname),
                xDlOpen: Some(vfs_dl_open),
                xDlError: Some(vfs_dl_error),
                xDlSym: Some(vfs_dl_sym),
                xDlClose: Some(vfs_dl_close),
                xRandomness: Some(vfs_randomness),
                xSleep: Some(vfs_sleep),
                xCurrentTime: Some(vfs_current_time),
                xGetLastError: Some(vfs_get_last_error),
                xCurrentTimeInt64: Some(vfs_current_time_int64),
                xSetSystemCall: None,
                xGetSystemCall: None,
                xNextSystemCall: None,
            };
            let rc = ffi::sqlite3_vfs_register(Box::leak(Box::new(vfs)), 0);
            if rc != ffi::SQLITE_OK {
                tracing::warn!(rc, "sqlite: cannot register the WAL write buffer VFS");
            }
            rc == ffi::SQLITE_OK
        }
    })
}

/// Our part of a WAL file handle. SQLite allocates `szOsFile` bytes: this header, then the
/// default VFS's own file structure at [`REAL_OFFSET`].
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    pending: *mut Pending,
}

/// Bytes written but not yet handed to the OS: `data` belongs at file offset `start`.
struct Pending {
    start: i64,
    data: Vec<u8>,
    /// Writes SQLite asked for, and writes handed to the OS (read by the tests).
    asked: u64,
    issued: u64,
}

/// Where the default VFS's file structure starts (8-byte aligned, as SQLite's allocations).
const REAL_OFFSET: usize = size_of::<File>().div_ceil(8) * 8;

/// The default VFS (stored in our VFS's `pAppData`).
unsafe fn root_of(vfs: *mut ffi::sqlite3_vfs) -> *mut ffi::sqlite3_vfs {
    // SAFETY: the caller passes our registered VFS, whose pAppData is the default VFS.
    unsafe { (*vfs).pAppData.cast() }
}

/// The default VFS's file inside one of our file handles.
unsafe fn real_of(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    // SAFETY: the handle was allocated with szOsFile = REAL_OFFSET + the default size.
    unsafe { file.cast::<u8>().add(REAL_OFFSET).cast() }
}

/// The default VFS's method table of the real file.
unsafe fn methods(real: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    // SAFETY: the real file was opened successfully, so pMethods is set and static.
    unsafe { &*(*real).pMethods }
}

/// Writes the buffer out; an empty buffer is a no-op.
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: file is one of our WAL handles, opened by vfs_open (pending is valid).
    unsafe {
        let pending = &mut *(*file.cast::<File>()).pending;
        if pending.data.is_empty() {
            return ffi::SQLITE_OK;
        }
        let real = real_of(file);
        let Some(write) = methods(real).xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let mut rc = ffi::SQLITE_OK;
        let mut offset = pending.start;
        for chunk in pending.data.chunks(CHUNK) {
            // CHUNK is far below c_int::MAX.
            rc = write(real, chunk.as_ptr().cast(), chunk.len() as c_int, offset);
            pending.issued += 1;
            if rc != ffi::SQLITE_OK {
                break;
            }
            offset += chunk.len() as i64;
        }
        pending.data.clear();
        rc
    }
}

unsafe extern "C" fn vfs_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite calls xOpen with our VFS and a zeroed handle of szOsFile bytes.
    unsafe {
        let root = root_of(vfs);
        let Some(open) = (*root).xOpen else {
            return ffi::SQLITE_CANTOPEN;
        };
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            // Not a WAL file: the default VFS's handle, in the front of the space.
            return open(root, name, file, flags, out_flags);
        }
        let ours = file.cast::<File>();
        (*ours).base.pMethods = ptr::null();
        (*ours).pending = ptr::null_mut();
        let real = real_of(file);
        let rc = open(root, name, real, flags, out_flags);
        if (*real).pMethods.is_null() {
            return if rc == ffi::SQLITE_OK {
                ffi::SQLITE_CANTOPEN
            } else {
                rc
            };
        }
        // A real file with methods is closed through us even if the open failed.
        (*ours).pending = Box::into_raw(Box::new(Pending {
            start: 0,
            data: Vec::new(),
            asked: 0,
            issued: 0,
        }));
        (*ours).base.pMethods = &IO_METHODS;
        rc
    }
}

static IO_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(io_close),
    xRead: Some(io_read),
    xWrite: Some(io_write),
    xTruncate: Some(io_truncate),
    xSync: Some(io_sync),
    xFileSize: Some(io_file_size),
    xLock: Some(io_lock),
    xUnlock: Some(io_unlock),
    xCheckReservedLock: Some(io_check_reserved_lock),
    xFileControl: Some(io_file_control),
    xSectorSize: Some(io_sector_size),
    xDeviceCharacteristics: Some(io_device_characteristics),
    xShmMap: Some(io_shm_map),
    xShmLock: Some(io_shm_lock),
    xShmBarrier: Some(io_shm_barrier),
    xShmUnmap: Some(io_shm_unmap),
    xFetch: Some(io_fetch),
    xUnfetch: Some(io_unfetch),
};

/// Calls the real file's method `$m`, or returns `$missing` when it has none.
macro_rules! forward {
    ($file:expr, $m:ident, $missing:expr $(, $arg:expr)*) => {{
        let real = real_of($file);
        match methods(real).$m {
            Some(method) => method(real $(, $arg)*),
            None => $missing,
        }
    }};
}

unsafe extern "C" fn io_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes each handle once; pending was made by Box::into_raw.
    unsafe {
        let flushed = flush(file);
        let closed = forward!(file, xClose, ffi::SQLITE_OK);
        let ours = file.cast::<File>();
        drop(Box::from_raw((*ours).pending));
        (*ours).pending = ptr::null_mut();
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            closed
        }
    }
}

unsafe extern "C" fn io_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: our WAL handle; arguments passed through as SQLite gave them.
    unsafe {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        forward!(file, xRead, ffi::SQLITE_IOERR_READ, buf, amount, offset)
    }
}

unsafe extern "C" fn io_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: our WAL handle; buf holds `amount` bytes (SQLite's contract for xWrite).
    // Each borrow of the buffer ends before flush borrows it again.
    unsafe {
        let Ok(len) = usize::try_from(amount) else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let pending = (*file.cast::<File>()).pending;
        let breaks = {
            let p = &*pending;
            !p.data.is_empty() && p.start + p.data.len() as i64 != offset
        };
        if breaks {
            let rc = flush(file);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        let full = {
            let p = &mut *pending;
            p.asked += 1;
            if p.data.is_empty() {
                p.start = offset;
            }
            p.data
                .extend_from_slice(std::slice::from_raw_parts(buf.cast::<u8>(), len));
            p.data.len() >= FLUSH_AT
        };
        if full {
            return flush(file);
        }
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn io_truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    // SAFETY: our WAL handle.
    unsafe {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        forward!(file, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, size)
    }
}

unsafe extern "C" fn io_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: our WAL handle.
    unsafe {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        forward!(file, xSync, ffi::SQLITE_IOERR_FSYNC, flags)
    }
}

unsafe extern "C" fn io_file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    // SAFETY: our WAL handle; size is SQLite's out pointer.
    unsafe {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        forward!(file, xFileSize, ffi::SQLITE_IOERR_FSTAT, size)
    }
}

unsafe extern "C" fn io_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: our WAL handle.
    unsafe { forward!(file, xLock, ffi::SQLITE_OK, level) }
}

unsafe extern "C" fn io_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: our WAL handle.
    unsafe { forward!(file, xUnlock, ffi::SQLITE_OK, level) }
}

unsafe extern "C" fn io_check_reserved_lock(
    file: *mut ffi::sqlite3_file,
    out: *mut c_int,
) -> c_int {
    // SAFETY: our WAL handle; out is SQLite's out pointer.
    unsafe { forward!(file, xCheckReservedLock, ffi::SQLITE_OK, out) }
}

unsafe extern "C" fn io_file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: our WAL handle; op and arg passed through.
    unsafe {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        forward!(file, xFileControl, ffi::SQLITE_NOTFOUND, op, arg)
    }
}

unsafe extern "C" fn io_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: our WAL handle.
    unsafe { forward!(file, xSectorSize, 4096) }
}

unsafe extern "C" fn io_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: our WAL handle.
    unsafe { forward!(file, xDeviceCharacteristics, 0) }
}

unsafe extern "C" fn io_shm_map(
    file: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: our WAL handle; arguments passed through.
    unsafe {
        forward!(
            file,
            xShmMap,
            ffi::SQLITE_IOERR_SHMMAP,
            region,
            size,
            extend,
            out
        )
    }
}

unsafe extern "C" fn io_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: our WAL handle; arguments passed through.
    unsafe { forward!(file, xShmLock, ffi::SQLITE_IOERR_SHMLOCK, offset, n, flags) }
}

unsafe extern "C" fn io_shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: our WAL handle.
    unsafe { forward!(file, xShmBarrier, ()) }
}

unsafe extern "C" fn io_shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    // SAFETY: our WAL handle.
    unsafe { forward!(file, xShmUnmap, ffi::SQLITE_OK, delete) }
}

unsafe extern "C" fn io_fetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: our WAL handle; a mapping must see every write, so the buffer goes first.
    unsafe {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        if methods(real_of(file)).xFetch.is_none() {
            *out = ptr::null_mut();
            return ffi::SQLITE_OK;
        }
        forward!(file, xFetch, ffi::SQLITE_OK, offset, amount, out)
    }
}

unsafe extern "C" fn io_unfetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    page: *mut c_void,
) -> c_int {
    // SAFETY: our WAL handle.
    unsafe { forward!(file, xUnfetch, ffi::SQLITE_OK, offset, page) }
}

// The VFS methods other than xOpen go to the default VFS unchanged.

unsafe extern "C" fn vfs_delete(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    sync_dir: c_int,
) -> c_int {
    // SAFETY: our VFS; the default VFS has every version-1 method.
    unsafe {
        let root = root_of(vfs);
        (*root)
            .xDelete
            .map_or(ffi::SQLITE_IOERR_DELETE, |f| f(root, name, sync_dir))
    }
}

unsafe extern "C" fn vfs_access(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    flags: c_int,
    out: *mut c_int,
) -> c_int {
    // SAFETY: our VFS.
    unsafe {
        let root = root_of(vfs);
        (*root)
            .xAccess
            .map_or(ffi::SQLITE_IOERR_ACCESS, |f| f(root, name, flags, out))
    }
}

unsafe extern "C" fn vfs_full_pathname(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: our VFS.
    unsafe {
        let root = root_of(vfs);
        (*root)
            .xFullPathname
            .map_or(ffi::SQLITE_CANTOPEN, |f| f(root, name, n, out))
    }
}

unsafe extern "C" fn vfs_dl_open(vfs: *mut ffi::sqlite3_vfs, name: *const c_char) -> *mut c_void {
    // SAFETY: our VFS.
    unsafe {
        let root = root_of(vfs);
        (*root).xDlOpen.map_or(ptr::null_mut(), |f| f(root, name))
    }
}

unsafe extern "C" fn vfs_dl_error(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) {
    // SAFETY: our VFS.
    unsafe {
        let root = root_of(vfs);
        if let Some(f) = (*root).xDlError {
            f(root, n, out);
        }
    }
}

type DlSym = unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char);

unsafe extern "C" fn vfs_dl_sym(
    vfs: *mut ffi::sqlite3_vfs,
    handle: *mut c_void,
    symbol: *const c_char,
) -> Option<DlSym> {
    // SAFETY: our VFS.
    unsafe {
        let root = root_of(vfs);
        (*root).xDlSym.and_then(|f| f(root, handle, symbol))
    }
}

unsafe extern "C" fn vfs_dl_close(vfs: *mut ffi::sqlite3_vfs, handle: *mut c_void) {
    // SAFETY: our VFS.
    unsafe {
        let root = root_of(vfs);
        if let Some(f) = (*root).xDlClose {
            f(root, handle);
        }
    }
}

unsafe extern "C" fn vfs_randomness(
    vfs: *mut ffi::sqlite3_vfs,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: our VFS.
    unsafe {
        let root = root_of(vfs);
        (*root).xRandomness.map_or(0, |f| f(root, n, out))
    }
}

unsafe extern "C" fn vfs_sleep(vfs: *mut ffi::sqlite3_vfs, micros: c_int) -> c_int {
    // SAFETY: our VFS.
    unsafe {
        let root = root_of(vfs);
        (*root).xSleep.map_or(0, |f| f(root, micros))
    }
}

unsafe extern "C" fn vfs_current_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    // SAFETY: our VFS.
    unsafe {
        let root = root_of(vfs);
        (*root)
            .xCurrentTime
            .map_or(ffi::SQLITE_ERROR, |f| f(root, out))
    }
}

unsafe extern "C" fn vfs_get_last_error(
    vfs: *mut ffi::sqlite3_vfs,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: our VFS.
    unsafe {
        let root = root_of(vfs);
        (*root).xGetLastError.map_or(0, |f| f(root, n, out))
    }
}

unsafe extern "C" fn vfs_current_time_int64(vfs: *mut ffi::sqlite3_vfs, out: *mut i64) -> c_int {
    // SAFETY: our VFS.
    unsafe {
        let root = root_of(vfs);
        if (*root).iVersion >= 2
            && let Some(f) = (*root).xCurrentTimeInt64
        {
            return f(root, out);
        }
        let mut days = 0.0f64;
        let rc = vfs_current_time(vfs, &mut days);
        *out = (days * 86_400_000.0) as i64;
        rc
    }
}

/// For the tests: `(writes SQLite asked for, writes issued to the OS)` on the WAL file of
/// `conn`'s main database, or `None` when that file is not gathered by this VFS (another
/// VFS, or no WAL open yet).
#[cfg(test)]
pub(crate) fn counters(conn: &rusqlite::Connection) -> Option<(u64, u64)> {
    let mut wal: *mut ffi::sqlite3_file = ptr::null_mut();
    // SAFETY: SQLITE_FCNTL_JOURNAL_POINTER stores the pager's journal (in WAL mode: WAL)
    // file pointer, valid while the connection is open and used on this thread only.
    unsafe {
        let rc = ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_JOURNAL_POINTER,
            (&raw mut wal).cast(),
        );
        if rc != ffi::SQLITE_OK || wal.is_null() || !ptr::eq((*wal).pMethods, &IO_METHODS) {
            return None;
        }
        let pending = &*(*wal.cast::<File>()).pending;
        Some((pending.asked, pending.issued))
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, OpenFlags, params};

    use super::*;

    struct Db {
        _dir: std::path::PathBuf,
        path: std::path::PathBuf,
    }

    impl Drop for Db {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self._dir);
        }
    }

    fn temp_db(name: &str) -> Db {
        let dir = std::env::temp_dir().join(format!("basalt-walbuf-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("t.db");
        Db { _dir: dir, path }
    }

    fn open(path: &std::path::Path, gathered: bool, cache_kib: i64) -> Connection {
        assert!(register(), "the VFS registers");
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let conn = if gathered {
            Connection::open_with_flags_and_vfs(path, flags, NAME)
        } else {
            Connection::open_with_flags(path, flags)
        }
        .expect("open");
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .expect("wal");
        assert_eq!(mode, "wal");
        conn.pragma_update(None, "synchronous", "FULL")
            .expect("sync");
        conn.pragma_update(None, "cache_size", -cache_kib)
            .expect("cache");
        conn
    }

    fn body(i: i64) -> String {
        format!("{i:08}-").repeat(60)
    }

    fn check_rows(conn: &Connection, n: i64) {
        let (count, sum): (i64, i64) = conn
            .query_row(
                "SELECT count(*), coalesce(sum(length(body)), 0) FROM t",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("count");
        assert_eq!((count, sum), (n, n * 540));
        let bad: i64 = conn
            .query_row(
                "SELECT count(*) FROM t WHERE body != printf('%08d-', id) || substr(body, 10)",
                [],
                |r| r.get(0),
            )
            .expect("bodies");
        assert_eq!(bad, 0, "every body is the one written");
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity");
        assert_eq!(ok, "ok");
    }

    #[test]
    fn a_commit_of_many_pages_is_one_write_and_other_connections_see_it() {
        let db = temp_db("commit");
        let conn = open(&db.path, true, 16 * 1024);
        let reader = open(&db.path, false, 16 * 1024);
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
            .expect("ddl");
        let (asked0, issued0) = counters(&conn).expect("the WAL file is gathered");
        let tx = conn.unchecked_transaction().expect("begin");
        for i in 0..100 {
            tx.execute("INSERT INTO t VALUES (?1, ?2)", params![i, body(i)])
                .expect("insert");
        }
        tx.commit().expect("commit");
        let (asked, issued) = counters(&conn).expect("counters");
        // ~15 pages of rows: a header and a page per frame asked, one write issued.
        assert!(
            asked - asked0 >= 26,
            "SQLite asked for {} writes",
            asked - asked0
        );
        assert_eq!(
            issued - issued0,
            1,
            "the commit's frames went out as one write"
        );
        // A commit of ~80 pages (more than two CHUNKs) goes out in writes of <= CHUNK.
        let tx = conn.unchecked_transaction().expect("begin");
        for i in 100..700 {
            tx.execute("INSERT INTO t VALUES (?1, ?2)", params![i, body(i)])
                .expect("insert");
        }
        tx.commit().expect("commit");
        let (asked2, issued2) = counters(&conn).expect("counters");
        assert!(
            asked2 - asked >= 150,
            "SQLite asked for {} writes",
            asked2 - asked
        );
        assert!(
            (3..=4).contains(&(issued2 - issued)),
            "{} writes for ~330 KB",
            issued2 - issued
        );
        check_rows(&reader, 700);
        check_rows(&conn, 700);
    }

    #[test]
    fn a_connection_on_the_default_vfs_is_not_gathered() {
        let db = temp_db("plain");
        let conn = open(&db.path, false, 1024);
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
            .expect("ddl");
        assert_eq!(counters(&conn), None);
    }

    #[test]
    fn a_transaction_larger_than_the_buffer_and_the_cache_spills_and_reads_back() {
        // A 64 KiB page cache makes SQLite spill uncommitted pages to the WAL, read them
        // back and write some frames again (writes that do not continue the buffer); the
        // transaction's ~3 MB also pass FLUSH_AT several times.
        let db = temp_db("spill");
        let conn = open(&db.path, true, 64);
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT); CREATE INDEX t_body ON t (body)",
        )
        .expect("ddl");
        let n = 3000;
        let tx = conn.unchecked_transaction().expect("begin");
        for i in 0..n {
            // ids in a scattered order, so pages are revisited after they spilled
            let id = (i * 7919) % n;
            tx.execute("INSERT INTO t VALUES (?1, ?2)", params![id, body(id)])
                .expect("insert");
        }
        let (asked, issued) = counters(&tx).expect("counters");
        // Each spilled page is read back soon after it is written, so little is gathered
        // here; what matters is that every byte reaches the file in order.
        assert!(
            issued >= 2 && issued < asked,
            "{asked} asked, {issued} issued"
        );
        tx.commit().expect("commit");
        drop(conn);
        // A fresh connection on the default VFS reads what the WAL (or the checkpoint at
        // close) left.
        let plain = open(&db.path, false, 1024);
        check_rows(&plain, n);
    }

    #[test]
    fn a_rolled_back_transaction_leaves_nothing() {
        let db = temp_db("rollback");
        let conn = open(&db.path, true, 64);
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
            .expect("ddl");
        conn.execute("INSERT INTO t VALUES (1, ?1)", params![body(1)])
            .expect("one row");
        let tx = conn.unchecked_transaction().expect("begin");
        for i in 2..2000 {
            tx.execute("INSERT INTO t VALUES (?1, ?2)", params![i, body(i)])
                .expect("insert");
        }
        tx.rollback().expect("rollback");
        conn.execute("INSERT INTO t VALUES (2, ?1)", params![body(2)])
            .expect("after the rollback");
        let reader = open(&db.path, false, 1024);
        check_rows(&reader, 2);
        check_rows(&conn, 2);
    }
}
