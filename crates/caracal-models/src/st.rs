//! safetensors files: read with errors that name the file, and serialize to
//! bytes so that callers write them atomically.

use candle_core::{Device, Tensor};
use caracal_core::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// All tensors of a safetensors file and its `__metadata__`.
pub fn read(
    path: &Path,
    device: &Device,
) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let bad = |e: &dyn std::fmt::Display| {
        Error::file(
            path,
            format!("is not a valid safetensors file (truncated or corrupted?): {e}"),
        )
    };
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(&e))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(&e))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let t = candle_core::safetensors::Load::load(&view, device).map_err(|e| {
            Error::file(
                path,
                format!("tensor `{name}` cannot be read: {}", brief(&e)),
            )
        })?;
        out.insert(name, t);
    }
    Ok((out, meta))
}

/// Serialize named tensors (made contiguous) and string metadata.
pub fn to_bytes(tensors: &[(String, Tensor)], meta: HashMap<String, String>) -> Result<Vec<u8>> {
    let mut items = Vec::with_capacity(tensors.len());
    for (n, t) in tensors {
        items.push((n.clone(), t.contiguous()?));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    safetensors::serialize(items.iter().map(|(n, t)| (n.as_str(), t)), Some(meta))
        .map_err(|e| Error::invalid(format!("cannot serialize tensors: {e}")))
}

/// The first line of an error message (candle appends backtraces when
/// `RUST_BACKTRACE` is set).
pub fn brief(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}
