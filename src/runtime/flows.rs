//! The live flow set and its reload.
//!
//! Admins edit YAML files while calls are up. Every second the flows directory is looked at; when a
//! file changed, everything is loaded and checked again. A file with errors is refused — its errors
//! are logged as `file:line:column: message` — and the last good version of that file keeps serving.
//! A call holds the `Arc<Flow>` it started with, so it finishes on that version whatever happens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use tokio::sync::watch;

use crate::config::Config;
use crate::ivr::{self, CheckEnv, Flow, FlowSet, PromptIndex, Severity};

use super::Shared;

/// Modification stamps of everything a reload depends on.
type Stamp = BTreeMap<PathBuf, (SystemTime, u64)>;

pub struct Loaded {
    pub set: FlowSet,
    pub prompts: Arc<PromptIndex>,
    stamp: Stamp,
}

pub struct FlowRegistry {
    current: RwLock<Arc<Loaded>>,
}

fn stamp(dir: &Path, sounds: &Path) -> Stamp {
    let mut out = Stamp::new();
    let mut walk = vec![dir.to_path_buf(), sounds.to_path_buf()];
    while let Some(d) = walk.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                walk.push(p);
            } else {
                let mtime = md.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                out.insert(p, (mtime, md.len()));
            }
        }
    }
    out
}

fn check_env(config: &Config) -> CheckEnv {
    CheckEnv {
        sounds_dir: config.sounds_dir.clone(),
        queues: config.queue_infos(),
        trunk: Some(config.trunk.is_some()),
    }
}

fn load_once(config: &Config, previous: Option<&Loaded>) -> Loaded {
    let st = stamp(&config.flows_dir, &config.sounds_dir);
    let env = check_env(config);
    let (mut set, diags) = ivr::load_dir(&config.flows_dir, &env);
    let mut refused: Vec<PathBuf> = Vec::new();
    for d in &diags {
        match d.severity {
            Severity::Error => {
                tracing::error!("{d}");
                if !refused.contains(&d.file) {
                    refused.push(d.file.clone());
                }
            }
            _ => tracing::warn!("{d}"),
        }
    }
    // A refused file keeps its last good version, if it had one.
    if let Some(prev) = previous {
        for file in &refused {
            for flow in prev.set.flows() {
                if &flow.source == file && set.get(&flow.name).is_none() {
                    tracing::warn!(file = %file.display(), flow = %flow.name, "edit refused; the previous version keeps serving");
                    set.insert(flow.clone());
                }
            }
        }
    }
    let prompts = Arc::new(PromptIndex::scan(&config.sounds_dir));
    let names: Vec<&str> = set.flows().map(|f| f.name.as_str()).collect();
    tracing::info!(flows = ?names, dir = %config.flows_dir.display(), "flows loaded");
    Loaded {
        set,
        prompts,
        stamp: st,
    }
}

impl FlowRegistry {
    pub fn load(config: &Config) -> Self {
        FlowRegistry {
            current: RwLock::new(Arc::new(load_once(config, None))),
        }
    }

    pub fn current(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The flow that owns a dialed number, and the prompts as they are now.
    pub fn for_number(&self, number: &str) -> Option<(Arc<Flow>, Arc<PromptIndex>)> {
        let cur = self.current();
        cur.set
            .by_number(number)
            .map(|f| (f.clone(), cur.prompts.clone()))
    }

    /// A flow by its name (browser calls name the flow, not a number).
    pub fn for_name(&self, name: &str) -> Option<(Arc<Flow>, Arc<PromptIndex>)> {
        let cur = self.current();
        cur.set.get(name).map(|f| (f.clone(), cur.prompts.clone()))
    }

    /// Reload if anything changed on disk; true when a reload happened.
    pub fn reload_if_changed(&self, config: &Config) -> bool {
        let cur = self.current();
        if stamp(&config.flows_dir, &config.sounds_dir) == cur.stamp {
            return false;
        }
        let next = load_once(config, Some(&cur));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        true
    }
}

pub async fn watch(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(shared.config.reload_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            s.flows.reload_if_changed(&s.config);
            reload_accounts(&s);
        })
        .await;
    }
}

/// The admin edits the accounts CSV like the flows: a broken edit is refused, the old list stays.
fn reload_accounts(shared: &Shared) {
    let path = &shared.config.accounts;
    let Ok(mtime) = std::fs::metadata(path).and_then(|m| m.modified()) else {
        return;
    };
    let mut last = shared
        .accounts_seen
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let changed = match &*last {
        Some((p, t)) => p != path || *t != mtime,
        None => {
            *last = Some((path.clone(), mtime));
            false
        }
    };
    if !changed {
        return;
    }
    *last = Some((path.clone(), mtime));
    match crate::auth::Accounts::load_csv(path) {
        Ok(a) => {
            tracing::info!(accounts = a.len(), "accounts reloaded");
            shared.auth.replace_accounts(a);
        }
        Err(e) => tracing::error!("{e} (accounts edit refused; the previous list keeps serving)"),
    }
}
