//! Rule-based attribution: first touch, last touch, linear, time-decay and
//! U-shaped (position-based 40/20/40).
//!
//! Each converting path's conversions and value are split over its touches
//! by fixed weights; a channel's credit is the sum over its touches.

use crate::data::{Credit, Paths};
use caracal_core::{Error, Result};

/// A rule that splits one conversion over the touches of its path.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Heuristic {
    FirstTouch,
    LastTouch,
    Linear,
    /// Weight `2^(-age / half_life)`; `age` is days before the conversion
    /// when the paths carry times, else steps before the last touch.
    TimeDecay {
        half_life: f64,
    },
    /// 40% first, 40% last, 20% spread over the middle (two touches: 50/50).
    UShaped,
}

impl Heuristic {
    /// Every rule, with a 7-day half-life for time-decay.
    pub const ALL: [Heuristic; 5] = [
        Heuristic::FirstTouch,
        Heuristic::LastTouch,
        Heuristic::Linear,
        Heuristic::TimeDecay { half_life: 7.0 },
        Heuristic::UShaped,
    ];

    /// Short name used on the command line and in tables.
    pub fn name(&self) -> &'static str {
        match self {
            Heuristic::FirstTouch => "first-touch",
            Heuristic::LastTouch => "last-touch",
            Heuristic::Linear => "linear",
            Heuristic::TimeDecay { .. } => "time-decay",
            Heuristic::UShaped => "u-shaped",
        }
    }

    /// Parse a name from [`Heuristic::name`].
    pub fn parse(s: &str) -> Result<Heuristic> {
        Heuristic::ALL
            .iter()
            .copied()
            .find(|h| h.name() == s)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown heuristic `{s}`; expected first-touch, last-touch, linear, time-decay or u-shaped"
                ))
            })
    }

    /// Weights of the touches of a path of length `n` (sum 1).
    pub fn weights(&self, n: usize, ages: Option<&[f64]>) -> Vec<f64> {
        let mut w = vec![0.0; n];
        if n == 0 {
            return w;
        }
        match self {
            Heuristic::FirstTouch => w[0] = 1.0,
            Heuristic::LastTouch => w[n - 1] = 1.0,
            Heuristic::Linear => w.fill(1.0 / n as f64),
            Heuristic::TimeDecay { half_life } => {
                for (i, x) in w.iter_mut().enumerate() {
                    let age = ages.map_or((n - 1 - i) as f64, |a| a[i]);
                    *x = (-age / half_life * std::f64::consts::LN_2).exp();
                }
                let s: f64 = w.iter().sum();
                w.iter_mut().for_each(|x| *x /= s);
            }
            Heuristic::UShaped => match n {
                1 => w[0] = 1.0,
                2 => w.fill(0.5),
                _ => {
                    w.fill(0.2 / (n - 2) as f64);
                    w[0] = 0.4;
                    w[n - 1] = 0.4;
                }
            },
        }
        w
    }
}

/// Credit by a rule (zero-conversion paths are skipped).
pub fn heuristic_credit(paths: &Paths, h: Heuristic) -> Credit {
    let mut c = Credit::zeros(&paths.channels);
    for r in paths.rows.iter().filter(|r| r.conversions > 0.0) {
        let w = h.weights(r.steps.len(), r.ages.as_deref());
        for (&ch, wi) in r.steps.iter().zip(w) {
            c.conversions[ch] += wi * r.conversions;
            c.value[ch] += wi * r.value;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::PathRow;

    #[test]
    fn rules_split_one_conversion_as_documented() {
        let p = Paths {
            channels: vec!["a".into(), "b".into(), "c".into()],
            rows: vec![PathRow {
                steps: vec![0, 1, 1, 2],
                ages: None,
                conversions: 1.0,
                value: 10.0,
                nulls: 0.0,
            }],
            unattributed_conversions: 0.0,
        };
        let c = |h| heuristic_credit(&p, h).conversions;
        assert_eq!(c(Heuristic::FirstTouch), [1.0, 0.0, 0.0]);
        assert_eq!(c(Heuristic::LastTouch), [0.0, 0.0, 1.0]);
        assert_eq!(c(Heuristic::Linear), [0.25, 0.5, 0.25]);
        let u = c(Heuristic::UShaped);
        assert!((u[0] - 0.4).abs() < 1e-12 && (u[1] - 0.2).abs() < 1e-12);
        let td = c(Heuristic::TimeDecay { half_life: 1.0 });
        // weights 1/8, 1/4, 1/2, 1 over 15/8.
        assert!((td[2] - 8.0 / 15.0).abs() < 1e-12, "{td:?}");
        assert_eq!(heuristic_credit(&p, Heuristic::Linear).value[1], 5.0);
        assert_eq!(Heuristic::parse("u-shaped").unwrap(), Heuristic::UShaped);
        assert!(Heuristic::parse("middle").is_err());
    }
}
