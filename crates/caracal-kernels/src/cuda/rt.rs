//! The CUDA runtime plumbing: NVRTC compilation of `kernels.cu` (once per
//! process and compute capability), loading into each device (once per
//! device, cached by candle's `CudaDevice`), raw device pointers of candle
//! storage, allocations that report out-of-memory with the shape that asked,
//! and launches.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc;
use candle_core::cuda_backend::{CudaDevice, CudaStorage, CudaStorageSlice, DeviceId, WrapErr};
use candle_core::{DType, Device, Layout, Shape, Storage, Tensor};
use cudarc::driver::{CudaFunction, CudaSlice, DevicePtr, DeviceRepr, LaunchConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The kernels' CUDA C source.
pub const SOURCE: &str = include_str!("kernels.cu");

/// The name under which the module is cached in each candle `CudaDevice`.
pub const MODULE: &str = "caracal_kernels";

type CResult<T> = candle_core::Result<T>;

fn msg(s: String) -> candle_core::Error {
    candle_core::Error::Msg(s)
}

/// Compile [`SOURCE`] to PTX for `arch` (e.g. `compute_90`) with NVRTC.
/// Needs libnvrtc at run time, but no GPU.
pub fn compile_ptx(arch: &'static str) -> CResult<String> {
    let opts = cudarc::nvrtc::CompileOptions {
        arch: Some(arch),
        ..Default::default()
    };
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts).map_err(|e| {
        msg(format!(
            "NVRTC could not compile the caracal kernels for {arch}: {e:?}"
        ))
    })?;
    Ok(ptx.to_src())
}

/// PTX per architecture, compiled on first use.
fn ptx_for(arch: &'static str) -> CResult<Arc<String>> {
    static CACHE: OnceLock<Mutex<HashMap<&'static str, Arc<String>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = guard.get(arch) {
        return Ok(p.clone());
    }
    let p = Arc::new(compile_ptx(arch)?);
    guard.insert(arch, p.clone());
    Ok(p)
}

/// `compute_XY` for the device's compute capability.
fn arch_of(dev: &CudaDevice) -> CResult<&'static str> {
    use cudarc::driver::sys::CUdevice_attribute as A;
    let stream = dev.cuda_stream();
    let ctx = stream.context();
    let major = ctx
        .attribute(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
        .w()?;
    let minor = ctx
        .attribute(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
        .w()?;
    let name = format!("compute_{major}{minor}");
    static NAMES: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let names = NAMES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut g = names.lock().unwrap_or_else(|e| e.into_inner());
    let s = *g
        .entry(name.clone())
        .or_insert_with(|| Box::leak(name.into_boxed_str()));
    Ok(s)
}

/// Number of streaming multiprocessors of the device (asked once per device).
pub fn sm_count(dev: &CudaDevice) -> CResult<usize> {
    use cudarc::driver::sys::CUdevice_attribute as A;
    static SMS: OnceLock<Mutex<HashMap<DeviceId, usize>>> = OnceLock::new();
    let sms = SMS.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(&n) = sms.lock().unwrap_or_else(|e| e.into_inner()).get(&dev.id()) {
        return Ok(n);
    }
    let stream = dev.cuda_stream();
    let n = stream
        .context()
        .attribute(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        .w()?;
    let n = n.max(1) as usize;
    sms.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(dev.id(), n);
    Ok(n)
}

/// Kernel `name` on `dev`, loaded once per device and then taken from a
/// cache (a launch then costs no driver lookup).
pub fn function(dev: &CudaDevice, name: &str) -> CResult<Arc<CudaFunction>> {
    type Cache = Mutex<HashMap<(DeviceId, String), Arc<CudaFunction>>>;
    static FUNCS: OnceLock<Cache> = OnceLock::new();
    let funcs = FUNCS.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (dev.id(), name.to_string());
    if let Some(f) = funcs.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(f.clone());
    }
    let f = Arc::new(
        dev.get_or_load_custom_func(name, MODULE, &ptx(dev)?)?
            .into_cuda_function(),
    );
    funcs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, f.clone());
    Ok(f)
}

/// The PTX for `dev` (compiled on first use for its compute capability).
pub fn ptx(dev: &CudaDevice) -> CResult<Arc<String>> {
    ptx_for(arch_of(dev)?)
}

/// The suffix of a kernel instantiated for storage dtype `dt`.
pub fn sfx(dt: DType) -> CResult<&'static str> {
    Ok(match dt {
        DType::F32 => "f32",
        DType::F64 => "f64",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        other => {
            return Err(msg(format!(
                "the CUDA kernels take f32, f64, bf16 or f16, not {other:?}"
            )))
        }
    })
}

/// The compute dtype of storage dtype `dt` (f64 for f64, else f32).
pub fn compute_dtype(dt: DType) -> DType {
    if dt == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// A launch configuration of `grid` blocks of `block` threads.
pub fn cfg(grid: usize, block: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (grid.clamp(1, i32::MAX as usize) as u32, 1, 1),
        block_dim: (block as u32, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Threads per block for a row of `n` elements: a multiple of 32 between 32
/// and 1024, about `n / per_thread`.
pub fn row_block(n: usize, per_thread: usize) -> usize {
    (n.div_ceil(per_thread.max(1))).div_ceil(32).clamp(1, 32) * 32
}

/// Grid size for an elementwise kernel over `n` items with `block` threads.
pub fn elem_grid(dev: &CudaDevice, n: usize, block: usize) -> CResult<usize> {
    Ok(n.div_ceil(block).clamp(1, sm_count(dev)? * 16))
}

/// Raw device address of element 0 of `s` under `l` (which must be
/// contiguous), with its dtype.
pub fn ptr(s: &CudaStorage, l: &Layout) -> CResult<u64> {
    let Some((start, _)) = l.contiguous_offsets() else {
        return Err(msg("the CUDA kernels expect contiguous tensors".into()));
    };
    let stream = s.device.cuda_stream();
    macro_rules! p {
        ($v:expr, $t:ty) => {{
            let (p, _sync) = $v.device_ptr(&stream);
            p + (start * std::mem::size_of::<$t>()) as u64
        }};
    }
    Ok(match &s.slice {
        CudaStorageSlice::F32(v) => p!(v, f32),
        CudaStorageSlice::F64(v) => p!(v, f64),
        CudaStorageSlice::BF16(v) => p!(v, half::bf16),
        CudaStorageSlice::F16(v) => p!(v, half::f16),
        CudaStorageSlice::I64(v) => p!(v, i64),
        CudaStorageSlice::U32(v) => p!(v, u32),
        CudaStorageSlice::I32(v) => p!(v, i32),
        CudaStorageSlice::U8(v) => p!(v, u8),
        _ => return Err(msg(format!("unsupported dtype {:?}", s.dtype()))),
    })
}

/// Raw device address of a typed slice.
pub fn slice_ptr<T>(s: &CudaSlice<T>) -> u64 {
    let stream = s.stream().clone();
    let (p, _sync) = s.device_ptr(&stream);
    p
}

/// The CUDA storage of a tensor (after making it contiguous), its device
/// and its raw address. The returned tensor keeps the storage alive.
pub struct Held {
    pub t: Tensor,
    pub ptr: u64,
}

/// Make `t` contiguous on its CUDA device and take its address.
pub fn hold(t: &Tensor) -> CResult<Held> {
    let t = t.contiguous()?;
    let p = {
        let (st, l) = t.storage_and_layout();
        match &*st {
            Storage::Cuda(cs) => ptr(cs, l)?,
            _ => return Err(msg("expected a tensor on a CUDA device".into())),
        }
    };
    Ok(Held { t, ptr: p })
}

/// The `CudaDevice` of a tensor.
pub fn device_of(t: &Tensor) -> CResult<CudaDevice> {
    match t.device() {
        Device::Cuda(d) => Ok(d.clone()),
        other => Err(msg(format!(
            "expected a tensor on a CUDA device, got one on {:?}",
            other.location()
        ))),
    }
}

fn is_oom(e: &cudarc::driver::DriverError) -> bool {
    e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY
}

/// Allocate `len` elements of `T` (uninitialized), reporting out-of-memory
/// with `what` (the op, the buffer and its shape).
pub fn alloc<T: DeviceRepr>(
    dev: &CudaDevice,
    len: usize,
    what: &dyn Fn() -> String,
) -> CResult<CudaSlice<T>> {
    let stream = dev.cuda_stream();
    // SAFETY: every caller writes the buffer fully before reading it.
    match unsafe { stream.alloc::<T>(len.max(1)) } {
        Ok(s) => Ok(s),
        Err(e) if is_oom(&e) => Err(oom(len * std::mem::size_of::<T>(), what)),
        Err(e) => Err(e).w(),
    }
}

/// Allocate `len` zeroed elements of `T`, reporting out-of-memory like [`alloc`].
pub fn zeros<T: DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    dev: &CudaDevice,
    len: usize,
    what: &dyn Fn() -> String,
) -> CResult<CudaSlice<T>> {
    let stream = dev.cuda_stream();
    match stream.alloc_zeros::<T>(len.max(1)) {
        Ok(s) => Ok(s),
        Err(e) if is_oom(&e) => Err(oom(len * std::mem::size_of::<T>(), what)),
        Err(e) => Err(e).w(),
    }
}

/// The out-of-memory error: how much, for what.
pub fn oom(bytes: usize, what: &dyn Fn() -> String) -> candle_core::Error {
    msg(format!(
        "CUDA out of memory: could not allocate {:.1} MiB for {}",
        bytes as f64 / (1u64 << 20) as f64,
        what()
    ))
}

/// A new uninitialized storage of `len` elements of dtype `dt`, and its address.
pub fn alloc_storage(
    dev: &CudaDevice,
    dt: DType,
    len: usize,
    what: &dyn Fn() -> String,
) -> CResult<(CudaStorage, u64)> {
    macro_rules! mk {
        ($t:ty) => {{
            let s = alloc::<$t>(dev, len, what)?;
            let p = slice_ptr(&s);
            (CudaStorage::wrap_cuda_slice(s, dev.clone()), p)
        }};
    }
    Ok(match dt {
        DType::F32 => mk!(f32),
        DType::F64 => mk!(f64),
        DType::BF16 => mk!(half::bf16),
        DType::F16 => mk!(half::f16),
        DType::I64 => mk!(i64),
        DType::U32 => mk!(u32),
        other => return Err(msg(format!("cannot allocate CUDA storage of {other:?}"))),
    })
}

/// A tensor (no gradient history) over a fresh storage, and its address.
pub fn new_tensor(
    dev: &CudaDevice,
    dt: DType,
    shape: impl Into<Shape>,
    what: &dyn Fn() -> String,
) -> CResult<(Tensor, u64)> {
    let shape = shape.into();
    let (s, p) = alloc_storage(dev, dt, shape.elem_count(), what)?;
    Ok((wrap(s, shape), p))
}

/// A tensor without gradient history over `s`.
pub fn wrap(s: CudaStorage, shape: Shape) -> Tensor {
    Tensor::from_storage(
        Storage::Cuda(s),
        shape,
        candle_core::op::BackpropOp::none(),
        false,
    )
}

/// Launch kernel `$name` on `$dev` with launch configuration `$cfg` and the
/// arguments in order (each bound to a local that outlives the launch).
///
/// Each call site must push arguments in the order and types of the
/// kernel's `extern "C"` signature in kernels.cu, with every pointer
/// addressing a live buffer of the length the kernel reads or writes.
macro_rules! launch {
    ($dev:expr, $name:expr, $cfg:expr; $($arg:expr),* $(,)?) => {{
        use candle_core::cuda_backend::cudarc::driver::PushKernelArg as _;
        use candle_core::cuda_backend::WrapErr as _;
        let dev: &candle_core::cuda_backend::CudaDevice = $dev;
        let f = $crate::cuda::rt::function(dev, &$name)?;
        let stream = dev.cuda_stream();
        let mut b = stream.launch_builder(&f);
        $(
            let a = $arg;
            b.arg(&a);
        )*
        // SAFETY: see the macro's documentation; every call site follows it.
        unsafe { b.launch($cfg) }.w()?;
    }};
}
pub(crate) use launch;

#[cfg(test)]
mod tests {
    /// NVRTC needs no GPU: the kernels must compile for Hopper, with every
    /// entry point the ops launch present in the PTX.
    #[test]
    fn kernels_compile_with_nvrtc() {
        let ptx = super::compile_ptx("compute_90").expect("NVRTC compile");
        for name in [
            "rms_fwd",
            "rms_bwd",
            "rms_fwd_v",
            "rms_bwd_v",
            "colsum",
            "ln_fwd",
            "ln_bwd",
            "rope",
            "glu_fwd",
            "glu_bwd",
            "ce_rows",
            "ce_rows_vec",
            "jsd",
            "kl_fwd",
            "kl_bwd",
            "colsum_acc",
            "to_storage",
            "to_compute",
        ] {
            for sfx in ["f32", "f64", "bf16", "f16"] {
                let entry = format!(".entry {name}_{sfx}(");
                assert!(ptx.contains(&entry), "missing {entry}");
            }
        }
        assert!(ptx.contains(".entry fljsd_rows_f32("));
        assert!(ptx.contains(".entry fljsd_rows_f64("));
    }
}
