//! `caracal tour`: every capability on embedded defaults, one report.

use crate::report::Report;
use std::path::PathBuf;
use std::time::Instant;

/// Options of `caracal tour`.
#[derive(clap::Args)]
pub struct TourArgs {
    /// Folder for index.html and summary.json.
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    /// Only these sections, comma-separated (default: all of kernels,
    /// models, rank, attribution, loglinear, graph, align, alphapo, compress).
    #[arg(long, value_delimiter = ',')]
    pub sections: Vec<String>,
}

type Section = fn(&mut Report) -> anyhow::Result<()>;

/// Run each capability's tour section in turn and write the report.
pub fn run(a: TourArgs) -> anyhow::Result<()> {
    let mut report = Report::new(&a.out);
    let sections: [(&str, Section); 9] = [
        ("kernels", crate::bench::kernels::tour),
        ("models", crate::cmd::lm::tour),
        ("rank", crate::cmd::rank::tour),
        ("attribution", crate::cmd::attribution::tour),
        ("loglinear", crate::cmd::loglin::tour),
        ("graph", crate::cmd::graph::tour),
        ("align", crate::cmd::rm::tour),
        ("alphapo", crate::cmd::alpha::tour),
        ("compress", crate::cmd::slm::tour),
    ];
    for s in &a.sections {
        if !sections.iter().any(|(n, _)| n == s) {
            let names: Vec<&str> = sections.iter().map(|(n, _)| *n).collect();
            anyhow::bail!(
                "unknown tour section `{s}`; expected one of: {}",
                names.join(", ")
            );
        }
    }
    for (name, f) in sections {
        if !a.sections.is_empty() && !a.sections.iter().any(|s| s == name) {
            continue;
        }
        let t = Instant::now();
        eprintln!("tour: {name} ...");
        f(&mut report).map_err(|e| e.context(format!("tour section `{name}`")))?;
        eprintln!("tour: {name} done in {:.1} s", t.elapsed().as_secs_f64());
    }
    report.write()?;
    println!(
        "wrote {} and {}",
        a.out.join("index.html").display(),
        a.out.join("summary.json").display()
    );
    Ok(())
}
