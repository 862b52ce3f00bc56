//! `App`: the service façade the HTTP layer and the CLI call.

use std::sync::Arc;

use basalt_schema::{
    Collection, EXTERNAL_AUTHS_ID, default_external_auths, default_superusers, default_users,
    format_datetime, now_datetime,
};
use basalt_sql::{authflow, ddl};
use basalt_store::{Conn, Store};
use parking_lot::RwLock;
use serde_json::Value as Json;
use tokio::sync::Semaphore;

use crate::error::CoreError;
use crate::schema::{self, Schema};
use crate::settings;

/// Options fixed at start-up.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// How many bcrypt hashes may run at once (protects other requests from login bursts).
    pub max_concurrent_hashes: usize,
    /// Realtime limits and timeouts.
    pub realtime: crate::realtime::RealtimeConfig,
    /// Where uploaded files are kept (`<data dir>/storage`); `None` refuses uploads.
    pub storage_dir: Option<std::path::PathBuf>,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            max_concurrent_hashes: 2,
            realtime: crate::realtime::RealtimeConfig::default(),
            storage_dir: None,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) schema: RwLock<Arc<Schema>>,
    pub(crate) settings: RwLock<Arc<Json>>,
    pub(crate) hashing: Semaphore,
    pub(crate) rules: crate::rules::RuleCache,
    pub(crate) realtime: crate::realtime::Broker,
    /// The storage in use (see [`App::files`]).
    pub(crate) files: RwLock<Option<basalt_files::Storage>>,
    /// The local folder storage, used when S3 is not enabled.
    pub(crate) local_files: Option<basalt_files::Storage>,
    /// Bounds concurrent thumb generation.
    pub(crate) thumbs: Semaphore,
    /// The other nodes on the same database, when there are any (see `cluster`).
    pub(crate) peers: std::sync::OnceLock<Arc<dyn crate::cluster::Peers>>,
    /// Held from reading a schema to installing it, so that snapshots are installed in
    /// the order they were read (a reload started before a local change committed must
    /// not replace the snapshot that change installed).
    pub(crate) schema_install: tokio::sync::Mutex<()>,
}

/// The application: storage plus the cached schema and settings. Cheap to clone.
#[derive(Clone)]
pub struct App {
    pub(crate) inner: Arc<Inner>,
}

impl App {
    /// Opens the app on a store: creates system tables and default collections on first
    /// start, then loads the schema and settings.
    pub async fn open(store: Arc<dyn Store>, config: AppConfig) -> Result<App, CoreError> {
        let (collections, settings_value) = basalt_store::write(store.as_ref(), bootstrap).await?;
        Ok(App::from_parts(store, config, collections, settings_value))
    }

    /// Blocking variant of [`App::open`] for CLI commands.
    pub fn open_blocking(store: Arc<dyn Store>, config: AppConfig) -> Result<App, CoreError> {
        let (collections, settings_value) =
            basalt_store::write_blocking(store.as_ref(), bootstrap)?;
        Ok(App::from_parts(store, config, collections, settings_value))
    }

    fn from_parts(
        store: Arc<dyn Store>,
        config: AppConfig,
        collections: Vec<Collection>,
        settings_value: Json,
    ) -> App {
        let schema = Schema::new(1, collections, store.dialect());
        let app = App {
            inner: Arc::new(Inner {
                store,
                schema: RwLock::new(Arc::new(schema)),
                settings: RwLock::new(Arc::new(settings_value)),
                hashing: Semaphore::new(config.max_concurrent_hashes.max(1)),
                rules: crate::rules::RuleCache::default(),
                realtime: crate::realtime::Broker::new(config.realtime),
                files: RwLock::new(config.storage_dir.clone().map(basalt_files::Storage::local)),
                local_files: config.storage_dir.map(basalt_files::Storage::local),
                thumbs: Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
                peers: std::sync::OnceLock::new(),
                schema_install: tokio::sync::Mutex::new(()),
            }),
        };
        app.refresh_file_storage();
        app
    }

    /// The storage backend.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The current schema snapshot.
    pub fn schema(&self) -> Arc<Schema> {
        self.inner.schema.read().clone()
    }

    /// Finds a collection by name or id.
    pub fn collection(&self, name_or_id: &str) -> Option<Arc<Collection>> {
        self.schema().get(name_or_id).cloned()
    }

    /// Reloads the schema from storage (after a schema change commits here or on another
    /// node). The new snapshot has a new version, which retires every compiled rule.
    pub async fn reload_schema(&self) -> Result<(), CoreError> {
        let _installing = self.inner.schema_install.lock().await;
        let collections = basalt_store::read(self.inner.store.as_ref(), |conn: &mut dyn Conn| {
            schema::load_all(conn)
        })
        .await?;
        self.inner.store.schema_changed();
        self.install_schema(collections);
        Ok(())
    }

    pub(crate) fn install_schema(&self, collections: Vec<Collection>) {
        let mut guard = self.inner.schema.write();
        let version = guard.version + 1;
        *guard = Arc::new(Schema::new(version, collections, self.store().dialect()));
    }

    /// Closes the storage backend after queued work finishes.
    pub fn close(&self) {
        self.inner.store.close();
    }
}

/// Key of the transaction-scoped advisory lock that serialises the first start of nodes
/// sharing one PostgreSQL database (`CREATE TABLE IF NOT EXISTS` is not safe against a
/// concurrent twin, and the default collections must be created once).
const BOOTSTRAP_LOCK: i64 = 0x6261_7361_6c74; // "basalt"

fn bootstrap(conn: &mut dyn Conn) -> Result<(Vec<Collection>, Json), CoreError> {
    let dialect = conn.dialect();
    if dialect == basalt_sql::Dialect::Postgres {
        conn.execute_batch(&format!("SELECT pg_advisory_xact_lock({BOOTSTRAP_LOCK})"))?;
    }
    for statement in ddl::system_tables(dialect) {
        conn.execute_batch(&statement)?;
    }
    let mut collections = schema::load_all(conn)?;
    if collections.is_empty() {
        // A millisecond apart, so they are listed in this order (PocketBase's).
        let start = time::OffsetDateTime::now_utc();
        for (n, mut collection) in [
            default_external_auths(),
            default_superusers(),
            default_users(),
        ]
        .into_iter()
        .enumerate()
        {
            let at = format_datetime(start + time::Duration::milliseconds(n as i64));
            collection.created = at.clone();
            collection.updated = at;
            for statement in ddl::create_collection(&collection, dialect) {
                conn.execute_batch(&statement)?;
            }
            schema::insert(conn, &collection)?;
            collections.push(collection);
        }
    } else if !collections.iter().any(|c| c.id == EXTERNAL_AUTHS_ID) {
        let added = add_external_auths(conn, &collections)?;
        collections.push(added);
    }
    let settings_value = match settings::load(conn, false)? {
        Some(value) => value,
        None => {
            let value = settings::defaults();
            settings::save(conn, &value, true)?;
            value
        }
    };
    Ok((collections, settings_value))
}

/// Data dirs from before `_externalAuths` was a collection kept the OAuth2 links in an
/// internal table of that name: its rows move to the new system collection's table (ids
/// and dates kept), and every auth collection gets the trigger that deletes a record's
/// links, OTPs and MFA sessions with it. Runs once, in the bootstrap transaction.
fn add_external_auths(
    conn: &mut dyn Conn,
    existing: &[Collection],
) -> Result<Collection, CoreError> {
    let dialect = conn.dialect();
    let legacy = !conn
        .query(&authflow::legacy_external_auths_exists(dialect))?
        .rows
        .is_empty();
    if legacy {
        for statement in authflow::legacy_external_auths_set_aside(dialect) {
            conn.execute_batch(&statement)?;
        }
    }
    let mut collection = default_external_auths();
    let now = now_datetime();
    collection.created = now.clone();
    collection.updated = now;
    for statement in ddl::create_collection(&collection, dialect) {
        conn.execute_batch(&statement)?;
    }
    if legacy {
        for statement in authflow::legacy_external_auths_copy(dialect) {
            conn.execute_batch(&statement)?;
        }
    }
    for auth in existing.iter().filter(|c| c.is_auth()) {
        for statement in ddl::auth_cleanup_trigger(auth, dialect) {
            conn.execute_batch(&statement)?;
        }
    }
    schema::insert(conn, &collection)?;
    tracing::info!(moved = legacy, "added the _externalAuths system collection");
    Ok(collection)
}
