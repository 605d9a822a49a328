//! crossdiff's session settings, through DataFusion's configuration extensions:
//! `SET crossdiff.run_store = 'runs'` and the like, listed by `SHOW ALL`. A function's own
//! option wins over a setting; a setting wins over the environment and the defaults.

use std::path::{Path, PathBuf};

use datafusion::catalog::Session;
use datafusion::common::config::ConfigExtension;
use datafusion::common::{extensions_options, Result};
use datafusion::prelude::SessionContext;

use crate::experiment::RunStore;

extensions_options! {
    /// The `crossdiff.*` settings of a session.
    pub struct Settings {
        /// Folder of the run store that fine_tune, evaluate, generalization_matrix,
        /// gap_profile, runs and run_items use when their options name none (default:
        /// $CROSSDIFF_RUNS, else ~/.cache/crossdiff/runs).
        pub run_store: Option<String>, default = None
        /// Worker threads of irt_fit and irt_abilities when their options name none
        /// (default: every core).
        pub threads: Option<usize>, default = None
        /// Folder that relative model folders of fine_tune, evaluate,
        /// generalization_matrix and gap_profile resolve against (default: the working
        /// directory; `crossdiff sql --data DIR` sets it to DIR).
        pub data_dir: Option<String>, default = None
    }
}

impl ConfigExtension for Settings {
    const PREFIX: &'static str = "crossdiff";
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(e.contains("run_stor"), "{e}");
    }
}
