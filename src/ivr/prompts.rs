//! Where each prompt's WAV file is: `sounds/<language>/<name>.wav`, else `sounds/<name>.wav`.
//!
//! The index is built once by scanning the sounds directory (reading only WAV headers), so the
//! interpreter resolves prompts without touching the disk.

use super::events::PromptRef;
use super::model::PlayItem;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MAX_DEPTH: usize = 6;
const MAX_FILES: usize = 20_000;

/// What a WAV header says.
#[derive(Clone, Debug, PartialEq)]
pub struct WavInfo {
    pub sample_rate: u32,
    pub channels: u16,
    pub bits: u16,
    pub float: bool,
    pub duration: Duration,
}

impl WavInfo {
    /// 8 kHz mono 16-bit PCM plays as is.
    pub fn is_telephony(&self) -> bool {
        self.sample_rate == 8000 && self.channels == 1 && self.bits == 16 && !self.float
    }

    /// How the file will be converted when played, or None when it needs no conversion.
    pub fn conversion(&self) -> Option<String> {
        if self.is_telephony() {
            return None;
        }
        let mut steps = Vec::new();
        if self.sample_rate != 8000 {
            steps.push(format!("resampled from {} Hz to 8 kHz", self.sample_rate));
        }
        if self.channels != 1 {
            steps.push(format!(
                "mixed down from {} channels to mono",
                self.channels
            ));
        }
        if self.float || self.bits != 16 {
            let kind = if self.float { "float" } else { "PCM" };
            steps.push(format!(
                "converted from {}-bit {kind} to 16-bit PCM",
                self.bits
            ));
        }
        Some(format!(
            "is {} Hz, {} channel(s), {}-bit{}, not 8 kHz mono 16-bit PCM: it will be {} each time it plays \
             (convert it once with `sox in.wav -r 8000 -c 1 -b 16 out.wav`)",
            self.sample_rate,
            self.channels,
            self.bits,
            if self.float { " float" } else { "" },
            steps.join(", ")
        ))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PromptFile {
    pub path: PathBuf,
    /// The header, or why it could not be read.
    pub info: Result<WavInfo, String>,
}

impl PromptFile {
    /// Length of the audio, zero when unknown.
    pub fn duration(&self) -> Duration {
        self.info.as_ref().map(|i| i.duration).unwrap_or_default()
    }
}

/// Prompt files by relative name without `.wav`: `welcome`, `pt-BR/welcome`, `en/digits/4`.
#[derive(Clone, Debug, Default)]
pub struct PromptIndex {
    files: BTreeMap<String, PromptFile>,
}

pub fn read_wav_info(path: &Path) -> Result<WavInfo, String> {
    let reader = hound::WavReader::open(path).map_err(|e| e.to_string())?;
    let spec = reader.spec();
    if spec.sample_rate == 0 || spec.channels == 0 {
        return Err("the header says 0 Hz or 0 channels".to_string());
    }
    let frames = u64::from(reader.duration());
    Ok(WavInfo {
        sample_rate: spec.sample_rate,
        channels: spec.channels,
        bits: spec.bits_per_sample,
        float: spec.sample_format == hound::SampleFormat::Float,
        duration: Duration::from_micros(
            frames.saturating_mul(1_000_000) / u64::from(spec.sample_rate),
        ),
    })
}

impl PromptIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Indexes every `.wav` under `dir`. A missing directory gives an empty index: the checker
    /// then reports each prompt as missing, which says more than one "no sounds/" error.
    pub fn scan(dir: &Path) -> Self {
        let mut index = PromptIndex::new();
        index.walk(dir, "", 0);
        index
    }

    fn walk(&mut self, dir: &Path, prefix: &str, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            if self.files.len() >= MAX_FILES {
                return;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let is_dir = kind.is_dir() || (kind.is_symlink() && path.is_dir());
            if is_dir {
                self.walk(&path, &format!("{prefix}{name}/"), depth + 1);
            } else if let Some(stem) = name
                .strip_suffix(".wav")
                .or_else(|| name.strip_suffix(".WAV"))
            {
                let info = read_wav_info(&path);
                self.insert(&format!("{prefix}{stem}"), PromptFile { path, info });
            }
        }
    }

    /// Adds a file under its relative name (`pt-BR/welcome`); for tests and tools.
    pub fn insert(&mut self, name: &str, file: PromptFile) {
        self.files.insert(name.to_string(), file);
    }

    /// The file for a prompt in a language, falling back to the language-neutral one.
    pub fn resolve(&self, language: &str, name: &str) -> Option<&PromptFile> {
        self.files
            .get(&format!("{language}/{name}"))
            .or_else(|| self.files.get(name))
    }

    /// What to play for `items` in `language`: said values become digit and number prompts.
    /// Prompts without a file are left out (and logged) unless `keep_missing`, in which case
    /// they come with an empty path — only the simulator asks for that.
    pub fn play_list(
        &self,
        language: &str,
        items: &[PlayItem],
        vars: &BTreeMap<String, String>,
        keep_missing: bool,
    ) -> Vec<PromptRef> {
        let mut names: Vec<String> = Vec::new();
        for item in items {
            match item {
                PlayItem::Prompt { name, .. } => names.push(name.clone()),
                PlayItem::Digits { value, .. } => names.extend(digit_prompts(&value.render(vars))),
                PlayItem::Number { value, .. } => names.extend(number_prompts(&value.render(vars))),
            }
        }
        let mut out = Vec::new();
        for name in names {
            match self.resolve(language, &name) {
                Some(file) => out.push(PromptRef {
                    name,
                    path: file.path.clone(),
                }),
                None => {
                    tracing::warn!(prompt = %name, language, "prompt has no sound file; skipped");
                    if keep_missing {
                        out.push(PromptRef {
                            name,
                            path: PathBuf::new(),
                        });
                    }
                }
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// Each digit as `digits/N`; anything else in the value is not spoken.
fn digit_prompts(text: &str) -> Vec<String> {
    text.chars()
        .filter(char::is_ascii_digit)
        .take(32)
        .map(|d| format!("digits/{d}"))
        .collect()
}

/// 0–99 as `numbers/N`; larger values (and anything not a plain number) digit by digit.
fn number_prompts(text: &str) -> Vec<String> {
    match text.trim().parse::<u64>() {
        Ok(n) if n < 100 => vec![format!("numbers/{n}")],
        _ => digit_prompts(text),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a WAV of `ms` milliseconds of silence.
    pub(crate) fn write_wav(path: &Path, rate: u32, channels: u16, ms: u32) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for _ in 0..(u64::from(rate) * u64::from(ms) / 1000) * u64::from(channels) {
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
    }

    #[test]
    fn language_first_then_neutral() {
        let dir = tempfile::tempdir().unwrap();
        write_wav(&dir.path().join("pt-BR/welcome.wav"), 8000, 1, 1500);
        write_wav(&dir.path().join("welcome.wav"), 8000, 1, 100);
        write_wav(&dir.path().join("goodbye.wav"), 8000, 1, 100);
        write_wav(&dir.path().join("en/digits/4.wav"), 8000, 1, 100);
        std::fs::write(dir.path().join("broken.wav"), b"not a wav").unwrap();
        let idx = PromptIndex::scan(dir.path());
        let pt = idx.resolve("pt-BR", "welcome").unwrap();
        assert!(pt.path.ends_with("pt-BR/welcome.wav"));
        assert_eq!(pt.duration(), Duration::from_millis(1500));
        assert_eq!(
            idx.resolve("en", "welcome").unwrap().path,
            dir.path().join("welcome.wav")
        );
        assert_eq!(
            idx.resolve("en", "welcome").unwrap().duration(),
            Duration::from_millis(100)
        );
        assert!(idx.resolve("pt-BR", "goodbye").is_some());
        assert!(idx.resolve("en", "digits/4").is_some());
        assert!(idx.resolve("pt-BR", "digits/4").is_none());
        assert!(idx.resolve("en", "broken").unwrap().info.is_err());
        assert!(PromptIndex::scan(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn conversion_is_described() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hifi.wav");
        write_wav(&p, 44100, 2, 10);
        let info = read_wav_info(&p).unwrap();
        let msg = info.conversion().unwrap();
        assert!(msg.contains("resampled from 44100 Hz to 8 kHz"), "{msg}");
        assert!(msg.contains("mixed down from 2 channels to mono"), "{msg}");
        write_wav(&p, 8000, 1, 10);
        assert_eq!(read_wav_info(&p).unwrap().conversion(), None);
    }
}
