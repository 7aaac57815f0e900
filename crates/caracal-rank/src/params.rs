//! A named set of trainable tensors, with seeded initialization and a
//! JSON form for checkpoints.

use candle_core::{Device, Tensor, Var};
use caracal_core::{Result, Rng};
use std::collections::BTreeMap;

/// Trainable parameters by name, in insertion order.
#[derive(Clone)]
pub struct Params {
    names: Vec<String>,
    vars: Vec<Var>,
    index: BTreeMap<String, usize>,
}

/// One tensor's shape and values, as stored in a checkpoint.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Stored {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl Params {
    pub fn new() -> Self {
        Params {
            names: Vec::new(),
            vars: Vec::new(),
            index: BTreeMap::new(),
        }
    }

    /// Add a parameter drawn from `N(0, std²)` (`std = 0` gives zeros).
    pub fn normal(
        &mut self,
        name: &str,
        shape: &[usize],
        std: f32,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        let n = shape.iter().product();
        self.add(
            name,
            Tensor::from_vec(rng.normal_vec_f32(n, std), shape, &Device::Cpu)?,
        )
    }

    /// Add a parameter filled with `value`.
    pub fn constant(&mut self, name: &str, shape: &[usize], value: f32) -> Result<Tensor> {
        let n = shape.iter().product();
        self.add(name, Tensor::from_vec(vec![value; n], shape, &Device::Cpu)?)
    }

    fn add(&mut self, name: &str, t: Tensor) -> Result<Tensor> {
        caracal_core::ensure!(
            !self.index.contains_key(name),
            "parameter `{name}` added twice"
        );
        let v = Var::from_tensor(&t)?;
        self.index.insert(name.to_string(), self.vars.len());
        self.names.push(name.to_string());
        let out = v.as_tensor().clone();
        self.vars.push(v);
        Ok(out)
    }

    /// The parameter `name` (a tracked tensor).
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        match self.index.get(name) {
            Some(&i) => Ok(self.vars[i].as_tensor()),
            None => caracal_core::bail!("no parameter named `{name}`"),
        }
    }

    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Total number of scalars.
    pub fn count(&self) -> usize {
        self.vars.iter().map(|v| v.elem_count()).sum()
    }

    /// Detached copies of every value (for "best so far" snapshots).
    pub fn snapshot(&self) -> Result<Vec<Tensor>> {
        Ok(self
            .vars
            .iter()
            .map(|v| v.as_tensor().detach().copy())
            .collect::<candle_core::Result<_>>()?)
    }

    /// Restore values from [`Params::snapshot`].
    pub fn restore(&self, snap: &[Tensor]) -> Result<()> {
        caracal_core::ensure!(
            snap.len() == self.vars.len(),
            "snapshot has the wrong number of tensors"
        );
        for (v, t) in self.vars.iter().zip(snap) {
            v.set(t)?;
        }
        Ok(())
    }

    /// Every value, by name.
    pub fn to_stored(&self) -> Result<BTreeMap<String, Stored>> {
        let mut m = BTreeMap::new();
        for (n, v) in self.names.iter().zip(&self.vars) {
            m.insert(
                n.clone(),
                Stored {
                    shape: v.dims().to_vec(),
                    values: v.as_tensor().flatten_all()?.to_vec1()?,
                },
            );
        }
        Ok(m)
    }

    /// Load values by name; shapes must match.
    pub fn load_stored(&self, m: &BTreeMap<String, Stored>) -> Result<()> {
        for (n, v) in self.names.iter().zip(&self.vars) {
            let s = m.get(n).ok_or_else(|| {
                caracal_core::Error::invalid(format!("the checkpoint has no tensor `{n}`"))
            })?;
            caracal_core::ensure!(
                s.shape == v.dims() && s.values.len() == v.elem_count(),
                "checkpoint tensor `{n}` has shape {:?}; the model expects {:?}",
                s.shape,
                v.dims()
            );
            v.set(&Tensor::from_vec(s.values.clone(), v.dims(), &Device::Cpu)?)?;
        }
        Ok(())
    }
}

impl Default for Params {
    fn default() -> Self {
        Self::new()
    }
}
