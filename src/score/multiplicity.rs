//! Corrections for many comparisons in one table: a zoo compares 20+ variants against one
//! baseline, and at p < 0.05 about one of 20 null differences looks significant by chance.
//!
//! - [`holm`]: Holm's step-down adjustment, which controls the family-wise error rate (the chance
//!   of any false claim) under any dependence between the tests. Markers use it.
//! - [`benjamini_hochberg`]: the Benjamini-Hochberg q-values, which control the false discovery
//!   rate (the expected share of false claims among the claims); shown beside Holm.

/// Holm-adjusted p-values, in the order of `p`: sorted ascending, the i-th smallest (0-based) of
/// m becomes max over j <= i of min(1, (m - j) p_(j)).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// Benjamini-Hochberg q-values, in the order of `p`: sorted ascending, the i-th smallest (1-based)
/// of m becomes min over j >= i of min(1, m p_(j) / j).
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut q = vec![0.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min((m as f64 * p[i] / (rank + 1) as f64).min(1.0));
        q[i] = running;
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
    }

    #[test]
    fn holm_matches_r_p_adjust() {
        // R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") = 0.03 0.06 0.06 0.02
        assert!(close(&holm(&[0.01, 0.04, 0.03, 0.005]), &[0.03, 0.06, 0.06, 0.02]));
        assert!(close(&holm(&[0.5]), &[0.5]));
        assert!(close(&holm(&[0.9, 0.8]), &[1.0, 1.0]));
        assert!(holm(&[]).is_empty());
    }

    #[test]
    fn bh_matches_r_p_adjust() {
        // R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "BH") = 0.02 0.04 0.04 0.02
        assert!(close(&benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005]), &[0.02, 0.04, 0.04, 0.02]));
        // R: p.adjust(c(0.001, 0.2, 0.3, 0.04, 0.9), "BH") = 0.005 0.3333333 0.375 0.1 0.9
        let q = benjamini_hochberg(&[0.001, 0.2, 0.3, 0.04, 0.9]);
        assert!(close(&q, &[0.005, 1.0 / 3.0, 0.375, 0.1, 0.9]), "{q:?}");
    }
}
