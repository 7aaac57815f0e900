//! Opening a GPU, and the peak of allocated device bytes.
//!
//! candle allocates through cudarc's stream-ordered allocator
//! (`cuMemAllocAsync`) from the device's default memory pool, so the pool's
//! `USED_MEM_HIGH` attribute is the high-water mark of bytes held by live
//! allocations, the analogue of `torch.cuda.max_memory_allocated`. Setting
//! it to 0 resets it to the bytes in use now.

use candle_core::cuda_backend::cudarc::driver::sys;
use candle_core::cuda_backend::CudaDevice;
use candle_core::Device;
use caracal_core::{Error, Result};

/// CUDA device `ordinal`, or a clear error when the machine has none.
pub fn device(ordinal: usize) -> Result<Device> {
    Device::new_cuda(ordinal).map_err(|e| {
        // candle's error may carry a backtrace: keep its first line.
        let e = e.to_string();
        let e = e.lines().next().unwrap_or("").trim();
        Error::invalid(format!(
            "could not open CUDA device {ordinal} ({e}); this needs a machine with an NVIDIA GPU, \
             its driver (libcuda.so.1), and the CUDA 13 libraries libnvrtc, libcublas and libcurand \
             on the library path"
        ))
    })
}

fn pool(dev: &CudaDevice) -> Result<sys::CUmemoryPool> {
    let stream = dev.cuda_stream();
    let cu_dev = stream.context().cu_device();
    let mut p = std::mem::MaybeUninit::uninit();
    // SAFETY: `cu_dev` is the device of a live context; the call writes the
    // pool handle on success.
    let rc = unsafe { sys::cuDeviceGetMemPool(p.as_mut_ptr(), cu_dev) };
    if rc != sys::CUresult::CUDA_SUCCESS {
        return Err(Error::invalid(format!("cuDeviceGetMemPool failed: {rc:?}")));
    }
    // SAFETY: initialized by the successful call above.
    Ok(unsafe { p.assume_init() })
}

/// Wait for all work queued on `dev`'s stream.
pub fn synchronize(dev: &CudaDevice) -> Result<()> {
    dev.cuda_stream()
        .synchronize()
        .map_err(|e| Error::invalid(format!("CUDA synchronize failed: {e:?}")))
}

/// Reset the peak of allocated bytes to the bytes allocated now.
pub fn reset_peak(dev: &CudaDevice) -> Result<()> {
    synchronize(dev)?;
    let p = pool(dev)?;
    let mut zero: u64 = 0;
    // SAFETY: a valid pool handle and a u64 value, as the attribute takes.
    let rc = unsafe {
        sys::cuMemPoolSetAttribute(
            p,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
            &mut zero as *mut u64 as *mut std::ffi::c_void,
        )
    };
    if rc != sys::CUresult::CUDA_SUCCESS {
        return Err(Error::invalid(format!(
            "resetting the pool's peak failed: {rc:?}"
        )));
    }
    Ok(())
}

fn attr(dev: &CudaDevice, a: sys::CUmemPool_attribute) -> Result<u64> {
    let p = pool(dev)?;
    let mut v: u64 = 0;
    // SAFETY: a valid pool handle; the attribute is a u64.
    let rc =
        unsafe { sys::cuMemPoolGetAttribute(p, a, &mut v as *mut u64 as *mut std::ffi::c_void) };
    if rc != sys::CUresult::CUDA_SUCCESS {
        return Err(Error::invalid(format!(
            "reading the pool's {a:?} failed: {rc:?}"
        )));
    }
    Ok(v)
}

fn set_attr(dev: &CudaDevice, a: sys::CUmemPool_attribute, mut v: u64) -> Result<()> {
    let p = pool(dev)?;
    // SAFETY: a valid pool handle; the attribute is a u64.
    let rc =
        unsafe { sys::cuMemPoolSetAttribute(p, a, &mut v as *mut u64 as *mut std::ffi::c_void) };
    if rc != sys::CUresult::CUDA_SUCCESS {
        return Err(Error::invalid(format!(
            "setting the pool's {a:?} failed: {rc:?}"
        )));
    }
    Ok(())
}

/// Keep freed device memory in the pool for reuse instead of returning it
/// to the driver at every synchronize (the pool's default), as PyTorch's
/// caching allocator does: without it, every step maps its buffers anew.
pub fn retain_freed(dev: &CudaDevice) -> Result<()> {
    set_attr(
        dev,
        sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
        u64::MAX,
    )
}

/// Return the pool's unused memory to the driver.
pub fn trim(dev: &CudaDevice) -> Result<()> {
    synchronize(dev)?;
    let p = pool(dev)?;
    // SAFETY: a valid pool handle.
    let rc = unsafe { sys::cuMemPoolTrimTo(p, 0) };
    if rc != sys::CUresult::CUDA_SUCCESS {
        return Err(Error::invalid(format!("trimming the pool failed: {rc:?}")));
    }
    Ok(())
}

/// Peak allocated bytes since the last [`reset_peak`] (after a synchronize).
pub fn peak_bytes(dev: &CudaDevice) -> Result<u64> {
    synchronize(dev)?;
    attr(dev, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH)
}

/// Bytes allocated now.
pub fn used_bytes(dev: &CudaDevice) -> Result<u64> {
    synchronize(dev)?;
    attr(
        dev,
        sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_CURRENT,
    )
}
