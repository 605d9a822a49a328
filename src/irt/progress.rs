//! The progress line of long fits.

use std::time::Duration;

/// A progress line on stderr, shown only once a fit has run for a second.
pub(super) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    /// What the fit maximises, as the message names it.
    objective: &'static str,
}

impl Progress {
    pub fn new(enabled: bool, objective: &'static str) -> Self {
        Self {
            objective,
            bar: enabled.then(|| {
                let bar = indicatif::ProgressBar::hidden();
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} irt_fit: iteration {pos}, {msg} [{elapsed}]",
                    )
                    .expect("valid template"),
                );
                bar
            }),
        }
    }

    pub fn tick(&self, sweep: usize, value: f64, elapsed: Duration) {
        if let Some(bar) = &self.bar {
            if elapsed > Duration::from_secs(1) && bar.is_hidden() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            bar.set_position(sweep as u64);
            bar.set_message(format!("{} {value:.1}", self.objective));
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A fit left early (cancelled, failed) takes its line off the screen, so it never draws
/// over the next query's output.
impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
