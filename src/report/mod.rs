//! Reports: the comparison of variants with its floors, controls and corrected statistics
//! ([`compare`]), its tables in a machine and a human view ([`views`], [`table`]), the noise-aware
//! Pareto front ([`pareto`]), the plot ([`plot`]) and the Markdown report ([`markdown`]).

pub mod compare;
pub mod markdown;
pub mod pareto;
pub mod plot;
pub mod table;
pub mod views;

pub use compare::{Claim, Comparison, Floor, Imported, Role, Row, VariantResult, ALPHA, FLOOR_ROW};
pub use table::{render, Format, Record, Table, TableName, Value};
pub use views::DEFAULT_TABLES;
