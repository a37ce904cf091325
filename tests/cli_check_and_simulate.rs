//! What an admin meets at the command line: `check` names every problem as file:line:column and
//! fails; `simulate` walks a flow with typed input; `pin-hash` makes a hash the server accepts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write flow");
    p
}

#[test]
fn shipped_flows_pass_check_with_their_tests() {
    let out = bin()
        .args(["check", "--flows"])
        .arg(repo().join("ivr-flows"))
        .arg("--sounds")
        .arg(repo().join("sounds"))
        .output()
        .expect("run check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("test(s) passed"), "{stdout}");
}

#[test]
fn check_reports_each_problem_with_its_position_and_fails() {
    let dir = tempfile::tempdir().expect("tmp");
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).expect("mkdir");
    // line 7: a step that does not exist; line 9: an unknown key; `orphan` is reached by nothing.
    let file = write(
        &flows,
        "broken.yaml",
        "flow: broken\n\
         numbers: [\"5000\"]\n\
         language: en\n\
         start: welcome\n\
         steps:\n  welcome:\n    play: welcome\n    next: nowhere\n  orphan:\n    play: goodbye\n    colour: blue\n",
    );
    let out = bin()
        .args(["check", "--sounds"])
        .arg(repo().join("sounds"))
        .arg("--flows")
        .arg(&flows)
        .output()
        .expect("run check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a broken flow must fail the check:\n{stdout}"
    );
    let name = file.display().to_string();
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with(&name)).collect();
    assert!(
        lines.iter().any(|l| l.contains("nowhere")),
        "dangling reference not reported:\n{stdout}"
    );
    assert!(
        lines.iter().any(|l| l.contains("colour")),
        "unknown key not reported:\n{stdout}"
    );
    for l in &lines {
        let rest = &l[name.len()..];
        let mut parts = rest.splitn(4, ':');
        assert_eq!(parts.next(), Some(""), "{l}");
        let line: u32 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let col: u32 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!(line > 0 && col > 0, "no line:column in `{l}`");
    }
}

#[test]
fn simulate_walks_the_shipped_hello_flow() {
    let out = bin()
        .args([
            "simulate",
            "hello",
            "--caller",
            "+15551234",
            "--at",
            "2026-11-23T10:00:00-03:00",
            "--input",
            "2",
        ])
        .arg("--flows")
        .arg(repo().join("ivr-flows"))
        .arg("--sounds")
        .arg(repo().join("sounds"))
        .output()
        .expect("run simulate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("welcome"),
        "the first prompt is shown:\n{stdout}"
    );
    assert!(
        stdout.contains("goodbye"),
        "option 2 leads to goodbye:\n{stdout}"
    );
}

#[test]
fn pin_hash_reads_stdin_and_never_echoes_the_pin() {
    let mut child = bin()
        .arg("pin-hash")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"918273\n")
        .expect("write pin");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.trim().starts_with("$argon2id$"), "{stdout}");
    assert!(!stdout.contains("918273"));
    assert!(switchboard::auth::verify_pin(stdout.trim(), "918273"));
    assert!(!switchboard::auth::verify_pin(stdout.trim(), "918274"));
}
