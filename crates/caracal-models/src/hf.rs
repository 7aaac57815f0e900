//! Hugging Face model folders: `config.json` plus `model.safetensors`, or
//! shards listed in `model.safetensors.index.json` (`weight_map`).

use crate::config::LlamaConfig;
use crate::model::{Llama, WeightSource};
use crate::st;
use candle_core::{DType, Device, Tensor};
use caracal_core::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Named tensors, each remembering the file it came from, checked against
/// the shapes the config implies.
pub struct TensorMap {
    tensors: HashMap<String, (Tensor, PathBuf)>,
    /// Where a missing tensor is reported.
    origin: PathBuf,
    dtype: DType,
}

impl TensorMap {
    /// Tensors from one or more files; `origin` names them in errors about
    /// missing tensors; every tensor is converted to `dtype`.
    pub fn new(origin: PathBuf, dtype: DType) -> Self {
        TensorMap {
            tensors: HashMap::new(),
            origin,
            dtype,
        }
    }

    /// Add every tensor of a safetensors file.
    pub fn add_file(&mut self, path: &Path, device: &Device) -> Result<()> {
        let (ts, _) = st::read(path, device)?;
        for (n, t) in ts {
            self.tensors.insert(n, (t, path.to_path_buf()));
        }
        Ok(())
    }

    /// Add one tensor.
    pub fn insert(&mut self, name: String, t: Tensor, from: PathBuf) {
        self.tensors.insert(name, (t, from));
    }
}

impl WeightSource for TensorMap {
    fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let (t, from) = self.tensors.remove(name).ok_or_else(|| {
            Error::file(
                &self.origin,
                format!("tensor `{name}` is missing (expected shape {shape:?})"),
            )
        })?;
        if t.dims() != shape {
            return Err(Error::file(
                from,
                format!(
                    "tensor `{name}` has shape {:?} but the config implies {shape:?}; the checkpoint does not match config.json",
                    t.dims()
                ),
            ));
        }
        if !t.dtype().is_float() {
            return Err(Error::file(
                from,
                format!(
                    "tensor `{name}` has dtype {:?}; expected a float dtype",
                    t.dtype()
                ),
            ));
        }
        Ok(t.to_dtype(self.dtype)?)
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

/// Load a Hugging Face Llama folder (`config.json` + single-file or
/// sharded safetensors) with weights as `dtype`.
pub fn load_dir(dir: impl AsRef<Path>, dtype: DType, device: &Device) -> Result<Llama> {
    let dir = dir.as_ref();
    let cfg = LlamaConfig::from_file(dir.join("config.json"))?;
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let mut map;
    if single.exists() {
        map = TensorMap::new(single.clone(), dtype);
        map.add_file(&single, device)?;
    } else if index.exists() {
        map = TensorMap::new(index.clone(), dtype);
        for shard in shard_files(&index)? {
            map.add_file(&dir.join(shard), device)?;
        }
    } else {
        return Err(Error::file(
            dir,
            "holds neither model.safetensors nor model.safetensors.index.json",
        ));
    }
    Llama::from_source(&cfg, &mut map, device)
}

/// The distinct shard file names of a `model.safetensors.index.json`.
fn shard_files(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index)
        .map_err(|e| Error::file(index, format!("cannot read: {e}")))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::file(index, format!("is not valid JSON ({e})")))?;
    let wm = v
        .get("weight_map")
        .and_then(|w| w.as_object())
        .ok_or_else(|| Error::file(index, "field `weight_map` is missing or not an object"))?;
    let mut files: Vec<String> = Vec::new();
    for (name, f) in wm {
        let f = f.as_str().ok_or_else(|| {
            Error::file(
                index,
                format!("field `weight_map.{name}` is not a file name"),
            )
        })?;
        if !files.iter().any(|x| x == f) {
            files.push(f.to_string());
        }
    }
    files.sort();
    Ok(files)
}

/// Write `config.json` and `model.safetensors` (each atomically) so that
/// `transformers` and [`load_dir`] read them back.
pub fn save_dir(model: &Llama, dir: impl AsRef<Path>) -> Result<()> {
    let dir = dir.as_ref();
    caracal_core::write_json_atomic(dir.join("config.json"), &model.config().to_json())?;
    let tensors: Vec<(String, Tensor)> = model
        .named_vars()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().clone()))
        .collect();
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    caracal_core::write_atomic(
        dir.join("model.safetensors"),
        &st::to_bytes(&tensors, meta)?,
    )
}
