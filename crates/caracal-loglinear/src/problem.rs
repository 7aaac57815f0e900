//! The fitting problem `μ = exp(o + Xθ)`: counts, offsets, design, the blocks
//! that block-wise and group-penalized algorithms use, and (for tables) the
//! margins that classic IPF fits.

use crate::contingency::ContingencyTable;
use crate::design::Design;
use crate::margins::MarginPlan;
use crate::spec::HierarchicalModel;
use caracal_core::{bail, ensure, Result};

/// How the counts were sampled. Both give the same fitted values when the
/// model contains an intercept (Birch); they differ in the likelihood, so in AIC/BIC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub enum Sampling {
    /// Independent Poisson counts.
    #[default]
    Poisson,
    /// One multinomial sample of fixed total.
    Multinomial,
}

/// What to do with a margin of the model that is zero where cells could be positive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZeroMargins {
    /// Refuse: the MLE does not exist (a parameter goes to −∞).
    #[default]
    Error,
    /// Fit the extended MLE: the cells of zero margins become structural zeros,
    /// and df counts only the remaining cells and identifiable parameters.
    Structural,
}

/// The table and model behind a problem built by [`Problem::from_table`].
#[derive(Clone, Debug)]
pub struct TableInfo {
    /// The table, with `start` set to 0 in every structural-zero cell.
    pub table: ContingencyTable,
    /// The hierarchical model.
    pub model: HierarchicalModel,
    /// Cells turned into structural zeros because a margin was zero.
    pub zeroed_cells: usize,
}

/// Everything an algorithm needs: `y`, `o` and `X` over the estimable cells.
#[derive(Clone, Debug)]
pub struct Problem {
    /// Counts of the active cells (those with a finite offset).
    pub y: Vec<f64>,
    /// Offsets `o = log(start)` of the active cells.
    pub offset: Vec<f64>,
    /// Design over the active cells.
    pub design: Design,
    /// Column blocks for the block-wise and group algorithms.
    pub blocks: Vec<Vec<usize>>,
    /// Which columns an L1 / group penalty applies to (not the intercept).
    pub penalized: Vec<bool>,
    /// Cell (input row) of each active row.
    pub active: Vec<usize>,
    /// Number of cells including structural zeros.
    pub n_cells: usize,
    /// Sampling scheme.
    pub sampling: Sampling,
    /// Columns dropped because no estimable cell carries them.
    pub dropped: Vec<String>,
    /// Set when the problem comes from a contingency table.
    pub table: Option<TableInfo>,
}

impl Problem {
    /// A hierarchical model on a contingency table, in treatment coding.
    pub fn from_table(
        table: &ContingencyTable,
        model: &HierarchicalModel,
        sampling: Sampling,
        zero_margins: ZeroMargins,
    ) -> Result<Self> {
        let mut table = table.clone();
        let dims = table.dims();
        let n = table.n_cells();
        for g in &model.generators {
            ensure!(
                g.iter().all(|&k| k < dims.len()),
                "the model names a factor the table does not have; its factors are {}",
                table.factor_names().join(", ")
            );
        }
        // A zero margin where some cell may be positive: the MLE does not exist.
        let mut zeroed = 0;
        for g in &model.generators {
            let plan = MarginPlan::new(&dims, g);
            let mut obs = vec![0.0; plan.size()];
            plan.sum(&table.counts, &mut obs);
            let free: Vec<f64> = table
                .start
                .iter()
                .map(|&s| f64::from(u8::from(s > 0.0)))
                .collect();
            let mut base = vec![0.0; plan.size()];
            plan.sum(&free, &mut base);
            let bad: Vec<usize> = (0..plan.size())
                .filter(|&m| obs[m] == 0.0 && base[m] > 0.0)
                .collect();
            if bad.is_empty() {
                continue;
            }
            if zero_margins == ZeroMargins::Error {
                let cell = (0..n).find(|&i| plan.index_of(i) == bad[0]).unwrap_or(0);
                let names: Vec<&str> = g.iter().map(|&k| table.factors[k].name.as_str()).collect();
                let lv = crate::contingency::cell_levels(&dims, cell);
                let at: Vec<String> = g
                    .iter()
                    .map(|&k| {
                        format!(
                            "{}={}",
                            table.factors[k].name, table.factors[k].levels[lv[k]]
                        )
                    })
                    .collect();
                bail!(
                    "the [{}] margin is zero at {}{}, so the maximum-likelihood estimate does not exist (a parameter goes to -infinity); merge or drop that level, or treat zero margins as structural zeros (--zero-margins structural) to fit the extended MLE",
                    names.join(","),
                    at.join(", "),
                    if bad.len() > 1 { format!(" (and {} more margin cells)", bad.len() - 1) } else { String::new() }
                );
            }
            for i in 0..n {
                if table.start[i] > 0.0 && bad.contains(&plan.index_of(i)) {
                    table.start[i] = 0.0;
                    zeroed += 1;
                }
            }
        }
        let active: Vec<usize> = (0..n).filter(|&i| table.start[i] > 0.0).collect();
        ensure!(
            !active.is_empty(),
            "every cell of the table is a structural zero; nothing to fit"
        );
        let (design, blocks) = Design::treatment(&table, model, &active);
        let y = active.iter().map(|&i| table.counts[i]).collect();
        let offset = active.iter().map(|&i| table.start[i].ln()).collect();
        let mut p = Problem {
            y,
            offset,
            penalized: design.names.iter().map(|n| n != "(Intercept)").collect(),
            design,
            blocks,
            active,
            n_cells: n,
            sampling,
            dropped: Vec::new(),
            table: Some(TableInfo {
                table,
                model: model.clone(),
                zeroed_cells: zeroed,
            }),
        };
        p.drop_empty_columns();
        Ok(p)
    }

    /// Counts `y` with design `X` and offsets (`-inf` marks a structural zero; default 0).
    pub fn from_design(
        design: Design,
        y: &[f64],
        offset: Option<&[f64]>,
        sampling: Sampling,
    ) -> Result<Self> {
        let n = design.n_rows;
        ensure!(
            y.len() == n,
            "the response has {} values but the design has {n} rows",
            y.len()
        );
        if let Some(o) = offset {
            ensure!(
                o.len() == n,
                "the offset has {} values but the design has {n} rows",
                o.len()
            );
        }
        for (i, &v) in y.iter().enumerate() {
            ensure!(
                v.is_finite() && v >= 0.0,
                "count {v} in row {} is negative or not finite; counts must be non-negative",
                i + 1
            );
        }
        let off = |i: usize| offset.map_or(0.0, |o| o[i]);
        for (i, &yi) in y.iter().enumerate() {
            let o = off(i);
            ensure!(
                o.is_finite() || o == f64::NEG_INFINITY,
                "offset {o} in row {} is not a number; use -inf only for structural zeros",
                i + 1
            );
            ensure!(
                o.is_finite() || yi == 0.0,
                "row {} is a structural zero (offset -inf) but has count {yi}",
                i + 1
            );
        }
        let active: Vec<usize> = (0..n).filter(|&i| off(i).is_finite()).collect();
        ensure!(
            !active.is_empty(),
            "every row is a structural zero; nothing to fit"
        );
        let d = if active.len() == n {
            design
        } else {
            let mut map = vec![u32::MAX; n];
            for (r, &i) in active.iter().enumerate() {
                map[i] = r as u32;
            }
            let cols = design
                .cols
                .iter()
                .map(|c| {
                    let keep: Vec<usize> = (0..c.rows.len())
                        .filter(|&k| map[c.rows[k] as usize] != u32::MAX)
                        .collect();
                    crate::design::Column {
                        rows: keep.iter().map(|&k| map[c.rows[k] as usize]).collect(),
                        vals: c
                            .vals
                            .as_ref()
                            .map(|v| keep.iter().map(|&k| v[k]).collect()),
                    }
                })
                .collect();
            Design {
                n_rows: active.len(),
                names: design.names,
                cols,
            }
        };
        let m = active.len();
        let penalized = d
            .cols
            .iter()
            .map(|c| {
                !(c.rows.len() == m && c.vals.as_ref().is_none_or(|v| v.iter().all(|&x| x == v[0])))
            })
            .collect();
        let p = d.n_cols();
        let mut prob = Problem {
            y: active.iter().map(|&i| y[i]).collect(),
            offset: active.iter().map(|&i| off(i)).collect(),
            design: d,
            blocks: vec![(0..p).collect()],
            penalized,
            active,
            n_cells: n,
            sampling,
            dropped: Vec::new(),
            table: None,
        };
        prob.drop_empty_columns();
        if sampling == Sampling::Multinomial {
            ensure!(
                prob.penalized.iter().any(|&b| !b),
                "multinomial sampling needs a constant (intercept) column in the design so the fitted total matches the observed one"
            );
        }
        Ok(prob)
    }

    fn drop_empty_columns(&mut self) {
        let keep: Vec<usize> = (0..self.design.n_cols())
            .filter(|&j| !self.design.cols[j].rows.is_empty())
            .collect();
        if keep.len() == self.design.n_cols() {
            return;
        }
        let mut map = vec![usize::MAX; self.design.n_cols()];
        for (new, &old) in keep.iter().enumerate() {
            map[old] = new;
        }
        self.dropped = (0..self.design.n_cols())
            .filter(|&j| map[j] == usize::MAX)
            .map(|j| self.design.names[j].clone())
            .collect();
        self.design.cols = keep
            .iter()
            .map(|&j| std::mem::take(&mut self.design.cols[j]))
            .collect();
        self.design.names = keep.iter().map(|&j| self.design.names[j].clone()).collect();
        self.penalized = keep.iter().map(|&j| self.penalized[j]).collect();
        self.blocks = self
            .blocks
            .iter()
            .map(|b| {
                b.iter()
                    .filter_map(|&j| (map[j] != usize::MAX).then_some(map[j]))
                    .collect::<Vec<_>>()
            })
            .filter(|b| !b.is_empty())
            .collect();
    }

    /// Number of coefficients.
    pub fn n_params(&self) -> usize {
        self.design.n_cols()
    }

    /// Whether some cells are structural zeros.
    pub fn has_structural_zeros(&self) -> bool {
        self.active.len() < self.n_cells
    }

    /// `μ = exp(o + Xθ)` over the active cells.
    pub fn mean(&self, theta: &[f64]) -> Vec<f64> {
        let eta = self.design.matvec(theta);
        eta.iter()
            .zip(&self.offset)
            .map(|(e, o)| (e + o).exp())
            .collect()
    }

    /// Fitted values over all cells (0 at structural zeros), from active-cell values.
    pub fn expand(&self, mu: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.n_cells];
        for (&i, &m) in self.active.iter().zip(mu) {
            out[i] = m;
        }
        out
    }
}
