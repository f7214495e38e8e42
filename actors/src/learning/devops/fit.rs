//! Weighted L2 logistic regression fitted by Newton's method, and the running statistics
//! that standardise features per project.
//!
//! Features are named numbers of any scale: each is read as `sign(x)·ln(1 + |x|)` and
//! standardised with its project's own running mean and spread (over every change observed,
//! no outcome needed). Standardising per project is what lets one project's experience speak
//! for another whose changes are larger or smaller on the whole.

/// The most features one model uses (the most common ones).
pub const MAX_MODEL_FEATURES: usize = 48;

/// `sign(x)·ln(1 + |x|)`.
pub fn squash(x: f64) -> f64 {
    x.signum() * x.abs().ln_1p()
}

/// A running mean and variance (Welford).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Running {
    n: f64,
    mean: f64,
    m2: f64,
}

impl Running {
    /// Adds one value.
    pub fn add(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }

    /// Values added.
    pub fn count(&self) -> f64 {
        self.n
    }

    /// `x` in standard deviations from the mean (0 while nothing varies).
    pub fn standardise(&self, x: f64) -> f64 {
        if self.n < 2.0 {
            return 0.0;
        }
        let sd = (self.m2 / self.n).sqrt();
        if sd < 1e-9 { 0.0 } else { (x - self.mean) / sd }
    }
}

/// One labelled, standardised example (intercept's 1 last).
pub struct Row {
    /// Features, then 1.
    pub x: Vec<f64>,
    /// Whether the change failed.
    pub failure: bool,
    /// How much it counts (recent examples more).
    pub weight: f64,
}

/// Weights over standardised features, intercept last, fitted with balanced classes: the
/// log-odds they give are shifted by the log-odds of the failure rate to read as a
/// probability.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogReg {
    /// Weights (intercept last).
    pub w: Vec<f64>,
    /// Weighted share of failures among the examples fitted.
    pub base_rate: f64,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// The log-odds of a probability, kept finite.
pub fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// The probability of log-odds `z`.
pub fn probability(z: f64) -> f64 {
    sigmoid(z)
}

impl LogReg {
    /// The balanced log-odds of failure (0: as likely as the base rate says).
    #[cfg(test)]
    pub fn score(&self, x: &[f64]) -> f64 {
        x.iter().zip(&self.w).map(|(a, b)| a * b).sum()
    }

    /// Fits `rows` (each `d` long) with failures and successes weighing half each, and an L2
    /// penalty `lambda` on every weight but the intercept.
    pub fn fit(rows: &[Row], d: usize, lambda: f64) -> Self {
        let (mut wsum, mut fsum) = (0.0, 0.0);
        for r in rows {
            wsum += r.weight;
            if r.failure {
                fsum += r.weight;
            }
        }
        let base_rate = if wsum > 0.0 { fsum / wsum } else { 0.0 };
        // Balanced: the failures' total weight equals the successes'.
        let (wf, ws) = if fsum > 0.0 && wsum > fsum {
            (0.5 * wsum / fsum, 0.5 * wsum / (wsum - fsum))
        } else {
            (1.0, 1.0)
        };
        let mut w = vec![0.0; d];
        for _ in 0..30 {
            let mut g = vec![0.0; d];
            let mut h = vec![0.0; d * d];
            for r in rows {
                let z: f64 = r.x.iter().zip(&w).map(|(a, b)| a * b).sum();
                let p = sigmoid(z);
                let (y, cw) = if r.failure { (1.0, wf) } else { (0.0, ws) };
                let weight = r.weight * cw;
                let res = weight * (p - y);
                let s = weight * (p * (1.0 - p)).max(1e-9);
                for i in 0..d {
                    g[i] += res * r.x[i];
                    let sx = s * r.x[i];
                    for j in i..d {
                        h[i * d + j] += sx * r.x[j];
                    }
                }
            }
            for i in 0..d {
                let l = if i + 1 == d { 1e-6 } else { lambda };
                g[i] += l * w[i];
                h[i * d + i] += l;
                for j in 0..i {
                    h[i * d + j] = h[j * d + i];
                }
            }
            let Some(step) = solve(&mut h, &g, d) else {
                break;
            };
            let mut largest: f64 = 0.0;
            for i in 0..d {
                w[i] -= step[i];
                largest = largest.max(step[i].abs());
            }
            if largest < 1e-7 {
                break;
            }
        }
        Self { w, base_rate }
    }
}

/// Solves `h · x = g` for a symmetric positive definite `h` (Cholesky); None if it is not.
fn solve(h: &mut [f64], g: &[f64], d: usize) -> Option<Vec<f64>> {
    for j in 0..d {
        let mut s = h[j * d + j];
        for k in 0..j {
            s -= h[j * d + k] * h[j * d + k];
        }
        if s <= 0.0 || !s.is_finite() {
            return None;
        }
        let l = s.sqrt();
        h[j * d + j] = l;
        for i in j + 1..d {
            let mut t = h[i * d + j];
            for k in 0..j {
                t -= h[i * d + k] * h[j * d + k];
            }
            h[i * d + j] = t / l;
        }
    }
    let mut y = vec![0.0; d];
    for i in 0..d {
        let mut t = g[i];
        for k in 0..i {
            t -= h[i * d + k] * y[k];
        }
        y[i] = t / h[i * d + i];
    }
    let mut x = vec![0.0; d];
    for i in (0..d).rev() {
        let mut t = y[i];
        for k in i + 1..d {
            t -= h[k * d + i] * x[k];
        }
        x[i] = t / h[i * d + i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_which_feature_raises_the_risk() {
        // Failures come with large values of the first feature; the second is noise.
        let rows: Vec<Row> = (0..400)
            .map(|i| {
                let a = (i % 50) as f64;
                let b = ((i * 7) % 13) as f64;
                Row {
                    x: vec![(a - 25.0) / 14.0, (b - 6.0) / 3.7, 1.0],
                    failure: a > 40.0 || i % 17 == 0,
                    weight: 1.0,
                }
            })
            .collect();
        let m = LogReg::fit(&rows, 3, 1.0);
        assert!(m.w[0] > 1.0, "the risky feature weighs: {:?}", m.w);
        assert!(m.w[1].abs() < m.w[0] / 4.0, "the noise does not: {:?}", m.w);
        assert!(m.score(&[1.7, 0.0, 1.0]) > 0.0 && m.score(&[-1.5, 0.0, 1.0]) < 0.0);
        assert!((m.base_rate - 0.24).abs() < 0.05, "{}", m.base_rate);
    }

    #[test]
    fn running_statistics_standardise() {
        let mut r = Running::default();
        for x in [1.0, 2.0, 3.0, 4.0, 5.0] {
            r.add(x);
        }
        assert!((r.standardise(3.0)).abs() < 1e-12);
        assert!((r.standardise(3.0 + 2f64.sqrt()) - 1.0).abs() < 1e-9);
        assert_eq!(Running::default().standardise(7.0), 0.0);
    }
}
