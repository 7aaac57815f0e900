//! Every attribution method behind one name, and a runner that fits them
//! all on the same data with bootstrap intervals.

use crate::calibrate::{member_informed_mmm, reconcile};
use crate::data::{normalize, Aggregates, Credit, Journeys, Macro};
use crate::evaluate::{bootstrap_journeys, bootstrap_units, SharesWithIntervals};
use crate::heuristics::{heuristic_credit, Heuristic};
use crate::logistic::fit_logistic;
use crate::markov::markov_attribution;
use crate::mmm::{calibration_targets, fit_mmm, MmmFit};
use crate::shapley::{ordered_shapley, simplified_shapley};
use crate::transformer::{
    credit_of_rows, fit_transformer, ConversionModel, CreditMethod, FitReport, TransformerConfig,
};
use caracal_core::{Error, Result};
use serde::Serialize;

/// An attribution method.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    Heuristic(Heuristic),
    SimplifiedShapley,
    OrderedShapley,
    /// Removal effect of an order-k chain.
    Markov(usize),
    Logistic,
    /// The MMM's channel shares alone (aggregate data only).
    Mmm,
    /// The conversion model; `calibrated` adds `β·L_calib` against an MMM
    /// refitted with the member models' carry-over, and reconciles the
    /// channel totals with it ([`crate::transformer`], module docs).
    Transformer {
        credit: CreditMethod,
        calibrated: bool,
    },
}

impl Method {
    /// Every method, in table order.
    pub fn all() -> Vec<Method> {
        let mut v: Vec<Method> = Heuristic::ALL
            .iter()
            .map(|&h| Method::Heuristic(h))
            .collect();
        v.extend([
            Method::SimplifiedShapley,
            Method::OrderedShapley,
            Method::Markov(1),
            Method::Markov(2),
            Method::Markov(3),
            Method::Logistic,
            Method::Mmm,
        ]);
        for calibrated in [false, true] {
            for credit in [CreditMethod::Attention, CreditMethod::LeaveOneOut] {
                v.push(Method::Transformer { credit, calibrated });
            }
        }
        v
    }

    pub fn name(&self) -> String {
        match self {
            Method::Heuristic(h) => h.name().into(),
            Method::SimplifiedShapley => "shapley".into(),
            Method::OrderedShapley => "ordered-shapley".into(),
            Method::Markov(k) => format!("markov-{k}"),
            Method::Logistic => "logistic".into(),
            Method::Mmm => "mmm".into(),
            Method::Transformer { credit, calibrated } => format!(
                "transformer{}{}",
                if *calibrated { "-calibrated" } else { "" },
                if *credit == CreditMethod::Attention {
                    "-attention"
                } else {
                    ""
                }
            ),
        }
    }

    /// Parse a name from [`Method::name`] (`markov` means order 1).
    pub fn parse(s: &str) -> Result<Method> {
        if s == "markov" {
            return Ok(Method::Markov(1));
        }
        Method::all()
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown method `{s}`; expected one of: {}",
                    Method::all()
                        .iter()
                        .map(|m| m.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    fn needs_aggregates(&self) -> bool {
        matches!(
            self,
            Method::Mmm
                | Method::Transformer {
                    calibrated: true,
                    ..
                }
        )
    }
}

/// The data a method may use.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    pub journeys: &'a Journeys,
    pub aggregates: Option<&'a Aggregates>,
    pub macros: Option<&'a Macro>,
}

/// One method's output.
#[derive(Clone, Debug, Serialize)]
pub struct MethodResult {
    pub method: String,
    pub credit: Credit,
    pub shares: Vec<f64>,
    pub intervals: Option<SharesWithIntervals>,
    /// Held-out conversion AUC / log-loss (models only).
    pub auc: Option<f64>,
    pub log_loss: Option<f64>,
    pub fit: Option<FitReport>,
}

fn result(method: Method, credit: Credit) -> MethodResult {
    MethodResult {
        method: method.name(),
        shares: credit.shares(),
        credit,
        intervals: None,
        auc: None,
        log_loss: None,
        fit: None,
    }
}

/// Credit of a method that reads only the journeys (path methods and the
/// logistic regression).
fn path_credit(method: Method, journeys: &Journeys) -> Result<Credit> {
    let paths = journeys.to_paths();
    Ok(match method {
        Method::Heuristic(h) => heuristic_credit(&paths, h),
        Method::SimplifiedShapley => simplified_shapley(&paths),
        Method::OrderedShapley => ordered_shapley(&paths).1,
        Method::Markov(k) => markov_attribution(&paths, k)?.credit,
        Method::Logistic => fit_logistic(journeys, 1e-3)?.credit(journeys),
        _ => {
            return Err(Error::invalid(format!(
                "{} is not a path method",
                method.name()
            )))
        }
    })
}

/// Fit the MMM on the aggregates and return the calibration targets,
/// failing with a clear message when inputs are missing.
pub fn mmm_targets(inputs: &Inputs) -> Result<(MmmFit, Vec<Option<f64>>, Vec<String>)> {
    let (Some(a), Some(m)) = (inputs.aggregates, inputs.macros) else {
        return Err(Error::invalid(
            "this method needs channel aggregates and macro factors (--aggregates and --macro)",
        ));
    };
    let mmm = fit_mmm(a, m, None)?;
    let (t, extra) = calibration_targets(&mmm, &inputs.journeys.channels);
    Ok((mmm, t, extra))
}

/// The transformer models of one set of journeys, trained on first use
/// and shared by both credit rules: the uncalibrated model, and the
/// calibrated one with the channel targets it was calibrated to.
#[derive(Default)]
struct TransformerFits {
    plain: Option<(ConversionModel, FitReport)>,
    calibrated: Option<(ConversionModel, FitReport, Vec<Option<f64>>)>,
}

impl TransformerFits {
    /// Per-journey credit rows, channel credit and the fit report of the
    /// model read. `base`: the aggregate-only MMM's targets, used when
    /// `tcfg.kernel_models` is 0.
    fn run(
        &mut self,
        journeys: &Journeys,
        inputs: &Inputs,
        tcfg: &TransformerConfig,
        credit: CreditMethod,
        calibrated: bool,
        base: Option<&[Option<f64>]>,
    ) -> Result<(Vec<Vec<f64>>, Credit, FitReport)> {
        if self.plain.is_none() && (!calibrated || tcfg.kernel_models > 0) {
            let mut cfg = tcfg.clone();
            cfg.beta = 0.0;
            self.plain = Some(fit_transformer(journeys, &cfg, None)?);
        }
        if calibrated && self.calibrated.is_none() {
            let t = if tcfg.kernel_models == 0 {
                base.expect("targets fitted by the caller").to_vec()
            } else {
                let (a, m) = (
                    inputs.aggregates.expect("checked by mmm_targets"),
                    inputs.macros.expect("checked by mmm_targets"),
                );
                // Member-level carry-over kernels, averaged over
                // `kernel_models` uncalibrated fits (the first is the
                // `transformer` row's model).
                let mut extra = Vec::new();
                for k in 1..tcfg.kernel_models {
                    let mut cfg = tcfg.clone();
                    cfg.beta = 0.0;
                    cfg.seed = tcfg.seed.wrapping_add(k as u64);
                    extra.push(fit_transformer(journeys, &cfg, None)?.0);
                }
                let first = &self.plain.as_ref().expect("trained above").0;
                let all: Vec<&ConversionModel> =
                    std::iter::once(first).chain(extra.iter()).collect();
                let (mmm, _) = member_informed_mmm(&all, journeys, a, m)?;
                calibration_targets(&mmm, &journeys.channels).0
            };
            let mut cfg = tcfg.clone();
            if cfg.beta <= 0.0 {
                cfg.beta = 1.0;
            }
            let (model, rep) = fit_transformer(journeys, &cfg, Some(&t))?;
            self.calibrated = Some((model, rep, t));
        }
        if calibrated {
            let (model, rep, t) = self.calibrated.as_ref().expect("trained above");
            let (mut per, _) = model.credit(journeys, credit)?;
            reconcile(&mut per, t)?;
            let c = credit_of_rows(journeys, &per);
            Ok((per, c, rep.clone()))
        } else {
            let (model, rep) = self.plain.as_ref().expect("trained above");
            let (per, c) = model.credit(journeys, credit)?;
            Ok((per, c, rep.clone()))
        }
    }
}

/// Fit several methods on the same inputs, with `bootstrap` percentile
/// replicates (0: none). The transformer is trained once per calibration
/// setting and read by both credit methods.
pub fn fit_methods(
    methods: &[Method],
    inputs: &Inputs,
    tcfg: &TransformerConfig,
    bootstrap: usize,
    seed: u64,
) -> Result<Vec<MethodResult>> {
    let journeys = inputs.journeys;
    let targets = if methods.iter().any(|m| m.needs_aggregates()) {
        Some(mmm_targets(inputs)?)
    } else {
        None
    };
    let mut out = Vec::new();
    let mut fits = TransformerFits::default();
    for &method in methods {
        let r = match method {
            Method::Mmm => {
                let (_, t, _) = targets.as_ref().expect("targets fitted above");
                let shares: Vec<f64> = t.iter().map(|x| x.unwrap_or(0.0)).collect();
                let paths = journeys.to_paths();
                result(
                    method,
                    Credit::from_shares(
                        &journeys.channels,
                        &shares,
                        paths.total_conversions(),
                        paths.total_value(),
                    ),
                )
            }
            Method::Transformer { credit, calibrated } => {
                let base = targets.as_ref().map(|t| t.1.as_slice());
                let (per, c, rep) = fits.run(journeys, inputs, tcfg, credit, calibrated, base)?;
                let mut r = result(method, c);
                if bootstrap > 0 {
                    r.intervals = Some(if tcfg.bootstrap_refit {
                        // Every replicate retrains the whole pipeline.
                        bootstrap_journeys(journeys, bootstrap, seed, |j| {
                            let (_, c, _) = TransformerFits::default()
                                .run(j, inputs, tcfg, credit, calibrated, base)?;
                            Ok(normalize(&c.conversions))
                        })?
                    } else {
                        bootstrap_units(&per, bootstrap, seed)
                    });
                }
                r.auc = Some(rep.valid_auc);
                r.log_loss = Some(rep.valid_log_loss);
                r.fit = Some(rep.clone());
                r
            }
            _ => {
                let mut r = result(method, path_credit(method, journeys)?);
                if method == Method::Logistic {
                    let (auc, ll) = logistic_holdout(journeys, tcfg)?;
                    r.auc = Some(auc);
                    r.log_loss = Some(ll);
                }
                if bootstrap > 0 {
                    r.intervals = Some(bootstrap_journeys(journeys, bootstrap, seed, |j| {
                        Ok(normalize(&path_credit(method, j)?.conversions))
                    })?);
                }
                r
            }
        };
        out.push(r);
    }
    Ok(out)
}

/// Held-out AUC and log-loss of the logistic regression on the same split
/// the transformer uses.
fn logistic_holdout(journeys: &Journeys, tcfg: &TransformerConfig) -> Result<(f64, f64)> {
    let mut rng = caracal_core::Rng::new(tcfg.seed ^ 0x5EED);
    let mut idx: Vec<usize> = (0..journeys.journeys.len()).collect();
    rng.shuffle(&mut idx);
    let nv = ((idx.len() as f64 * tcfg.valid_fraction) as usize).min(idx.len().saturating_sub(1));
    if nv == 0 {
        return Ok((f64::NAN, f64::NAN));
    }
    let model = fit_logistic(&journeys.subset(&idx[nv..]), 1e-3)?;
    let labels: Vec<bool> = idx[..nv]
        .iter()
        .map(|&i| journeys.journeys[i].converted)
        .collect();
    let p: Vec<f64> = idx[..nv]
        .iter()
        .map(|&i| model.predict(&journeys.journeys[i]))
        .collect();
    Ok((
        caracal_core::metrics::auc(&labels, &p).unwrap_or(f64::NAN),
        crate::transformer::log_loss(&labels, &p),
    ))
}
