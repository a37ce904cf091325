//! The switchboard binary as a caller's network sees it: started on free loopback ports with its own
//! data, flows and accounts in a temp dir, logs captured to a file, killed when the test ends.

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::http;
use super::prompts::PromptSet;

/// How long a server may take to answer /healthz after being spawned.
const STARTUP: Duration = Duration::from_secs(10);
const RTP_PORTS: u16 = 40;

/// One row of the accounts CSV; the PIN is hashed when the file is written.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub phones: Vec<String>,
    pub pin: String,
    pub tier: String,
    pub priority: u32,
}

impl Account {
    pub fn new(id: &str, phone: &str, pin: &str) -> Account {
        Account {
            id: id.to_string(),
            name: format!("Merchant {id}"),
            phones: vec![phone.to_string()],
            pin: pin.to_string(),
            tier: "standard".to_string(),
            priority: 1,
        }
    }

    pub fn tier(mut self, tier: &str) -> Account {
        self.tier = tier.to_string();
        self
    }
}

#[derive(Default, Clone)]
pub struct ServerOpts {
    /// (file stem, YAML text) — each test states its flow in its own file.
    pub flows: Vec<(String, String)>,
    pub accounts: Vec<Account>,
    pub extra_args: Vec<String>,
    /// The server config file's YAML (queues, agents, …), passed as `--config`.
    pub config: Option<String>,
    /// `--data` somewhere else than the test's temp dir (a small file system of the test's own).
    pub data: Option<PathBuf>,
}

impl ServerOpts {
    pub fn new() -> ServerOpts {
        ServerOpts::default()
    }

    pub fn flow(mut self, name: &str, yaml: &str) -> ServerOpts {
        self.flows.push((name.to_string(), yaml.to_string()));
        self
    }

    pub fn account(mut self, account: Account) -> ServerOpts {
        self.accounts.push(account);
        self
    }

    pub fn config(mut self, yaml: &str) -> ServerOpts {
        self.config = Some(yaml.to_string());
        self
    }

    #[allow(dead_code)]
    pub fn data(mut self, dir: &Path) -> ServerOpts {
        self.data = Some(dir.to_path_buf());
        self
    }
}

/// An argon2id PHC string like `switchboard pin-hash` prints. Written with the argon2 crate directly
/// so the tests do not depend on the server's own helper; `switchboard::auth::hash_pin` could
/// replace it.
pub fn hash_pin(pin: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).expect("16 bytes is a valid salt");
    argon2::Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .expect("argon2 with default params hashes any PIN")
        .to_string()
}

/// The prompts directory: the repo's `sounds/`, or `SWITCHBOARD_TEST_SOUNDS` when set (stand-ins
/// for local runs before the real prompts are committed).
pub fn sounds_dir() -> PathBuf {
    match std::env::var_os("SWITCHBOARD_TEST_SOUNDS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("sounds"),
    }
}

/// Where the server resolves a prompt: `sounds/<lang>/<name>.wav`, then `sounds/<name>.wav`.
pub fn prompt_path(lang: &str, name: &str) -> PathBuf {
    let dir = sounds_dir();
    let localized = dir.join(lang).join(format!("{name}.wav"));
    if localized.exists() {
        localized
    } else {
        dir.join(format!("{name}.wav"))
    }
}

/// The named English prompts, loaded for matching.
pub fn english_prompts(names: &[&str]) -> PromptSet {
    let list: Vec<(&str, PathBuf)> = names.iter().map(|n| (*n, prompt_path("en", n))).collect();
    PromptSet::load(&list)
}

pub struct Server {
    child: Option<Child>,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub rtp_ports: (u16, u16),
    dir: tempfile::TempDir,
    data: PathBuf,
    log_path: PathBuf,
    extra: Vec<String>,
}

impl Server {
    pub fn start(opts: ServerOpts) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("switchboard-test-")
            .tempdir()
            .expect("temp dir");
        let flows = dir.path().join("flows");
        std::fs::create_dir_all(&flows).expect("flows dir");
        let data = opts.data.unwrap_or_else(|| dir.path().join("data"));
        std::fs::create_dir_all(&data).expect("data dir");
        for (name, yaml) in &opts.flows {
            std::fs::write(flows.join(format!("{name}.yaml")), yaml).expect("write flow");
        }
        let mut csv = String::from("account_id,name,phones,pin_hash,tier,priority\n");
        for a in &opts.accounts {
            csv.push_str(&format!(
                "{},{},{},{},{},{}\n",
                a.id,
                a.name,
                a.phones.join(";"),
                hash_pin(&a.pin),
                a.tier,
                a.priority
            ));
        }
        std::fs::write(dir.path().join("accounts.csv"), csv).expect("write accounts");
        let mut extra = opts.extra_args;
        if let Some(yaml) = &opts.config {
            let path = dir.path().join("switchboard.yaml");
            std::fs::write(&path, yaml).expect("write config");
            extra.push("--config".into());
            extra.push(path.display().to_string());
        }
        let log_path = dir.path().join("server.log");
        let mut server = Server {
            child: None,
            sip: free_sip_addr(),
            http: free_tcp_addr(),
            rtp_ports: free_rtp_range(),
            dir,
            data,
            log_path,
            extra,
        };
        server.spawn();
        server
    }

    fn command(&self) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.arg("run")
            .arg("--sip")
            .arg(self.sip.to_string())
            .arg("--http")
            .arg(self.http.to_string())
            .arg("--rtp-ports")
            .arg(format!("{}-{}", self.rtp_ports.0, self.rtp_ports.1))
            .arg("--data")
            .arg(&self.data)
            .arg("--flows")
            .arg(d.join("flows"))
            .arg("--sounds")
            .arg(sounds_dir())
            .arg("--accounts")
            .arg(d.join("accounts.csv"))
            .args(&self.extra)
            .env("SWITCHBOARD_API_TOKEN", http::API_TOKEN)
            .env(
                "RUST_LOG",
                std::env::var("TEST_SERVER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .current_dir(d)
            .stdin(Stdio::null());
        cmd
    }

    fn spawn(&mut self) {
        self.launch();
        self.wait_healthy();
    }

    fn launch(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("log file");
        let err = log.try_clone().expect("log file clone");
        let child = self
            .command()
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn switchboard");
        self.child = Some(child);
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "switchboard exited during startup ({status}); log:\n{}",
                        self.log()
                    );
                }
            }
            if let Ok(r) = http::get(self.http, "/healthz", None) {
                if r.status == 200 {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "switchboard did not answer GET /healthz 200 within {STARTUP:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown code runs, as in a crash or an OOM kill.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data (after `kill9`, or while running).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Starts the server again on the same ports and data when it is expected to refuse: its
    /// exit status if it exited within `timeout` (None if it is still running then).
    #[allow(dead_code)]
    pub fn restart_expecting_exit(
        &mut self,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        self.kill9();
        self.launch();
        self.wait_exit(timeout)
    }

    /// The running server's process id (for signals).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Waits up to `timeout` for the server to exit on its own; its exit status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Everything the server printed so far (stdout and stderr, all runs).
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Where the server reads its flows: tests edit files here while it runs.
    #[allow(dead_code)]
    pub fn flows_dir(&self) -> PathBuf {
        self.dir.path().join("flows")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            // The log is the first thing anyone debugging a failed call test needs.
            let log = self.log();
            let tail: String = log
                .lines()
                .rev()
                .take(60)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            eprintln!("---- last lines of the switchboard log ----\n{tail}\n----");
        }
    }
}

fn free_tcp_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    l.local_addr().expect("local addr")
}

/// A port free for both UDP and TCP, since SIP listens on both.
fn free_sip_addr() -> SocketAddr {
    for _ in 0..100 {
        let t = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let addr = t.local_addr().expect("local addr");
        if UdpSocket::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// A block of UDP ports spread by pid and a counter, so parallel tests and parallel test binaries
/// rarely even try the same ones, and checked free before use.
fn free_rtp_range() -> (u16, u16) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(RTP_PORTS);
    let slots = 30_000 / span;
    let mut slot = std::process::id().wrapping_mul(7919) % slots;
    for _ in 0..slots {
        slot = (slot + NEXT.fetch_add(1, Ordering::SeqCst)) % slots;
        let base = 20_000 + slot * span;
        let (a, b) = (base as u16, (base + span - 1) as u16);
        if (a..=b).all(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok()) {
            return (a, b);
        }
    }
    panic!("no free block of {RTP_PORTS} UDP ports");
}

/// `GET path` with the API token; the status and the body as JSON (Null when it is not JSON).
pub fn http_get_json(server: &Server, path: &str) -> (u16, serde_json::Value) {
    match http::get(server.http, path, Some(http::API_TOKEN)) {
        Ok(r) => (r.status, r.json().unwrap_or(serde_json::Value::Null)),
        Err(e) => panic!("GET {path}: {e}"),
    }
}

/// The call's record once it is closed (`ended_at` set); records are written asynchronously.
pub fn wait_call_record(server: &Server, call_id: &str, timeout: Duration) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    let path = format!("/api/calls/{}", percent_encode(call_id));
    loop {
        let (status, body) = http_get_json(server, &path);
        if status == 200 && body.get("ended_at").is_some_and(|v| v.is_string()) {
            return body;
        }
        if Instant::now() > deadline {
            panic!("no finished record for call {call_id} after {timeout:?}: {status} {body}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
