//! A scaling sweep: LiGR trained at several depths, widths and history
//! lengths on one simulated split, with test AUC fitted against log compute
//! (the paper reports ≈ +0.015 Long-Dwell AUC per 10× training FLOPs).
//!
//! Training compute is estimated as `C = S · (6·P·L + 6·n_layers·L²·d)`:
//! `S` sessions seen, `P` dense (non-embedding) weights, `L` tokens per
//! session and `d` the width — the usual `6·P` per token for the matmuls
//! forward and backward, plus the attention scores and mixing.

use crate::eval::{evaluate, predict};
use crate::ligr::{Ligr, LigrConfig};
use crate::sim::{simulate, SimConfig};
use crate::train::{train, TrainConfig};
use crate::vocab::Vocabs;
use caracal_core::Result;

/// One trained configuration.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ScalingPoint {
    /// Which axis this point varies (`layers`, `width` or `history`).
    pub axis: String,
    pub n_layers: usize,
    pub d_model: usize,
    pub max_history: usize,
    pub dense_params: usize,
    /// Estimated training FLOPs.
    pub flops: f64,
    /// Mean test AUC over tasks.
    pub auc: f64,
    pub seconds: f64,
}

/// The sweep and its fit `AUC = intercept + slope · log10(FLOPs)`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ScalingReport {
    pub points: Vec<ScalingPoint>,
    pub intercept: f64,
    /// AUC gained per 10× compute.
    pub slope_per_decade: f64,
}

/// The axes to sweep, each varied alone around `base`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Sweep {
    pub layers: Vec<usize>,
    pub widths: Vec<usize>,
    pub histories: Vec<usize>,
}

impl Default for Sweep {
    fn default() -> Self {
        Sweep {
            layers: vec![1, 2, 3],
            widths: vec![8, 16, 32],
            histories: vec![4, 12, 32],
        }
    }
}

/// Ordinary least squares of `y` on `x`: `(intercept, slope)`.
pub fn fit_line(x: &[f64], y: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    if x.len() < 2 {
        return (y.first().copied().unwrap_or(f64::NAN), 0.0);
    }
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (my - slope * mx, slope)
}

/// Run the sweep; `on_point` is called after each trained configuration.
pub fn sweep(
    sim: &SimConfig,
    base: &LigrConfig,
    tcfg: &TrainConfig,
    axes: &Sweep,
    mut on_point: impl FnMut(&ScalingPoint),
) -> Result<ScalingReport> {
    let feed = simulate(sim)?;
    let (tr, va, te) = feed.split_by_member(0.7, 0.15, sim.seed)?;
    let vocabs = Vocabs::from_feed(&tr);
    let mut configs: Vec<(String, LigrConfig)> = Vec::new();
    for &l in &axes.layers {
        configs.push((
            "layers".into(),
            LigrConfig {
                n_layers: l,
                ..base.clone()
            },
        ));
    }
    for &w in &axes.widths {
        let heads = base.n_heads.min(w).max(1);
        configs.push((
            "width".into(),
            LigrConfig {
                d_model: w,
                ffn_hidden: 2 * w,
                n_heads: if w % heads == 0 { heads } else { 1 },
                ..base.clone()
            },
        ));
    }
    for &h in &axes.histories {
        configs.push((
            "history".into(),
            LigrConfig {
                max_history: h,
                ..base.clone()
            },
        ));
    }
    let mut points = Vec::new();
    for (axis, cfg) in configs {
        let m = Ligr::new(
            LigrConfig {
                n_tasks: feed.tasks.len(),
                ..cfg.clone()
            },
            vocabs.clone(),
        )?;
        let rep = train(&m, &tr, &va, tcfg)?;
        let auc = evaluate(&te, &predict(&m, &te, 256)?, 5)?.mean_auc();
        let l = (cfg.max_history.min(sim.history_len) + sim.candidates) as f64;
        let p = m.n_dense_params() as f64;
        let per_session = 6.0 * p * l + 6.0 * cfg.n_layers as f64 * l * l * cfg.d_model as f64;
        let pt = ScalingPoint {
            axis,
            n_layers: cfg.n_layers,
            d_model: cfg.d_model,
            max_history: cfg.max_history,
            dense_params: m.n_dense_params(),
            flops: rep.sessions_seen as f64 * per_session,
            auc,
            seconds: rep.seconds,
        };
        on_point(&pt);
        points.push(pt);
    }
    let x: Vec<f64> = points.iter().map(|p| p.flops.log10()).collect();
    let y: Vec<f64> = points.iter().map(|p| p.auc).collect();
    let (intercept, slope_per_decade) = fit_line(&x, &y);
    Ok(ScalingReport {
        points,
        intercept,
        slope_per_decade,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_line_recovers_a_line() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let y: Vec<f64> = x.iter().map(|v| 0.5 + 0.015 * v).collect();
        let (a, b) = fit_line(&x, &y);
        assert!((a - 0.5).abs() < 1e-12 && (b - 0.015).abs() < 1e-12);
    }
}
