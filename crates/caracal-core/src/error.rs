//! The one error type that every caracal library function returns.

use std::path::PathBuf;

/// What went wrong, phrased for the user: each message is one sentence that
/// says what was wrong and, where possible, what to do.
#[derive(thiserror::Error)]
pub enum Error {
    /// Shapes, dtypes or values given to an API do not fit together.
    #[error("{0}")]
    Invalid(String),
    /// A file could not be read, written or parsed.
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    /// An iterative method stopped before meeting its tolerance.
    #[error("{0}")]
    NoConvergence(String),
    /// A numeric failure (NaN, a matrix that is not positive definite, ...).
    #[error("{0}")]
    Numeric(String),
    /// An error raised by a tensor backend.
    #[error("tensor backend: {0}")]
    Backend(String),
    /// An I/O error without a more precise context.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// `Debug` prints the message, as `Display` does: a `main` that returns
/// `Result` (the examples) then reports `Error: SEEDS=x: invalid digit …`
/// and not the enum's structure, and so does `unwrap` in a test.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Build an [`Error::Invalid`] from anything printable.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    /// Build an [`Error::File`] naming the file.
    pub fn file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::File {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// Return early with [`Error::Invalid`] and a formatted message.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::Error::Invalid(format!($($arg)*)))
    };
}

/// Return early with [`Error::Invalid`] unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::bail!($($arg)*);
        }
    };
}

#[cfg(feature = "candle")]
impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Backend(e.to_string())
    }
}
