//! The disk under the SQLite database fills up, or its file system turns read-only, with calls
//! coming in: calls are still answered and run their flow, /healthz, /metrics and the log name
//! the fault, and the records wait in memory until the disk takes them again — each call's
//! record then lands exactly once. A server started on a full or read-only disk refuses with an
//! error saying so.
//!
//! The disks are real: a 4 MB tmpfs (and, for a file system the kernel turns read-only after an
//! error, an ext4 image on a loop device) mounted for the test. Mounting needs root, as on the
//! dev machine and CI; without it these tests fail saying so rather than pass having proved
//! nothing.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::ops::{menu_call, metric, metrics_text, sigterm, wait_healthz};
use common::server::percent_encode;
use common::*;

/// A small file system mounted on a temp dir, unmounted when dropped (also when the test
/// panics). Declare it before the server so the server stops first.
struct Disk {
    _dir: tempfile::TempDir,
    mnt: PathBuf,
}

impl Disk {
    /// A tmpfs of `size` (like `4m`).
    fn tmpfs(size: &str) -> Disk {
        let (dir, mnt) = mount_point();
        run(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            &mnt,
        );
        Disk { _dir: dir, mnt }
    }

    /// An ext4 file system in an image file on a loop device, mounted `errors=remount-ro`: an
    /// error makes the kernel turn it read-only under the open files, as a failing disk would.
    fn ext4(megabytes: u64) -> Disk {
        let (dir, mnt) = mount_point();
        let image = dir.path().join("disk.img");
        let file = std::fs::File::create(&image).expect("create the disk image");
        file.set_len(megabytes << 20).expect("size the disk image");
        run("mkfs.ext4", &["-q", "-F"], &image);
        let opts = ["-o", "loop,errors=remount-ro"];
        let out = Command::new("mount")
            .args(opts)
            .arg(&image)
            .arg(&mnt)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting an ext4 image on a loop device failed (this test needs root and /dev/loop*): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Disk { _dir: dir, mnt }
    }

    fn path(&self) -> &Path {
        &self.mnt
    }

    /// Writes a filler file until the file system says ENOSPC; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.mnt.join("filler");
        let mut f = std::fs::File::create(&path).expect("create the filler");
        let chunk = vec![0u8; 64 * 1024];
        for size in [chunk.len(), 4096, 512] {
            loop {
                match f.write_all(&chunk[..size]) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                    Err(e) => panic!("filling the disk: {e}"),
                }
            }
        }
        path
    }

    fn remount(&self, how: &str) {
        run("mount", &["-o", &format!("remount,{how}")], &self.mnt);
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        // Lazy: a server that outlived a failed test must not leave the mount behind.
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

fn mount_point() -> (tempfile::TempDir, PathBuf) {
    // SAFETY: geteuid(2) has no preconditions and touches no memory.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test mounts a small file system to fill it and needs root (CI and the dev machine run as root)"
    );
    let dir = tempfile::Builder::new()
        .prefix("switchboard-disk-")
        .tempdir()
        .expect("temp dir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mount point");
    (dir, mnt)
}

fn run(cmd: &str, args: &[&str], last: &Path) {
    let out = Command::new(cmd)
        .args(args)
        .arg(last)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} {} failed (this test needs root): {}",
        last.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server with its data on `disk` and a menu on `number`, and the first call's Call-ID once its
/// record is stored.
fn start_on(disk: &Disk, number: &str) -> (Server, String) {
    let server = Server::start(
        ServerOpts::new()
            .flow("menu", &menu_flow("menu", number))
            .data(disk.path()),
    );
    let first = menu_call(&server, number);
    wait_call_record(&server, &first, secs(10));
    (server, first)
}

/// `n` menu calls, each answered and heard through; then /healthz must show their records
/// waiting, and the store failing for `reason`. Their Call-IDs.
fn calls_while_failing(server: &Server, number: &str, n: usize, reason: &str) -> Vec<String> {
    let calls = (0..n).map(|_| menu_call(server, number)).collect();
    let down = wait_healthz(server, secs(60), "records queued", |s, b| {
        s == 503 && b["cdr_queue"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(down["cdr_error"], reason, "{down}");
    assert_eq!(down["database"], false, "{down}");
    calls
}

/// The record links no recording and has a `recording_failed` event naming the full disk.
fn assert_recording_failed(rec: &serde_json::Value) {
    assert!(
        rec["recording"].is_null(),
        "links a file never written: {rec}"
    );
    let failed = rec["events"]
        .as_array()
        .and_then(|ev| ev.iter().find(|e| e["kind"] == "recording_failed"))
        .unwrap_or_else(|| panic!("no recording_failed event: {rec}"));
    assert!(
        failed["detail"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("No space left")),
        "{failed}"
    );
}

/// Starting the server again must fail, with `says` in its log.
fn assert_refused(server: &mut Server, disk: &str, says: &str) {
    let status = server.restart_expecting_exit(secs(15));
    assert!(
        status.is_some_and(|s| !s.success()),
        "started on a {disk}: {status:?}"
    );
    let log = server.log();
    assert!(
        log.contains(says),
        "the error does not say `{says}`:\n{log}"
    );
}

fn stored_rows(server: &Server) -> i64 {
    let db = rusqlite::Connection::open(server.data_dir().join("switchboard.db"))
        .expect("open the server's database");
    db.query_row("SELECT count(*) FROM cdr_calls", [], |r| r.get(0))
        .expect("count records")
}

#[test]
fn calls_keep_working_on_a_full_disk_and_every_record_lands_once_space_is_back() {
    let disk = Disk::tmpfs("4m");
    let (server, first) = start_on(&disk, "7310");

    let filler = disk.fill();
    // Each call is answered and hears its menu: the full disk is the records' problem only.
    let during = calls_while_failing(&server, "7310", 3, "disk_full");
    let metrics = metrics_text(&server);
    assert!(metric(&metrics, "switchboard_cdr_queue") > 0.0, "{metrics}");
    assert_eq!(
        metric(
            &metrics,
            "switchboard_cdr_store_failing{reason=\"disk_full\"}"
        ),
        1.0,
        "{metrics}"
    );
    // What was stored before is still there to read.
    let (status, _) = http_get_json(&server, &format!("/api/calls/{}", percent_encode(&first)));
    assert_eq!(status, 200);
    let late = menu_call(&server, "7310");

    std::fs::remove_file(&filler).expect("delete the filler");
    let up = wait_healthz(&server, secs(30), "the queue written", |s, b| {
        s == 200 && b["database"] == true && b["cdr_queue"] == 0
    });
    assert!(up["cdr_error"].is_null(), "{up}");
    let all: Vec<&String> = [&first].into_iter().chain(&during).chain([&late]).collect();
    for id in &all {
        let rec = wait_call_record(&server, id, secs(10));
        assert_eq!(field(&rec, "hangup_by"), "caller", "{rec}");
        assert_eq!(field(&rec, "disposition"), "completed", "{rec}");
    }
    assert_eq!(
        stored_rows(&server),
        all.len() as i64,
        "each call's record exactly once"
    );
    let metrics = metrics_text(&server);
    assert_eq!(metric(&metrics, "switchboard_cdr_records_lost_total"), 0.0);
    assert_eq!(
        metric(
            &metrics,
            "switchboard_cdr_store_failing{reason=\"disk_full\"}"
        ),
        0.0
    );
    let log = server.log();
    assert!(
        log.contains("CDR store failing"),
        "the fault is not in the log"
    );
    assert!(log.contains("disk_full"), "the log does not say why");
    assert!(
        log.contains("queued records written"),
        "the log does not say the records were written"
    );
}

#[test]
fn a_server_started_on_a_full_or_read_only_disk_refuses_saying_why() {
    let disk = Disk::tmpfs("4m");
    let (mut server, first) = start_on(&disk, "7320");
    sigterm(&server);
    assert!(server.wait_exit(secs(15)).is_some(), "no clean stop");

    let filler = disk.fill();
    assert_refused(&mut server, "full disk", "is full");
    std::fs::remove_file(&filler).expect("delete the filler");
    disk.remount("ro");
    assert_refused(
        &mut server,
        "read-only disk",
        "is on a read-only file system",
    );
    disk.remount("rw");

    // Space back: it starts, with nothing lost.
    server.restart();
    let next = menu_call(&server, "7320");
    for id in [&first, &next] {
        wait_call_record(&server, id, secs(10));
    }
    assert_eq!(stored_rows(&server), 2);
}

/// The kernel turns the file system read-only under the running server (ext4 `errors=remount-ro`
/// after an error, as on a failing disk). Nothing brings it back but an unmount and fsck, so the
/// records wait in memory, and a server stopped before then writes each one it could not save
/// into its log.
#[test]
fn calls_keep_working_when_the_file_system_turns_read_only() {
    let disk = Disk::ext4(32);
    let (mut server, first) = start_on(&disk, "7330");

    let dev = Command::new("findmnt")
        .args(["-no", "SOURCE"])
        .arg(disk.path())
        .output()
        .expect("findmnt");
    let dev = String::from_utf8_lossy(&dev.stdout).trim().to_string();
    let name = dev.rsplit('/').next().unwrap_or_default().to_string();
    std::fs::write(
        format!("/sys/fs/ext4/{name}/trigger_fs_error"),
        "switchboard test",
    )
    .expect("trigger an ext4 error");

    // SQLite hears EROFS on a write as a plain I/O error.
    let during = calls_while_failing(&server, "7330", 2, "io_error");
    assert!(
        server.log().contains("CDR store failing"),
        "the fault is not in the log"
    );
    let (status, _) = http_get_json(&server, &format!("/api/calls/{}", percent_encode(&first)));
    assert_eq!(status, 200, "what was stored can still be read");

    sigterm(&server);
    assert!(
        server.wait_exit(secs(30)).is_some(),
        "the server did not stop on a read-only disk"
    );
    let log = server.log();
    // The whole final record, to put back by hand once the disk is repaired.
    for id in &during {
        assert!(
            log.lines().any(|l| l.contains("record not saved")
                && l.contains(&format!("\"call_id\":\"{id}\""))
                && l.contains("\"hangup_by\":\"caller\"")),
            "call {id}'s record is neither saved nor in the log:\n{log}"
        );
    }
}

/// The recordings share the disk: a queue call recorded while it is full is answered, bridged
/// and ended as usual; its record says the recording could not be written (and links no file
/// that is not there), and lands once space is back.
#[test]
fn a_recording_the_full_disk_cannot_take_is_reported_on_the_record() {
    use common::agent::{agent_yaml, tone_pcm, Agent};
    const PW: &str = "correct horse battery";
    let disk = Disk::tmpfs("4m");
    let config = format!(
        "queues:\n  - name: billing\n    record: true\n    wrap_up: 1s\n    announce_every: 60s\nagents:\n{}",
        agent_yaml("alice", PW, &[], &["billing"])
    );
    let flow = "flow: rec\nnumbers: [\"7340\"]\nlanguage: en\nstart: billing\nsteps:\n  billing:\n    queue: { name: billing, timeout: 2m }\n    on_timeout: hangup\n";
    let server = Server::start(
        ServerOpts::new()
            .flow("rec", flow)
            .config(&config)
            .data(disk.path()),
    );
    let mut alice = Agent::login(&server, "alice", PW).must();
    alice.set_available().must();

    let filler = disk.fill();
    let mut phone = Phone::udp(&server);
    phone.call("7340", CALLER).must();
    let ring = alice.wait_ring(secs(15)).must();
    let call_id = ring["call_id"].as_str().expect("call_id").to_string();
    alice.answer(&call_id).must();
    alice.send_tone_pcmu(500.0);
    phone.queue_pcm(&tone_pcm(1000.0, 1.0));
    assert!(
        phone.rtp_arriving_during(Duration::from_secs(1)) > 0,
        "no audio from the agent"
    );
    assert_eq!(phone.hangup().must(), 200);
    wait_healthz(&server, secs(60), "records queued", |s, b| {
        s == 503 && b["cdr_error"] == "disk_full"
    });

    std::fs::remove_file(&filler).expect("delete the filler");
    let rec = wait_call_record(&server, &call_id, secs(30));
    assert_eq!(field(&rec, "hangup_by"), "caller", "{rec}");
    assert_recording_failed(&rec);
    let leftovers: Vec<_> = std::fs::read_dir(server.data_dir().join("recordings"))
        .expect("recordings dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        leftovers.is_empty(),
        "half-written files left: {leftovers:?}"
    );
}

/// A voicemail (`record` step) the full disk cannot take: the caller still hears the flow go on
/// to its next step, and the record says the message could not be written instead of linking it.
#[test]
fn a_voicemail_the_full_disk_cannot_take_is_reported_on_the_record() {
    let disk = Disk::tmpfs("4m");
    let flow = "flow: vm\nnumbers: [\"7350\"]\nlanguage: en\nstart: voicemail\nsteps:\n  voicemail:\n    record: { prompt: leave-message, max: 2s }\n    next: goodbye\n  goodbye:\n    play: goodbye\n    next: hangup\n";
    let server = Server::start(ServerOpts::new().flow("vm", flow).data(disk.path()));
    let filler = disk.fill();
    let prompts = english_prompts(&["leave-message", "goodbye"]);
    let mut phone = Phone::udp(&server);
    phone.call("7350", CALLER).must();
    phone
        .wait_heard(&prompts, "leave-message", 1, secs(10))
        .must();
    phone.queue_pcm(&common::agent::tone_pcm(1000.0, 2.0));
    phone.wait_heard(&prompts, "goodbye", 1, secs(10)).must();
    phone.wait_for_bye(secs(10)).must();
    let call_id = phone.call_id().to_string();

    std::fs::remove_file(&filler).expect("delete the filler");
    let rec = wait_call_record(&server, &call_id, secs(30));
    assert_recording_failed(&rec);
}

/// PIN steps on a full disk fail closed: the attempt cannot be written to the lockout ledger
/// before the PIN is checked, so even the right PIN is refused (the flow's wrong-PIN path), and
/// the log says why. Letting PINs through unrecorded would hand out unlimited guesses.
#[test]
fn on_a_full_disk_a_pin_step_refuses_even_the_right_pin_and_says_why() {
    const PIN: &str = "73829461";
    let disk = Disk::tmpfs("4m");
    let flow = "flow: pin\nnumbers: [\"7360\"]\nlanguage: en\nstart: identify\nsteps:\n  identify:\n    pin: { account: caller, prompt: enter-pin, digits: 4-8, terminator: \"#\", timeout: 6s, attempts: 1, retry_prompt: pin-invalid }\n    on_ok: menu\n    on_fail: locked-out\n  menu:\n    play: main-menu\n    next: hangup\n  locked-out:\n    play: too-many-attempts\n    next: hangup\n";
    let server = Server::start(
        ServerOpts::new()
            .flow("pin", flow)
            .account(Account::new("m-100", CALLER, PIN))
            .data(disk.path()),
    );
    let _filler = disk.fill();
    let prompts = english_prompts(&["enter-pin", "main-menu", "too-many-attempts"]);
    let mut phone = Phone::udp(&server);
    phone.call("7360", CALLER).must();
    phone.wait_heard(&prompts, "enter-pin", 1, secs(10)).must();
    phone.send_digits_rfc4733(&format!("{PIN}#")).must();
    phone
        .wait_heard(&prompts, "too-many-attempts", 1, secs(10))
        .must();
    phone.wait_for_bye(secs(10)).must();
    let log = server.log();
    assert!(
        log.contains("lockout ledger unavailable; refusing the PIN"),
        "{log}"
    );
    assert!(!log.contains(PIN), "the PIN is in the log");
}
