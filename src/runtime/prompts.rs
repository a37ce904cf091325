//! Decoded prompts, shared by every call: a prompt is read and converted once, then played from
//! memory as an `Arc<[i16]>`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::media::player::Samples;

#[derive(Default)]
pub struct PromptCache {
    map: Mutex<HashMap<PathBuf, (std::time::SystemTime, Samples)>>,
}

impl PromptCache {
    /// The samples of a WAV file, 8 kHz mono; reloaded if the file changed on disk.
    pub fn get(&self, path: &Path) -> Result<Samples, String> {
        let mtime = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some((t, s)) = self.map.lock().unwrap_or_else(|p| p.into_inner()).get(path) {
            if *t == mtime {
                return Ok(s.clone());
            }
        }
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (pcm, _info) = crate::media::wav::decode_wav(std::io::BufReader::new(file))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let samples: Samples = pcm.into();
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_path_buf(), (mtime, samples.clone()));
        Ok(samples)
    }
}
