//! loadgen — drives a running switchboard with many calls from one process and prints one JSON
//! object per run (scripts/bench collects them into BENCHMARKS.md).
//!
//!   loadgen signalling --server 127.0.0.1:5060 --did 3000 --rate 200 --duration 10
//!   loadgen ivr --server 127.0.0.1:5060 --http 127.0.0.1:8080 --did 3001 --calls 100 --duration 10
//!   loadgen bridge --server 127.0.0.1:5060 --did 3002 --calls 50 --agents 50 --duration 10
//!   loadgen rtc-bridge --server 127.0.0.1:5060 --http 127.0.0.1:8080 --did 3002 --calls 50
//!   loadgen floor --calls 200 --duration 10     (no server: the kernel's cost of a call's I/O)
//!
//! `--server-pid` adds the server's CPU (utime+stime from /proc/PID/stat) and RSS over the
//! measured window; `--drop-ports 5060-5060,20000-29999` adds the kernel's UDP receive-buffer
//! drops on those ports. The exit status is 1 when a call failed or a digit was lost, so a
//! script can fail on correctness without ever failing on a time.

mod bridge;
mod floor;
mod ivr;
mod rtc_bridge;
mod signalling;
mod sip;
mod stats;

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for switchboard (SIP, RTP, WebRTC agents)"
)]
struct Cli {
    /// The server's SIP address (UDP).
    #[arg(long, global = true, default_value = "127.0.0.1:5060")]
    server: SocketAddr,
    /// The server's pid, to sample its CPU time and RSS from /proc.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Port ranges whose UDP receive-buffer drops are counted, e.g. `5060-5060,20000-20999`.
    #[arg(long, global = true, default_value = "")]
    drop_ports: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// No server: the CPU one thread spends on `calls` IVR calls' packets alone (one recvmmsg and
    /// one send per call per 20 ms on loopback), the floor for the per-call CPU targets.
    Floor {
        #[arg(long, default_value_t = 200)]
        calls: usize,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// Calls per second: INVITE → 200 → ACK → BYE → 200, set-up latency p50/p99.
    Signalling {
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Seconds of offered load.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        #[arg(long, default_value = "3000")]
        did: String,
        /// Milliseconds between the ACK and the BYE.
        #[arg(long, default_value_t = 0)]
        hold_ms: u64,
    },
    /// Concurrent IVR calls hearing prompts and typing RFC 4733 digits.
    Ivr {
        #[arg(long, default_value_t = 20)]
        calls: usize,
        /// Seconds measured once every call is up.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Calls started per second while ramping up.
        #[arg(long, default_value_t = 200.0)]
        ramp_rate: f64,
        #[arg(long, default_value = "3001")]
        did: String,
        #[arg(long, default_value = "1234")]
        digits: String,
        /// The server's HTTP address, to read each call's record.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// API token (else SWITCHBOARD_API_TOKEN).
        #[arg(long)]
        token: Option<String>,
    },
    /// SIP callers bridged to SIP agents: N agents register (digest) and answer the queue's
    /// INVITEs; M callers dial a queue flow; both ends send tagged 20 ms PCMU.
    Bridge(BridgeOpts),
    /// SIP callers bridged to WebRTC agents: N agents sign in at the console (HTTP login and
    /// the /agent/ws WebSocket) and answer each ring with a WebRTC peer (ICE, DTLS-SRTP, PCMU);
    /// the callers and the tagged frames are `bridge`'s.
    RtcBridge {
        #[command(flatten)]
        opts: BridgeOpts,
        /// The server's HTTP address (console login and WebSocket).
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
    },
}

#[derive(clap::Args)]
struct BridgeOpts {
    #[arg(long, default_value_t = 20)]
    calls: usize,
    /// Agents signed in (default: as many as calls).
    #[arg(long)]
    agents: Option<usize>,
    /// Seconds measured once every call is bridged (with --hold: the whole run).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    #[arg(long, default_value_t = 100.0)]
    ramp_rate: f64,
    /// A number whose flow's first step is a `queue:` the agents serve.
    #[arg(long, default_value = "3002")]
    did: String,
    /// Agents are PREFIX0, PREFIX1, … (their SIP users, and their console ids).
    #[arg(long, default_value = "lgagent")]
    agent_prefix: String,
    /// The agents' password, SIP digest and console alike (else LOADGEN_AGENT_PASSWORD).
    #[arg(long)]
    agent_password: Option<String>,
    /// Hang up each call after this many seconds bridged and dial again (soak).
    #[arg(long)]
    hold: Option<f64>,
}

impl BridgeOpts {
    fn args(self, pid: Option<u32>, drop_ports: Vec<(u16, u16)>) -> anyhow::Result<bridge::Args> {
        let agent_password = self
            .agent_password
            .or_else(|| std::env::var("LOADGEN_AGENT_PASSWORD").ok())
            .ok_or_else(|| anyhow::anyhow!("--agent-password or LOADGEN_AGENT_PASSWORD"))?;
        Ok(bridge::Args {
            calls: self.calls,
            agents: self.agents.unwrap_or(self.calls),
            duration: secs(self.duration)?,
            ramp_rate: self.ramp_rate,
            did: self.did,
            agent_prefix: self.agent_prefix,
            agent_password,
            hold: self.hold.map(secs).transpose()?,
            pid,
            drop_ports,
        })
    }
}

fn parse_ranges(s: &str) -> anyhow::Result<Vec<(u16, u16)>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (a, b) = p.split_once('-').unwrap_or((p, p));
            Ok((a.trim().parse()?, b.trim().parse()?))
        })
        .collect()
}

fn secs(s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|e| anyhow::anyhow!("bad duration {s}: {e}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let drop_ports = parse_ranges(&cli.drop_ports)?;
    if let Cmd::Floor { calls, duration } = cli.cmd {
        let duration = secs(duration)?;
        let v = tokio::task::spawn_blocking(move || floor::run(floor::Args { calls, duration }))
            .await??;
        println!("{v}");
        return Ok(());
    }
    let ua = sip::Ua::bind(cli.server).await?;
    let (result, bad) = match cli.cmd {
        Cmd::Floor { .. } => unreachable!("handled above"),
        Cmd::Signalling {
            rate,
            duration,
            did,
            hold_ms,
        } => {
            let v = signalling::run(
                ua,
                signalling::Args {
                    rate,
                    duration: secs(duration)?,
                    did,
                    hold: Duration::from_millis(hold_ms),
                    pid: cli.server_pid,
                    drop_ports,
                },
            )
            .await?;
            let bad = v["failed"].as_u64() != Some(0);
            (v, bad)
        }
        Cmd::Ivr {
            calls,
            duration,
            ramp_rate,
            did,
            digits,
            http,
            token,
        } => {
            let token = token
                .or_else(|| std::env::var("SWITCHBOARD_API_TOKEN").ok())
                .unwrap_or_default();
            let v = ivr::run(
                ua,
                ivr::Args {
                    calls,
                    duration: secs(duration)?,
                    ramp_rate,
                    did,
                    digits,
                    http,
                    token,
                    pid: cli.server_pid,
                    drop_ports,
                },
            )
            .await?;
            let bad =
                v["failed"].as_u64() != Some(0) || v["calls_with_lost_digits"].as_u64() != Some(0);
            (v, bad)
        }
        Cmd::Bridge(opts) => {
            let v = bridge::run(ua, opts.args(cli.server_pid, drop_ports)?).await?;
            let bad = v["ok"].as_bool() != Some(true);
            (v, bad)
        }
        Cmd::RtcBridge { opts, http } => {
            let v = rtc_bridge::run(ua, opts.args(cli.server_pid, drop_ports)?, http).await?;
            let bad = v["ok"].as_bool() != Some(true);
            (v, bad)
        }
    };
    println!("{result}");
    if bad {
        std::process::exit(1);
    }
    Ok(())
}
