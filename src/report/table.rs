//! A table as data, in two views of the same numbers:
//!
//! - **records** for machines: snake_case keys with the unit in the name (`accuracy_pct`,
//!   `e2e_ms_mean`), one typed [`Value`] per key -- a number column holds numbers or nothing, never
//!   text -- written as CSV (one table per file) or as a JSON array of objects;
//! - **cells** for people: a header and pre-formatted text (`24.7 [21.3, 28.4]`, `-3.8*`) drawn as
//!   a terminal table (prettytable-rs) or Markdown, with notes under it.
//!
//! The comparison builds each table once and picks the format last, so every format holds the same
//! numbers.

use std::collections::BTreeMap;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::error::{Error, Result};

/// One machine-readable value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Not measured or not applicable: an empty CSV cell, JSON `null`.
    Empty,
    /// A number.
    Number(f64),
    /// Text (names, providers, dates).
    Text(String),
    /// A yes/no flag.
    Bool(bool),
}

impl Value {
    /// A number rounded to 10 significant digits (so that `0.5233969999999999` reads `0.523397`),
    /// or [`Value::Empty`] for `None` or a non-finite value.
    pub fn num(v: impl Into<Option<f64>>) -> Value {
        match v.into() {
            Some(v) if v.is_finite() => Value::Number(format!("{v:.9e}").parse().unwrap_or(v)),
            _ => Value::Empty,
        }
    }

    fn csv(&self) -> String {
        match self {
            Value::Empty => String::new(),
            Value::Number(v) => format!("{v}"),
            Value::Text(t) => t.clone(),
            Value::Bool(b) => b.to_string(),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Value::Empty => s.serialize_none(),
            // Whole numbers (counts, seeds) as JSON integers.
            Value::Number(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => s.serialize_i64(*v as i64),
            Value::Number(v) => s.serialize_f64(*v),
            Value::Text(t) => s.serialize_str(t),
            Value::Bool(b) => s.serialize_bool(*b),
        }
    }
}

/// One machine-readable row: keys in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    fields: Vec<(String, Value)>,
}

impl Record {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a text field.
    pub fn text(mut self, key: &str, value: impl Into<String>) -> Self {
        self.fields.push((key.to_string(), Value::Text(value.into())));
        self
    }

    /// Adds a text field that may be absent.
    pub fn opt_text(mut self, key: &str, value: Option<impl Into<String>>) -> Self {
        self.fields.push((key.to_string(), value.map_or(Value::Empty, |v| Value::Text(v.into()))));
        self
    }

    /// Adds a number field that may be absent.
    pub fn num(mut self, key: &str, value: impl Into<Option<f64>>) -> Self {
        self.fields.push((key.to_string(), Value::num(value)));
        self
    }

    /// Adds a flag that may be absent.
    pub fn flag(mut self, key: &str, value: Option<bool>) -> Self {
        self.fields.push((key.to_string(), value.map_or(Value::Empty, Value::Bool)));
        self
    }

    /// The keys, in order.
    pub fn keys(&self) -> Vec<&str> {
        self.fields.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.fields.len()))?;
        for (k, v) in &self.fields {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// The tables a comparison holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum TableName {
    /// Overall accuracy, difference to the baseline with corrected p-values, vision reliance, seeds.
    Accuracy,
    /// Accuracy per class and instruction following.
    PerClass,
    /// Latency per stage.
    Latency,
    /// Accuracy against cost, with the Pareto front.
    Pareto,
    /// Differences to the baseline on several benchmark splits side by side (`report --also`).
    Splits,
    /// Each finding of the Lynx paper (`paper_finding`) against the verdict here: reproduced, not
    /// reproduced or inconclusive.
    Findings,
}

impl TableName {
    /// The stable snake_case name (CSV file names, JSON keys).
    pub fn key(self) -> &'static str {
        match self {
            TableName::Accuracy => "accuracy",
            TableName::PerClass => "per_class",
            TableName::Latency => "latency",
            TableName::Pareto => "pareto",
            TableName::Splits => "splits",
            TableName::Findings => "findings",
        }
    }
}

/// A titled table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Which table.
    pub name: TableName,
    /// Title, printed above the table.
    pub title: String,
    /// Column names for people.
    pub header: Vec<String>,
    /// Formatted rows, each as long as the header.
    pub rows: Vec<Vec<String>>,
    /// Machine-readable rows, all with the same keys.
    pub records: Vec<Record>,
    /// Notes printed under the table (legend of markers).
    pub notes: Vec<String>,
}

impl Serialize for Table {
    /// A table serialises as its records: an array of objects.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.records.len()))?;
        for r in &self.records {
            seq.serialize_element(r)?;
        }
        seq.end()
    }
}

/// Output formats of tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Boxed terminal tables.
    Table,
    /// GitHub-flavoured Markdown.
    Markdown,
    /// CSV: one table, one row per variant, a header of snake_case keys.
    Csv,
    /// JSON: an array of records (one table) or an object of such arrays keyed by table name.
    Json,
}

impl Table {
    /// An empty table with `header` for people.
    pub fn new(name: TableName, title: impl Into<String>, header: &[&str]) -> Self {
        Self {
            name,
            title: title.into(),
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
            records: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a row: its formatted cells (as many as the header) and its record (the same keys as
    /// every other record of the table).
    pub fn push(&mut self, cells: Vec<String>, record: Record) -> Result<()> {
        if cells.len() != self.header.len() {
            return Err(Error::Mismatch(format!(
                "table `{}`: row of {} cells for {} columns",
                self.title,
                cells.len(),
                self.header.len()
            )));
        }
        if let Some(first) = self.records.first() {
            if first.keys() != record.keys() {
                return Err(Error::Mismatch(format!(
                    "table `{}`: record keys {:?} differ from {:?}",
                    self.title,
                    record.keys(),
                    first.keys()
                )));
            }
        }
        self.rows.push(cells);
        self.records.push(record);
        Ok(())
    }

    /// The terminal table.
    pub fn render_terminal(&self) -> String {
        use prettytable::{format, Cell as PCell, Row};
        let mut t = prettytable::Table::new();
        t.set_format(*format::consts::FORMAT_NO_LINESEP_WITH_TITLE);
        t.set_titles(Row::new(self.header.iter().map(|h| PCell::new(h)).collect()));
        for row in &self.rows {
            t.add_row(Row::new(row.iter().map(|c| PCell::new(c)).collect()));
        }
        let mut out = format!("{}\n{}", self.title, t);
        for n in &self.notes {
            out.push_str(n);
            out.push('\n');
        }
        out
    }

    /// The Markdown table.
    pub fn render_markdown(&self) -> String {
        let esc = |s: &str| s.replace('|', "\\|");
        let mut out = format!(
            "### {}\n\n| {} |\n|{}\n",
            self.title,
            self.header.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" | "),
            " --- |".repeat(self.header.len())
        );
        for row in &self.rows {
            out.push_str(&format!("| {} |\n", row.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")));
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                out.push_str(&format!("{n}\n"));
            }
        }
        out
    }

    /// The records as CSV: a header of keys, one line per record.
    pub fn render_csv(&self) -> Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let csv_err = |e: csv::Error| Error::Mismatch(format!("cannot write CSV: {e}"));
        if let Some(first) = self.records.first() {
            w.write_record(first.keys()).map_err(csv_err)?;
        }
        for r in &self.records {
            w.write_record(r.fields.iter().map(|(_, v)| v.csv())).map_err(csv_err)?;
        }
        let bytes = w.into_inner().map_err(|e| Error::Mismatch(format!("cannot write CSV: {e}")))?;
        String::from_utf8(bytes).map_err(|e| Error::Mismatch(format!("CSV is not UTF-8: {e}")))
    }
}

/// Renders `tables` for people (`Table`, `Markdown`) or one table for machines (`Csv`, `Json`;
/// several tables in JSON become an object keyed by table name). CSV holds one table: asking for
/// more is an error that says how to get them (`--table all --output DIR`).
pub fn render(tables: &[Table], format: Format) -> Result<String> {
    match format {
        Format::Table => Ok(tables.iter().map(Table::render_terminal).collect::<Vec<_>>().join("\n")),
        Format::Markdown => Ok(tables.iter().map(Table::render_markdown).collect::<Vec<_>>().join("\n")),
        Format::Json => {
            let text = match tables {
                [one] => serde_json::to_string_pretty(one),
                many => serde_json::to_string_pretty(
                    &many.iter().map(|t| (t.name.key(), t)).collect::<BTreeMap<&str, &Table>>(),
                ),
            };
            text.map_err(|e| Error::Mismatch(format!("cannot write JSON: {e}")))
        }
        Format::Csv => match tables {
            [one] => one.render_csv(),
            _ => Err(Error::InvalidArgument {
                what: "--table",
                value: tables.iter().map(|t| t.name.key()).collect::<Vec<_>>().join(","),
                expected: "one table for CSV on stdout (e.g. `--table accuracy`), or `--table all --output DIR` for one file per table".into(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(TableName::Accuracy, "Accuracy", &["variant", "overall"]);
        t.push(
            vec!["lynx".into(), "81.2 [75.0, 87.5]".into()],
            Record::new().text("variant", "lynx").num("accuracy_pct", 81.25),
        )
        .unwrap();
        t.push(
            vec!["a|b, \"c\"".into(), "".into()],
            Record::new().text("variant", "a|b, \"c\"").num("accuracy_pct", None),
        )
        .unwrap();
        t.notes.push("* p < 0.05".into());
        t
    }

    #[test]
    fn every_format_holds_the_numbers() {
        let t = sample();
        let term = render(std::slice::from_ref(&t), Format::Table).unwrap();
        assert!(term.contains("81.2 [75.0, 87.5]") && term.contains("Accuracy") && term.contains("* p < 0.05"));
        let md = render(std::slice::from_ref(&t), Format::Markdown).unwrap();
        assert!(md.contains("| lynx | 81.2 [75.0, 87.5] |") && md.contains("a\\|b"));
        let json: serde_json::Value =
            serde_json::from_str(&render(std::slice::from_ref(&t), Format::Json).unwrap()).unwrap();
        assert_eq!(json[0]["accuracy_pct"], 81.25);
        assert_eq!(json[1]["accuracy_pct"], serde_json::Value::Null);
        let csv_text = render(std::slice::from_ref(&t), Format::Csv).unwrap();
        let mut r = csv::Reader::from_reader(csv_text.as_bytes());
        assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), vec!["variant", "accuracy_pct"]);
        let recs: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 2);
        assert_eq!(&recs[0][1], "81.25");
        assert_eq!(&recs[1][0], "a|b, \"c\"");
        assert_eq!(&recs[1][1], "");
        let both = render(&[t.clone(), t.clone()], Format::Json).unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(&both).unwrap()["accuracy"].is_array());
        assert!(render(&[t.clone(), t], Format::Csv).unwrap_err().to_string().contains("--table all --output"));
    }

    #[test]
    fn rows_must_match_the_header_and_the_keys() {
        let mut t = Table::new(TableName::Accuracy, "x", &["a", "b"]);
        assert!(t.push(vec!["1".into()], Record::new()).is_err());
        t.push(vec!["1".into(), "2".into()], Record::new().num("a", 1.0)).unwrap();
        assert!(t.push(vec!["1".into(), "2".into()], Record::new().num("b", 1.0)).is_err());
        assert_eq!(Value::num(f64::NAN), Value::Empty);
        assert_eq!(Value::num(0.5233969999999999), Value::Number(0.523397));
        assert_eq!(Value::num(1.25e-12), Value::Number(1.25e-12));
        assert_eq!(Value::num(12345678.0), Value::Number(12345678.0));
    }
}
