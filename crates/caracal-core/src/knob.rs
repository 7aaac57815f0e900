//! Settings read from environment variables, for examples and benchmarks
//! (`SEEDS=10 cargo run --example …`): a malformed value is a one-line
//! error that names the variable, never a panic.

use crate::{Error, Result};
use std::fmt::Display;
use std::str::FromStr;

/// The value of `name` parsed as `T`, or `default` when it is unset.
///
/// ```
/// let seeds: u64 = caracal_core::knob::env("CARACAL_DOC_UNSET_KNOB", 10).unwrap();
/// assert_eq!(seeds, 10);
/// ```
pub fn env<T: FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: Display,
{
    match std::env::var(name) {
        Ok(v) => parse(name, &v),
        Err(_) => Ok(default),
    }
}

/// Whether `name` is set to `1`, `true` or `yes` (`default` when unset).
pub fn flag(name: &str, default: bool) -> Result<bool> {
    match std::env::var(name) {
        Ok(v) => match v.trim() {
            "1" | "true" | "yes" => Ok(true),
            "0" | "false" | "no" | "" => Ok(false),
            other => Err(Error::invalid(format!(
                "{name}={other}: expected 1 or 0 (true/false, yes/no)"
            ))),
        },
        Err(_) => Ok(default),
    }
}

/// A comma-separated list from `name`, or `default` when it is unset.
pub fn list<T>(name: &str, default: &[T]) -> Result<Vec<T>>
where
    T: FromStr + Clone,
    T::Err: Display,
{
    match std::env::var(name) {
        Ok(v) => v.split(',').map(|s| parse(name, s)).collect(),
        Err(_) => Ok(default.to_vec()),
    }
}

fn parse<T: FromStr>(name: &str, v: &str) -> Result<T>
where
    T::Err: Display,
{
    v.trim()
        .parse()
        .map_err(|e| Error::invalid(format!("{name}={v}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_values_are_errors_that_name_the_variable() {
        assert_eq!(parse::<u64>("SEEDS", " 7 ").unwrap(), 7);
        let e = parse::<u64>("SEEDS", "ten").unwrap_err().to_string();
        assert!(e.starts_with("SEEDS=ten: invalid digit"), "{e}");
        assert_eq!(env::<u64>("CARACAL_TEST_UNSET_KNOB", 3).unwrap(), 3);
        assert!(!flag("CARACAL_TEST_UNSET_KNOB", false).unwrap());
        assert_eq!(
            list::<f64>("CARACAL_TEST_UNSET_KNOB", &[1.0, 3.0]).unwrap(),
            vec![1.0, 3.0]
        );
    }
}
