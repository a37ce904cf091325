//! What the load generator measures besides its own calls: the server process's CPU time and
//! memory from /proc (the generator shares the machine, so the box's totals would mislead), the
//! kernel's UDP receive-buffer drops, and percentiles.

use std::time::{Duration, Instant};

/// Nearest-rank percentile of `v` (sorted here), `p` in 0..=100.
pub fn percentile(v: &mut [u64], p: f64) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v.get(rank.saturating_sub(1).min(v.len() - 1)).copied()
}

/// utime + stime of `pid` in seconds (fields 14 and 15 of /proc/PID/stat, in clock ticks).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields count from after its closing parenthesis.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions; _SC_CLK_TCK is a valid name.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Some((utime + stime) / hz)
}

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Sum of the `drops` column of /proc/net/udp for sockets bound to a port in `ports`.
pub fn udp_drops(ports: &[(u16, u16)]) -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/net/udp") else {
        return 0;
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let port = cols
                .get(1)
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())?;
            let drops: u64 = cols.last()?.parse().ok()?;
            ports
                .iter()
                .any(|(a, b)| (*a..=*b).contains(&port))
                .then_some(drops)
        })
        .sum()
}

/// CPU and memory of the server over a measured window.
pub struct Probe {
    pid: Option<u32>,
    started: Instant,
    cpu0: Option<f64>,
}

#[derive(serde::Serialize, Default)]
pub struct ProbeResult {
    pub window_s: f64,
    /// Server CPU over the window as a percentage of one core.
    pub server_cpu_pct_core: Option<f64>,
    pub server_rss_kib: Option<u64>,
}

impl Probe {
    pub fn start(pid: Option<u32>) -> Probe {
        Probe {
            pid,
            started: Instant::now(),
            cpu0: pid.and_then(cpu_seconds),
        }
    }

    pub fn finish(&self) -> ProbeResult {
        let window = self.started.elapsed().max(Duration::from_millis(1));
        let cpu = match (self.pid.and_then(cpu_seconds), self.cpu0) {
            (Some(c1), Some(c0)) => Some(100.0 * (c1 - c0) / window.as_secs_f64()),
            _ => None,
        };
        ProbeResult {
            window_s: window.as_secs_f64(),
            server_cpu_pct_core: cpu,
            server_rss_kib: self.pid.and_then(rss_kib),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentile(&mut v, 50.0), Some(50));
        assert_eq!(percentile(&mut v, 99.0), Some(99));
        assert_eq!(percentile(&mut v, 100.0), Some(100));
        assert_eq!(percentile(&mut [], 50.0), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        let spin: u64 = (0..2_000_000u64).fold(0, |a, b| a.wrapping_add(b * b));
        assert!(spin > 0);
        assert!(cpu_seconds(me).is_some());
        assert!(rss_kib(me).unwrap_or(0) > 0);
    }
}
