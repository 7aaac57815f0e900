//! Learning-rate schedule: linear warmup to the peak, then a half-cosine
//! decay to the floor (Loshchilov & Hutter, "SGDR", ICLR 2017, eq. 5,
//! without restarts).

/// Warmup then cosine decay.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CosineSchedule {
    pub peak: f64,
    pub floor: f64,
    pub warmup: usize,
    pub total: usize,
}

impl CosineSchedule {
    /// The learning rate for optimizer step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1);
        let p = ((step - self.warmup) as f64 / span as f64).min(1.0);
        self.floor + 0.5 * (self.peak - self.floor) * (1.0 + (std::f64::consts::PI * p).cos())
    }
}

/// Linear warmup to the peak, then linear decay to zero at `total`
/// (transformers' `get_linear_schedule_with_warmup`, TRL's default).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinearSchedule {
    pub peak: f64,
    pub warmup: usize,
    pub total: usize,
}

impl LinearSchedule {
    /// The learning rate for optimizer step `step` (0-based), as
    /// transformers computes it: `peak·step/warmup` during warmup, then
    /// `peak·(total − step)/(total − warmup)`.
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * step as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1);
        self.peak * (self.total.saturating_sub(step)) as f64 / span as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_schedule_matches_transformers() {
        let s = LinearSchedule {
            peak: 1e-3,
            warmup: 5,
            total: 105,
        };
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(1) - 2e-4).abs() < 1e-15);
        assert!((s.lr(5) - 1e-3).abs() < 1e-15);
        assert!((s.lr(55) - 5e-4).abs() < 1e-15);
        assert_eq!(s.lr(105), 0.0);
        assert_eq!(s.lr(200), 0.0);
    }

    #[test]
    fn warms_up_then_decays_to_the_floor() {
        let s = CosineSchedule {
            peak: 1e-3,
            floor: 1e-4,
            warmup: 10,
            total: 110,
        };
        assert!((s.lr(0) - 1e-4).abs() < 1e-12);
        assert!((s.lr(9) - 1e-3).abs() < 1e-12);
        assert!((s.lr(10) - 1e-3).abs() < 1e-12);
        assert!((s.lr(60) - 5.5e-4).abs() < 1e-12);
        assert!((s.lr(110) - 1e-4).abs() < 1e-12);
        assert!((s.lr(500) - 1e-4).abs() < 1e-12);
    }
}
