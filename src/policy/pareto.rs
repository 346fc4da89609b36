//! The Pareto frontier of points in two figures that are both minimised (a
//! sweep's mean cost and mean p95 wait).
//!
//! A point dominates another when it is no worse in both figures and better
//! in at least one. The frontier is every point no other point dominates, so
//! points with equal figures are either all on it or all off it: ties are
//! kept, never broken by input order. This module only compares numbers; the
//! figures must not be NaN.

use std::cmp::Ordering;

/// Whether `a` dominates `b`.
pub fn dominates(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 <= b.0 && a.1 <= b.1 && (a.0 < b.0 || a.1 < b.1)
}

/// Indices of the non-dominated points, ordered by the first figure, then
/// the second, then index (so equal points appear in input order).
pub fn frontier(points: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| {
        let (pa, pb) = (points[a], points[b]);
        pa.0.total_cmp(&pb.0).then(pa.1.total_cmp(&pb.1)).then(a.cmp(&b))
    });
    // Walking in that order, everything that could dominate a point comes
    // before it; keep the lowest second figure seen and the first figure of
    // the first point that reached it.
    let mut best: Option<(f64, f64)> = None;
    let mut out = Vec::new();
    for i in order {
        let p = points[i];
        let dominated = match best {
            Some(b) => match b.1.partial_cmp(&p.1) {
                Some(Ordering::Less) => true,
                Some(Ordering::Equal) => b.0 < p.0,
                _ => false,
            },
            None => false,
        };
        if !dominated {
            out.push(i);
        }
        if best.is_none_or(|b| p.1 < b.1) {
            best = Some(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        let pts = [(3.0, 1.0), (1.0, 3.0), (2.0, 2.0), (2.0, 3.0), (3.0, 3.0), (1.0, 3.0), (4.0, 1.0)];
        assert_eq!(frontier(&pts), [1, 5, 2, 0]);
        assert_eq!(frontier(&[]), Vec::<usize>::new());
        assert_eq!(frontier(&[(1.0, 1.0)]), [0]);
    }

    fn points() -> impl Strategy<Value = Vec<(f64, f64)>> {
        // Small integer figures so that ties happen often.
        prop::collection::vec((0u8..8, 0u8..8).prop_map(|(a, b)| (f64::from(a), f64::from(b))), 0..40)
    }

    proptest! {
        #[test]
        fn the_frontier_is_exactly_the_non_dominated_points(pts in points()) {
            let f = frontier(&pts);
            for &i in &f {
                prop_assert!(pts.iter().all(|&q| !dominates(q, pts[i])), "frontier point {i} dominated");
            }
            for i in (0..pts.len()).filter(|i| !f.contains(i)) {
                prop_assert!(f.iter().any(|&j| dominates(pts[j], pts[i])), "point {i} left out but not dominated");
            }
            let mut sorted = f.clone();
            sorted.sort_unstable();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), f.len());
        }

        #[test]
        fn the_frontier_does_not_depend_on_input_order(
            (pts, perm) in points().prop_flat_map(|p| {
                let n = p.len();
                (Just(p), Just((0..n).collect::<Vec<usize>>()).prop_shuffle())
            })
        ) {
            let shuffled: Vec<(f64, f64)> = perm.iter().map(|&i| pts[i]).collect();
            let values = |p: &[(f64, f64)], f: Vec<usize>| -> Vec<(u64, u64)> {
                f.into_iter().map(|i| (p[i].0.to_bits(), p[i].1.to_bits())).collect()
            };
            prop_assert_eq!(values(&pts, frontier(&pts)), values(&shuffled, frontier(&shuffled)));
            // The same points, not only the same figures.
            let mut a: Vec<usize> = frontier(&shuffled).into_iter().map(|i| perm[i]).collect();
            a.sort_unstable();
            let mut b = frontier(&pts);
            b.sort_unstable();
            prop_assert_eq!(a, b);
        }
    }
}
