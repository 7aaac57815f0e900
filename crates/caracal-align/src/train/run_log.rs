//! What every trainer of this crate does around its steps: one JSON line
//! per step in `out/metrics.jsonl` (records past the step a run resumes
//! from, left by a run killed after its last checkpoint, are dropped), a
//! progress bar on a TTY, and the cadence of evaluations and checkpoints.

use caracal_core::progress::JsonlLog;
use caracal_core::{Error, Result};
use caracal_models::train::truncate_log;
use std::path::Path;

/// The log and progress bar of one run.
pub struct RunLog {
    log: Option<JsonlLog>,
    pb: caracal_core::progress::ProgressBar,
}

impl RunLog {
    /// Open the log under `out` (none when `None`) and a progress bar at
    /// `done` of `total` steps.
    pub fn open(out: Option<&Path>, done: usize, total: usize, what: &str) -> Result<Self> {
        let log = match out {
            Some(d) => {
                std::fs::create_dir_all(d)
                    .map_err(|e| Error::file(d, format!("cannot create: {e}")))?;
                let p = d.join("metrics.jsonl");
                truncate_log(&p, done)?;
                Some(JsonlLog::append(&p)?)
            }
            None => None,
        };
        let pb = caracal_core::progress::bar(total as u64, what);
        pb.set_position(done as u64);
        Ok(RunLog { log, pb })
    }

    /// Record step `step`: the bar's position and message, and `rec` as a
    /// JSON line.
    pub fn record(
        &mut self,
        step: usize,
        message: String,
        rec: &impl serde::Serialize,
    ) -> Result<()> {
        self.pb.set_position(step as u64);
        self.pb.set_message(message);
        if let Some(l) = self.log.as_mut() {
            let v = serde_json::to_value(rec).map_err(|e| Error::invalid(e.to_string()))?;
            l.log(&v)?;
        }
        Ok(())
    }

    /// Clear the progress bar.
    pub fn finish(self) {
        self.pb.finish_and_clear();
    }
}

/// Whether something done every `every` steps (0: only at the end) is due
/// after step `step` of `total`.
pub fn due(every: usize, step: usize, total: usize) -> bool {
    (every > 0 && step.is_multiple_of(every)) || step == total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadence_and_log_truncation_on_resume() {
        assert!(
            due(3, 6, 10) && !due(3, 7, 10) && due(3, 10, 10) && due(0, 10, 10) && !due(0, 9, 10)
        );
        let d = std::env::temp_dir().join(format!("caracal-runlog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let mut l = RunLog::open(Some(&d), 0, 3, "t").unwrap();
        for s in 1..=3 {
            l.record(s, String::new(), &serde_json::json!({ "step": s }))
                .unwrap();
        }
        l.finish();
        // Resuming from step 2 drops the record of step 3.
        RunLog::open(Some(&d), 2, 3, "t").unwrap().finish();
        let text = std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        std::fs::remove_dir_all(&d).ok();
    }
}
