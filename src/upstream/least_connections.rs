//! `selection: least_connections`: the backend with the fewest requests in flight
//! per unit of weight (in_flight / weight, as nginx's `least_conn`). Ties go round
//! in a weighted round robin, so idle backends share the load in proportion to
//! their weights.
//!
//! This module only ranks: which backends may be chosen (healthy, admitted by their
//! circuit, untried) and how many requests each has in flight is the caller's to say.

use std::sync::atomic::{AtomicUsize, Ordering};

pub(super) struct LeastConnections {
    weights: Vec<i64>,
    /// A smooth weighted round robin over the backend indexes; each pick starts its
    /// scan at the next one, and the first of equally loaded backends wins.
    order: Vec<usize>,
    next: AtomicUsize,
}

impl LeastConnections {
    /// For backends with these weights (each at least 1), in index order.
    pub(super) fn new(weights: &[u32]) -> Self {
        let divisor = weights.iter().copied().fold(0, gcd).max(1);
        let weights: Vec<i64> = weights
            .iter()
            .map(|w| i64::from((*w / divisor).max(1)))
            .collect();
        LeastConnections {
            order: smooth_round_robin(&weights),
            weights,
            next: AtomicUsize::new(0),
        }
    }

    /// Among the backends for which `in_flight` gives a count, the least loaded.
    pub(super) fn pick(&self, in_flight: impl Fn(usize) -> Option<i64>) -> Option<usize> {
        let n = self.weights.len();
        if n == 0 {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let start = self.order[turn % self.order.len()];
        let mut best: Option<(usize, i64)> = None;
        for i in (start..n).chain(0..start) {
            let Some(load) = in_flight(i) else {
                continue;
            };
            let load = load.max(0);
            // load / weight < best_load / best_weight, without dividing.
            let lighter = best.is_none_or(|(b, best_load)| {
                load.saturating_mul(self.weights[b]) < best_load.saturating_mul(self.weights[i])
            });
            if lighter {
                best = Some((i, load));
            }
        }
        best.map(|(i, _)| i)
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// One full cycle of nginx's smooth weighted round robin: each index appears
/// `weight` times, spread out.
fn smooth_round_robin(weights: &[i64]) -> Vec<usize> {
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(total.max(1) as usize);
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(weights) {
            *c += w;
        }
        let Some(pick) = (0..weights.len()).max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
        else {
            break;
        };
        current[pick] -= total;
        order.push(pick);
    }
    if order.is_empty() {
        order.push(0);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(lc: &LeastConnections, loads: &[i64], n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| lc.pick(|i| Some(loads[i])).unwrap())
            .collect()
    }

    #[test]
    fn equal_backends_alternate() {
        let lc = LeastConnections::new(&[1, 1]);
        assert_eq!(picks(&lc, &[0, 0], 4), [0, 1, 0, 1]);
        assert_eq!(picks(&lc, &[3, 3], 4), [0, 1, 0, 1]);
        let lc = LeastConnections::new(&[1, 1, 1]);
        assert_eq!(picks(&lc, &[0, 0, 0], 6), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn the_busy_backend_is_avoided() {
        let lc = LeastConnections::new(&[1, 1, 1]);
        let got = picks(&lc, &[2, 0, 1], 9);
        assert!(got.iter().all(|&i| i == 1), "{got:?}");
        // Only candidates count.
        let got = lc.pick(|i| (i != 1).then_some([2, 0, 1][i]));
        assert_eq!(got, Some(2));
        assert_eq!(lc.pick(|_| None), None);
    }

    #[test]
    fn weights_are_honoured() {
        let lc = LeastConnections::new(&[3, 1]);
        let got = picks(&lc, &[0, 0], 400);
        let first = got.iter().filter(|&&i| i == 0).count();
        assert_eq!(first, 300, "idle backends share by weight");
        // 2 in flight on weight 3 is lighter than 1 on weight 1...
        assert!(picks(&lc, &[2, 1], 4).iter().all(|&i| i == 0));
        // ...and 4 on weight 3 heavier.
        assert!(picks(&lc, &[4, 1], 4).iter().all(|&i| i == 1));
        // 3 on weight 3 is as loaded as 1 on weight 1: they share.
        let got = picks(&lc, &[3, 1], 8);
        assert!(got.contains(&0) && got.contains(&1), "{got:?}");
    }

    #[test]
    fn the_round_robin_is_smooth_and_reduced() {
        assert_eq!(smooth_round_robin(&[5, 1, 1]), [0, 0, 1, 0, 2, 0, 0]);
        let lc = LeastConnections::new(&[1000, 500]);
        assert_eq!(lc.order, [0, 1, 0]);
        assert_eq!(LeastConnections::new(&[]).pick(|_| Some(0)), None);
    }
}
