//! Numerical pieces the variational and marginal fits need: Gauss-Hermite rules for
//! expectations under a normal distribution, a normal-weighted grid over abilities, and
//! the log-gamma and digamma functions of the Gamma variational factors.

use std::f64::consts::PI;

/// A rule for `E[f(z)]` with `z ~ N(mu, sd^2)`: `sum_k weights[k] * f(mu + sd * nodes[k])`.
/// Built from the physicists' Gauss-Hermite rule (weight e^{-x^2}) by scaling the nodes by
/// sqrt(2) and the weights by 1/sqrt(pi), so the weights sum to one.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalRule {
    pub nodes: Vec<f64>,
    pub weights: Vec<f64>,
}

impl NormalRule {
    /// The `n`-point rule; exact for polynomials up to degree `2n - 1`.
    pub fn gauss_hermite(n: usize) -> Self {
        assert!(
            (1..=200).contains(&n),
            "Gauss-Hermite points must be in 1..=200"
        );
        // Roots of the orthonormal Hermite polynomial p_n: bracketed by a sign scan over
        // the interval that holds them all, then polished by Newton steps.
        let limit = (2.0 * n as f64 + 1.0).sqrt() + 1.0;
        let steps = 40 * n + 400;
        let h = 2.0 * limit / steps as f64;
        let mut roots = Vec::with_capacity(n);
        let mut x0 = -limit;
        let mut p0 = hermite(n, x0).0;
        for s in 1..=steps {
            let x1 = -limit + s as f64 * h;
            let p1 = hermite(n, x1).0;
            if p1 == 0.0 {
                roots.push(x1);
            } else if p0 != 0.0 && p0.signum() != p1.signum() {
                roots.push(polish_root(n, x0, x1));
            }
            x0 = x1;
            p0 = p1;
        }
        assert_eq!(
            roots.len(),
            n,
            "Gauss-Hermite: found {} roots of {n}",
            roots.len()
        );
        let mut nodes = Vec::with_capacity(n);
        let mut weights = Vec::with_capacity(n);
        for &x in &roots {
            let (_, derivative) = hermite(n, x);
            // Physicists' weight 2 / p_n'(x)^2, then the change of variable z = sqrt(2) x.
            weights.push(2.0 / (derivative * derivative) / PI.sqrt());
            nodes.push(std::f64::consts::SQRT_2 * x);
        }
        // Make the rule exactly symmetric (the scan finds each root from one side).
        for k in 0..n / 2 {
            let (a, b) = (nodes[k], nodes[n - 1 - k]);
            let x = 0.5 * (b - a);
            nodes[k] = -x;
            nodes[n - 1 - k] = x;
            let w = 0.5 * (weights[k] + weights[n - 1 - k]);
            weights[k] = w;
            weights[n - 1 - k] = w;
        }
        if n % 2 == 1 {
            nodes[n / 2] = 0.0;
        }
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        Self { nodes, weights }
    }

    /// `n` equally spaced abilities on `[-limit, limit]` weighted by the standard normal
    /// density (normalised to sum to one): the grid of mirt's and girth's EM fits.
    pub fn normal_grid(n: usize, limit: f64) -> Self {
        assert!(n >= 2, "a grid needs at least two points");
        let nodes: Vec<f64> = (0..n)
            .map(|k| -limit + 2.0 * limit * k as f64 / (n - 1) as f64)
            .collect();
        let mut weights: Vec<f64> = nodes.iter().map(|x| (-0.5 * x * x).exp()).collect();
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        Self { nodes, weights }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// `E[f(z)]`, `z ~ N(mu, sd^2)`.
    pub fn expect(&self, mu: f64, sd: f64, f: impl Fn(f64) -> f64) -> f64 {
        self.nodes
            .iter()
            .zip(&self.weights)
            .map(|(x, w)| w * f(mu + sd * x))
            .sum()
    }
}

/// The orthonormal Hermite polynomial p_n(x) (weight e^{-x^2}) and its derivative.
fn hermite(n: usize, x: f64) -> (f64, f64) {
    let mut p_prev = 0.0;
    let mut p = PI.powf(-0.25);
    for k in 0..n {
        let next =
            x * (2.0 / (k as f64 + 1.0)).sqrt() * p - (k as f64 / (k as f64 + 1.0)).sqrt() * p_prev;
        p_prev = p;
        p = next;
    }
    (p, (2.0 * n as f64).sqrt() * p_prev)
}

/// A root of p_n in `[lo, hi]`: Newton steps, falling back to bisection outside the bracket.
fn polish_root(n: usize, mut lo: f64, mut hi: f64) -> f64 {
    let sign_lo = hermite(n, lo).0.signum();
    let mut x = 0.5 * (lo + hi);
    for _ in 0..100 {
        let (p, d) = hermite(n, x);
        if p == 0.0 {
            return x;
        }
        if p.signum() == sign_lo {
            lo = x;
        } else {
            hi = x;
        }
        let newton = x - p / d;
        let next = if newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if (next - x).abs() <= 1e-15 * (1.0 + x.abs()) {
            return next;
        }
        x = next;
    }
    x
}

/// ln Gamma(x) for x > 0: shifted up to x >= 15, then Stirling's series.
pub fn ln_gamma(x: f64) -> f64 {
    assert!(x > 0.0, "ln_gamma needs a positive argument, got {x}");
    let mut shift = 0.0;
    let mut x = x;
    while x < 15.0 {
        shift -= x.ln();
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    let series =
        inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 * (1.0 / 1680.0))));
    shift + (x - 0.5) * x.ln() - x + 0.5 * (2.0 * PI).ln() + series
}

/// The digamma function psi(x) = d/dx ln Gamma(x) for x > 0.
pub fn digamma(x: f64) -> f64 {
    assert!(x > 0.0, "digamma needs a positive argument, got {x}");
    let mut shift = 0.0;
    let mut x = x;
    while x < 15.0 {
        shift -= 1.0 / x;
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    let series =
        inv2 * (1.0 / 12.0 - inv2 * (1.0 / 120.0 - inv2 * (1.0 / 252.0 - inv2 * (1.0 / 240.0))));
    shift + x.ln() - 0.5 * inv - series
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_hermite_integrates_normal_moments() {
        for n in [1, 2, 5, 7, 20, 61] {
            let rule = NormalRule::gauss_hermite(n);
            assert!((rule.weights.iter().sum::<f64>() - 1.0).abs() < 1e-13);
            // E[z^2] = mu^2 + sd^2, E[z^4] = 3 for the standard normal (degree <= 2n - 1).
            let m2 = rule.expect(0.5, 2.0, |z| z * z);
            if n >= 2 {
                assert!((m2 - 4.25).abs() < 1e-10, "n={n}: {m2}");
            }
            if n >= 3 {
                let m4 = rule.expect(0.0, 1.0, |z| z.powi(4));
                assert!((m4 - 3.0).abs() < 1e-10, "n={n}: {m4}");
            }
        }
        // Known two-point rule: nodes +-1 in the standard normal scale.
        let two = NormalRule::gauss_hermite(2);
        assert!((two.nodes[1] - 1.0).abs() < 1e-14 && (two.weights[0] - 0.5).abs() < 1e-14);
        // E[sigmoid(z)] for z ~ N(0, s^2) is 1/2 by symmetry; E[e^z] = e^{s^2 / 2}.
        let rule = NormalRule::gauss_hermite(20);
        assert!((rule.expect(0.0, 3.0, crate::irt::sigmoid) - 0.5).abs() < 1e-14);
        assert!((rule.expect(0.0, 1.0, f64::exp) - 0.5f64.exp()).abs() < 1e-12);
    }

    #[test]
    fn gamma_functions_match_known_values() {
        assert!(ln_gamma(1.0).abs() < 1e-13);
        assert!((ln_gamma(0.5) - PI.sqrt().ln()).abs() < 1e-13);
        assert!((ln_gamma(10.0) - 362880f64.ln()).abs() < 1e-11);
        assert!(
            (ln_gamma(1e6)
                - (1e6 * (1e6f64.ln() - 1.0) - 0.5 * 1e6f64.ln()
                    + 0.5 * (2.0 * PI).ln()
                    + 1.0 / 12e6))
                .abs()
                < 1e-6
        );
        const EULER: f64 = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + EULER).abs() < 1e-13);
        assert!((digamma(0.5) + EULER + 2.0 * 2f64.ln()).abs() < 1e-13);
        // psi(x + 1) = psi(x) + 1/x.
        assert!((digamma(3.7) - digamma(2.7) - 1.0 / 2.7).abs() < 1e-13);
    }
}
