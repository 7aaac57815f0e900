//! Readers: journeys + conversions, channel aggregates and macro factors
//! (CSV, or Parquet for files named `.parquet`/`.pq`, same columns), and
//! ChannelAttribution paths (`;` or `,` separated text).
//!
//! Bad input is handled, never panicked on:
//! - unsorted timestamps: each member's touches are sorted by time and the
//!   number of members that needed it is reported;
//! - conversions with no touches: kept as empty journeys (they count for the
//!   conversion model's baseline) and reported; path methods cannot credit
//!   them ([`Paths::unattributed_conversions`]);
//! - touches after the conversion are dropped, and only the first
//!   conversion of a member counts (both reported);
//! - paths with an empty step (`a>>b`, a trailing `>`) are an error naming
//!   the row.

use crate::data::{Aggregates, Journey, Journeys, Macro, PathRow, Paths, Touch};
use caracal_core::table::Table;
use caracal_core::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// What the journey reader fixed or dropped.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ReadReport {
    pub members: usize,
    pub touches: usize,
    pub conversions: usize,
    /// Members whose touches were out of time order in the file (sorted).
    pub members_with_unsorted_touches: usize,
    /// Conversions of members with no touch before them.
    pub conversions_without_touches: usize,
    /// Conversions whose member never appears in the journeys file.
    pub conversions_of_unknown_members: usize,
    /// Touches after the member's conversion (dropped).
    pub touches_after_conversion: usize,
    /// Second and later conversions of a member (ignored).
    pub repeat_conversions: usize,
}

impl ReadReport {
    /// One line per thing that was fixed, for the user.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.members_with_unsorted_touches > 0 {
            w.push(format!(
                "{} members had touches out of time order; they were sorted by timestamp",
                self.members_with_unsorted_touches
            ));
        }
        if self.conversions_without_touches > 0 {
            w.push(format!(
                "{} conversions have no touch before them; no channel can be credited for them",
                self.conversions_without_touches
            ));
        }
        if self.touches_after_conversion > 0 {
            w.push(format!(
                "{} touches come after their member's conversion and were dropped",
                self.touches_after_conversion
            ));
        }
        if self.repeat_conversions > 0 {
            w.push(format!(
                "{} repeat conversions were ignored (only a member's first conversion counts)",
                self.repeat_conversions
            ));
        }
        w
    }
}

/// Parse a time: a number of days, or `YYYY-MM-DD` optionally followed by
/// `THH:MM[:SS]` / ` HH:MM[:SS]` (UTC), as days since 1970-01-01.
pub fn parse_time(s: &str) -> Option<f64> {
    if let Ok(x) = s.parse::<f64>() {
        return x.is_finite().then_some(x);
    }
    let (date, time) = match s.find(['T', ' ']) {
        Some(i) => (&s[..i], Some(s[i + 1..].trim_end_matches('Z'))),
        None => (s, None),
    };
    let mut it = date.split('-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if it.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut days = days_from_civil(y, m, d) as f64;
    if let Some(t) = time {
        let parts: Vec<f64> = t
            .split(':')
            .map(|p| p.parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .ok()?;
        if parts.is_empty() || parts.len() > 3 {
            return None;
        }
        let secs = parts[0] * 3600.0
            + parts.get(1).copied().unwrap_or(0.0) * 60.0
            + parts.get(2).copied().unwrap_or(0.0);
        days += secs / 86_400.0;
    }
    Some(days)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn times(t: &Table, col: &str) -> Result<Vec<f64>> {
    t.text(col)?
        .iter()
        .enumerate()
        .map(|(r, v)| {
            parse_time(v).ok_or_else(|| {
                Error::file(
                    &t.source,
                    format!(
                        "row {}, column `{col}`: `{v}` is neither a number of days nor a date YYYY-MM-DD[THH:MM:SS]",
                        r + 2
                    ),
                )
            })
        })
        .collect()
}

/// Options of [`journeys_from_tables`].
#[derive(Clone, Debug)]
pub struct JourneyOptions {
    /// A non-converting member is observed until `min(first touch +
    /// window_days, last time in the data)`.
    pub window_days: f64,
}

impl Default for JourneyOptions {
    fn default() -> Self {
        JourneyOptions { window_days: 30.0 }
    }
}

/// Read journeys (`member, ts, channel[, campaign][, numeric features...]`)
/// and conversions (`member, ts[, value]`) from CSV or Parquet files
/// (by extension: `.parquet`/`.pq`, else CSV).
pub fn read_journeys(
    journeys: impl AsRef<Path>,
    conversions: impl AsRef<Path>,
    opts: &JourneyOptions,
) -> Result<(Journeys, ReadReport)> {
    let tj = Table::read(journeys)?;
    let tc = Table::read(conversions)?;
    journeys_from_tables(&tj, &tc, opts)
}

/// [`read_journeys`] on tables already in memory.
pub fn journeys_from_tables(
    tj: &Table,
    tc: &Table,
    opts: &JourneyOptions,
) -> Result<(Journeys, ReadReport)> {
    let members = tj.text("member")?;
    let ts = times(tj, "ts")?;
    let chans = tj.text("channel")?;
    let camps: Option<&[String]> = tj.text("campaign").ok();
    let feature_names: Vec<String> = tj
        .names
        .iter()
        .filter(|n| !["member", "ts", "channel", "campaign"].contains(&n.as_str()))
        .cloned()
        .collect();
    let feats: Vec<Vec<f64>> = feature_names
        .iter()
        .map(|n| tj.f64s(n))
        .collect::<Result<_>>()?;
    for (r, c) in chans.iter().enumerate() {
        if c.is_empty() {
            return Err(Error::file(
                &tj.source,
                format!(
                    "row {}: column `channel` is empty; every touch needs a channel",
                    r + 2
                ),
            ));
        }
    }
    let cmembers = tc.text("member")?;
    let cts = times(tc, "ts")?;
    let cvalue = if tc.names.iter().any(|n| n == "value") {
        tc.f64s("value")?
    } else {
        vec![1.0; tc.n_rows()]
    };

    let mut channels: Vec<String> = chans.to_vec();
    channels.sort();
    channels.dedup();
    let mut campaigns: Vec<String> = match camps {
        Some(c) => c.to_vec(),
        None => vec!["(none)".into()],
    };
    campaigns.sort();
    campaigns.dedup();
    let t_max = ts.iter().chain(&cts).copied().fold(f64::MIN, f64::max);

    let mut rep = ReadReport {
        touches: ts.len(),
        ..Default::default()
    };
    // Touch rows per member in file order.
    let mut by_member: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (r, m) in members.iter().enumerate() {
        by_member.entry(m.as_str()).or_default().push(r);
    }
    let mut conv: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (r, m) in cmembers.iter().enumerate() {
        match conv.get(m.as_str()) {
            Some(&(t, _)) if t <= cts[r] => rep.repeat_conversions += 1,
            Some(_) => {
                rep.repeat_conversions += 1;
                conv.insert(m, (cts[r], cvalue[r]));
            }
            None => {
                conv.insert(m, (cts[r], cvalue[r]));
            }
        }
    }
    let mut out = Vec::new();
    for (m, rows) in &by_member {
        if rows.windows(2).any(|w| ts[w[1]] < ts[w[0]]) {
            rep.members_with_unsorted_touches += 1;
        }
        let mut rows = rows.clone();
        rows.sort_by(|&a, &b| ts[a].total_cmp(&ts[b]));
        let c = conv.get(m).copied();
        let mut touches = Vec::new();
        for &r in &rows {
            if let Some((tc, _)) = c {
                if ts[r] > tc {
                    rep.touches_after_conversion += 1;
                    continue;
                }
            }
            touches.push(Touch {
                time: ts[r],
                channel: channels.binary_search(&chans[r]).unwrap_or(0),
                campaign: camps
                    .map(|cs| campaigns.binary_search(&cs[r]).unwrap_or(0))
                    .unwrap_or(0),
            });
        }
        let features = feats.iter().map(|f| f[rows[0]]).collect();
        let (converted, value, end) = match c {
            Some((t, v)) => (true, v, t),
            None => (false, 0.0, (ts[rows[0]] + opts.window_days).min(t_max)),
        };
        if converted && touches.is_empty() {
            rep.conversions_without_touches += 1;
        }
        out.push(Journey {
            member: m.to_string(),
            touches,
            converted,
            value,
            end,
            features,
        });
    }
    for (m, &(t, v)) in &conv {
        if !by_member.contains_key(m) {
            rep.conversions_of_unknown_members += 1;
            rep.conversions_without_touches += 1;
            out.push(Journey {
                member: m.to_string(),
                touches: Vec::new(),
                converted: true,
                value: v,
                end: t,
                features: vec![0.0; feature_names.len()],
            });
        }
    }
    rep.members = out.len();
    rep.conversions = out.iter().filter(|j| j.converted).count();
    Ok((
        Journeys {
            channels,
            campaigns,
            feature_names,
            journeys: out,
        },
        rep,
    ))
}

/// Read aggregated paths in ChannelAttribution's format:
/// `path;total_conversions;total_conversion_value;total_null` with steps
/// separated by `>` (the separator may also be `,`, as in the `mta`
/// package's copy). `total_conversion_value` and `total_null` may be absent
/// (0).
pub fn read_paths(path: impl AsRef<Path>) -> Result<Paths> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot open: {e}")))?;
    paths_from_reader(&bytes[..], path)
}

/// [`read_paths`] on bytes in memory; `source` names them in errors.
pub fn paths_from_reader(bytes: &[u8], source: impl AsRef<Path>) -> Result<Paths> {
    let source = source.as_ref();
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let delim = if first.contains(&b';') { b';' } else { b',' };
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delim)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let names: Vec<String> = rdr
        .headers()
        .map_err(|e| Error::file(source, format!("cannot read the header row: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    let col = |n: &str| names.iter().position(|x| x == n);
    let need = |n: &str| {
        col(n).ok_or_else(|| {
            Error::file(
                source,
                format!(
                    "column `{n}` is missing; expected path;total_conversions;total_conversion_value;total_null, found: {}",
                    names.join(", ")
                ),
            )
        })
    };
    let (cp, cc) = (need("path")?, need("total_conversions")?);
    let (cv, cn) = (col("total_conversion_value"), col("total_null"));
    let mut channels: Vec<String> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let row = i + 2;
        let rec = rec.map_err(|e| Error::file(source, format!("row {row}: {e}")))?;
        let num = |c: Option<usize>, n: &str| -> Result<f64> {
            let Some(c) = c else { return Ok(0.0) };
            let v = rec.get(c).unwrap_or("");
            match v.parse::<f64>() {
                Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
                _ => Err(Error::file(
                    source,
                    format!("row {row}, column `{n}`: `{v}` is not a non-negative number"),
                )),
            }
        };
        let p = rec.get(cp).unwrap_or("");
        let mut steps = Vec::new();
        for (k, s) in p.split('>').enumerate() {
            let s = s.trim();
            if s.is_empty() {
                return Err(Error::file(
                    source,
                    format!(
                        "row {row}: path `{p}` has an empty step (step {}); remove the extra `>` or name the channel",
                        k + 1
                    ),
                ));
            }
            let id = *index.entry(s.to_string()).or_insert_with(|| {
                channels.push(s.to_string());
                channels.len() - 1
            });
            steps.push(id);
        }
        rows.push(PathRow {
            steps,
            ages: None,
            conversions: num(Some(cc), "total_conversions")?,
            value: num(cv, "total_conversion_value")?,
            nulls: num(cn, "total_null")?,
        });
    }
    if rows.is_empty() {
        return Err(Error::file(source, "has no paths"));
    }
    Ok(Paths {
        channels,
        rows,
        unattributed_conversions: 0.0,
    })
}

/// Read daily channel aggregates: `day, channel, spend` (`day` a number or
/// a date; missing days are 0).
pub fn read_aggregates(path: impl AsRef<Path>) -> Result<Aggregates> {
    aggregates_from_table(&Table::read(path)?)
}

/// [`read_aggregates`] on a table in memory.
pub fn aggregates_from_table(t: &Table) -> Result<Aggregates> {
    let days = times(t, "day")?;
    let chans = t.text("channel")?;
    let spend = t.f64s("spend")?;
    if days.is_empty() {
        return Err(Error::file(&t.source, "has no rows"));
    }
    if let Some(r) = spend.iter().position(|s| *s < 0.0) {
        return Err(Error::file(
            &t.source,
            format!("row {}, column `spend`: spend must not be negative", r + 2),
        ));
    }
    let mut channels: Vec<String> = chans.to_vec();
    channels.sort();
    channels.dedup();
    let d0 = days.iter().map(|d| d.floor() as i64).min().unwrap_or(0);
    let d1 = days.iter().map(|d| d.floor() as i64).max().unwrap_or(0);
    let n = (d1 - d0 + 1) as usize;
    let mut s = vec![vec![0.0; n]; channels.len()];
    for r in 0..days.len() {
        let c = channels.binary_search(&chans[r]).unwrap_or(0);
        s[c][(days[r].floor() as i64 - d0) as usize] += spend[r];
    }
    Ok(Aggregates {
        channels,
        day0: d0,
        spend: s,
    })
}

/// Read daily macro factors: `day` plus numeric covariate columns; a column
/// named `conversions` is the daily KPI for the MMM rather than a covariate.
pub fn read_macro(path: impl AsRef<Path>) -> Result<Macro> {
    macro_from_table(&Table::read(path)?)
}

/// [`read_macro`] on a table in memory.
pub fn macro_from_table(t: &Table) -> Result<Macro> {
    let days = times(t, "day")?;
    if days.is_empty() {
        return Err(Error::file(&t.source, "has no rows"));
    }
    let d0 = days.iter().map(|d| d.floor() as i64).min().unwrap_or(0);
    let d1 = days.iter().map(|d| d.floor() as i64).max().unwrap_or(0);
    let n = (d1 - d0 + 1) as usize;
    let mut names = Vec::new();
    let mut values = Vec::new();
    let mut conversions = None;
    for name in t.names.iter().filter(|n| n.as_str() != "day") {
        let col = t.f64s(name)?;
        let mut v = vec![f64::NAN; n];
        for (r, d) in days.iter().enumerate() {
            v[(d.floor() as i64 - d0) as usize] = col[r];
        }
        // Fill missing days forward (then backward) so the MMM sees no gaps.
        let first = v.iter().copied().find(|x| x.is_finite()).unwrap_or(0.0);
        let mut last = first;
        for x in v.iter_mut() {
            if x.is_finite() {
                last = *x;
            } else {
                *x = last;
            }
        }
        if name == "conversions" {
            conversions = Some(v);
        } else {
            names.push(name.clone());
            values.push(v);
        }
    }
    Ok(Macro {
        day0: d0,
        names,
        values,
        conversions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tab(s: &str, name: &str) -> Table {
        Table::from_reader(s.as_bytes(), name).unwrap()
    }

    #[test]
    fn dates_parse_to_days() {
        assert_eq!(parse_time("1970-01-02"), Some(1.0));
        assert_eq!(parse_time("2000-03-01"), Some(11_017.0));
        assert_eq!(parse_time("1970-01-01T12:00"), Some(0.5));
        assert_eq!(parse_time("3.5"), Some(3.5));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn unsorted_touches_are_sorted_and_reported() {
        let j = tab(
            "member,ts,channel,campaign,age\na,5,email,c1,30\na,1,search,c2,30\na,9,social,c1,30\nb,2,email,c1,40\n",
            "j.csv",
        );
        let c = tab("member,ts,value\na,6,10\nz,3,5\n", "c.csv");
        let (js, rep) = journeys_from_tables(&j, &c, &JourneyOptions::default()).unwrap();
        assert_eq!(rep.members_with_unsorted_touches, 1);
        assert_eq!(rep.touches_after_conversion, 1);
        assert_eq!(rep.conversions_without_touches, 1);
        let a = &js.journeys[0];
        let names: Vec<&str> = a
            .touches
            .iter()
            .map(|t| js.channels[t.channel].as_str())
            .collect();
        assert_eq!(names, ["search", "email"]);
        assert!(a.converted && a.value == 10.0 && a.features == [30.0]);
        let p = js.to_paths();
        assert_eq!(p.unattributed_conversions, 1.0);
        assert_eq!(rep.warnings().len(), 3);
    }

    #[test]
    fn paths_with_empty_steps_are_rejected_with_the_row() {
        let ok = paths_from_reader(
            b"path;total_conversions;total_conversion_value;total_null\na > b;2;10;3\nb;0;0;5\n",
            "p.csv",
        )
        .unwrap();
        assert_eq!(ok.channels, ["a", "b"]);
        assert_eq!(ok.rows[0].steps, [0, 1]);
        let e = paths_from_reader(
            b"path;total_conversions;total_conversion_value;total_null\na>b;1;1;1\na>>b;1;1;1\n",
            "p.csv",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("row 3") && e.contains("empty step"), "{e}");
        let e = paths_from_reader(b"path;total_conversions\n;1\n", "p.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty step"), "{e}");
        let e = paths_from_reader(b"route;conv\na;1\n", "p.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("column `path` is missing"), "{e}");
    }

    #[test]
    fn aggregates_and_macro_read() {
        let a = aggregates_from_table(&tab(
            "day,channel,spend\n0,tv,5\n2,tv,1\n1,search,3\n",
            "a.csv",
        ))
        .unwrap();
        assert_eq!(a.channels, ["search", "tv"]);
        assert_eq!(a.spend[1], [5.0, 0.0, 1.0]);
        let m = macro_from_table(&tab("day,conversions,cpi\n0,3,1.5\n2,4,1.7\n", "m.csv")).unwrap();
        assert_eq!(m.names, ["cpi"]);
        assert_eq!(m.values[0], [1.5, 1.5, 1.7]);
        assert_eq!(m.conversions.unwrap(), [3.0, 3.0, 4.0]);
    }
}
