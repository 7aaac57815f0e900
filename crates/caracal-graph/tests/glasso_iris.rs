//! The graphical lasso against the iris oracles of
//! shared/reference/statistics.md §3 (R glasso 1.11 and scikit-learn agree
//! to 6 decimals), under both diagonal conventions.

use caracal_graph::{correlation, covariance, glasso, Dataset, Diagonal, GlassoOptions};
use faer::Mat;

fn iris() -> Dataset {
    Dataset::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/iris.csv")).unwrap()
}

fn assert_close(got: &Mat<f64>, want: [[f64; 4]; 4], tol: f64) {
    for a in 0..4 {
        for b in 0..4 {
            let d = (got[(a, b)] - want[a][b]).abs();
            assert!(
                d < tol,
                "Θ[{a},{b}] = {} but the oracle says {} (|Δ| = {d:e})",
                got[(a, b)],
                want[a][b]
            );
        }
    }
}

#[test]
fn iris_inputs_match_the_oracles_inputs() {
    let d = iris();
    assert_eq!((d.n(), d.p()), (150, 4));
    let means: Vec<f64> = d
        .cols
        .iter()
        .map(|c| c.iter().sum::<f64>() / 150.0)
        .collect();
    for (m, want) in means
        .iter()
        .zip([5.843333333, 3.057333333, 3.758, 1.199333333])
    {
        assert!((m - want).abs() < 1e-8);
    }
    // R: cov(iris[,1:4]) * 149/150.
    let s = covariance(&d);
    let want = [
        [0.68112222222, -0.04215111111, 1.26582, 0.5128288889],
        [-0.04215111111, 0.18871288889, -0.3274586667, -0.1208284444],
    ];
    for (a, row) in want.iter().enumerate() {
        for (b, w) in row.iter().enumerate() {
            assert!((s[(a, b)] - w).abs() < 1e-9);
        }
    }
}

#[test]
fn iris_covariance_lambda_0_1_diagonal_unpenalized() {
    let f = glasso(
        &covariance(&iris()),
        &GlassoOptions::new(0.1)
            .diagonal(Diagonal::Unpenalized)
            .tol(1e-12),
    )
    .unwrap();
    assert_close(
        &f.precision,
        [
            [4.131306, 0.0, -1.555922, 0.0],
            [0.0, 5.813982, 0.427214, 0.0],
            [-1.555922, 0.427214, 2.145747, -3.143349],
            [0.0, 0.0, -3.143349, 8.197534],
        ],
        1e-6,
    );
}

#[test]
fn iris_correlation_lambda_0_3_diagonal_unpenalized() {
    let f = glasso(
        &correlation(&iris()),
        &GlassoOptions::new(0.3)
            .diagonal(Diagonal::Unpenalized)
            .tol(1e-12),
    )
    .unwrap();
    assert_close(
        &f.precision,
        [
            [1.565777, 0.0, -0.637999, -0.388073],
            [0.0, 1.016774, 0.130595, 0.0],
            [-0.637999, 0.130595, 2.060509, -1.024275],
            [-0.388073, 0.0, -1.024275, 1.879956],
        ],
        1e-6,
    );
}

#[test]
fn iris_correlation_lambda_0_3_diagonal_penalized() {
    // statistics.md gives the diagonal and Θ24; the rest is R glasso 1.11,
    // `glasso(cor(iris[,1:4]), 0.3, thr = 1e-12)$wi`.
    let f = glasso(&correlation(&iris()), &GlassoOptions::new(0.3).tol(1e-12)).unwrap();
    assert_close(
        &f.precision,
        [
            [1.0047700467, 0.0, -0.3213332928, -0.2364699984],
            [0.0, 0.7768138537, 0.0764879104, 0.0005125760],
            [-0.3213332928, 0.0764879104, 1.1497893786, -0.4543585158],
            [-0.2364699984, 0.0005125760, -0.4543585158, 1.0951461426],
        ],
        1e-6,
    );
}

#[test]
fn iris_covariance_lambda_0_1_diagonal_penalized() {
    // R glasso 1.11: `glasso(cov(iris[,1:4]) * 149/150, 0.1, thr = 1e-12)$wi`.
    let f = glasso(&covariance(&iris()), &GlassoOptions::new(0.1).tol(1e-12)).unwrap();
    assert_close(
        &f.precision,
        [
            [2.810612175, 0.0, -1.0253998283, 0.0],
            [0.0, 3.6694260642, 0.2611929474, 0.0],
            [-1.025399828, 0.2611929474, 1.2897004752, -1.572403629],
            [0.0, 0.0, -1.5724036291, 4.233141127],
        ],
        1e-6,
    );
}

#[test]
fn warm_start_and_screening_do_not_change_the_solution() {
    let s = correlation(&iris());
    let o = GlassoOptions::new(0.3).tol(1e-12);
    let cold = glasso(&s, &o).unwrap();
    let from = glasso(&s, &GlassoOptions::new(0.6).tol(1e-12)).unwrap();
    let warm = caracal_graph::glasso_warm(&s, &o, Some(&from)).unwrap();
    let mut unscreened = o.clone();
    unscreened.screen = false;
    let plain = glasso(&s, &unscreened).unwrap();
    for a in 0..4 {
        for b in 0..4 {
            assert!((cold.precision[(a, b)] - warm.precision[(a, b)]).abs() < 1e-8);
            assert!((cold.precision[(a, b)] - plain.precision[(a, b)]).abs() < 1e-8);
        }
    }
    assert!((cold.objective - warm.objective).abs() < 1e-10);
}
