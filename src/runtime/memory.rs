//! Handing freed memory back to the system once the calls are gone.
//!
//! glibc's allocator keeps what a burst of calls freed in its per-thread arenas: after a load of
//! a thousand calls the server stayed at ~100 MB although nothing was kept per finished call
//! (BENCHMARKS.md, "Memory"). When the server has had calls and then has none for a few seconds,
//! this task asks the allocator to return its free pages (`malloc_trim`), so an idle server looks
//! idle to whoever watches its RSS. It never runs while a call is up: trimming costs a few
//! milliseconds of one thread, which a call's 20 ms media pacing should not meet.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;

const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Blocks at least this big are mapped on their own and unmapped when freed.
const MMAP_THRESHOLD: i32 = 1 << 20;

/// Called once at start. glibc serves a big block from `mmap` and returns it on `free`, but then
/// raises that threshold to the freed block's size, so every later block of the size comes from
/// an arena and stays there. Each password or PIN check (argon2) takes a 19 MiB block, on
/// whichever blocking thread runs it: measured, the server grew from 17 MB to 274 MB after 20
/// console sign-ins and 539 MB after 170 (issue 7 notes). A fixed threshold keeps such blocks
/// mapped, so they go back to the system as soon as the check ends; blocks under 1 MiB (the
/// call path's) are unaffected.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before the runtime's threads use
    // big blocks, and safe at any time in any case.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Runs until the process ends.
pub async fn run(shared: Arc<Shared>) {
    let mut busy_since_trim = false;
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if shared.active_calls() > 0 {
            busy_since_trim = true;
            continue;
        }
        if busy_since_trim {
            busy_since_trim = false;
            let freed = trim();
            tracing::debug!(freed, "idle again: free memory handed back to the system");
        }
    }
}

/// Returns whether the allocator released anything.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() -> bool {
    // SAFETY: malloc_trim only walks the allocator's own free lists; any thread may call it.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}
