//! Pareto-optimal variants: no other variant is at least as accurate *and* at least as fast, and
//! strictly better in one of the two.

/// Indices of the Pareto-optimal points among `(accuracy, cost)` pairs (higher accuracy and
/// lower cost are better). Points with a non-finite value are never optimal.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let finite = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
    (0..points.len())
        .filter(|&i| {
            let a = points[i];
            finite(&a)
                && !points
                    .iter()
                    .enumerate()
                    .any(|(j, b)| j != i && finite(b) && b.0 >= a.0 && b.1 <= a.1 && (b.0 > a.0 || b.1 < a.1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_of_a_small_set() {
        // (acc, ms): 0 is fast but weak, 1 dominated by 2, 2 and 3 trade off, 4 is NaN.
        let pts = [(0.3, 1.0), (0.5, 5.0), (0.6, 4.0), (0.8, 9.0), (f64::NAN, 0.1)];
        assert_eq!(pareto_front(&pts), vec![0, 2, 3]);
        // Ties: two identical points are both optimal.
        assert_eq!(pareto_front(&[(0.5, 2.0), (0.5, 2.0)]), vec![0, 1]);
    }
}
