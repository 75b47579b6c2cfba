//! Reports: tables in several formats ([`table`]), the comparison of variants ([`compare`]) with
//! its Pareto front ([`pareto`]) and plot ([`plot`]).

pub mod compare;
pub mod pareto;
pub mod plot;
pub mod table;

pub use compare::{ComparedVariant, Comparison, VariantResult};
pub use table::{render, Cell, Format, Table};
