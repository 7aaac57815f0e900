//! The tour's report: `index.html` with one section per capability (charts
//! drawn with plotters as inline SVG) and `summary.json` with each
//! capability's headline figures, keyed by crate name without the prefix.

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// One capability's part of the report.
pub struct Section {
    pub key: String,
    pub title: String,
    pub html: String,
}

/// Collects sections and summary figures, then writes both files atomically.
pub struct Report {
    pub dir: PathBuf,
    sections: Vec<Section>,
    summary: Map<String, Value>,
}

/// One named series of (x, y) points for a line chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

impl Report {
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Report {
            dir: dir.as_ref().to_path_buf(),
            sections: Vec::new(),
            summary: Map::new(),
        }
    }

    /// Add a capability's section; `summary` holds its headline figures with units.
    pub fn add(&mut self, key: &str, title: &str, html: String, summary: Value) {
        self.summary.insert(key.to_string(), summary);
        self.sections.push(Section {
            key: key.to_string(),
            title: title.to_string(),
            html,
        });
    }

    /// Write `index.html` and `summary.json` under the report folder.
    pub fn write(&self) -> Result<()> {
        let mut html = String::from(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>caracal tour</title>\
             <style>body{font-family:sans-serif;max-width:960px;margin:2em auto;padding:0 1em}\
             table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
             th{background:#f4f4f4}</style></head><body><h1>caracal tour</h1><ul>",
        );
        for s in &self.sections {
            html.push_str(&format!(
                "<li><a href=\"#{}\">{}</a></li>",
                s.key,
                escape(&s.title)
            ));
        }
        html.push_str("</ul>");
        for s in &self.sections {
            html.push_str(&format!(
                "<section id=\"{}\"><h2>{}</h2>{}</section>",
                s.key,
                escape(&s.title),
                s.html
            ));
        }
        html.push_str("</body></html>\n");
        caracal_core::write_atomic(self.dir.join("index.html"), html.as_bytes())
            .context("writing the report")?;
        caracal_core::write_json_atomic(self.dir.join("summary.json"), &self.summary)
            .context("writing the summary")?;
        Ok(())
    }
}

/// Escape text for HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An HTML table from a header row and string cells.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut h = String::from("<table><tr>");
    for c in header {
        h.push_str(&format!("<th>{}</th>", escape(c)));
    }
    h.push_str("</tr>");
    for r in rows {
        h.push_str("<tr>");
        for c in r {
            h.push_str(&format!("<td>{}</td>", escape(c)));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    h
}

/// A line chart as an inline SVG string (log-scaled y when `log_y`).
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let pts = series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in pts {
            if x.is_finite() && y.is_finite() && (!log_y || y > 0.0) {
                x0 = x0.min(x);
                x1 = x1.max(x);
                y0 = y0.min(y);
                y1 = y1.max(y);
            }
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 1.0, 2.0);
        }
        if x1 == x0 {
            x1 = x0 + 1.0;
        }
        if y1 == y0 {
            y1 = y0 * 1.1 + 1e-9;
        }
        let mut b = ChartBuilder::on(&root);
        b.caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60);
        let palette = [&BLUE, &RED, &GREEN, &MAGENTA, &CYAN, &BLACK];
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(x_label)
                    .y_desc(y_label)
                    .draw()
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                for (i, s) in series.iter().enumerate() {
                    let color = palette[i % palette.len()];
                    chart
                        .draw_series(LineSeries::new(s.points.iter().copied(), color))
                        .map_err(|e| anyhow::anyhow!("{e}"))?
                        .label(s.name)
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }};
        }
        if log_y {
            draw!(b
                .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                .map_err(|e| anyhow::anyhow!("{e}"))?);
        } else {
            draw!(b
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| anyhow::anyhow!("{e}"))?);
        }
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(svg)
}

/// A horizontal bar chart as an inline SVG string.
pub fn bar_chart(title: &str, y_label: &str, bars: &[(String, f64)]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 60 + 28 * bars.len() as u32))
            .into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let max = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1e-12) * 1.1;
        let n = bars.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(160)
            .build_cartesian_2d(0.0..max, (0..n).into_segmented())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .x_desc(y_label)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (b.1, SegmentValue::Exact(i + 1)),
                    ],
                    BLUE.mix(0.6).filled(),
                )
            }))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(svg)
}
