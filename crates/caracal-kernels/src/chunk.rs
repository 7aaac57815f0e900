//! Row chunking for the fused-linear losses.
//!
//! Liger-Kernel (`ops/fused_linear_cross_entropy.py` L64-70) sizes chunks so
//! that the transient logits stay about `BT×H` elements:
//! `inc = ceil(V/H)`, `chunk = next_pow2(ceil(BT/inc))`.

/// Liger's chunk size (rows of `x` per chunk) for `bt` rows, hidden size `h`
/// and vocabulary `v`; at least 1 and at most `bt`.
pub fn liger_chunk_rows(bt: usize, h: usize, v: usize) -> usize {
    if bt == 0 {
        return 1;
    }
    let inc = v.div_ceil(h.max(1)).max(1);
    bt.div_ceil(inc).next_power_of_two().clamp(1, bt.max(1))
}

/// Fewest rows per chunk on the CPU. Liger's rule targets GPU launch
/// overheads; on the CPU, chunks of a few dozen rows make the matmuls
/// inefficient and repeat the `V×H` accumulation of `dW` once per chunk
/// (measured at BT=1024, H=512, V=32000: 32-row chunks were 0.6× the
/// reference's speed, 256-row chunks 1.3×, at the same peak memory).
pub const CPU_MIN_CHUNK_ROWS: usize = 256;

/// The default chunk for the CPU kernels: Liger's rule, raised to
/// [`CPU_MIN_CHUNK_ROWS`], never more than `bt`.
pub fn cpu_chunk_rows(bt: usize, h: usize, v: usize) -> usize {
    liger_chunk_rows(bt, h, v)
        .max(CPU_MIN_CHUNK_ROWS)
        .min(bt.max(1))
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_liger_example() {
        // reference/kernels.md: BT=16k, V=32k, H=4k gives chunk 2048.
        assert_eq!(super::liger_chunk_rows(16384, 4096, 32768), 2048);
        assert_eq!(super::liger_chunk_rows(4096, 2048, 128256), 128);
        assert_eq!(super::liger_chunk_rows(3, 64, 100000), 1);
        assert_eq!(super::cpu_chunk_rows(4096, 2048, 128256), 256);
        assert_eq!(super::cpu_chunk_rows(100, 2048, 128256), 100);
        assert_eq!(super::cpu_chunk_rows(16384, 4096, 32768), 2048);
    }
}
