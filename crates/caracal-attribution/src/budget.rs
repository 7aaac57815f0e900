//! Budget back-evaluation (Ren et al., DARNN, CIKM 2018, §5.4): move the
//! total spend across channels in proportion to each method's attributed
//! return, `new_c ∝ spend_c · ROI_c = attributed conversions_c`, replay the
//! simulator with exposure scaled by `new_c / spend_c`, and count the
//! expected conversions. A better attribution buys more conversions.

use crate::data::normalize;
use crate::simulate::Simulation;
use caracal_core::{Error, Result};
use serde::Serialize;

/// Result of reallocating by one method's shares.
#[derive(Clone, Debug, Serialize)]
pub struct BackEvaluation {
    /// Spend multiplier per channel.
    pub multipliers: Vec<f64>,
    /// Expected conversions of the population after reallocation.
    pub conversions: f64,
    /// Relative change against the simulated (current) allocation.
    pub lift: f64,
}

/// Reallocate the simulated total spend by `shares` and replay.
pub fn back_evaluate(sim: &Simulation, shares: &[f64]) -> Result<BackEvaluation> {
    let spend = sim.total_spend();
    if shares.len() != spend.len() {
        return Err(Error::invalid(format!(
            "back-evaluation needs {} channel shares, got {}",
            spend.len(),
            shares.len()
        )));
    }
    let total: f64 = spend.iter().sum();
    let s = normalize(shares);
    let multipliers: Vec<f64> = spend
        .iter()
        .zip(&s)
        .map(|(&old, &sh)| if old > 0.0 { sh * total / old } else { 0.0 })
        .collect();
    let conversions = sim.expected_conversions_with(&multipliers)?;
    Ok(BackEvaluation {
        lift: conversions / sim.expected_conversions - 1.0,
        multipliers,
        conversions,
    })
}
