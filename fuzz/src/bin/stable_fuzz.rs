//! A fuzzer that needs nothing but the stable toolchain: the same target functions as the
//! libFuzzer build, fed the seed corpus and random mutations of it for a set time. It has no
//! coverage feedback and no sanitizer, so it finds less; it exists so that every machine (and a
//! quick CI step) can run the targets, and so that any crash file can be replayed without
//! rebuilding with instrumentation.
//!
//!     stable-fuzz run TARGET SECONDS SEED_DIR ARTIFACT_DIR
//!     stable-fuzz replay TARGET FILE...
//!
//! Exits 1 after writing the first input that panics to ARTIFACT_DIR and printing its path.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use switchboard_fuzz::{Target, TARGETS};

/// Inputs larger than this are cut: every parser under test refuses more than 64 KiB anyway.
const MAX_INPUT: usize = 70_000;

/// Fragments worth splicing into text protocols: separators, numbers at the edges of their
/// ranges, and the header names and keywords the parsers branch on.
#[rustfmt::skip]
const TOKENS: &[&[u8]] = &[
    b"\r\n", b"\n", b"\r\n\r\n", b" ", b"\t", b":", b";", b",", b"=", b"<", b">", b"\"", b"\\",
    b"/", b"@", b"%", b"%00", b"0", b"-1", b"255", b"256", b"65535", b"65536", b"4294967295",
    b"4294967296", b"99999999999999999999", b"SIP/2.0", b"SIP/2.0/UDP ", b"INVITE", b"ACK",
    b"BYE", b"CANCEL", b"OPTIONS", b"Via: ", b"v: ", b"Content-Length: ", b"l: ", b"CSeq: ",
    b"Call-ID: ", b"From: ", b"To: ", b";tag=", b";branch=z9hG4bK", b";rport", b"sip:",
    b"m=audio ", b"a=rtpmap:", b"telephone-event/8000", b"c=IN IP4 ", b"c=IN IP6 ::1",
    b"RTP/AVP ", b"a=fmtp:101 0-16", b"steps:", b"next: ", b"  ", b"- ", b"{", b"}", b"[", b"]",
    b"{{", b"}}", b"&", b"*", b"!!", b"\xff\xfe", b"\x80", b"\x00",
];

/// xorshift64*: plenty for choosing mutations, and no dependency.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Rng(t ^ (u64::from(std::process::id()) << 32) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    for _ in 0..=rng.below(8) {
        let len = input.len();
        let at = rng.below(len + 1);
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = [0u8, 0x7f, 0x80, 0xff, b'0', b'9', b' '][rng.below(7)];
            }
            2 if len > 0 => {
                let end = (at + 1 + rng.below(16)).min(len);
                input.drain(at.min(len - 1)..end);
            }
            3 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                input.splice(at..at, token.iter().copied());
            }
            4 if len > 0 => {
                // Repeat a slice: long lines, many headers, deep nesting.
                let start = rng.below(len);
                let end = (start + 1 + rng.below(64)).min(len);
                let chunk = input[start..end].to_vec();
                for _ in 0..=rng.below(64) {
                    input.splice(at..at, chunk.iter().copied());
                }
            }
            5 if !seeds.is_empty() => {
                // Splice the tail of another seed in.
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            6 if len > 0 => {
                let i = rng.below(len);
                let digit = b'0' + rng.below(10) as u8;
                input.insert(i, digit);
            }
            7 => input.truncate(at),
            _ => input.insert(at, rng.next() as u8),
        }
        input.truncate(MAX_INPUT);
    }
}

fn read_dir_files(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    paths
        .iter()
        .filter(|p| p.is_file())
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn run(target: Target, input: &[u8]) -> bool {
    std::panic::catch_unwind(|| target(input)).is_ok()
}

fn fuzz(name: &str, target: Target, secs: u64, seed_dir: &Path, artifacts: &Path) -> ExitCode {
    let mut seeds = read_dir_files(seed_dir);
    if seeds.is_empty() {
        seeds.push(Vec::new());
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut rng = Rng::seeded();
    let mut execs: u64 = 0;
    // Seeds first, unmutated: a crash there is a plain regression.
    let mut pending: Vec<Vec<u8>> = seeds.clone();
    loop {
        let input = match pending.pop() {
            Some(i) => i,
            None => {
                let mut i = seeds[rng.below(seeds.len())].clone();
                mutate(&mut rng, &mut i, &seeds);
                i
            }
        };
        execs += 1;
        if !run(target, &input) {
            if let Err(e) = std::fs::create_dir_all(artifacts) {
                eprintln!("cannot create {}: {e}", artifacts.display());
            }
            let path = artifacts.join(format!("crash-{:016x}", fnv(&input)));
            match std::fs::write(&path, &input) {
                Ok(()) => eprintln!(
                    "{name}: CRASH after {execs} inputs; reproducer: {}",
                    path.display()
                ),
                Err(e) => eprintln!("{name}: CRASH after {execs} inputs; could not save it: {e}"),
            }
            return ExitCode::FAILURE;
        }
        if execs.is_multiple_of(256) && Instant::now() >= deadline {
            break;
        }
    }
    println!(
        "{name}: {execs} inputs in {secs} s, no crash ({} seeds)",
        seeds.len()
    );
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let find = |name: &str| TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f);
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["run", name, secs, seed_dir, artifacts] => {
            let (Some(target), Ok(secs)) = (find(name), secs.parse()) else {
                eprintln!("unknown target {name:?} or bad seconds {secs:?}");
                return ExitCode::from(2);
            };
            fuzz(
                name,
                target,
                secs,
                Path::new(seed_dir),
                Path::new(artifacts),
            )
        }
        ["replay", name, ref files @ ..] => {
            let Some(target) = find(name) else {
                eprintln!("unknown target {name:?}");
                return ExitCode::from(2);
            };
            let mut failed = false;
            for f in files {
                let input = std::fs::read(f).unwrap_or_default();
                let ok = run(target, &input);
                println!("{f}: {}", if ok { "ok" } else { "CRASH" });
                failed |= !ok;
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
            eprintln!(
                "usage: stable-fuzz run TARGET SECONDS SEED_DIR ARTIFACT_DIR\n       stable-fuzz replay TARGET FILE...\ntargets: {}",
                names.join(" ")
            );
            ExitCode::from(2)
        }
    }
}
