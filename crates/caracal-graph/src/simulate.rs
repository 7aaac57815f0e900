//! Simulated graphs and data in the style of R `huge.generator` (Zhao et
//! al. 2012, JMLR 13), with non-Gaussian data types on top.
//!
//! Graphs: random (each pair with probability `prob`, default `3/p`), hub
//! (`g` groups, each a star around its first node), cluster (`g` groups,
//! pairs within a group with probability `prob`, default `6g/p`, or 0.3
//! when groups exceed 30 nodes), band (`|i − j| ≤ g`, default 1), and
//! scale-free (Barabási–Albert, one edge per new node). With adjacency `A`,
//! `Ω = v·A + (|λ_min(v·A)| + u)·I` (`v = 0.3`, `u = 0.1`, huge's
//! defaults), `Σ = cov2cor(Ω⁻¹)` and the true precision is `Σ⁻¹`.
//!
//! Data: latent `z ~ N(0, Σ)`, then per column
//! - Gaussian: `x = z`;
//! - binary: `x = 1{z > c_j}` with `c_j = Φ⁻¹(q_j)`, `q_j ~ U(0.2, 0.8)`;
//! - counts: `x ~ Poisson(exp(a_j + 0.8 z))`, `e^{a_j} ~ U(0.5, 8)`;
//! - heavy-tailed: multivariate t with 3 degrees of freedom, `z / √(χ²₃/3)`;
//! - mixed: the four types in turn over the columns.

use crate::covariance::cov2cor;
use crate::data::Dataset;
use crate::edges::pairs;
use crate::special::qnorm;
use caracal_core::{bail, ensure, Error, Result, Rng};
use faer::linalg::solvers::DenseSolveCore;
use faer::Mat;

/// A graph family of `huge.generator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphKind {
    /// Erdős–Rényi.
    Random,
    /// Stars.
    Hub,
    /// Dense groups.
    Cluster,
    /// Banded.
    Band,
    /// Preferential attachment.
    ScaleFree,
}

/// The marginal type of simulated columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKind {
    /// Multivariate normal.
    Gaussian,
    /// Thresholded normal (0/1).
    Binary,
    /// Poisson with a log-normal rate.
    Counts,
    /// Multivariate t with 3 degrees of freedom.
    HeavyTailed,
    /// The four types in turn over the columns.
    Mixed,
}

macro_rules! from_str {
    ($t:ty, $($s:literal => $v:expr),*) => {
        impl std::str::FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($s => Ok($v),)*
                    _ => bail!("unknown value `{}`; expected one of: {}", s, [$($s),*].join(", ")),
                }
            }
        }
    };
}
from_str!(GraphKind, "random" => GraphKind::Random, "hub" => GraphKind::Hub, "cluster" => GraphKind::Cluster,
    "band" => GraphKind::Band, "scale-free" => GraphKind::ScaleFree);
from_str!(DataKind, "gaussian" => DataKind::Gaussian, "binary" => DataKind::Binary, "counts" => DataKind::Counts,
    "t" => DataKind::HeavyTailed, "mixed" => DataKind::Mixed);

/// Settings of a simulation.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Observations.
    pub n: usize,
    /// Variables.
    pub p: usize,
    /// Graph family.
    pub graph: GraphKind,
    /// Data type.
    pub data: DataKind,
    /// Edge probability (random, cluster); `None` for huge's default.
    pub prob: Option<f64>,
    /// Groups (hub, cluster) or bandwidth (band); `None` for the default.
    pub groups: Option<usize>,
    /// Seed.
    pub seed: u64,
}

impl SimOptions {
    /// `n × p` data on a random graph, Gaussian, seed 1.
    pub fn new(n: usize, p: usize) -> Self {
        SimOptions {
            n,
            p,
            graph: GraphKind::Random,
            data: DataKind::Gaussian,
            prob: None,
            groups: None,
            seed: 1,
        }
    }
}

/// A simulated data set with its truth.
#[derive(Clone, Debug)]
pub struct Simulated {
    /// The data.
    pub data: Dataset,
    /// True edges in [`crate::edges::pairs`] order.
    pub truth: Vec<bool>,
    /// The true (latent) precision `Σ⁻¹`.
    pub precision: Mat<f64>,
    /// The true latent correlation `Σ`.
    pub covariance: Mat<f64>,
}

/// A symmetric 0/1 adjacency matrix of the given family.
pub fn graph(
    kind: GraphKind,
    p: usize,
    prob: Option<f64>,
    groups: Option<usize>,
    rng: &mut Rng,
) -> Vec<Vec<bool>> {
    let mut a = vec![vec![false; p]; p];
    let link = |a: &mut Vec<Vec<bool>>, i: usize, j: usize| {
        if i != j {
            a[i][j] = true;
            a[j][i] = true;
        }
    };
    let g = groups
        .unwrap_or(if p >= 40 { p / 20 } else { 2 })
        .clamp(1, p);
    let group_of = |j: usize| j * g / p;
    match kind {
        GraphKind::Random => {
            let pr = prob.unwrap_or(3.0 / p as f64);
            for (i, j) in pairs(p) {
                if rng.bernoulli(pr) {
                    link(&mut a, i, j);
                }
            }
        }
        GraphKind::Hub => {
            for j in 0..p {
                let hub = (0..p).find(|&h| group_of(h) == group_of(j)).unwrap_or(0);
                link(&mut a, hub, j);
            }
        }
        GraphKind::Cluster => {
            let size = p as f64 / g as f64;
            let pr = prob.unwrap_or(if size <= 30.0 {
                (6.0 * g as f64 / p as f64).min(1.0)
            } else {
                0.3
            });
            for (i, j) in pairs(p) {
                if group_of(i) == group_of(j) && rng.bernoulli(pr) {
                    link(&mut a, i, j);
                }
            }
        }
        GraphKind::Band => {
            let bw = groups.unwrap_or(1);
            for (i, j) in pairs(p) {
                if j - i <= bw {
                    link(&mut a, i, j);
                }
            }
        }
        GraphKind::ScaleFree => {
            let mut degree = vec![0usize; p];
            if p >= 2 {
                link(&mut a, 0, 1);
                degree[0] = 1;
                degree[1] = 1;
            }
            for new in 2..p {
                let total: usize = degree[..new].iter().sum();
                let mut r = rng.below(total.max(1));
                let mut to = 0;
                for (k, &d) in degree[..new].iter().enumerate() {
                    if r < d {
                        to = k;
                        break;
                    }
                    r -= d;
                }
                link(&mut a, new, to);
                degree[new] += 1;
                degree[to] += 1;
            }
        }
    }
    a
}

/// Simulate data on a graph; see the module documentation.
#[allow(clippy::needless_range_loop)]
pub fn simulate(o: &SimOptions) -> Result<Simulated> {
    ensure!(
        o.p >= 2 && o.n >= 2,
        "simulate needs p ≥ 2 and n ≥ 2 (got p = {}, n = {})",
        o.p,
        o.n
    );
    if let Some(pr) = o.prob {
        ensure!(
            (0.0..=1.0).contains(&pr),
            "the edge probability {pr} must lie in [0, 1]"
        );
    }
    let (n, p) = (o.n, o.p);
    let mut rng = Rng::new(o.seed);
    let adj = graph(o.graph, p, o.prob, o.groups, &mut rng);
    let va = Mat::from_fn(p, p, |i, j| if adj[i][j] { 0.3 } else { 0.0 });
    let ev: Vec<f64> = va
        .self_adjoint_eigenvalues(faer::Side::Lower)
        .map_err(|_| Error::Numeric("eigenvalues failed".into()))?;
    let shift = ev[0].abs() + 0.1;
    let omega = Mat::from_fn(p, p, |i, j| va[(i, j)] + if i == j { shift } else { 0.0 });
    let inv = |m: &Mat<f64>| -> Result<Mat<f64>> {
        Ok(m.llt(faer::Side::Lower)
            .map_err(|_| Error::Numeric("a simulated precision is not positive definite".into()))?
            .inverse())
    };
    let sigma = cov2cor(&inv(&omega)?);
    let precision = inv(&sigma)?;
    let l = sigma
        .llt(faer::Side::Lower)
        .map_err(|_| Error::Numeric("Σ is not positive definite".into()))?;
    let l = l.L().to_owned();
    let kinds: Vec<DataKind> = (0..p)
        .map(|j| match o.data {
            DataKind::Mixed => [
                DataKind::Gaussian,
                DataKind::Binary,
                DataKind::Counts,
                DataKind::HeavyTailed,
            ][j % 4],
            k => k,
        })
        .collect();
    let thresholds: Vec<f64> = (0..p).map(|_| qnorm(0.2 + 0.6 * rng.uniform())).collect();
    let log_means: Vec<f64> = (0..p).map(|_| (0.5 + 7.5 * rng.uniform()).ln()).collect();
    let mut cols = vec![vec![0.0; n]; p];
    let mut e = vec![0.0; p];
    for i in 0..n {
        e.iter_mut().for_each(|v| *v = rng.normal());
        let chi2: f64 = (0..3).map(|_| rng.normal().powi(2)).sum();
        let tscale = (3.0 / chi2).sqrt();
        for j in 0..p {
            let z: f64 = (0..=j).map(|k| l[(j, k)] * e[k]).sum();
            cols[j][i] = match kinds[j] {
                DataKind::Gaussian => z,
                DataKind::Binary => f64::from(u8::from(z > thresholds[j])),
                DataKind::Counts => rng.poisson((log_means[j] + 0.8 * z).exp()) as f64,
                DataKind::HeavyTailed | DataKind::Mixed => z * tscale,
            };
        }
    }
    // A column that came out constant (tiny n) gets one flipped value.
    for c in &mut cols {
        if c.iter().all(|&v| v == c[0]) {
            c[0] += 1.0;
        }
    }
    let names = (1..=p).map(|j| format!("x{j}")).collect();
    let truth = pairs(p).map(|(i, j)| adj[i][j]).collect();
    Ok(Simulated {
        data: Dataset::new(names, cols)?,
        truth,
        precision,
        covariance: sigma,
    })
}
