//! A journey simulator with known causal credit (in the spirit of the JD-MTA
//! simulator and `shapley-attribution.make_attribution_problem`).
//!
//! Member `i` has a latent propensity `z_i ~ N(0,1)` and an observation
//! window of `window` days starting on a uniform day. Channel `c` reaches
//! the member on day `d` with `Poisson(rate_c · flight_c(d) · e^{γ_c z_i −
//! γ_c²/2})` touches — exposure depends on propensity when `γ_c ≠ 0`
//! (confounded targeting) and on the channel's daily spend `flight_c(d)`.
//! At the window's end `T` the member converts with probability
//!
//! `σ(α + z_i + s(T) + η·m(T) + Σ_touches β_c e^{−ω_c (T − t)})`,
//!
//! with weekly seasonality `s` and a macro covariate `m` (an AR(1) walk).
//! The members' feature is a noisy copy of `z_i`.
//!
//! True credit of channel `c` is its expected incremental conversions over
//! the whole population, `Σ_i σ(ℓ_i) − σ(ℓ_i − contribution_ic)`,
//! normalized to shares. Aggregates (daily spend, and the daily conversions
//! of the whole population in [`Macro::conversions`]) cover the population;
//! journeys cover the first `n_members` ("tracked") members only.

use crate::data::{Aggregates, Journey, Journeys, Macro, Touch};
use caracal_core::{Error, Result, Rng};
use serde::Serialize;

/// One simulated channel.
#[derive(Clone, Debug, Serialize)]
pub struct ChannelSpec {
    pub name: String,
    /// Logit lift of one fresh touch.
    pub effect: f64,
    /// Decay per day of a touch's lift.
    pub decay: f64,
    /// Touches per member-day at the channel's average spend.
    pub rate: f64,
    /// Targeting strength: exposure ∝ e^{γ z}.
    pub targeting: f64,
    /// Cost per touch.
    pub cost: f64,
    pub campaigns: usize,
}

/// Simulator settings.
#[derive(Clone, Debug, Serialize)]
pub struct SimConfig {
    pub seed: u64,
    /// Tracked members (the journeys).
    pub n_members: usize,
    /// Population = `n_members × population_factor` (the aggregates).
    pub population_factor: usize,
    pub n_days: usize,
    pub window: usize,
    pub intercept: f64,
    pub season_amplitude: f64,
    pub macro_effect: f64,
    /// Std of the noise on the observed propensity feature.
    pub feature_noise: f64,
    pub channels: Vec<ChannelSpec>,
}

impl Default for SimConfig {
    fn default() -> Self {
        let ch = |name: &str, effect, decay, rate, targeting, cost| ChannelSpec {
            name: name.into(),
            effect,
            decay,
            rate,
            targeting,
            cost,
            campaigns: 2,
        };
        SimConfig {
            seed: 7,
            n_members: 4000,
            population_factor: 40,
            n_days: 182,
            window: 14,
            intercept: -3.0,
            season_amplitude: 0.15,
            macro_effect: 0.2,
            feature_noise: 0.7,
            channels: vec![
                ch("search", 0.25, 0.5, 0.04, 1.2, 2.0),
                ch("email", 0.15, 0.3, 0.06, 0.9, 0.2),
                ch("social", 0.5, 0.15, 0.05, 0.2, 1.0),
                ch("display", 0.4, 0.1, 0.08, 0.0, 0.8),
                ch("video", 0.8, 0.05, 0.03, -0.2, 1.5),
            ],
        }
    }
}

/// A simulated data set with its ground truth.
#[derive(Clone, Debug)]
pub struct Simulation {
    pub config: SimConfig,
    pub journeys: Journeys,
    pub aggregates: Aggregates,
    pub macros: Macro,
    /// True incremental conversions per channel (population).
    pub true_incremental: Vec<f64>,
    /// True channel shares.
    pub true_shares: Vec<f64>,
    /// Expected conversions of the population under the simulated spend.
    pub expected_conversions: f64,
    flights: Vec<Vec<f64>>,
    season: Vec<f64>,
    macro_walk: Vec<f64>,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

struct Member {
    z: f64,
    start: usize,
    touches: Vec<Touch>,
    logit: f64,
    contrib: Vec<f64>,
}

fn member_rng(seed: u64, i: usize) -> Rng {
    Rng::new(seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

impl SimConfig {
    fn check(&self) -> Result<()> {
        if self.channels.is_empty() || self.n_members == 0 || self.population_factor == 0 {
            return Err(Error::invalid(
                "simulation needs at least one channel and one member",
            ));
        }
        if self.window == 0 || self.window > self.n_days {
            return Err(Error::invalid(format!(
                "simulation window ({} days) must be between 1 and n_days ({})",
                self.window, self.n_days
            )));
        }
        Ok(())
    }

    fn member(
        &self,
        i: usize,
        flights: &[Vec<f64>],
        season: &[f64],
        walk: &[f64],
        mult: &[f64],
    ) -> Member {
        let mut rng = member_rng(self.seed, i);
        let z = rng.normal();
        let start = rng.below(self.n_days - self.window + 1);
        let end = (start + self.window) as f64;
        let mut touches = Vec::new();
        let mut contrib = vec![0.0; self.channels.len()];
        let mut camp0 = 0;
        let mut camp_base = Vec::new();
        for ch in &self.channels {
            camp_base.push(camp0);
            camp0 += ch.campaigns.max(1);
        }
        for d in start..start + self.window {
            for (c, ch) in self.channels.iter().enumerate() {
                let lam = ch.rate
                    * flights[c][d]
                    * mult[c]
                    * (ch.targeting * z - 0.5 * ch.targeting * ch.targeting).exp();
                for _ in 0..rng.poisson(lam) {
                    let t = d as f64 + rng.uniform();
                    contrib[c] += ch.effect * (-ch.decay * (end - t)).exp();
                    touches.push(Touch {
                        time: t,
                        channel: c,
                        campaign: camp_base[c] + rng.below(ch.campaigns.max(1)),
                    });
                }
            }
        }
        touches.sort_by(|a, b| a.time.total_cmp(&b.time));
        let day = (start + self.window - 1).min(self.n_days - 1);
        let logit = self.intercept
            + z
            + season[day]
            + self.macro_effect * walk[day]
            + contrib.iter().sum::<f64>();
        Member {
            z,
            start,
            touches,
            logit,
            contrib,
        }
    }
}

/// Run the simulator.
pub fn simulate(cfg: &SimConfig) -> Result<Simulation> {
    cfg.check()?;
    let mut rng = Rng::new(cfg.seed);
    let (nc, nd) = (cfg.channels.len(), cfg.n_days);
    // Flighting per channel: two-week bursts with spend multipliers in
    // [0.1, 1.9], independent across channels.
    let flights: Vec<Vec<f64>> = (0..nc)
        .map(|_| {
            let blocks: Vec<f64> = (0..nd.div_ceil(14))
                .map(|_| 0.1 + 1.8 * rng.uniform())
                .collect();
            (0..nd).map(|d| blocks[d / 14]).collect()
        })
        .collect();
    let season: Vec<f64> = (0..nd)
        .map(|d| cfg.season_amplitude * (2.0 * std::f64::consts::PI * d as f64 / 7.0).sin())
        .collect();
    let mut walk = vec![0.0; nd];
    for d in 1..nd {
        walk[d] = 0.9 * walk[d - 1] + 0.45 * rng.normal();
    }
    let ones = vec![1.0; nc];
    let n_pop = cfg.n_members * cfg.population_factor;
    let mut inc = vec![0.0; nc];
    let mut expected = 0.0;
    let mut daily_conv = vec![0.0; nd];
    let mut out = Vec::with_capacity(cfg.n_members);
    let n_campaigns: usize = cfg.channels.iter().map(|c| c.campaigns.max(1)).sum();
    for i in 0..n_pop {
        let m = cfg.member(i, &flights, &season, &walk, &ones);
        let p = sigmoid(m.logit);
        expected += p;
        for c in 0..nc {
            inc[c] += p - sigmoid(m.logit - m.contrib[c]);
        }
        // The outcome draw uses its own stream so that the exposures above
        // do not depend on it.
        let mut r2 = member_rng(cfg.seed ^ 0xC0FFEE, i);
        let converted = r2.bernoulli(p);
        let value = if converted {
            (50.0 * (0.5 * r2.normal()).exp() * 100.0).round() / 100.0
        } else {
            0.0
        };
        let end_day = m.start + cfg.window - 1;
        if converted {
            daily_conv[end_day] += 1.0;
        }
        if i < cfg.n_members {
            let feature = m.z + cfg.feature_noise * r2.normal();
            out.push(Journey {
                member: format!("m{i}"),
                touches: m.touches,
                converted,
                value,
                end: (m.start + cfg.window) as f64,
                features: vec![(feature * 1e4).round() / 1e4],
            });
        }
    }
    let mut campaigns = Vec::with_capacity(n_campaigns);
    for ch in &cfg.channels {
        for k in 0..ch.campaigns.max(1) {
            campaigns.push(format!("{}-{}", ch.name, k + 1));
        }
    }
    let channels: Vec<String> = cfg.channels.iter().map(|c| c.name.clone()).collect();
    let spend = cfg
        .channels
        .iter()
        .enumerate()
        .map(|(c, ch)| {
            flights[c]
                .iter()
                .map(|f| (ch.cost * ch.rate * f * n_pop as f64 * 100.0).round() / 100.0)
                .collect()
        })
        .collect();
    let true_shares = crate::data::normalize(&inc);
    Ok(Simulation {
        config: cfg.clone(),
        journeys: Journeys {
            channels: channels.clone(),
            campaigns,
            feature_names: vec!["propensity_proxy".into()],
            journeys: out,
        },
        aggregates: Aggregates {
            channels,
            day0: 0,
            spend,
        },
        macros: Macro {
            day0: 0,
            names: vec!["consumer_index".into()],
            values: vec![walk.iter().map(|w| (w * 1e4).round() / 1e4).collect()],
            conversions: Some(daily_conv),
        },
        true_incremental: inc,
        true_shares,
        expected_conversions: expected,
        flights,
        season,
        macro_walk: walk,
    })
}

impl Simulation {
    /// Expected population conversions when each channel's spend is
    /// multiplied by `multipliers[c]` (exposure scales with spend).
    pub fn expected_conversions_with(&self, multipliers: &[f64]) -> Result<f64> {
        let cfg = &self.config;
        if multipliers.len() != cfg.channels.len()
            || multipliers.iter().any(|m| *m < 0.0 || !m.is_finite())
        {
            return Err(Error::invalid(format!(
                "need {} non-negative spend multipliers, one per channel",
                cfg.channels.len()
            )));
        }
        let n_pop = cfg.n_members * cfg.population_factor;
        use rayon::prelude::*;
        Ok((0..n_pop)
            .into_par_iter()
            .map(|i| {
                sigmoid(
                    cfg.member(
                        i,
                        &self.flights,
                        &self.season,
                        &self.macro_walk,
                        multipliers,
                    )
                    .logit,
                )
            })
            .sum())
    }

    /// Total spend per channel over the simulated period.
    pub fn total_spend(&self) -> Vec<f64> {
        self.aggregates
            .spend
            .iter()
            .map(|s| s.iter().sum())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulation_is_seeded_and_confounded() {
        let cfg = SimConfig {
            n_members: 500,
            population_factor: 4,
            ..Default::default()
        };
        let a = simulate(&cfg).unwrap();
        let b = simulate(&cfg).unwrap();
        assert_eq!(a.journeys, b.journeys);
        assert_eq!(a.journeys.journeys.len(), 500);
        let s: f64 = a.true_shares.iter().sum();
        assert!((s - 1.0).abs() < 1e-12);
        let rate = a.journeys.n_conversions() as f64 / 500.0;
        assert!((0.03..0.4).contains(&rate), "conversion rate {rate}");
        // Confounding: high-feature members get more search touches.
        let (mut hi, mut lo) = ((0.0, 0.0), (0.0, 0.0));
        for j in &a.journeys.journeys {
            let n = j.touches.iter().filter(|t| t.channel == 0).count() as f64;
            let g = if j.features[0] > 0.0 {
                &mut hi
            } else {
                &mut lo
            };
            g.0 += n;
            g.1 += 1.0;
        }
        assert!(hi.0 / hi.1 > 1.5 * lo.0 / lo.1, "{hi:?} {lo:?}");
        let base = a.expected_conversions_with(&[1.0; 5]).unwrap();
        assert!((base - a.expected_conversions).abs() < 1e-6);
        assert!(a.expected_conversions_with(&[2.0; 5]).unwrap() > base);
        assert!(a.expected_conversions_with(&[1.0; 4]).is_err());
    }
}
