//! The `basalt` binary: PocketBase's CLI shape over Basalt's services.
//!
//! Only this crate reads arguments and the environment, and only it knows the storage
//! backends. Everything below receives plain structs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use basalt_core::{App, AppConfig, PeerEvent};
use basalt_http::HttpConfig;
use basalt_store::Store;
use basalt_store_postgres::{PeerSignal, PgPeers, PgStore};
use basalt_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use clap::{Parser, Subcommand, ValueEnum};

/// mimalloc instead of glibc's malloc: request handling builds and drops many small JSON
/// values, and glibc's malloc, free and consolidation took about 40% of the CPU of a list
/// with expand (measured with perf; see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Basalt: a PocketBase-compatible backend in one binary.
#[derive(Parser)]
#[command(name = "basalt", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum SyncMode {
    /// Every acknowledged write survives power loss (default).
    Full,
    /// Survives a process crash; the last commits may be lost on power loss.
    Normal,
}

#[derive(clap::Args, Clone)]
struct DataArgs {
    /// The data directory (created on first start).
    #[arg(long, env = "BASALT_DIR", default_value = "./basalt_data")]
    dir: PathBuf,
    /// A PostgreSQL URL (`postgres://user@host:port/db`) to run on PostgreSQL instead of
    /// the embedded SQLite file in `--dir`.
    #[arg(long, env = "BASALT_DB")]
    db: Option<String>,
    /// SQLite durability mode.
    #[arg(long, value_enum, env = "BASALT_SYNCHRONOUS", default_value = "full")]
    synchronous: SyncMode,
}

#[derive(Subcommand)]
enum Command {
    /// Starts the web server.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "BASALT_HTTP", default_value = "127.0.0.1:8090")]
        http: String,
        /// Allowed CORS origins (comma separated); default any.
        #[arg(long, env = "BASALT_ORIGINS", value_delimiter = ',')]
        origins: Vec<String>,
        /// Request body limit in bytes.
        #[arg(long, env = "BASALT_MAX_BODY", default_value_t = 32 << 20)]
        max_body: usize,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Manages superusers.
    Superuser {
        #[command(subcommand)]
        action: SuperuserAction,
    },
    /// Copies a whole app (settings, collections, records, OAuth2 links, pending OTPs and
    /// MFA sessions) from one database to a new, empty one and verifies it: a data dir
    /// (SQLite) or a postgres:// URL on each side. Uploaded files (the data dir's storage
    /// folder) are not copied: copy or share that folder, or use S3.
    MigrateData {
        /// The source: a data dir or a postgres:// URL.
        #[arg(long)]
        from: String,
        /// The target (must be new): a data dir or a postgres:// URL.
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum SuperuserAction {
    /// Creates the superuser, or sets its password if it exists.
    Upsert {
        email: String,
        password: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Creates a new superuser.
    Create {
        email: String,
        password: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Changes an existing superuser's password.
    Update {
        email: String,
        password: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Deletes a superuser.
    Delete {
        email: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

/// An opened backend; `pg` is the same store when it is PostgreSQL.
struct Opened {
    store: Arc<dyn Store>,
    pg: Option<Arc<PgStore>>,
}

fn open_store(data: &DataArgs) -> Result<Arc<dyn Store>> {
    open_backend(data).map(|opened| opened.store)
}

fn open_backend(data: &DataArgs) -> Result<Opened> {
    if let Some(url) = data.db.as_deref().filter(|u| !u.is_empty()) {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            bail!("--db must be a postgres:// URL (SQLite is the default and needs no --db)");
        }
        let store = Arc::new(
            PgStore::connect(url, basalt_store_postgres::PgOptions::default())
                .map_err(|error| anyhow::anyhow!("connecting to PostgreSQL: {error}"))?,
        );
        return Ok(Opened {
            store: store.clone(),
            pg: Some(store),
        });
    }
    std::fs::create_dir_all(&data.dir)
        .with_context(|| format!("creating data dir {}", data.dir.display()))?;
    let options = SqliteOptions {
        synchronous: match data.synchronous {
            SyncMode::Full => Synchronous::Full,
            SyncMode::Normal => Synchronous::Normal,
        },
        ..SqliteOptions::default()
    };
    let path = data.dir.join("data.db");
    let store = SqliteStore::open(Path::new(&path), options)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(Opened {
        store: Arc::new(store),
        pg: None,
    })
}

/// [`basalt_core::Peers`] over the PostgreSQL LISTEN/NOTIFY link.
struct PgPeerLink(Arc<PgPeers>);

impl basalt_core::Peers for PgPeerLink {
    fn send(&self, note: String) {
        self.0.send(note);
    }
}

/// Links this node to the other nodes on the same PostgreSQL database: commits made
/// here are announced to them, and theirs are applied here, in the order received.
/// Returns once the node listens and has reloaded what it derives from the database
/// (or after 10 s, logged), so that a node that serves has not missed a change.
async fn link_peers(app: &App, pg: &PgStore) -> Arc<PgPeers> {
    let (link, mut signals) = pg.peers();
    let link = Arc::new(link);
    app.attach_peers(Arc::new(PgPeerLink(link.clone())));
    match tokio::time::timeout(std::time::Duration::from_secs(10), signals.recv()).await {
        Ok(Some(PeerSignal::Connected)) => {
            if let Err(error) = app.apply_peer_event(PeerEvent::Resync).await {
                tracing::warn!(%error, "reloading after linking to other nodes failed");
            }
        }
        Ok(Some(PeerSignal::Note(_))) | Ok(None) => {}
        Err(_) => tracing::warn!("not listening to other nodes after 10 s; serving anyway"),
    }
    let app = app.clone();
    tokio::spawn(async move {
        while let Some(signal) = signals.recv().await {
            let event = match signal {
                PeerSignal::Note(note) => PeerEvent::Note(note),
                PeerSignal::Connected => PeerEvent::Resync,
            };
            if let Err(error) = app.apply_peer_event(event).await {
                tracing::warn!(%error, "applying a note from another node failed");
            }
        }
    });
    link
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BASALT_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    match cli.command {
        Command::Serve {
            http,
            origins,
            max_body,
            data,
        } => runtime.block_on(serve(http, origins, max_body, data)),
        Command::Superuser { action } => runtime.block_on(superuser(action)),
        Command::MigrateData { from, to } => runtime.block_on(migrate_data(&from, &to)),
    }
}

/// A data dir or a postgres:// URL as the data arguments of a command.
fn data_args(spec: &str) -> DataArgs {
    let pg = spec.starts_with("postgres://") || spec.starts_with("postgresql://");
    DataArgs {
        dir: if pg {
            PathBuf::from("./basalt_data")
        } else {
            PathBuf::from(spec)
        },
        db: pg.then(|| spec.to_string()),
        synchronous: SyncMode::Full,
    }
}

async fn migrate_data(from: &str, to: &str) -> Result<()> {
    if from == to {
        bail!("--from and --to are the same");
    }
    let source_args = data_args(from);
    if source_args.db.is_none() && !source_args.dir.join("data.db").is_file() {
        bail!("{from} holds no data.db");
    }
    let source = App::open(open_backend(&source_args)?.store, AppConfig::default())
        .await
        .context("opening the source")?;
    let target = App::open(open_backend(&data_args(to))?.store, AppConfig::default())
        .await
        .context("opening the target")?;
    let outcome = source.migrate_into(&target).await;
    source.close();
    target.close();
    let report = match outcome {
        Ok(report) => report,
        Err(error) => bail!(
            "{}",
            error.body()["message"]
                .as_str()
                .unwrap_or("migration failed")
        ),
    };
    for (name, rows, checksum) in &report.tables {
        println!("{name}: {rows} records, sha256 {checksum} (verified)");
    }
    for (name, rows, checksum) in &report.internal {
        println!("{name}: {rows} rows, sha256 {checksum} (verified)");
    }
    for view in &report.views {
        println!("{view}: view re-created");
    }
    println!(
        "Copied {} collections and {} records from {from} to {to}.",
        report.tables.len() + report.views.len(),
        report.tables.iter().map(|(_, rows, _)| rows).sum::<u64>()
    );
    println!("Uploaded files are not copied: copy or share <dir>/storage, or use S3.");
    Ok(())
}

async fn superuser(action: SuperuserAction) -> Result<()> {
    let (email, password, data, create, update) = match action {
        SuperuserAction::Upsert {
            email,
            password,
            data,
        } => (email, Some(password), data, true, true),
        SuperuserAction::Create {
            email,
            password,
            data,
        } => (email, Some(password), data, true, false),
        SuperuserAction::Update {
            email,
            password,
            data,
        } => (email, Some(password), data, false, true),
        SuperuserAction::Delete { email, data } => (email, None, data, false, false),
    };
    let store = open_store(&data)?;
    let app = App::open(store, AppConfig::default())
        .await
        .context("opening the app")?;
    let outcome = match password {
        Some(password) => {
            let collection = app
                .collection(basalt_schema::SUPERUSERS_ID)
                .context("missing _superusers")?;
            app.upsert_auth_record(collection, &email, &password, create, update)
                .await
                .map(|_| ())
        }
        None => app.superuser_delete(&email).await,
    };
    app.close();
    match outcome {
        Ok(()) => {
            println!("Successfully saved superuser \"{email}\".");
            Ok(())
        }
        Err(error) => bail!("{}", error.body()["message"].as_str().unwrap_or("failed")),
    }
}

/// The app's options: uploaded files live in `<dir>/storage` (also with PostgreSQL).
fn app_config(data: &DataArgs) -> Result<AppConfig> {
    let storage = data.dir.join("storage");
    std::fs::create_dir_all(&storage).with_context(|| format!("creating {}", storage.display()))?;
    let storage = storage
        .canonicalize()
        .with_context(|| format!("resolving {}", storage.display()))?;
    Ok(AppConfig {
        storage_dir: Some(storage),
        ..AppConfig::default()
    })
}

async fn serve(http: String, origins: Vec<String>, max_body: usize, data: DataArgs) -> Result<()> {
    let Opened { store, pg } = open_backend(&data)?;
    let app = App::open(store, app_config(&data)?)
        .await
        .context("opening the app")?;
    let peers = match pg.as_deref() {
        Some(pg) => Some(link_peers(&app, pg).await),
        None => None,
    };
    // Files no record references (a crash between storing an upload and its commit,
    // a deleted record whose cleanup failed) are swept at start and every 6 hours.
    let sweeper = app.clone();
    tokio::spawn(async move {
        loop {
            match sweeper
                .sweep_orphan_files(basalt_core::ORPHAN_MIN_AGE)
                .await
            {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "swept orphan files"),
                Err(error) => tracing::warn!(?error, "orphan file sweep failed"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(6 * 3600)).await;
        }
    });
    let addr: SocketAddr = http
        .parse()
        .with_context(|| format!("invalid --http address {http}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    println!("Server started at http://{local}");
    println!("├─ REST API:  http://{local}/api/");
    let router = basalt_http::app(app.clone(), HttpConfig { origins, max_body });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown({
        // Open realtime streams would otherwise hold the graceful shutdown open.
        let realtime = app.realtime().clone();
        async move {
            shutdown_signal().await;
            realtime.shutdown();
        }
    })
    .await
    .context("serving")?;
    if let Some(peers) = peers {
        // Sends the notes still queued; blocking, so off the runtime's workers.
        let _ = tokio::task::spawn_blocking(move || peers.close()).await;
    }
    app.close();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
