//! The key/value cache for incremental decoding: each layer keeps its
//! post-RoPE keys and values `[B, Hk, T_past, D]`, so a new token attends to
//! the past without recomputing it.

use candle_core::Tensor;

/// Cached keys and values of every layer, and how many positions they hold.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl KvCache {
    /// An empty cache for `n_layers` layers.
    pub fn new(n_layers: usize) -> Self {
        KvCache {
            layers: vec![None; n_layers],
            len: 0,
        }
    }

    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drop everything.
    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
        self.len = 0;
    }

    pub(crate) fn layer(&mut self, l: usize) -> &mut Option<(Tensor, Tensor)> {
        &mut self.layers[l]
    }

    pub(crate) fn advance(&mut self, t: usize) {
        self.len += t;
    }
}
