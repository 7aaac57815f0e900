//! The scalar type kernels compute in: `f32` for f32/bf16/f16 inputs (Liger's
//! "accumulate in fp32"), `f64` for f64 inputs (used by finite-difference
//! checks).

use candle_core::{CpuStorage, DType};

/// Float arithmetic that the CPU kernels need, implemented for `f32` and `f64`.
pub trait Real:
    Copy
    + Send
    + Sync
    + 'static
    + PartialOrd
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + std::iter::Sum
    + Default
{
    /// The candle dtype of this scalar.
    const DTYPE: DType;
    fn lit(v: f64) -> Self;
    fn as_f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn tanh(self) -> Self;
    fn abs(self) -> Self;
    fn max(self, o: Self) -> Self;
    fn is_nan(self) -> bool;
    /// The slice inside `s` when its variant holds this scalar type.
    fn slice_of(s: &CpuStorage) -> Option<&[Self]>;
    /// Wrap a vector of this scalar as candle storage.
    fn into_storage(v: Vec<Self>) -> CpuStorage;
    fn zero() -> Self {
        Self::lit(0.0)
    }
    fn one() -> Self {
        Self::lit(1.0)
    }
    fn neg_infinity() -> Self {
        Self::lit(f64::NEG_INFINITY)
    }
    /// Logistic sigmoid.
    fn sigmoid(self) -> Self {
        Self::one() / (Self::one() + (-self).exp())
    }
}

macro_rules! impl_real {
    ($t:ty, $variant:ident, $dt:expr) => {
        impl Real for $t {
            const DTYPE: DType = $dt;
            #[inline]
            fn lit(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn as_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn max(self, o: Self) -> Self {
                <$t>::max(self, o)
            }
            #[inline]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            fn slice_of(s: &CpuStorage) -> Option<&[Self]> {
                match s {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn into_storage(v: Vec<Self>) -> CpuStorage {
                CpuStorage::$variant(v)
            }
        }
    };
}

impl_real!(f32, F32, DType::F32);
impl_real!(f64, F64, DType::F64);
