//! The data every method reads: member-level journeys, aggregated paths
//! (ChannelAttribution's format), daily channel aggregates and macro factors.

use caracal_core::{Error, Result};
use serde::Serialize;

/// One marketing touch of a member.
#[derive(Clone, Debug, PartialEq)]
pub struct Touch {
    /// Time in days (any origin; dates are read as days since 1970-01-01).
    pub time: f64,
    /// Index into [`Journeys::channels`].
    pub channel: usize,
    /// Index into [`Journeys::campaigns`].
    pub campaign: usize,
}

/// One member's touches (sorted by time) up to the conversion or the end of
/// the observation window.
#[derive(Clone, Debug, PartialEq)]
pub struct Journey {
    pub member: String,
    pub touches: Vec<Touch>,
    pub converted: bool,
    /// Conversion value (0 when not converted).
    pub value: f64,
    /// Reference time: the conversion time, or the end of observation.
    pub end: f64,
    /// Member / company features (the same length for every journey).
    pub features: Vec<f64>,
}

/// A member-level data set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Journeys {
    pub channels: Vec<String>,
    pub campaigns: Vec<String>,
    pub feature_names: Vec<String>,
    pub journeys: Vec<Journey>,
}

impl Journeys {
    /// Number of converting journeys.
    pub fn n_conversions(&self) -> usize {
        self.journeys.iter().filter(|j| j.converted).count()
    }

    /// Aggregate to paths, one row per journey (conversions are 0 or 1).
    /// Converting journeys without touches cannot be credited to a channel
    /// and are counted in [`Paths::unattributed_conversions`].
    pub fn to_paths(&self) -> Paths {
        let mut rows = Vec::with_capacity(self.journeys.len());
        let mut unattributed = 0.0;
        for j in &self.journeys {
            if j.touches.is_empty() {
                if j.converted {
                    unattributed += 1.0;
                }
                continue;
            }
            rows.push(PathRow {
                steps: j.touches.iter().map(|t| t.channel).collect(),
                ages: Some(
                    j.touches
                        .iter()
                        .map(|t| (j.end - t.time).max(0.0))
                        .collect(),
                ),
                conversions: if j.converted { 1.0 } else { 0.0 },
                value: j.value,
                nulls: if j.converted { 0.0 } else { 1.0 },
            });
        }
        Paths {
            channels: self.channels.clone(),
            rows,
            unattributed_conversions: unattributed,
        }
    }

    /// A new data set made of the journeys at `idx` (with repeats).
    pub fn subset(&self, idx: &[usize]) -> Journeys {
        Journeys {
            channels: self.channels.clone(),
            campaigns: self.campaigns.clone(),
            feature_names: self.feature_names.clone(),
            journeys: idx.iter().map(|&i| self.journeys[i].clone()).collect(),
        }
    }
}

/// One aggregated path: a channel sequence with its conversion and null
/// counts.
#[derive(Clone, Debug, PartialEq)]
pub struct PathRow {
    /// Channel indices in order.
    pub steps: Vec<usize>,
    /// Days from each touch to the conversion / end (member-level data only).
    pub ages: Option<Vec<f64>>,
    pub conversions: f64,
    pub value: f64,
    pub nulls: f64,
}

/// Aggregated paths (ChannelAttribution's `path;total_conversions;...`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Paths {
    pub channels: Vec<String>,
    pub rows: Vec<PathRow>,
    /// Conversions with no touch at all (not creditable to any channel).
    pub unattributed_conversions: f64,
}

impl Paths {
    pub fn total_conversions(&self) -> f64 {
        self.rows.iter().map(|r| r.conversions).sum()
    }
    pub fn total_value(&self) -> f64 {
        self.rows.iter().map(|r| r.value).sum()
    }
}

/// Daily spend (and optionally impressions) per channel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Aggregates {
    pub channels: Vec<String>,
    /// First day (integer days) of the series.
    pub day0: i64,
    /// `spend[c][d]`: spend of channel `c` on day `day0 + d` (0 when absent).
    pub spend: Vec<Vec<f64>>,
}

impl Aggregates {
    pub fn n_days(&self) -> usize {
        self.spend.first().map_or(0, Vec::len)
    }
}

/// Daily macro covariates, and optionally the daily KPI (a column named
/// `conversions`) that the MMM models.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Macro {
    pub day0: i64,
    pub names: Vec<String>,
    /// `values[j][d]`.
    pub values: Vec<Vec<f64>>,
    pub conversions: Option<Vec<f64>>,
}

/// Credit of each channel: attributed conversions and value.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Credit {
    pub channels: Vec<String>,
    pub conversions: Vec<f64>,
    pub value: Vec<f64>,
}

impl Credit {
    /// Zero credit over `channels`.
    pub fn zeros(channels: &[String]) -> Self {
        Credit {
            channels: channels.to_vec(),
            conversions: vec![0.0; channels.len()],
            value: vec![0.0; channels.len()],
        }
    }

    /// Channel shares of the credited conversions (negative credit clipped
    /// to 0; uniform when nothing is credited).
    pub fn shares(&self) -> Vec<f64> {
        normalize(&self.conversions)
    }

    /// Credit from shares, scaled to `conversions` and `value` totals.
    pub fn from_shares(channels: &[String], shares: &[f64], conversions: f64, value: f64) -> Self {
        let s = normalize(shares);
        Credit {
            channels: channels.to_vec(),
            conversions: s.iter().map(|x| x * conversions).collect(),
            value: s.iter().map(|x| x * value).collect(),
        }
    }
}

/// Clip at 0 and scale to sum 1 (uniform if the sum is 0).
pub fn normalize(x: &[f64]) -> Vec<f64> {
    let s: f64 = x.iter().map(|v| v.max(0.0)).sum();
    if s <= 0.0 || !s.is_finite() {
        return vec![1.0 / x.len().max(1) as f64; x.len()];
    }
    x.iter().map(|v| v.max(0.0) / s).collect()
}

/// Map `names` onto `channels`: index of each, or an error naming the
/// first unknown one.
pub fn channel_index(channels: &[String], name: &str, what: &str) -> Result<usize> {
    channels.iter().position(|c| c == name).ok_or_else(|| {
        Error::invalid(format!(
            "{what}: channel `{name}` is unknown; known channels: {}",
            channels.join(", ")
        ))
    })
}
