//! crossdiff's session settings, through DataFusion's configuration extensions:
//! `SET crossdiff.run_store = 'runs'` and the like, listed by `SHOW ALL`. A function's own
//! option wins over a setting; a setting wins over the environment and the defaults.

use std::path::{Path, PathBuf};

use datafusion::catalog::Session;
use datafusion::common::config::{ConfigEntry, ConfigExtension, ConfigField, ExtensionOptions};
use datafusion::common::{config_err, Result};
use datafusion::prelude::SessionContext;

use crate::experiment::RunStore;

/// The `crossdiff.*` settings of a session.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub run_store: Option<String>,
    pub threads: Option<usize>,
    pub data_dir: Option<String>,
    pub matrix_options: Option<String>,
}

/// Each setting's key and description (shown by `SHOW ALL`).
const KEYS: [(&str, &str); 4] = [
    (
        "run_store",
        "Folder of the run store that fine_tune, evaluate, generalization_matrix, gap_profile, \
         runs and run_items use when their options name none (default: $CROSSDIFF_RUNS, else \
         ~/.cache/crossdiff/runs).",
    ),
    (
        "threads",
        "Worker threads of irt_fit and irt_abilities when their options name none (default: \
         every core).",
    ),
    (
        "data_dir",
        "Folder that relative model folders of fine_tune, evaluate, generalization_matrix and \
         gap_profile resolve against (default: the working directory).",
    ),
    (
        "matrix_options",
        "Default options of generalization_matrix and gap_profile, a JSON object; a call's own \
         options are merged over it, key by key (nested objects too).",
    ),
];

impl ConfigExtension for Settings {
    const PREFIX: &'static str = "crossdiff";
}

impl ExtensionOptions for Settings {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "run_store" => self.run_store.set("", value),
            "threads" => self.threads.set("", value),
            "data_dir" => self.data_dir.set("", value),
            "matrix_options" => self.matrix_options.set("", value),
            _ => config_err!(
                "unknown setting crossdiff.{key}; the settings are {}",
                KEYS.map(|(k, _)| format!("crossdiff.{k}")).join(", ")
            ),
        }
    }

    /// Keys with their prefix, so `SHOW ALL` lists `crossdiff.run_store`.
    fn entries(&self) -> Vec<ConfigEntry> {
        let values = [
            self.run_store.clone(),
            self.threads.map(|n| n.to_string()),
            self.data_dir.clone(),
            self.matrix_options.clone(),
        ];
        KEYS.iter()
            .zip(values)
            .map(|((key, description), value)| ConfigEntry {
                key: format!("{}.{key}", Self::PREFIX),
                value,
                description,
            })
            .collect()
    }
}

impl Settings {
    /// The settings of `session` (the defaults where the session has none registered).
    pub fn of(session: &dyn Session) -> Self {
        session
            .config_options()
            .extensions
            .get::<Settings>()
            .cloned()
            .unwrap_or_default()
    }

    /// The run store named by a function's option, else by the setting, else the default.
    pub fn run_store(&self, option: Option<&str>) -> RunStore {
        RunStore::locate(option.or(self.run_store.as_deref()))
    }

    /// A model folder as given, resolved against `data_dir` when relative.
    pub fn model_path(&self, path: &str) -> PathBuf {
        match &self.data_dir {
            Some(dir) if Path::new(path).is_relative() => Path::new(dir).join(path),
            _ => PathBuf::from(path),
        }
    }
}

/// Sets `key` (for example `crossdiff.run_store`) on a session, as `SET key = 'value'` does.
pub fn set(ctx: &SessionContext, key: &str, value: &str) -> Result<()> {
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .set(key, value)
}

/// `options` merged over `defaults`, key by key: a nested object is merged, any other value
/// replaces the default's.
pub fn merge_options(
    defaults: &serde_json::Value,
    options: &serde_json::Value,
) -> serde_json::Value {
    match (defaults, options) {
        (serde_json::Value::Object(d), serde_json::Value::Object(o)) => {
            let mut out = d.clone();
            for (key, value) in o {
                let merged = match out.get(key) {
                    Some(base) => merge_options(base, value),
                    None => value.clone(),
                };
                out.insert(key.clone(), merged);
            }
            serde_json::Value::Object(out)
        }
        (_, other) => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_merge_key_by_key() {
        let d = serde_json::json!({"n_bins": 10, "train": {"epochs": 20, "seed": 42}});
        let o = serde_json::json!({"held_out": 0.5, "train": {"epochs": 3}});
        assert_eq!(
            merge_options(&d, &o),
            serde_json::json!({"n_bins": 10, "held_out": 0.5, "train": {"epochs": 3, "seed": 42}})
        );
    }

    #[tokio::test]
    async fn set_reaches_the_functions() {
        let ctx = crate::new_context();
        ctx.sql("SET crossdiff.run_store = '/tmp/x'")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        ctx.sql("SET crossdiff.threads = 3").await.unwrap();
        let state = ctx.state();
        let s = Settings::of(&state);
        assert_eq!(s.run_store.as_deref(), Some("/tmp/x"));
        assert_eq!(s.threads, Some(3));
        // The option wins over the setting.
        assert_eq!(s.run_store(Some("/tmp/y")).root, Path::new("/tmp/y"));
        assert_eq!(s.run_store(None).root, Path::new("/tmp/x"));
        let e = ctx
            .sql("SET crossdiff.run_stor = 'x'")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown setting crossdiff.run_stor"), "{e}");
    }
}
