//! The report as CSV (for spreadsheets) and as a text table (the CLI's default output).
//!
//! The JSON answer is the serde form of [`Report`]; these two are views of the same figures and
//! keep its column names, so a column means the same thing everywhere.

use super::{AgentRow, Report, Row};
use chrono::{DateTime, FixedOffset, SecondsFormat};

const ROW_COLUMNS: [&str; 23] = [
    "interval_start",
    "queue",
    "dialed",
    "country",
    "offered",
    "answered",
    "abandoned",
    "abandoned_within_5s",
    "timed_out",
    "abandon_rate",
    "asa_ms",
    "avg_wait_ms",
    "max_wait_ms",
    "avg_talk_ms",
    "avg_handle_ms",
    "service_level",
    "service_level_target_ms",
    "answered_within_target",
    "callbacks",
    "callbacks_made",
    "survey_count",
    "survey_avg",
    "survey_bad",
];

const AGENT_COLUMNS: [&str; 9] = [
    "interval_start",
    "agent_id",
    "handled",
    "talk_ms",
    "wrap_up_ms",
    "handle_ms",
    "logged_in_ms",
    "away_ms",
    "occupancy",
];

fn ts(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Queue names and dialed numbers come from configuration and callers; a spreadsheet must not
/// run them as formulas. E.164 numbers ("+5511…") and negative numbers stay as they are.
fn text_cell(s: &str) -> String {
    let mut chars = s.chars();
    let risky = match chars.next() {
        Some('=' | '@' | '\t' | '\r') => true,
        Some('+' | '-') => !chars.next().is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    };
    if risky {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

fn row_cells(r: &Row) -> Vec<String> {
    vec![
        ts(&r.interval_start),
        r.queue.as_deref().map(text_cell).unwrap_or_default(),
        r.dialed.as_deref().map(text_cell).unwrap_or_default(),
        r.country.as_deref().map(text_cell).unwrap_or_default(),
        r.offered.to_string(),
        r.answered.to_string(),
        r.abandoned.to_string(),
        r.abandoned_within_5s.to_string(),
        r.timed_out.to_string(),
        opt(r.abandon_rate),
        opt(r.asa_ms),
        opt(r.avg_wait_ms),
        opt(r.max_wait_ms),
        opt(r.avg_talk_ms),
        opt(r.avg_handle_ms),
        opt(r.service_level),
        opt(r.service_level_target_ms),
        r.answered_within_target.to_string(),
        r.callbacks.to_string(),
        r.callbacks_made.to_string(),
        r.survey_count.to_string(),
        opt(r.survey_avg),
        r.survey_bad.to_string(),
    ]
}

fn agent_cells(a: &AgentRow) -> Vec<String> {
    vec![
        ts(&a.interval_start),
        text_cell(&a.agent_id),
        a.handled.to_string(),
        a.talk_ms.to_string(),
        a.wrap_up_ms.to_string(),
        a.handle_ms.to_string(),
        a.logged_in_ms.to_string(),
        a.away_ms.to_string(),
        opt(a.occupancy),
    ]
}

fn csv_of<'a>(header: &[&str], rows: impl Iterator<Item = Vec<String>> + 'a) -> String {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    // Writing into a Vec cannot fail; a failure would only shorten the output.
    let _ = w.write_record(header);
    for cells in rows {
        let _ = w.write_record(&cells);
    }
    w.into_inner()
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default()
}

/// The interval rows as CSV (RFC 4180, CRLF), header first. An empty `queue` cell is the
/// all-queues row; an empty figure is undefined (nothing to divide by).
pub fn to_csv(r: &Report) -> String {
    csv_of(&ROW_COLUMNS, r.rows.iter().map(row_cells))
}

/// The per-agent rows as CSV, header first.
pub fn to_agents_csv(r: &Report) -> String {
    csv_of(&AGENT_COLUMNS, r.agents.iter().map(agent_cells))
}

/// "m:ss", or "h:mm:ss" from an hour up; "-" when undefined.
fn dur(ms: Option<u64>) -> String {
    let Some(ms) = ms else {
        return "-".into();
    };
    let s = (ms + 500) / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.1}%", v * 100.0))
}

fn when(t: &DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// Left-aligns the first `text_cols` columns and right-aligns the figures.
fn render(out: &mut String, header: &[&str], rows: &[Vec<String>], text_cols: usize) {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&width).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            if i < text_cols {
                line.push_str(&format!("{cell:<w$}"));
            } else {
                line.push_str(&format!("{cell:>w$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

fn table_row(first: String, r: &Row) -> Vec<String> {
    let survey = match r.survey_avg {
        Some(avg) => format!("{avg:.2} ({})", r.survey_count),
        None => "-".into(),
    };
    vec![
        first,
        r.queue.clone().unwrap_or_else(|| "(all)".into()),
        r.offered.to_string(),
        r.answered.to_string(),
        format!("{} ({})", r.abandoned, r.abandoned_within_5s),
        r.timed_out.to_string(),
        pct(r.abandon_rate),
        dur(r.asa_ms),
        dur(r.avg_wait_ms),
        dur(r.max_wait_ms),
        dur(r.avg_talk_ms),
        dur(r.avg_handle_ms),
        pct(r.service_level),
        r.callbacks.to_string(),
        survey,
    ]
}

fn agent_table_row(first: String, a: &AgentRow) -> Vec<String> {
    vec![
        first,
        a.agent_id.clone(),
        a.handled.to_string(),
        dur(Some(a.talk_ms)),
        dur(Some(a.handle_ms)),
        dur(Some(a.logged_in_ms)),
        dur(Some(a.away_ms)),
        pct(a.occupancy),
    ]
}

/// A plain-text table for a terminal: interval rows and their total, then agents and theirs.
/// Times are local to the query's offset; durations m:ss; "-" where nothing was there to count.
pub fn to_table(r: &Report) -> String {
    let mut out = String::new();
    let header = [
        "interval",
        "queue",
        "offered",
        "answered",
        "abandoned (<=5s)",
        "timed out",
        "abandon",
        "ASA",
        "avg wait",
        "max wait",
        "avg talk",
        "avg handle",
        "SL",
        "callbacks",
        "survey",
    ];
    let mut rows: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|row| table_row(when(&row.interval_start), row))
        .collect();
    rows.push(table_row("total".into(), &r.totals));
    if let Some(d) = &r.totals.dialed {
        out.push_str(&format!("dialed number {d}\n"));
    }
    if let Some(c) = &r.totals.country {
        out.push_str(&format!("country {c}\n"));
    }
    render(&mut out, &header, &rows, 2);

    if !r.agent_totals.is_empty() {
        out.push('\n');
        let header = [
            "interval",
            "agent",
            "handled",
            "talk",
            "handle",
            "logged in",
            "away",
            "occupancy",
        ];
        let mut rows: Vec<Vec<String>> = r
            .agents
            .iter()
            .map(|a| agent_table_row(when(&a.interval_start), a))
            .collect();
        rows.extend(
            r.agent_totals
                .iter()
                .map(|a| agent_table_row("total".into(), a)),
        );
        render(&mut out, &header, &rows, 2);
    }
    out
}
