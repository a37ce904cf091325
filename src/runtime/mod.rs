//! All I/O lives here: sockets, timers, threads, files that change under us.
//!
//! * `sip_task` — one task owns the SIP UDP socket, the TCP listener's connections and the
//!   transaction layer; it routes requests to calls by Call-ID and never does call work itself, so
//!   a busy call never delays the next INVITE.
//! * `call_task` — one task per call: its RTP socket, its [`crate::media::session::RtpSession`], its
//!   [`crate::call::CallController`] and the blocking jobs (PIN checks, CRM look-ups) it waits for.
//! * `media_engine` — one thread per core that carries every call's media on one shared timer
//!   (read with `recvmmsg`, send the due frame, wake the call's task only for an event) and relays
//!   calls bridged to SIP agents on arrival (`epoll`); a call bridged to a browser or a transfer
//!   target is relayed by its own task. `udp` — the sockets they share.
//! * `flows` — the live flow set, reloaded when files change; calls keep the `Arc<Flow>` they started
//!   with, so an edit never changes a call in progress.
//! * `clock` — the one place that turns the OS clock into [`crate::time::Instant`].

pub mod acd_task;
pub mod call_task;
pub mod callback_task;
pub mod callbacks;
pub mod clock;
mod events;
pub mod flows;
pub mod media_engine;
mod memory;
pub mod metrics;
pub mod offline;
pub mod outbound;
pub mod ports;
pub mod prompts;
pub mod registrar;
pub mod retention;
pub mod sip_agent;
pub mod sip_task;
pub mod transfer;
pub mod trunk_register;
pub mod udp;
pub mod webhooks;
pub mod widget_call;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::auth::{Accounts, Authenticator, LockoutPolicy};
use crate::cdr::{CdrStore, CdrWriter};
use crate::config::Config;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Database(String),
    #[error("accounts: {0}")]
    Accounts(String),
    #[error("{0}")]
    Other(String),
}

/// What every task shares.
pub struct Shared {
    pub config: Config,
    pub clock: clock::Clock,
    pub flows: flows::FlowRegistry,
    pub prompts: prompts::PromptCache,
    pub auth: Arc<Authenticator>,
    pub cdr: CdrWriter,
    pub cdr_store: Arc<dyn CdrStore>,
    pub ports: ports::PortAllocator,
    pub active_calls: AtomicUsize,
    pub sip_up: AtomicBool,
    pub draining: AtomicBool,
    pub http_client: reqwest::Client,
    pub api_token: String,
    pub local_ip: std::net::IpAddr,
    /// The ACD task, when queues are configured.
    pub acd: Option<tokio::sync::mpsc::UnboundedSender<acd_task::AcdCmd>>,
    pub rtc: crate::rtc::RtcConfig,
    /// Agents' console sessions: token → agent id, until expiry or logout.
    pub agent_sessions: crate::http::Sessions,
    /// The accounts file and its modification time when last loaded, so edits are noticed.
    pub accounts_seen: std::sync::Mutex<Option<(std::path::PathBuf, std::time::SystemTime)>>,
    /// Counters for `GET /metrics`.
    pub metrics: metrics::Metrics,
    /// Events for the configured webhooks; `emit` never blocks.
    pub webhooks: webhooks::Webhooks,
    /// The live board, published by the ACD task for the dashboards.
    pub board: watch::Sender<acd_task::Board>,
    /// Supervisors' sessions and today's figures for the dashboard.
    pub dashboard: crate::http::DashboardState,
    /// Failed authentications per source: PIN today; the registrar and trunk auth call
    /// `auth_limiter.failed(ip, shared.clock.now())` and `is_blocked(ip, now)` too.
    pub auth_limiter: crate::auth::AuthLimiter,
    /// Set once at the end of a drain: every call still up is hung up by the system.
    pub hangup_all: watch::Sender<bool>,
    /// The SIP task's command channel and address, set once it is up: outbound legs need them.
    pub sip_out: std::sync::OnceLock<(
        tokio::sync::mpsc::UnboundedSender<sip_task::SipCmd>,
        std::net::SocketAddr,
    )>,
    /// The internal SIP endpoint browser calls are placed from (when the widget names flows).
    pub gateway_out: std::sync::OnceLock<(
        tokio::sync::mpsc::UnboundedSender<sip_task::SipCmd>,
        std::net::SocketAddr,
    )>,
    /// Browser calls from the widget that are up now.
    pub widget_calls: widget_call::WidgetCalls,
    /// The media threads that carry calls between bridges on one 20 ms tick.
    pub media: media_engine::MediaEngine,
}

/// What a call needs to know about its queue while it waits.
pub struct QueueMedia {
    pub music: Option<std::path::PathBuf>,
    pub announce_every: Option<std::time::Duration>,
    pub exit_key: Option<char>,
}

impl Shared {
    pub fn active_calls(&self) -> usize {
        self.active_calls.load(Ordering::Relaxed)
    }

    pub fn queue_config(&self, name: &str) -> Option<QueueMedia> {
        let q = self.config.queues.iter().find(|q| q.name == name)?;
        let music_name = q.music().to_string();
        let music = [
            self.config.sounds_dir.join(format!("{music_name}.wav")),
            std::path::PathBuf::from(&music_name),
        ]
        .into_iter()
        .find(|p| p.is_file());
        Some(QueueMedia {
            music,
            announce_every: Some(q.announce_every()),
            exit_key: q.exit_key,
        })
    }

    /// The longest wrap-up among the agent's queues, for the console's countdown.
    pub fn wrap_up_for(&self, agent_id: &str) -> Option<std::time::Duration> {
        let agent = self.config.agents.iter().find(|a| a.id == agent_id)?;
        self.config
            .queues
            .iter()
            .filter(|q| agent.queues.contains(&q.name))
            .map(|q| q.wrap_up)
            .max()
    }
}

/// A started server: its bound addresses and a handle to stop it.
pub struct Running {
    pub sip_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// `trunk.register: true`: removed from the carrier on shutdown.
    trunk_registration: Option<trunk_register::TrunkRegistration>,
}

/// How long a shutdown waits for webhook deliveries still under way.
pub const WEBHOOK_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

impl Running {
    /// SIGTERM: refuse new calls (503) and let calls in progress go on for up to `timeout`;
    /// then hang up the rest (BYE, `hangup_by: system`), stop, and flush the records.
    pub async fn drain(self, timeout: std::time::Duration) {
        self.shared.draining.store(true, Ordering::SeqCst);
        let calls = self.shared.active_calls();
        if calls > 0 {
            tracing::info!(
                calls,
                timeout_s = timeout.as_secs(),
                "draining: new calls get 503; waiting for calls in progress"
            );
        }
        if !self.wait_for_no_calls(timeout).await {
            tracing::warn!(
                calls = self.shared.active_calls(),
                "drain timeout: hanging up the calls still in progress"
            );
            self.shared.hangup_all.send_replace(true);
            // Long enough for the BYEs to leave and the records to be finished.
            self.wait_for_no_calls(std::time::Duration::from_secs(5))
                .await;
            // The BYEs are queued in the SIP task; give it a moment to send them.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        self.shutdown().await;
    }

    async fn wait_for_no_calls(&self, timeout: std::time::Duration) -> bool {
        let until = tokio::time::Instant::now() + timeout;
        while self.shared.active_calls() > 0 {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        true
    }

    /// Stop accepting work, flush the records, and return. Webhook events of the last calls
    /// get up to [`WEBHOOK_FLUSH`] to be delivered (retries included).
    pub async fn shutdown(self) {
        self.shared.draining.store(true, Ordering::SeqCst);
        let left = self.shared.webhooks.flush(WEBHOOK_FLUSH).await;
        if left > 0 {
            tracing::warn!(
                undelivered = left,
                "shutting down with webhook deliveries still pending; they are lost"
            );
        }
        if let Some(reg) = self.trunk_registration {
            // Before the SIP task stops: the un-REGISTER needs it.
            reg.stop().await;
        }
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.abort();
        }
        let shared = self.shared.clone();
        // Close, not flush: the process exits next, whether or not every task let go of the
        // writer, so what the store still refuses must reach the log now.
        let _ = tokio::task::spawn_blocking(move || shared.cdr.close()).await;
    }
}

fn load_api_token(config: &Config) -> Result<String, RuntimeError> {
    if let Ok(t) = std::env::var("SWITCHBOARD_API_TOKEN") {
        if !t.trim().is_empty() {
            return Ok(t.trim().to_string());
        }
    }
    let path = config.data_dir.join("api-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        if !t.trim().is_empty() {
            return Ok(t.trim().to_string());
        }
    }
    let token: String = {
        use rand::Rng;
        let mut rng = rand::rng();
        (0..32)
            .map(|_| {
                let n: u8 = rng.random_range(0..36);
                char::from_digit(u32::from(n), 36).unwrap_or('x')
            })
            .collect()
    };
    std::fs::write(&path, format!("{token}\n")).map_err(|e| RuntimeError::DataDir {
        path: path.display().to_string(),
        source: e,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    tracing::info!(path = %path.display(), "generated an API token for /api (read it from this file)");
    Ok(token)
}

/// The database would not open: SQLite says only "disk I/O error" or "unable to open database
/// file", so say what the file system says about the data directory when it explains it.
fn database_error(config: &Config, e: &dyn std::fmt::Display) -> RuntimeError {
    match disk_problem(&config.data_dir) {
        Some(why) => RuntimeError::Database(format!(
            "{e}: {why}; free some space (or make it writable) and start again"
        )),
        None => RuntimeError::Database(e.to_string()),
    }
}

/// Why `dir` cannot take writes, if its file system says: read-only, or no space left.
pub(crate) fn disk_problem(dir: &std::path::Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and outlives the call; statvfs(3) fills `st` when it
    // returns 0, and `st` is read only then.
    let st = unsafe {
        if libc::statvfs(path.as_ptr(), st.as_mut_ptr()) != 0 {
            return None;
        }
        st.assume_init()
    };
    if st.f_flag & libc::ST_RDONLY != 0 {
        Some(format!("{} is on a read-only file system", dir.display()))
    } else if st.f_bavail == 0 {
        Some(format!("the disk holding {} is full", dir.display()))
    } else {
        None
    }
}

/// This process among the nodes sharing one PostgreSQL store: its host and SIP address, so a
/// restarted node closes only the calls it left open itself.
fn node_name(config: &Config) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    format!("{host}/{}", config.sip_listen)
}

/// Bind everything and start the tasks. Returns once SIP and HTTP are listening.
pub async fn start(config: Config) -> Result<Running, RuntimeError> {
    memory::tune_allocator();
    std::fs::create_dir_all(&config.data_dir).map_err(|e| RuntimeError::DataDir {
        path: config.data_dir.display().to_string(),
        source: e,
    })?;
    std::fs::create_dir_all(config.recordings_dir()).map_err(|e| RuntimeError::DataDir {
        path: config.recordings_dir().display().to_string(),
        source: e,
    })?;

    let db = config.db_path();
    // Blocking (PostgreSQL's client runs its own runtime): never on an async thread.
    let (database, node, sqlite) = (config.database.clone(), node_name(&config), db.clone());
    let store: Arc<dyn CdrStore> = tokio::task::spawn_blocking(move || {
        let store = crate::cdr::open_store(database.as_ref(), &sqlite, &node)?;
        // A previous run that died mid-call left open records: close them before taking calls.
        match store.close_interrupted(chrono::Utc::now()) {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                records = n,
                "closed call records left open by a previous run as interrupted"
            ),
            Err(e) => tracing::error!(error = %e, "could not close interrupted call records"),
        }
        Ok::<_, crate::cdr::CdrError>(store)
    })
    .await
    .map_err(|e| RuntimeError::Database(e.to_string()))?
    .map_err(|e| database_error(&config, &e))?;
    let accounts = if config.accounts.exists() {
        Accounts::load_csv(&config.accounts).map_err(|e| RuntimeError::Accounts(e.to_string()))?
    } else {
        tracing::warn!(path = %config.accounts.display(), "no accounts file: PIN steps will refuse every PIN");
        Accounts::default()
    };
    let policy = LockoutPolicy {
        max_failures: config.lockout_max_failures,
        window: config.lockout_window,
        lock_for: config.lockout_lock_for,
    };
    let auth = Arc::new(
        Authenticator::open(&db, accounts, policy).map_err(|e| database_error(&config, &e))?,
    );
    let api_token = load_api_token(&config)?;

    let flows = flows::FlowRegistry::load(&config);
    let local_ip = config.public_ip.unwrap_or(config.sip_listen.ip());
    let http_client = reqwest::Client::builder()
        .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| RuntimeError::Other(format!("http client: {e}")))?;

    let clock = clock::Clock::new();
    let media =
        media_engine::MediaEngine::start(clock, media_engine::MediaEngine::default_threads())
            .map_err(|e| RuntimeError::Other(format!("media threads: {e}")))?;

    let (acd_tx, acd_rx) = tokio::sync::mpsc::unbounded_channel();
    let acd_enabled = !config.queues.is_empty();
    let shared = Arc::new(Shared {
        acd: acd_enabled.then_some(acd_tx),
        rtc: config.rtc.clone(),
        agent_sessions: crate::http::Sessions::new(
            config.security.session_lifetime,
            crate::http::MAX_SESSIONS,
        ),
        accounts_seen: std::sync::Mutex::new(None),
        metrics: metrics::Metrics::default(),
        webhooks: webhooks::Webhooks::new(&config.webhooks),
        board: watch::channel(acd_task::Board::default()).0,
        dashboard: crate::http::DashboardState::new(config.security.session_lifetime),
        ports: ports::PortAllocator::new(config.rtp_ports),
        prompts: prompts::PromptCache::default(),
        clock,
        cdr: CdrWriter::spawn(store.clone()),
        cdr_store: store,
        flows,
        auth,
        active_calls: AtomicUsize::new(0),
        sip_up: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        http_client,
        api_token,
        local_ip,
        auth_limiter: crate::auth::AuthLimiter::new(config.security),
        hangup_all: watch::channel(false).0,
        sip_out: std::sync::OnceLock::new(),
        gateway_out: std::sync::OnceLock::new(),
        widget_calls: widget_call::WidgetCalls::default(),
        media,
        config,
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    if acd_enabled {
        let acd = crate::acd::Acd::new(shared.config.queues.clone(), shared.config.agents.clone());
        acd_task::spawn(shared.clone(), acd, acd_rx, stop_rx.clone());
        tracing::info!(
            queues = shared.config.queues.len(),
            agents = shared.config.agents.len(),
            "queues and agents configured"
        );
    }

    let sip = sip_task::SipTask::bind(shared.clone()).await?;
    let sip_addr = sip.local_addr();
    tasks.push(tokio::spawn(sip.run(stop_rx.clone())));
    if !shared.config.widget.flows.is_empty() {
        let gateway = sip_task::SipTask::bind_gateway(shared.clone(), sip_addr).await?;
        tasks.push(tokio::spawn(gateway.run(stop_rx.clone())));
    }
    let trunk_registration = trunk_register::spawn(&shared);

    let listener = tokio::net::TcpListener::bind(shared.config.http_listen)
        .await
        .map_err(|source| RuntimeError::Bind {
            what: "HTTP",
            addr: shared.config.http_listen,
            source,
        })?;
    let http_addr = listener
        .local_addr()
        .map_err(|e| RuntimeError::Other(e.to_string()))?;
    let app = crate::http::router(shared.clone());
    let mut http_stop = stop_rx.clone();
    tasks.push(tokio::spawn(async move {
        let r = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = http_stop.wait_for(|s| *s).await;
        })
        .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    }));

    tasks.push(tokio::spawn(flows::watch(shared.clone(), stop_rx.clone())));
    webhooks::spawn(shared.clone(), stop_rx.clone());
    // Detached: it holds no state a shutdown must flush.
    tokio::spawn(retention::run(shared.clone()));
    tokio::spawn(memory::run(shared.clone()));

    tracing::info!(sip = %sip_addr, http = %http_addr, "switchboard is up");
    Ok(Running {
        sip_addr,
        http_addr,
        shared,
        stop: stop_tx,
        tasks,
        trunk_registration,
    })
}
