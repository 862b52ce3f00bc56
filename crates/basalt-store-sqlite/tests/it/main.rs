//! Integration tests of the SQLite backend: the shared conformance suite (on a file
//! database with reader threads, and in memory) plus SQLite-only checks.

mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use basalt_store::Store;
use basalt_store::suite::Harness;
use basalt_store_sqlite::{SqliteOptions, SqliteStore};

/// A directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let name = format!(
            "basalt-sqlite-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh store over a file in its own temp dir.
pub(crate) struct Fresh {
    pub(crate) store: Arc<SqliteStore>,
    pub(crate) dir: TempDir,
}

impl Fresh {
    pub(crate) fn with(options: SqliteOptions) -> Fresh {
        let dir = TempDir::new();
        let store =
            SqliteStore::open(&dir.path().join("data.db"), options).expect("open sqlite store");
        Fresh {
            store: Arc::new(store),
            dir,
        }
    }
}

impl Harness for Fresh {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        self.store.close();
    }
}

fn fresh() -> Fresh {
    Fresh::with(SqliteOptions::default())
}

basalt_store::conformance_tests!(fresh);

mod in_memory {
    use super::*;

    struct Memory(Arc<SqliteStore>);

    impl Harness for Memory {
        fn store(&self) -> Arc<dyn Store> {
            self.0.clone()
        }
    }

    fn fresh() -> Memory {
        Memory(Arc::new(
            SqliteStore::open_in_memory(SqliteOptions::default()).expect("open in-memory store"),
        ))
    }

    basalt_store::conformance_tests!(fresh);
}
