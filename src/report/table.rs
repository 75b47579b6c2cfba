//! A table as data -- a title, a header and rows of cells -- rendered to a terminal table
//! (prettytable-rs), Markdown, CSV or JSON. The comparison builds tables once and chooses the
//! format last, so every format holds the same numbers.

use serde::Serialize;

use crate::error::{Error, Result};

/// One cell: display text plus, for numbers, the exact value (JSON keeps full precision).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// What the terminal, Markdown and CSV show.
    pub text: String,
    /// The number behind the text, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

impl Cell {
    /// A text cell.
    pub fn text(text: impl Into<String>) -> Self {
        Self { text: text.into(), value: None }
    }

    /// A number shown with `text`.
    pub fn number(value: f64, text: impl Into<String>) -> Self {
        Self { text: text.into(), value: Some(value) }
    }

    /// An empty cell (not measured, not applicable).
    pub fn empty() -> Self {
        Self::text("-")
    }
}

/// A titled table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    /// Title, printed above the table.
    pub title: String,
    /// Column names.
    pub header: Vec<String>,
    /// Rows, each as long as the header.
    pub rows: Vec<Vec<Cell>>,
    /// Notes printed under the table (legend of markers).
    pub notes: Vec<String>,
}

/// Output formats of tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Boxed terminal tables.
    Table,
    /// GitHub-flavoured Markdown.
    Markdown,
    /// CSV, one block per table with a `table` column.
    Csv,
    /// One JSON document holding every table with exact values.
    Json,
}

impl Table {
    /// An empty table with `header`.
    pub fn new(title: impl Into<String>, header: &[&str]) -> Self {
        Self {
            title: title.into(),
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a row; it must be as long as the header.
    pub fn push(&mut self, row: Vec<Cell>) -> Result<()> {
        if row.len() != self.header.len() {
            return Err(Error::Mismatch(format!(
                "table `{}`: row of {} cells for {} columns",
                self.title,
                row.len(),
                self.header.len()
            )));
        }
        self.rows.push(row);
        Ok(())
    }

    fn render_terminal(&self) -> String {
        use prettytable::{format, Cell as PCell, Row};
        let mut t = prettytable::Table::new();
        t.set_format(*format::consts::FORMAT_NO_LINESEP_WITH_TITLE);
        t.set_titles(Row::new(self.header.iter().map(|h| PCell::new(h)).collect()));
        for row in &self.rows {
            t.add_row(Row::new(row.iter().map(|c| PCell::new(&c.text)).collect()));
        }
        let mut out = format!("{}\n{}", self.title, t);
        for n in &self.notes {
            out.push_str(n);
            out.push('\n');
        }
        out
    }

    fn render_markdown(&self) -> String {
        let esc = |s: &str| s.replace('|', "\\|");
        let mut out = format!(
            "### {}\n\n| {} |\n|{}\n",
            self.title,
            self.header.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" | "),
            " --- |".repeat(self.header.len())
        );
        for row in &self.rows {
            out.push_str(&format!("| {} |\n", row.iter().map(|c| esc(&c.text)).collect::<Vec<_>>().join(" | ")));
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                out.push_str(&format!("{n}\n"));
            }
        }
        out
    }
}

/// Renders `tables` in `format`.
pub fn render(tables: &[Table], format: Format) -> Result<String> {
    match format {
        Format::Table => Ok(tables.iter().map(Table::render_terminal).collect::<Vec<_>>().join("\n")),
        Format::Markdown => Ok(tables.iter().map(Table::render_markdown).collect::<Vec<_>>().join("\n")),
        Format::Json => {
            serde_json::to_string_pretty(tables).map_err(|e| Error::Mismatch(format!("cannot write JSON: {e}")))
        }
        Format::Csv => {
            // One CSV stream; each table's rows carry the table's title in the first column and a
            // header row starts each table, so a reader can split them or filter by title.
            let mut w = csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
            let csv_err = |e: csv::Error| Error::Mismatch(format!("cannot write CSV: {e}"));
            for t in tables {
                let mut header = vec!["table".to_string()];
                header.extend(t.header.iter().cloned());
                w.write_record(&header).map_err(csv_err)?;
                for row in &t.rows {
                    let mut rec = vec![t.title.clone()];
                    rec.extend(row.iter().map(|c| c.value.map(|v| format!("{v}")).unwrap_or_else(|| c.text.clone())));
                    w.write_record(&rec).map_err(csv_err)?;
                }
            }
            let bytes = w.into_inner().map_err(|e| Error::Mismatch(format!("cannot write CSV: {e}")))?;
            String::from_utf8(bytes).map_err(|e| Error::Mismatch(format!("CSV is not UTF-8: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new("Accuracy", &["variant", "overall"]);
        t.push(vec![Cell::text("lynx"), Cell::number(0.8125, "81.2%")]).unwrap();
        t.push(vec![Cell::text("a|b, \"c\""), Cell::empty()]).unwrap();
        t.notes.push("* p < 0.05".into());
        t
    }

    #[test]
    fn every_format_holds_the_numbers() {
        let t = sample();
        let term = render(&[t.clone()], Format::Table).unwrap();
        assert!(term.contains("81.2%") && term.contains("Accuracy") && term.contains("* p < 0.05"));
        let md = render(&[t.clone()], Format::Markdown).unwrap();
        assert!(md.contains("| lynx | 81.2% |") && md.contains("a\\|b"));
        let json: serde_json::Value = serde_json::from_str(&render(&[t.clone()], Format::Json).unwrap()).unwrap();
        assert_eq!(json[0]["rows"][0][1]["value"], 0.8125);
        let csv_text = render(&[t], Format::Csv).unwrap();
        let mut r = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(csv_text.as_bytes());
        let recs: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 3);
        assert_eq!(&recs[1][2], "0.8125");
        assert_eq!(&recs[2][1], "a|b, \"c\"");
    }

    #[test]
    fn a_short_row_is_an_error() {
        let mut t = Table::new("x", &["a", "b"]);
        assert!(t.push(vec![Cell::text("1")]).is_err());
    }
}
