//! Conversions between candle tensors and faer's f64 matrices, the
//! boundary between the model (f32 tensors) and the pruning linear algebra
//! (f64).

use candle_core::{DType, Device, Tensor};
use caracal_core::{Error, Result};
use faer::Mat;

/// A 2-D tensor `[r, c]` as an f64 matrix of the same orientation.
pub fn to_mat(t: &Tensor) -> Result<Mat<f64>> {
    let (r, c) = t
        .dims2()
        .map_err(|_| Error::invalid(format!("expected a matrix, got shape {:?}", t.dims())))?;
    let v: Vec<f64> = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    Ok(Mat::from_fn(r, c, |i, j| v[i * c + j]))
}

/// An f64 matrix as a 2-D tensor of `dtype` on `device`.
pub fn to_tensor(m: &Mat<f64>, dtype: DType, device: &Device) -> Result<Tensor> {
    let (r, c) = (m.nrows(), m.ncols());
    let mut v = Vec::with_capacity(r * c);
    for i in 0..r {
        for j in 0..c {
            v.push(m[(i, j)]);
        }
    }
    Ok(Tensor::from_vec(v, (r, c), device)?.to_dtype(dtype)?)
}

/// The rows `idx` of `m`, in that order.
pub fn rows(m: &Mat<f64>, idx: &[usize]) -> Mat<f64> {
    Mat::from_fn(idx.len(), m.ncols(), |i, j| m[(idx[i], j)])
}

/// The columns `idx` of `m`, in that order.
pub fn cols(m: &Mat<f64>, idx: &[usize]) -> Mat<f64> {
    Mat::from_fn(m.nrows(), idx.len(), |i, j| m[(i, idx[j])])
}
