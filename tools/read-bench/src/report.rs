//! The measurements against issue 12's targets, as an aligned (Markdown) table and as JSON.

use std::collections::BTreeMap;

use num_format::{Locale, ToFormattedString};
use serde::Serialize;

use crate::stats::{max, mean, percentile};

/// Items read per page at most this × the page size.
pub const ITEMS_PER_PAGE_FACTOR: f64 = 2.0;
/// A full walk reads at most this × the users.
pub const WALK_FACTOR: f64 = 1.1;
/// licenses-api's peak RSS under this many MiB.
pub const PEAK_RSS_TARGET_MIB: f64 = 64.0;

#[derive(Debug, Clone, Serialize)]
pub struct PageMeasure {
    /// The answer's HTTP status (a page after a failed one is not asked).
    pub status: u16,
    pub rows: u64,
    pub wall_ms: f64,
    pub items_read: u64,
    pub calls: u64,
    pub answer_bytes: u64,
    pub dynamo_ops: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueryReport {
    pub name: String,
    /// The first page's query string.
    pub query: String,
    pub accept: String,
    pub first_status: u16,
    pub pages: Vec<PageMeasure>,
    /// The search prefix taken from this query's first row, if any.
    #[serde(skip)]
    pub prefix: Option<String>,
    /// Why the query was not measured, if it was not.
    pub skipped: Option<String>,
}

impl QueryReport {
    pub fn skipped(name: &str, why: &str) -> Self {
        QueryReport {
            name: name.into(),
            query: String::new(),
            accept: String::new(),
            first_status: 0,
            pages: Vec::new(),
            prefix: None,
            skipped: Some(why.into()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Walk {
    pub pages: u64,
    pub rows: u64,
    pub items_read: u64,
    pub calls: u64,
    pub wall_secs: f64,
}

/// What one licenses-api binary measured.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// `before` or `after`.
    pub label: String,
    pub binary: String,
    pub queries: Vec<QueryReport>,
    /// `Err`: why it was skipped or stopped.
    pub walk: Result<Walk, String>,
    pub peak_rss_kib: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub users: u64,
    pub users_listed: u64,
    pub setup_secs: f64,
    pub page_size: u32,
    pub pages_asked: u32,
    /// One per binary measured, on the same tenant, one after the other.
    pub sides: Vec<Side>,
}

struct Row {
    measure: String,
    value: String,
    target: String,
    verdict: Option<bool>,
}

fn row(measure: impl Into<String>, value: impl Into<String>, target: &str, verdict: Option<bool>) -> Row {
    Row {
        measure: measure.into(),
        value: value.into(),
        target: target.into(),
        verdict,
    }
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    n.to_formatted_string(&Locale::en)
}

fn column(pages: &[PageMeasure], f: fn(&PageMeasure) -> f64) -> Vec<f64> {
    pages.iter().map(f).collect()
}

impl BenchReport {
    fn rows(&self, side: &Side) -> Vec<Row> {
        let items_target = ITEMS_PER_PAGE_FACTOR * f64::from(self.page_size);
        let mut rows = vec![row(
            "set-up: one tenant synced from the Box simulator into moto (not measured)",
            format!(
                "{} users listed in {:.1} s",
                thousands(self.users_listed),
                self.setup_secs
            ),
            "",
            None,
        )];
        rows.push(row(format!("binary ({})", side.label), side.binary.clone(), "", None));
        for q in &side.queries {
            let title = format!("`{}` ({}, {})", q.query, q.name, q.accept);
            if let Some(why) = &q.skipped {
                rows.push(row(format!("{} (not measured)", q.name), why.clone(), "", None));
                continue;
            }
            if q.pages.is_empty() {
                rows.push(row(title, format!("not supported (HTTP {})", q.first_status), "", None));
                continue;
            }
            let p = &q.pages;
            let items = column(p, |m| m.items_read as f64);
            let calls = column(p, |m| m.calls as f64);
            let wall = column(p, |m| m.wall_ms);
            let bytes = column(p, |m| m.answer_bytes as f64);
            let worst = max(&items).unwrap_or(0.0);
            let failed = p.iter().find(|m| m.status != 200);
            rows.push(row(
                title,
                match failed {
                    None => format!("{} of {} pages measured", p.len(), self.pages_asked),
                    Some(f) => format!(
                        "{} of {} pages measured; page {} answered HTTP {} (counted below)",
                        p.len(),
                        self.pages_asked,
                        p.len(),
                        f.status
                    ),
                },
                "",
                failed.map(|_| false),
            ));
            rows.push(row(
                "  DynamoDB items read per page, mean / max",
                format!(
                    "{} / {}",
                    thousands(mean(&items).unwrap_or(0.0).round() as u64),
                    thousands(worst as u64)
                ),
                &format!("≤ {items_target:.0} (2 × page size)"),
                Some(worst <= items_target),
            ));
            rows.push(row(
                "  DynamoDB calls per page, mean / max",
                format!("{:.1} / {:.0}", mean(&calls).unwrap_or(0.0), max(&calls).unwrap_or(0.0)),
                "",
                None,
            ));
            rows.push(row(
                "  wall time per page, p50 / p95",
                format!(
                    "{:.0} ms / {:.0} ms",
                    percentile(&wall, 50.0).unwrap_or(0.0),
                    percentile(&wall, 95.0).unwrap_or(0.0)
                ),
                "",
                None,
            ));
            rows.push(row(
                "  answer bytes per page, mean",
                thousands(mean(&bytes).unwrap_or(0.0).round() as u64),
                "",
                None,
            ));
        }
        match &side.walk {
            Ok(w) => {
                let ratio = w.items_read as f64 / w.rows.max(1) as f64;
                rows.push(row(
                    format!("full walk by cursor, limit {}: items read ÷ users", self.page_size),
                    format!(
                        "{ratio:.2} ({} items, {} users in {} pages, {} calls, {:.1} s)",
                        thousands(w.items_read),
                        thousands(w.rows),
                        thousands(w.pages),
                        thousands(w.calls),
                        w.wall_secs
                    ),
                    "≤ 1.1 × users",
                    Some(ratio <= WALK_FACTOR),
                ));
            }
            Err(reason) => rows.push(row(
                format!("full walk by cursor, limit {}: items read ÷ users", self.page_size),
                reason.clone(),
                "≤ 1.1 × users",
                None,
            )),
        }
        let mib = side.peak_rss_kib as f64 / 1024.0;
        rows.push(row(
            "licenses-api peak RSS (VmHWM)",
            format!("{mib:.1} MiB"),
            "< 64 MiB",
            Some(mib < PEAK_RSS_TARGET_MIB),
        ));
        rows
    }

    /// One table per side, then the before → after comparison when there are two.
    pub fn tables(&self) -> String {
        let mut out = String::new();
        for side in &self.sides {
            out.push_str(&format!("\n{}:\n\n", side.label.to_uppercase()));
            out.push_str(&self.table(side));
        }
        if let [before, after] = self.sides.as_slice() {
            out.push_str("\nBEFORE → AFTER:\n\n");
            out.push_str(&comparison(before, after, self.users_listed));
        }
        out
    }

    fn table(&self, side: &Side) -> String {
        let header = ["measure".to_string(), "value".into(), "target".into(), "result".into()];
        let cells: Vec<[String; 4]> = self
            .rows(side)
            .into_iter()
            .map(|r| {
                [
                    r.measure,
                    r.value,
                    r.target,
                    match r.verdict {
                        Some(true) => "PASS".into(),
                        Some(false) => "FAIL".into(),
                        None => String::new(),
                    },
                ]
            })
            .collect();
        markdown(header, &cells)
    }
}

/// Per query: items read per page (mean), wall p50 and p95; the walk's items per user; peak RSS.
fn comparison(before: &Side, after: &Side, users: u64) -> String {
    let summary = |q: &QueryReport| -> [String; 3] {
        if q.skipped.is_some() {
            return ["not measured".into(), "—".into(), "—".into()];
        }
        if q.pages.is_empty() {
            return [format!("HTTP {}", q.first_status), "—".into(), "—".into()];
        }
        let items = column(&q.pages, |m| m.items_read as f64);
        let wall = column(&q.pages, |m| m.wall_ms);
        let failed = q.pages.iter().find(|m| m.status != 200).map(|m| m.status);
        let mut items = thousands(mean(&items).unwrap_or(0.0).round() as u64);
        if let Some(status) = failed {
            items.push_str(&format!(" (HTTP {status})"));
        }
        [
            items,
            format!("{:.0} ms", percentile(&wall, 50.0).unwrap_or(0.0)),
            format!("{:.0} ms", percentile(&wall, 95.0).unwrap_or(0.0)),
        ]
    };
    let mut cells = Vec::new();
    for q in &after.queries {
        let b = before.queries.iter().find(|x| x.name == q.name);
        let a = summary(q);
        let b = b.map(summary).unwrap_or_else(|| ["—".into(), "—".into(), "—".into()]);
        cells.push([
            q.name.clone(),
            format!("{} → {}", b[0], a[0]),
            format!("{} → {}", b[1], a[1]),
            format!("{} → {}", b[2], a[2]),
        ]);
    }
    let walk = |w: &Result<Walk, String>| match w {
        Ok(w) => format!("{:.2}", w.items_read as f64 / w.rows.max(1) as f64),
        Err(_) => "not run".into(),
    };
    cells.push([
        format!("full walk: items read ÷ users ({})", thousands(users)),
        format!("{} → {}", walk(&before.walk), walk(&after.walk)),
        String::new(),
        String::new(),
    ]);
    let mib = |s: &Side| format!("{:.1} MiB", s.peak_rss_kib as f64 / 1024.0);
    cells.push([
        "licenses-api peak RSS".into(),
        format!("{} → {}", mib(before), mib(after)),
        String::new(),
        String::new(),
    ]);
    markdown(
        [
            "list (page of 100)".into(),
            "DynamoDB items read per page, mean".into(),
            "wall p50".into(),
            "wall p95".into(),
        ],
        &cells,
    )
}

/// An aligned Markdown table.
fn markdown(header: [String; 4], cells: &[[String; 4]]) -> String {
    let mut table = tabled::builder::Builder::default();
    table.push_record(header);
    for line in cells {
        table.push_record(line.clone());
    }
    format!("{}\n", table.build().with(tabled::settings::Style::markdown()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(status: u16, items_read: u64, wall_ms: f64) -> PageMeasure {
        PageMeasure {
            status,
            rows: if status == 200 { 100 } else { 0 },
            wall_ms,
            items_read,
            calls: 3,
            answer_bytes: 1000,
            dynamo_ops: BTreeMap::new(),
        }
    }

    fn side(label: &str, pages: Vec<PageMeasure>, walk: Result<Walk, String>) -> Side {
        Side {
            label: label.into(),
            binary: format!("/bin/{label}"),
            queries: vec![QueryReport {
                name: "never logged in".into(),
                query: "state=never&limit=100".into(),
                accept: "application/json".into(),
                first_status: pages.first().map_or(400, |p| p.status),
                pages,
                prefix: None,
                skipped: None,
            }],
            walk,
            peak_rss_kib: 30 * 1024,
        }
    }

    #[test]
    fn before_and_after_are_judged_and_compared_query_by_query() {
        let report = BenchReport {
            users: 3000,
            users_listed: 3120,
            setup_secs: 20.0,
            page_size: 100,
            pages_asked: 2,
            sides: vec![
                side(
                    "before",
                    vec![page(200, 3120, 7000.0), page(500, 3120, 5000.0)],
                    Err("skipped".into()),
                ),
                side(
                    "after",
                    vec![page(200, 102, 300.0), page(200, 104, 500.0)],
                    Ok(Walk {
                        pages: 32,
                        rows: 3120,
                        items_read: 3300,
                        calls: 100,
                        wall_secs: 10.0,
                    }),
                ),
            ],
        };
        let out = report.tables();
        assert!(out.contains("BEFORE:") && out.contains("AFTER:"), "{out}");
        // Before: a failed page is counted and fails the row; items per page over 200 fail.
        assert!(out.contains("page 2 answered HTTP 500"), "{out}");
        assert!(out.contains("| 3,120 / 3,120 "), "{out}");
        // The comparison: mean items, p50, walk, RSS.
        assert!(out.contains("3,120 (HTTP 500) → 103"), "{out}");
        assert!(out.contains("not run → 1.06"), "{out}");
        assert!(out.contains("30.0 MiB → 30.0 MiB"), "{out}");
        let after = report.table(&report.sides[1]);
        assert!(!after.contains("FAIL"), "{after}");
        assert_eq!(after.matches("PASS").count(), 3, "{after}");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
