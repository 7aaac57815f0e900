//! Checks shared by the kernel tests and benchmarks: Liger's closeness rule
//! and central finite differences.

use candle_core::{DType, Tensor};

/// Liger's `assert_verbose_allclose` rule: fail where
/// `|a − b| > atol + rtol·|b|`, or where NaN/±inf differ. Returns a message
/// naming the worst element on failure.
pub fn check_close(
    what: &str,
    got: &Tensor,
    want: &Tensor,
    atol: f64,
    rtol: f64,
) -> Result<(), String> {
    if got.dims() != want.dims() {
        return Err(format!(
            "{what}: shape {:?} vs expected {:?}",
            got.dims(),
            want.dims()
        ));
    }
    let g = got
        .to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .map_err(|e| e.to_string())?;
    let w = want
        .to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .map_err(|e| e.to_string())?;
    let mut bad = 0usize;
    let mut worst = (0usize, 0.0f64);
    for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
        let ok = if a.is_finite() && b.is_finite() {
            (a - b).abs() <= atol + rtol * b.abs()
        } else {
            (a.is_nan() && b.is_nan()) || a == b
        };
        if !ok {
            bad += 1;
            let excess = (a - b).abs() - (atol + rtol * b.abs());
            if excess > worst.1 || excess.is_nan() {
                worst = (i, excess);
            }
        }
    }
    if bad == 0 {
        Ok(())
    } else {
        let i = worst.0;
        Err(format!(
            "{what}: {bad} of {} elements differ beyond atol {atol} rtol {rtol}; worst at flat index {i}: got {} expected {}",
            g.len(),
            g[i],
            w[i]
        ))
    }
}

/// Central finite-difference gradient of a scalar function `f` at `x`
/// (computed in f64): `(f(x+h·e_i) − f(x−h·e_i)) / 2h` for each element.
pub fn finite_difference(
    x: &Tensor,
    h: f64,
    f: impl Fn(&Tensor) -> candle_core::Result<f64>,
) -> candle_core::Result<Tensor> {
    let base = x.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let mut grad = vec![0f64; base.len()];
    for i in 0..base.len() {
        let mut v = base.clone();
        v[i] = base[i] + h;
        let up = f(&Tensor::from_vec(v.clone(), x.shape(), x.device())?)?;
        v[i] = base[i] - h;
        let down = f(&Tensor::from_vec(v, x.shape(), x.device())?)?;
        grad[i] = (up - down) / (2.0 * h);
    }
    Tensor::from_vec(grad, x.shape(), x.device())
}

/// A tensor of standard normals scaled by `std`, from a fixed seed.
pub fn randn(seed: u64, shape: &[usize], std: f32, dt: DType) -> candle_core::Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut rng = caracal_core::Rng::new(seed);
    Tensor::from_vec(rng.normal_vec_f32(n, std), shape, &candle_core::Device::Cpu)?.to_dtype(dt)
}

/// Non-uniform class weights for `v` classes (0.5 to 2.0, period 7), on the
/// CPU in f32.
pub fn class_weights(v: usize) -> Tensor {
    let w: Vec<f32> = (0..v).map(|j| 0.5 + (j % 7) as f32 * 0.25).collect();
    Tensor::from_vec(w, v, &candle_core::Device::Cpu).expect("a vector of v values")
}

/// The cross-entropy options one at a time, as Liger's tests vary them
/// (`ignore_index`, label smoothing, z-loss, softcap, class weights), each
/// with the rest at its default, for `v` classes.
pub fn ce_single_options(v: usize) -> Vec<(&'static str, crate::cross_entropy::CeOptions)> {
    use crate::cross_entropy::CeOptions;
    let base = CeOptions::default;
    vec![
        (
            "ignore_index",
            CeOptions {
                ignore_index: 42,
                ..base()
            },
        ),
        (
            "label_smoothing",
            CeOptions {
                label_smoothing: 0.1,
                ..base()
            },
        ),
        (
            "z_loss",
            CeOptions {
                lse_square_scale: 1e-4,
                ..base()
            },
        ),
        (
            "softcap",
            CeOptions {
                softcap: Some(30.0),
                ..base()
            },
        ),
        (
            "class_weights",
            CeOptions {
                class_weights: Some(class_weights(v)),
                ..base()
            },
        ),
    ]
}
