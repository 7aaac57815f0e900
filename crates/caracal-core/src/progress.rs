//! Progress for long work: a bar on a terminal, silence elsewhere, and one
//! JSON object per logged step in a JSONL file.

use crate::{Error, Result};
pub use indicatif::ProgressBar;
use indicatif::ProgressStyle;
use std::io::{IsTerminal, Write};
use std::path::Path;

/// A progress bar that draws only when standard error is a terminal.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg} (eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_prefix(what.to_string());
    pb
}

/// Appends one JSON object per line to a metrics file.
pub struct JsonlLog {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl JsonlLog {
    /// Open `path` for appending (a resumed run continues the same file).
    pub fn append(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).map_err(|e| Error::file(d, e.to_string()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::file(&path, format!("cannot open for appending: {e}")))?;
        Ok(JsonlLog { file, path })
    }

    /// Write one record as a line.
    pub fn log(&mut self, value: &serde_json::Value) -> Result<()> {
        let mut line = serde_json::to_string(value)
            .map_err(|e| Error::file(&self.path, format!("cannot serialize: {e}")))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| Error::file(&self.path, format!("cannot write: {e}")))
    }
}
