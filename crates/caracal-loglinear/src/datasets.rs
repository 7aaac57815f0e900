//! Small tables embedded for examples, tests and the command line's default run.

use crate::contingency::{ContingencyTable, Factor};

fn factor(name: &str, levels: &[&str]) -> Factor {
    Factor {
        name: name.to_string(),
        levels: levels.iter().map(|s| s.to_string()).collect(),
    }
}

/// R's `UCBAdmissions` in long format (`Admit,Gender,Dept,Freq`, Admit varying
/// fastest, as `as.data.frame(UCBAdmissions)`).
pub const UCB_ADMISSIONS_CSV: &str = "Admit,Gender,Dept,Freq
Admitted,Male,A,512
Rejected,Male,A,313
Admitted,Female,A,89
Rejected,Female,A,19
Admitted,Male,B,353
Rejected,Male,B,207
Admitted,Female,B,17
Rejected,Female,B,8
Admitted,Male,C,120
Rejected,Male,C,205
Admitted,Female,C,202
Rejected,Female,C,391
Admitted,Male,D,138
Rejected,Male,D,279
Admitted,Female,D,131
Rejected,Female,D,244
Admitted,Male,E,53
Rejected,Male,E,138
Admitted,Female,E,94
Rejected,Female,E,299
Admitted,Male,F,22
Rejected,Male,F,351
Admitted,Female,F,24
Rejected,Female,F,317
";

/// UC Berkeley admissions 1973 (Admit × Gender × Dept), R's `UCBAdmissions`.
pub fn ucb_admissions() -> ContingencyTable {
    let t = caracal_core::table::Table::from_reader(UCB_ADMISSIONS_CSV.as_bytes(), "UCBAdmissions")
        .expect("embedded CSV parses");
    ContingencyTable::from_long(&t, "Freq", None, None).expect("embedded table is valid")
}

/// R's `HairEyeColor` (Hair × Eye × Sex).
pub fn hair_eye_color() -> ContingencyTable {
    let male = [
        [32, 11, 10, 3],
        [53, 50, 25, 15],
        [10, 10, 7, 7],
        [3, 30, 5, 8],
    ];
    let female = [
        [36, 9, 5, 2],
        [66, 34, 29, 14],
        [16, 7, 7, 7],
        [4, 64, 5, 8],
    ];
    let mut counts = Vec::with_capacity(32);
    for h in 0..4 {
        for e in 0..4 {
            counts.push(male[h][e] as f64);
            counts.push(female[h][e] as f64);
        }
    }
    ContingencyTable::new(
        vec![
            factor("Hair", &["Black", "Brown", "Red", "Blond"]),
            factor("Eye", &["Brown", "Blue", "Hazel", "Green"]),
            factor("Sex", &["Male", "Female"]),
        ],
        counts,
    )
    .expect("embedded table is valid")
}

/// A generated table of `d` factors with `levels` levels each: Poisson counts
/// around a log-linear model with all two-way terms (seeded, reproducible).
///
/// Recipe (also in `bench/loglin_anchor.py`): `Rng::new(seed)`; main effects
/// `a_k(l) = 0.3·N(0,1)`, two-way effects `b_kl(i,j) = 0.2·N(0,1)` drawn in
/// that order (k < l, row-major); `log μ = log(mean) + Σ a + Σ b`; counts are
/// Poisson draws in row-major cell order.
pub fn generated(d: usize, levels: usize, mean: f64, seed: u64) -> ContingencyTable {
    let mut rng = caracal_core::Rng::new(seed);
    let main: Vec<Vec<f64>> = (0..d)
        .map(|_| (0..levels).map(|_| 0.3 * rng.normal()).collect())
        .collect();
    let mut pair = Vec::new();
    for _k in 0..d {
        for _l in (_k + 1)..d {
            pair.push(
                (0..levels * levels)
                    .map(|_| 0.2 * rng.normal())
                    .collect::<Vec<f64>>(),
            );
        }
    }
    let n = levels.pow(d as u32);
    let dims = vec![levels; d];
    let mut counts = Vec::with_capacity(n);
    for i in 0..n {
        let l = crate::contingency::cell_levels(&dims, i);
        let mut eta = mean.ln();
        let mut q = 0;
        for k in 0..d {
            eta += main[k][l[k]];
            for m in (k + 1)..d {
                eta += pair[q][l[k] * levels + l[m]];
                q += 1;
            }
        }
        counts.push(rng.poisson(eta.exp()) as f64);
    }
    let names = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L"];
    let factors = (0..d)
        .map(|k| Factor {
            name: names
                .get(k)
                .map_or_else(|| format!("X{k}"), |s| s.to_string()),
            levels: (0..levels)
                .map(|l| format!("{}{}", names.get(k).unwrap_or(&"x").to_lowercase(), l + 1))
                .collect(),
        })
        .collect();
    ContingencyTable::new(factors, counts).expect("generated table is valid")
}
