//! Hugging Face model folders: `config.json` plus `model.safetensors`, or
//! shards listed in `model.safetensors.index.json` (`weight_map`).

use crate::config::LlamaConfig;
use crate::model::{Llama, WeightSource};
use crate::st;
use candle_core::{DType, Device, Tensor, Var};
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

    /// Take a tensor of any shape (converted to the map's dtype), if present.
    pub fn take(&mut self, name: &str) -> Result<Option<Tensor>> {
        match self.tensors.remove(name) {
            None => Ok(None),
            Some((t, _)) => Ok(Some(t.to_dtype(self.dtype)?)),
        }
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
    let mut map = tensor_map(dir, dtype, device)?;
    Llama::from_source(&cfg, &mut map, device)
}

/// A Hugging Face folder read as a sequence classifier.
pub struct ClassifierDir {
    /// The decoder (its LM head, if the folder has none, is the embedding).
    pub model: Llama,
    /// `score.weight` `[num_labels, hidden]`, when the folder has one.
    pub score: Option<Tensor>,
    /// Whether `config.json` names `LlamaForSequenceClassification`.
    pub is_classifier: bool,
}

/// Load a Hugging Face folder as a classifier: a
/// `LlamaForSequenceClassification` (whose `score.weight` must be there) or
/// a causal LM (no head yet).
pub fn load_classifier_dir(
    dir: impl AsRef<Path>,
    dtype: DType,
    device: &Device,
) -> Result<ClassifierDir> {
    let dir = dir.as_ref();
    let cfg_path = dir.join("config.json");
    let cfg = LlamaConfig::from_file(&cfg_path)?;
    let text = std::fs::read_to_string(&cfg_path)
        .map_err(|e| Error::file(&cfg_path, format!("cannot read: {e}")))?;
    let raw: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::file(&cfg_path, format!("is not valid JSON ({e})")))?;
    let is_classifier = raw
        .get("architectures")
        .and_then(|a| a.as_array())
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(SEQ_CLS)));
    let mut map = tensor_map(dir, dtype, device)?;
    let model = Llama::from_source_backbone(&cfg, &mut map, device)?;
    let score = map.take("score.weight")?;
    if is_classifier && score.is_none() {
        return Err(Error::file(
            dir,
            format!("config.json names {SEQ_CLS} but tensor `score.weight` is missing"),
        ));
    }
    Ok(ClassifierDir {
        model,
        score,
        is_classifier,
    })
}

/// Hugging Face's architecture name of a Llama sequence classifier.
pub const SEQ_CLS: &str = "LlamaForSequenceClassification";

/// Write a `LlamaForSequenceClassification` folder (`config.json` with
/// `num_labels` and `pad_token_id`, `model.safetensors` with the decoder
/// and `score.weight`, each atomically) that `transformers` loads.
pub fn save_classifier_dir(clf: &crate::SequenceClassifier, dir: impl AsRef<Path>) -> Result<()> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, format!("cannot create: {e}")))?;
    let n = clf.num_labels();
    let mut cfg = clf.model.config().to_json();
    cfg["architectures"] = serde_json::json!([SEQ_CLS]);
    cfg["num_labels"] = n.into();
    cfg["pad_token_id"] = clf.pad_id.into();
    let id2label: serde_json::Map<String, serde_json::Value> = (0..n)
        .map(|i| (i.to_string(), format!("LABEL_{i}").into()))
        .collect();
    let label2id: serde_json::Map<String, serde_json::Value> =
        (0..n).map(|i| (format!("LABEL_{i}"), i.into())).collect();
    cfg["id2label"] = id2label.into();
    cfg["label2id"] = label2id.into();
    caracal_core::write_json_atomic(dir.join("config.json"), &cfg)?;
    let vars: Vec<(String, Var)> = clf
        .named_vars()
        .into_iter()
        .filter(|(n, _)| n != "lm_head.weight")
        .collect();
    write_weights(dir, vars)
}

/// Write named variables as `model.safetensors` (format `pt`), atomically.
fn write_weights(dir: &Path, vars: Vec<(String, Var)>) -> Result<()> {
    let tensors: Vec<(String, Tensor)> = vars
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

/// Every tensor of a folder's single or sharded safetensors.
fn tensor_map(dir: &Path, dtype: DType, device: &Device) -> Result<TensorMap> {
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
    Ok(map)
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
    write_weights(dir, model.named_vars())
}
