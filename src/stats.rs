//! Rank statistics behind the SQL aggregates: average ranks, Spearman's rho and Kendall's
//! tau-b (ties handled as scipy.stats does), and the paper's difficulty quantiles and bins.

use std::cmp::Ordering;

/// 1-based ranks; tied values share the average of the ranks they span.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1..=end; their mean:
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Pearson correlation; `None` with fewer than two pairs or a constant side.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 2 || y.len() != n {
        return None;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// Spearman's rho: Pearson correlation of average ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Kendall's tau-b in O(n log n) (Knight's algorithm): sort by (x, y), count the
/// inversions of y with a merge sort, and correct for ties in x, in y and in both.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 2 || y.len() != n {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]).then(y[a].total_cmp(&y[b])));
    let pairs = |t: u64| t * t.saturating_sub(1) / 2;
    let total = pairs(n as u64);
    let (mut x_ties, mut joint_ties) = (0u64, 0u64);
    let (mut run_x, mut run_xy) = (1u64, 1u64);
    for w in order.windows(2) {
        let (a, b) = (w[0], w[1]);
        if x[a] == x[b] {
            run_x += 1;
            if y[a] == y[b] {
                run_xy += 1;
            } else {
                joint_ties += pairs(run_xy);
                run_xy = 1;
            }
        } else {
            x_ties += pairs(run_x);
            joint_ties += pairs(run_xy);
            run_x = 1;
            run_xy = 1;
        }
    }
    x_ties += pairs(run_x);
    joint_ties += pairs(run_xy);

    let mut ys: Vec<f64> = order.iter().map(|&i| y[i]).collect();
    let discordant = count_inversions(&mut ys);
    // ys is now sorted: count ties in y.
    let mut y_ties = 0u64;
    let mut run = 1u64;
    for w in ys.windows(2) {
        if w[0] == w[1] {
            run += 1;
        } else {
            y_ties += pairs(run);
            run = 1;
        }
    }
    y_ties += pairs(run);

    let numerator =
        total as f64 - x_ties as f64 - y_ties as f64 + joint_ties as f64 - 2.0 * discordant as f64;
    let denominator = ((total - x_ties) as f64 * (total - y_ties) as f64).sqrt();
    if denominator == 0.0 {
        return None;
    }
    Some((numerator / denominator).clamp(-1.0, 1.0))
}

/// Sorts `v` ascending and returns the number of strict inversions (i < j, v[i] > v[j]).
fn count_inversions(v: &mut [f64]) -> u64 {
    let mut buf = v.to_vec();
    let mut inversions = 0u64;
    let n = v.len();
    let mut width = 1;
    while width < n {
        let mut lo = 0;
        while lo < n {
            let mid = (lo + width).min(n);
            let hi = (lo + 2 * width).min(n);
            let (mut i, mut j, mut k) = (lo, mid, lo);
            while i < mid && j < hi {
                if v[j].total_cmp(&v[i]) == Ordering::Less {
                    inversions += (mid - i) as u64;
                    buf[k] = v[j];
                    j += 1;
                } else {
                    buf[k] = v[i];
                    i += 1;
                }
                k += 1;
            }
            buf[k..k + mid - i].copy_from_slice(&v[i..mid]);
            k += mid - i;
            buf[k..k + hi - j].copy_from_slice(&v[j..hi]);
            lo = hi;
        }
        v.copy_from_slice(&buf);
        width *= 2;
    }
    inversions
}

/// The paper's `1pl_quantile` of each position given its 0-based place `position` in the
/// ascending difficulty order of `count` items: `position / (count - 1)`, so the easiest item
/// has 0 and the hardest 1; a single item has 0.
pub fn difficulty_quantile(position: usize, count: usize) -> f64 {
    if count <= 1 {
        0.0
    } else {
        position as f64 / (count - 1) as f64
    }
}

/// The paper's bin of a quantile: bin k holds k/n <= q < (k+1)/n, the top bin includes 1.
pub fn difficulty_bin(quantile: f64, n_bins: usize) -> usize {
    ((quantile * n_bins as f64).floor() as usize).min(n_bins.saturating_sub(1))
}

/// The bin of the item at 0-based `position` of `count` in ascending difficulty order, of
/// `n_bins` equal-size bins: the one rule every binning in crossdiff goes through.
pub fn equal_size_bin(position: usize, count: usize, n_bins: usize) -> usize {
    difficulty_bin(difficulty_quantile(position, count), n_bins)
}

/// Each item's bin of `n_bins` equal-size bins of `difficulty` (ascending by total order),
/// ties broken by `tie` and then by index.
pub fn equal_size_bins(
    difficulty: &[f64],
    n_bins: usize,
    tie: impl Fn(usize, usize) -> Ordering,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..difficulty.len()).collect();
    order.sort_by(|&a, &b| {
        difficulty[a]
            .total_cmp(&difficulty[b])
            .then_with(|| tie(a, b))
            .then(a.cmp(&b))
    });
    let mut bins = vec![0; difficulty.len()];
    for (position, &i) in order.iter().enumerate() {
        bins[i] = equal_size_bin(position, difficulty.len(), n_bins);
    }
    bins
}

/// [`equal_size_bins`] with ties broken by index.
fn bins_of(difficulty: &[f64], n_bins: usize) -> Vec<usize> {
    equal_size_bins(difficulty, n_bins, |_, _| Ordering::Equal)
}

/// Redraws `bin_stability` takes when its caller names none.
pub const DEFAULT_STABILITY_DRAWS: usize = 1000;

/// How stable each item's bin is given its difficulty's uncertainty: the share of `draws`
/// seeded redraws of every difficulty from N(difficulty, se^2) (re-ranked and re-binned
/// together) in which the item lands in the bin its point estimate put it in.
pub fn bin_stability(
    difficulty: &[f64],
    se: &[f64],
    n_bins: usize,
    draws: usize,
    seed: u64,
) -> Vec<f64> {
    use rand::SeedableRng;
    let home = bins_of(difficulty, n_bins);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut stayed = vec![0usize; difficulty.len()];
    let mut drawn = vec![0.0; difficulty.len()];
    for _ in 0..draws {
        for (d, (&mean, &sd)) in drawn.iter_mut().zip(difficulty.iter().zip(se)) {
            *d = mean + sd * crate::irt::simulate::standard_normal(&mut rng);
        }
        for (count, (&now, &was)) in stayed
            .iter_mut()
            .zip(bins_of(&drawn, n_bins).iter().zip(&home))
        {
            *count += (now == was) as usize;
        }
    }
    stayed
        .iter()
        .map(|&c| c as f64 / draws.max(1) as f64)
        .collect()
}

/// Share of items that fall in the same equal-size bin (of `n_bins`) when ranked by `a` and
/// when ranked by `b`; ties are broken by position, as `difficulty_bin` with an item_id key.
pub fn bin_agreement(a: &[f64], b: &[f64], n_bins: usize) -> f64 {
    let (x, y) = (bins_of(a, n_bins), bins_of(b, n_bins));
    x.iter().zip(&y).filter(|(p, q)| p == q).count() as f64 / a.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items far from every bin edge with tiny errors always stay; an item on an edge between
    /// two bins stays about half the time.
    #[test]
    fn bin_stability_far_and_on_an_edge() {
        // Ten items, two bins: 0-4 easy, 5-9 hard; difficulties spaced by 1.
        let difficulty: Vec<f64> = (0..10).map(|k| k as f64).collect();
        let tiny = vec![1e-6; 10];
        assert!(bin_stability(&difficulty, &tiny, 2, 500, 1)
            .iter()
            .all(|&p| p == 1.0));
        // Items 4 and 5 sit on the edge: both at 4.5 with real error, the rest certain.
        let mut edge = difficulty.clone();
        edge[4] = 4.5;
        edge[5] = 4.5;
        let mut se = tiny.clone();
        se[4] = 1.0;
        se[5] = 1.0;
        let p = bin_stability(&edge, &se, 2, 4000, 7);
        assert!(
            (p[4] - 0.5).abs() < 0.05 && (p[5] - 0.5).abs() < 0.05,
            "{p:?}"
        );
        assert_eq!(p[0], 1.0);
        assert_eq!(p[9], 1.0);
        assert_eq!(p, bin_stability(&edge, &se, 2, 4000, 7), "seeded");
    }

    fn close(a: Option<f64>, b: f64) {
        let a = a.expect("defined");
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(
            average_ranks(&[10.0, 20.0, 10.0, 30.0]),
            vec![1.5, 3.0, 1.5, 4.0]
        );
    }

    // Expected values worked by hand (and agreeing with scipy.stats 1.14).
    #[test]
    fn spearman_with_ties() {
        // x ranks: 1.5 1.5 3 4 5 ; y ranks: 2 1 4 3 5
        let x = [1.0, 1.0, 2.0, 3.0, 4.0];
        let y = [2.0, 1.0, 4.0, 3.0, 5.0];
        // Pearson of the ranks: sxy = 8.5, sxx = 9.5, syy = 10.
        close(spearman(&x, &y), 8.5 / (9.5f64 * 10.0).sqrt());
        close(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), -1.0);
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), None);
    }

    #[test]
    fn kendall_tau_b_with_ties() {
        let x = [1.0, 1.0, 2.0, 3.0, 4.0];
        let y = [2.0, 1.0, 4.0, 3.0, 5.0];
        // 10 pairs; x ties 1; y ties 0; concordant 8, discordant 1 (pair 3,4), tie 1.
        close(kendall_tau_b(&x, &y), 7.0 / (9.0f64 * 10.0).sqrt());
        close(
            kendall_tau_b(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0]),
            -1.0,
        );
        // Ties on both sides: x = [1,1,2,2], y = [1,2,1,2]: C = 1 (0,3), D = 1 (1,2).
        close(
            kendall_tau_b(&[1.0, 1.0, 2.0, 2.0], &[1.0, 2.0, 1.0, 2.0]),
            0.0,
        );
        // Joint ties: x=[1,1,2], y=[1,1,3]: n0=3, n1=1, n2=1, n3=1, D=0 -> 2/2 = 1.
        close(kendall_tau_b(&[1.0, 1.0, 2.0], &[1.0, 1.0, 3.0]), 1.0);
    }

    #[test]
    fn kendall_matches_brute_force() {
        let x: Vec<f64> = (0..60).map(|i| ((i * 37) % 11) as f64).collect();
        let y: Vec<f64> = (0..60)
            .map(|i| ((i * 53) % 7) as f64 + (i % 3) as f64)
            .collect();
        let (mut c, mut d, mut tx, mut ty) = (0i64, 0i64, 0i64, 0i64);
        for i in 0..60 {
            for j in i + 1..60 {
                let (sx, sy) = ((x[i] - x[j]).signum(), (y[i] - y[j]).signum());
                if x[i] == x[j] && y[i] == y[j] {
                    continue;
                } else if x[i] == x[j] {
                    tx += 1;
                } else if y[i] == y[j] {
                    ty += 1;
                } else if sx == sy {
                    c += 1;
                } else {
                    d += 1;
                }
            }
        }
        let expected = (c - d) as f64 / (((c + d + tx) * (c + d + ty)) as f64).sqrt();
        close(kendall_tau_b(&x, &y), expected);
    }

    #[test]
    fn bins_follow_the_paper() {
        // 100 items into 10 bins: ten per bin, the hardest in bin 9.
        let bins: Vec<usize> = (0..100)
            .map(|p| difficulty_bin(difficulty_quantile(p, 100), 10))
            .collect();
        for k in 0..10 {
            assert_eq!(bins.iter().filter(|&&b| b == k).count(), 10);
        }
        assert_eq!(difficulty_bin(1.0, 10), 9);
        assert_eq!(difficulty_bin(0.1, 10), 1);
        assert_eq!(difficulty_quantile(0, 1), 0.0);
    }
}
