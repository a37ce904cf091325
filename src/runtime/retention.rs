//! Call recordings on disk: their names, writing them off the call path, and deleting them once
//! they are older than `recordings.retention`.
//!
//! A call recording is `<call id>.rec.wav` (the call id with anything but letters, digits, `-`
//! and `.` replaced by `_`) directly under `<data>/recordings/`. Retention only ever deletes
//! files of that shape: voicemails (`<call id>-<n>.wav`) and anything an admin put there stay.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

use super::Shared;
use crate::cdr::{CallEvent, CallRecord, CdrStore};

const SUFFIX: &str = ".rec.wav";
/// Longest call id kept in a file name; longer ids are cut (file systems limit names to 255).
const MAX_ID: usize = 128;
const CHECK_EVERY: Duration = Duration::from_secs(3600);

/// The file name of a call's recording, relative to the recordings directory.
pub fn recording_name(call_id: &str) -> String {
    let id: String = call_id
        .chars()
        .take(MAX_ID)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // A leading dot would hide the file and `..` would look like a path.
    format!("r{id}{SUFFIX}")
}

/// Whether `name` is a call recording's name (and nothing else: no directories, no dot files).
pub fn is_recording_name(name: &str) -> bool {
    let Some(id) = name.strip_suffix(SUFFIX) else {
        return false;
    };
    let Some(id) = id.strip_prefix('r') else {
        return false;
    };
    id.len() <= MAX_ID
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

/// The recording's path, if `name` (from a CDR) is a recording name.
pub fn recording_path(dir: &Path, name: &str) -> Option<PathBuf> {
    is_recording_name(name).then(|| dir.join(name))
}

/// Writes interleaved stereo samples as an 8 kHz 16-bit WAV; blocking. The file appears whole
/// or not at all (written aside, then renamed), so retention and downloads never see half.
/// The error says why it could not be written (a full disk: "No space left on device").
pub fn write_call_recording(dir: &Path, name: &str, samples: &[i16]) -> Result<(), String> {
    let Some(path) = recording_path(dir, name) else {
        return Err(format!("{name} is not a recording name"));
    };
    let bytes = match crate::media::wav::encode_wav(samples, 2) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the call recording");
            return Err(e.to_string());
        }
    };
    let part = dir.join(format!(".{name}.part"));
    let done = std::fs::write(&part, bytes).and_then(|()| std::fs::rename(&part, &path));
    match done {
        Ok(()) => {
            tracing::info!(file = %name, seconds = samples.len() / 16_000, "call recording written");
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, file = %path.display(), "cannot write the call recording");
            let _ = std::fs::remove_file(&part);
            Err(e.to_string())
        }
    }
}

/// The call recording `file` could not be written: the record no longer links a file that does
/// not exist, and a `recording_failed` event says why.
pub fn recording_failed(rec: &mut CallRecord, file: &str, error: &str, at: DateTime<Utc>) {
    if rec.recording.as_deref() == Some(file) {
        rec.recording = None;
    }
    rec.events.push(CallEvent {
        at,
        kind: "recording_failed".into(),
        detail: serde_json::json!({ "file": file, "error": error }),
    });
}

/// Deletes the recordings under `dir` last written before `now - retention`, and tells the CDR
/// store. Returns the names deleted. Blocking.
pub fn sweep(
    dir: &Path,
    retention: Duration,
    now: SystemTime,
    store: &dyn CdrStore,
) -> Vec<String> {
    let mut deleted = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return deleted;
    };
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !is_recording_name(&name) {
            continue;
        }
        // symlink_metadata: a link is not ours to follow or delete.
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !meta.file_type().is_file() {
            continue;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if age < retention {
            continue;
        }
        if let Err(e) = std::fs::remove_file(entry.path()) {
            tracing::warn!(error = %e, file = %name, "cannot delete an expired recording");
            continue;
        }
        let at = chrono::DateTime::<chrono::Utc>::from(now);
        if let Err(e) = store.recording_deleted(&name, at) {
            tracing::warn!(error = %e, file = %name, "recording deleted but its CDR not updated");
        }
        tracing::info!(file = %name, age_s = age.as_secs(), "recording deleted by retention");
        deleted.push(name);
    }
    deleted
}

/// Checks at start, then hourly (or as often as the retention itself, if shorter).
pub async fn run(shared: Arc<Shared>) {
    let Some(retention) = shared.config.recording_retention else {
        return;
    };
    let every = retention.clamp(Duration::from_secs(1), CHECK_EVERY);
    loop {
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            sweep(
                &s.config.recordings_dir(),
                retention,
                SystemTime::now(),
                s.cdr_store.as_ref(),
            )
        })
        .await;
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdr::{CallRecord, Direction, SqliteCdrStore};

    #[test]
    fn names_cannot_escape_the_directory_and_others_files_are_not_ours() {
        let n = recording_name("../../etc/passwd@x");
        assert!(!n.contains('/'));
        assert!(is_recording_name(&n));
        assert!(!is_recording_name("abc-1.wav"), "voicemail");
        assert!(!is_recording_name("notes.txt"));
        assert!(!is_recording_name("../rx.rec.wav"));
        assert!(!is_recording_name(".rx.rec.wav.part"));
        assert!(recording_path(Path::new("/d"), "../rx.rec.wav").is_none());
        assert!(!recording_name(&"x".repeat(1000)).is_empty());
        assert!(is_recording_name(&recording_name(&"x".repeat(1000))));
    }

    #[test]
    fn expired_recordings_go_and_their_cdr_says_so_others_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("recordings");
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteCdrStore::open(&tmp.path().join("db.sqlite")).unwrap();
        let name = recording_name("call-1");
        assert_eq!(write_call_recording(&dir, &name, &[1, 2, 3, 4]), Ok(()));
        std::fs::write(dir.join("call-1-1.wav"), b"voicemail").unwrap();
        std::fs::write(dir.join("readme.txt"), b"admin's").unwrap();
        let mut rec = CallRecord::new("call-1", Direction::Inbound, "+1", "+2", chrono::Utc::now());
        rec.recording = Some(name.clone());
        store.begin(&rec).unwrap();
        store.finish(&rec).unwrap();

        let later = SystemTime::now() + Duration::from_secs(3600);
        assert!(sweep(&dir, Duration::from_secs(7200), later, &store).is_empty());
        assert!(dir.join(&name).exists(), "younger than the retention");

        let deleted = sweep(&dir, Duration::from_secs(60), later, &store);
        assert_eq!(deleted, vec![name.clone()]);
        assert!(!dir.join(&name).exists());
        assert!(dir.join("call-1-1.wav").exists() && dir.join("readme.txt").exists());
        let got = store.get("call-1").unwrap().unwrap();
        assert_eq!(got.recording, None);
        let ev = got.events.iter().find(|e| e.kind == "recording_deleted");
        assert_eq!(ev.unwrap().detail["file"], name.as_str());
    }
}
