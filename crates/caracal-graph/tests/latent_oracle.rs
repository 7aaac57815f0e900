//! The rank-based latent correlation against its oracles
//! (`python3 tools/make_latent_oracle.py` writes the data and prints them):
//! - a high-precision evaluation of Fan et al. (2017): brute-force tau-a,
//!   bridges through Owen's T, brentq to 1e-15. It agrees with `latentcor`
//!   0.2.5 (`method="original"`) to 3.4e-9 on the first data set.
//! - on a sample whose pointwise matrix is indefinite, Higham's nearest
//!   correlation matrix run to convergence in numpy, and `latentcor`'s own
//!   `R` (statsmodels' `corr_nearest`, which stops short of the nearest).
#![allow(clippy::needless_range_loop)]

use caracal_graph::{
    latent_correlation, nearest::min_eigenvalue, special::qnorm_precise, ColumnKind, Dataset, Mat,
};

fn data(name: &str) -> Dataset {
    Dataset::read_csv(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

const TAU: [[f64; 6]; 6] = [
    [
        1.0,
        0.16400560224089636,
        0.028291316526610644,
        0.06568627450980392,
        0.15042016806722688,
        -0.023809523809523808,
    ],
    [
        0.16400560224089636,
        1.0,
        0.21218487394957983,
        0.06764705882352941,
        0.0365546218487395,
        0.05378151260504202,
    ],
    [
        0.028291316526610644,
        0.21218487394957983,
        1.0,
        0.14551820728291318,
        0.025210084033613446,
        0.01680672268907563,
    ],
    [
        0.06568627450980392,
        0.06764705882352941,
        0.14551820728291318,
        1.0,
        0.15644257703081232,
        0.023529411764705882,
    ],
    [
        0.15042016806722688,
        0.0365546218487395,
        0.025210084033613446,
        0.15644257703081232,
        1.0,
        0.16750700280112044,
    ],
    [
        -0.023809523809523808,
        0.05378151260504202,
        0.01680672268907563,
        0.023529411764705882,
        0.16750700280112044,
        1.0,
    ],
];
const LATENT: [[f64; 6]; 6] = [
    [
        1.0,
        0.3701328436392484,
        0.04442527010039743,
        0.1938393567808949,
        0.23408707561189523,
        -0.07535929178936882,
    ],
    [
        0.3701328436392484,
        1.0,
        0.47529426552074316,
        0.2967729573341197,
        0.08337001978710898,
        0.24084504529803372,
    ],
    [
        0.04442527010039743,
        0.47529426552074316,
        1.0,
        0.4272244794692411,
        0.03958955842626945,
        0.053198471463173816,
    ],
    [
        0.1938393567808949,
        0.2967729573341197,
        0.4272244794692411,
        1.0,
        0.4588470704028097,
        0.1469871757076588,
    ],
    [
        0.23408707561189523,
        0.08337001978710898,
        0.03958955842626945,
        0.4588470704028097,
        1.0,
        0.5269287244150586,
    ],
    [
        -0.07535929178936882,
        0.24084504529803372,
        0.053198471463173816,
        0.1469871757076588,
        0.5269287244150586,
        1.0,
    ],
];

#[test]
fn mixed_data_matches_the_high_precision_oracle() {
    let d = data("latent_mixed.csv");
    let l = latent_correlation(&d, 0.001).unwrap();
    assert!(!l.projected);
    let kinds: Vec<&str> = l.kinds.iter().map(|k| k.name()).collect();
    assert_eq!(
        kinds,
        [
            "continuous",
            "binary",
            "continuous",
            "binary",
            "continuous",
            "binary"
        ]
    );
    // Column 4 has levels 2 and 5; its threshold is Φ⁻¹(share of 2s).
    let share = d.cols[3].iter().filter(|&&v| v == 2.0).count() as f64 / d.n() as f64;
    assert_eq!(
        l.kinds[3],
        ColumnKind::Binary {
            threshold: qnorm_precise(share)
        }
    );
    for a in 0..6 {
        for b in 0..6 {
            assert!((l.tau[(a, b)] - TAU[a][b]).abs() < 1e-15, "tau {a},{b}");
            let (got, want) = (l.pointwise[(a, b)], LATENT[a][b]);
            assert!(
                (got - want).abs() < 1e-10,
                "latent {a},{b}: {got} vs {want}"
            );
            // Positive definite already: only the shrinkage by ν applies.
            let shrunk = if a == b { 1.0 } else { 0.999 * want };
            assert!((l.correlation[(a, b)] - shrunk).abs() < 1e-10);
        }
    }
}

#[test]
fn monotone_maps_and_relabelled_levels_change_nothing() {
    let d = data("latent_mixed.csv");
    let mut cols = d.cols.clone();
    cols[0] = cols[0].iter().map(|v| v.powi(3) + 2.0 * v).collect();
    cols[2] = cols[2].iter().map(|v| -1.0 / v).collect(); // increasing on v > 0
    cols[1] = cols[1].iter().map(|v| 10.0 + 7.0 * v).collect();
    let e = Dataset::from_columns(cols).unwrap();
    let (a, b) = (
        latent_correlation(&d, 0.0).unwrap(),
        latent_correlation(&e, 0.0).unwrap(),
    );
    assert_eq!(a.pointwise, b.pointwise);
}

const HIGHAM: [[f64; 5]; 5] = [
    [
        1.0,
        0.37763663292782035,
        0.1167227956090463,
        -0.05557075708443286,
        0.6042667939040508,
    ],
    [
        0.3776366329278203,
        1.0,
        0.6109683609939544,
        -0.10103828426757575,
        0.9404662819906001,
    ],
    [
        0.11672279560904632,
        0.6109683609939544,
        1.0,
        0.394958116040766,
        0.4118269375187172,
    ],
    [
        -0.05557075708443285,
        -0.10103828426757573,
        0.39495811604076597,
        1.0,
        -0.10308835135583316,
    ],
    [
        0.6042667939040507,
        0.9404662819906001,
        0.41182693751871713,
        -0.10308835135583318,
        1.0,
    ],
];
const LATENTCOR_R: [[f64; 5]; 5] = [
    [
        1.0,
        0.3767409753774022,
        0.11694937002557675,
        -0.0556626321317327,
        0.6051335471364009,
    ],
    [
        0.3767409753774022,
        1.0,
        0.6120073902444036,
        -0.10146358322251453,
        0.9392462356636183,
    ],
    [
        0.11694937002557672,
        0.6120073902444035,
        1.0,
        0.3950606949523401,
        0.41081883168195565,
    ],
    [
        -0.055662632131732726,
        -0.10146358322251453,
        0.3950606949523401,
        1.0,
        -0.10267457424682441,
    ],
    [
        0.6051335471364009,
        0.9392462356636183,
        0.4108188316819557,
        -0.10267457424682438,
        1.0,
    ],
];

#[test]
fn an_indefinite_estimate_goes_to_the_nearest_correlation_matrix() {
    let d = data("latent_indefinite.csv");
    let l = latent_correlation(&d, 0.001).unwrap();
    assert!(min_eigenvalue(&l.pointwise).unwrap() < -0.06);
    assert!(l.projected);
    // The bin–bin pair (2, 5) is past the bridge's range: clamped at 0.99.
    assert_eq!(l.pointwise[(1, 4)], 0.99);
    assert!(min_eigenvalue(&l.correlation).unwrap() >= 0.001 - 1e-12);
    let dist = |m: &Mat<f64>| {
        let un = Mat::from_fn(5, 5, |a, b| {
            if a == b {
                0.0
            } else {
                m[(a, b)] / 0.999 - l.pointwise[(a, b)]
            }
        });
        un.norm_l2()
    };
    let latentcor = Mat::from_fn(5, 5, |a, b| LATENTCOR_R[a][b]);
    for a in 0..5 {
        for b in 0..5 {
            let got = l.correlation[(a, b)];
            assert!(
                (got - HIGHAM[a][b]).abs() < 1e-8,
                "{a},{b}: {got} vs {}",
                HIGHAM[a][b]
            );
            // statsmodels stops short of the nearest matrix, within 1.3e-3.
            assert!((got - LATENTCOR_R[a][b]).abs() < 1.3e-3, "{a},{b}");
        }
    }
    assert!(dist(&l.correlation) < dist(&latentcor));
    assert!((dist(&l.correlation) - 0.08022128714992016).abs() < 1e-8);
}
