//! The three-class decision: a multinomial logistic combination of the
//! features in score.rs, one small weight table per language.
//!
//! The weights (3 classes × (11 features + bias) per language, 72 numbers in
//! all) were fitted by [`fit`] on the *train* split of the research data set
//! described in `src/sentiment/data/README.md`; no word, n-gram or per-word
//! weight comes from that data. The test `shipped_weights_are_the_fit_on_the_train_split`
//! refits them when the data is present and prints the constants to paste
//! here if they differ (after a lexicon or rule change).

use super::score::{Features, N_FEATURES};
use super::{Label, Language};

/// Rows: negative, neutral, positive. Columns: the features in
/// `Features::to_array` order, then the bias.
pub(crate) type Weights = [[f64; N_FEATURES + 1]; 3];

pub(crate) const EN_WEIGHTS: Weights = [
    [
        -0.6473, -0.2877, -0.2496, -0.4028, 0.9154, -0.4540, -0.3185, 0.0000, 0.1861, 0.2171,
        1.7391, -0.9611,
    ],
    [
        0.2969, -0.3585, 0.3005, -0.3858, -0.6694, 0.2130, -0.1412, 0.0000, 0.0534, -0.4485,
        -0.7165, 0.5179,
    ],
    [
        0.3504, 0.6463, -0.0509, 0.7886, -0.2460, 0.2410, 0.4597, 0.0000, -0.2395, 0.2314, -1.0226,
        0.4432,
    ],
];
pub(crate) const FR_WEIGHTS: Weights = [
    [
        -0.6215, 0.4743, 0.3919, 0.0520, 0.0170, -0.4010, 0.0720, -0.3722, 0.0511, -0.2757, 2.2247,
        -0.4628,
    ],
    [
        -0.0557, -0.3921, -0.3012, 0.0750, -0.1434, -0.2565, -0.0598, 0.0672, -0.3028, -0.8180,
        -1.5971, 1.4069,
    ],
    [
        0.6772, -0.0822, -0.0907, -0.1270, 0.1264, 0.6574, -0.0121, 0.3050, 0.2518, 1.0937,
        -0.6276, -0.9441,
    ],
];

pub(crate) fn weights(lang: Option<Language>) -> &'static Weights {
    match lang {
        Some(Language::Fr) => &FR_WEIGHTS,
        Some(Language::En) | None => &EN_WEIGHTS,
    }
}

const LABELS: [Label; 3] = [Label::Negative, Label::Neutral, Label::Positive];

/// Class probabilities (negative, neutral, positive).
pub(crate) fn probabilities(features: &Features, w: &Weights) -> [f64; 3] {
    let x = features.to_array();
    let mut logits = [0.0; 3];
    for (c, row) in w.iter().enumerate() {
        logits[c] = row[N_FEATURES] + x.iter().zip(row.iter()).map(|(a, b)| a * b).sum::<f64>();
    }
    softmax(logits)
}

fn softmax(logits: [f64; 3]) -> [f64; 3] {
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exp = logits.map(|l| (l - max).exp());
    let total: f64 = exp.iter().sum();
    exp.map(|e| e / total)
}

/// The most probable label and a score in [-1, 1]: P(positive) − P(negative).
/// Its sign agrees with the label whenever the label is not neutral.
pub(crate) fn decide(features: &Features, w: &Weights) -> (Label, f64) {
    let p = probabilities(features, w);
    let mut best = 1;
    for c in [0, 2] {
        if p[c] > p[best] {
            best = c;
        }
    }
    (LABELS[best], (p[2] - p[0]).clamp(-1.0, 1.0))
}

/// L2 penalty and iterations used for the shipped weights.
#[cfg(test)]
const FIT_L2: f64 = 1e-3;
#[cfg(test)]
const FIT_ITERATIONS: usize = 3000;

/// Fits the weights by full-batch gradient descent on the softmax loss with a
/// small L2 penalty (bias not penalised). `samples` are (features, class
/// index 0..3). Only the tests run it: the weights ship as constants.
#[cfg(test)]
fn fit(samples: &[([f64; N_FEATURES], usize)], l2: f64, iterations: usize) -> Weights {
    let mut w: Weights = [[0.0; N_FEATURES + 1]; 3];
    if samples.is_empty() {
        return w;
    }
    let n = samples.len() as f64;
    let rate = 0.5;
    for _ in 0..iterations {
        let mut grad: Weights = [[0.0; N_FEATURES + 1]; 3];
        for (x, y) in samples {
            let mut logits = [0.0; 3];
            for (c, row) in w.iter().enumerate() {
                logits[c] =
                    row[N_FEATURES] + x.iter().zip(row.iter()).map(|(a, b)| a * b).sum::<f64>();
            }
            let p = softmax(logits);
            for c in 0..3 {
                let err = p[c] - f64::from(u8::from(c == *y));
                for j in 0..N_FEATURES {
                    grad[c][j] += err * x[j];
                }
                grad[c][N_FEATURES] += err;
            }
        }
        for c in 0..3 {
            for j in 0..=N_FEATURES {
                let penalty = if j < N_FEATURES { l2 * w[c][j] } else { 0.0 };
                w[c][j] -= rate * (grad[c][j] / n + penalty);
            }
        }
    }
    w
}

/// Renders weights as a Rust constant, for pasting into this file.
#[cfg(test)]
fn render(name: &str, w: &Weights) -> String {
    let mut out = format!("pub(crate) const {name}: Weights = [\n");
    for row in w {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:.4}")).collect();
        out.push_str(&format!("    [{}],\n", cells.join(", ")));
    }
    out.push_str("];\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sentiment::{eval, features_of};

    /// The train split beside the project, when this checkout has it.
    fn train_samples(lang: &str) -> Option<Vec<([f64; N_FEATURES], usize)>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../shared/datasets/sentiment/{lang}-train.tsv"));
        let text = std::fs::read_to_string(path).ok()?;
        let items = eval::parse(&text).ok()?;
        Some(
            items
                .iter()
                .map(|i| (features_of(&i.text).1.to_array(), i.label.index()))
                .collect(),
        )
    }

    #[test]
    fn shipped_weights_are_the_fit_on_the_train_split() {
        let mut stale = String::new();
        for (lang, name, shipped) in [
            ("en", "EN_WEIGHTS", &EN_WEIGHTS),
            ("fr", "FR_WEIGHTS", &FR_WEIGHTS),
        ] {
            let Some(samples) = train_samples(lang) else {
                eprintln!("skipped: ../shared/datasets/sentiment/{lang}-train.tsv not found");
                continue;
            };
            let fitted = fit(&samples, FIT_L2, FIT_ITERATIONS);
            let same = fitted
                .iter()
                .flatten()
                .zip(shipped.iter().flatten())
                .all(|(a, b)| (a - b).abs() < 1e-3);
            if !same {
                stale.push_str(&render(name, &fitted));
            }
        }
        assert!(
            stale.is_empty(),
            "refit differs; paste into model.rs:\n{stale}"
        );
    }

    /// Macro-F1 of predictions `(truth, predicted)` class indices.
    fn macro_f1(pairs: &[(usize, usize)]) -> f64 {
        let mut confusion = [[0usize; 3]; 3];
        for (t, p) in pairs {
            confusion[*t][*p] += 1;
        }
        eval::Report::from_confusion(confusion, [0; 3]).macro_f1
    }

    /// 5-fold cross-validation on the train split (fold = item index mod 5),
    /// with the shipped fit settings: the figure used to choose features.
    fn cross_validate(samples: &[([f64; N_FEATURES], usize)]) -> f64 {
        let mut pairs = Vec::new();
        for fold in 0..5 {
            let train: Vec<_> = samples
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 5 != fold)
                .map(|(_, s)| *s)
                .collect();
            let w = fit(&train, FIT_L2, FIT_ITERATIONS);
            for (i, (x, y)) in samples.iter().enumerate() {
                if i % 5 == fold {
                    let p = probabilities_of(x, &w);
                    let mut best = 1;
                    for c in [0, 2] {
                        if p[c] > p[best] {
                            best = c;
                        }
                    }
                    pairs.push((*y, best));
                }
            }
        }
        macro_f1(&pairs)
    }

    fn probabilities_of(x: &[f64; N_FEATURES], w: &Weights) -> [f64; 3] {
        let mut logits = [0.0; 3];
        for (c, row) in w.iter().enumerate() {
            logits[c] = row[N_FEATURES] + x.iter().zip(row.iter()).map(|(a, b)| a * b).sum::<f64>();
        }
        softmax(logits)
    }

    /// Prints the 5-fold cross-validation macro-F1 on each train split
    /// (slow: run with `--ignored --nocapture`).
    #[test]
    #[ignore = "slow; prints the cross-validation figures"]
    fn cross_validation_on_the_train_split() {
        for lang in ["en", "fr"] {
            if let Some(samples) = train_samples(lang) {
                eprintln!(
                    "{lang}-train 5-fold CV macro_f1={:.4}",
                    cross_validate(&samples)
                );
            }
        }
    }

    #[test]
    fn fit_learns_a_separable_toy_problem() {
        // Three clusters on feature 0: around -1 (negative), 0 (neutral), +1 (positive).
        let mut samples = Vec::new();
        for (class, centre) in [(0usize, -1.0), (1, 0.0), (2, 1.0)] {
            for k in -3..=3 {
                let mut f = [0.0; N_FEATURES];
                f[0] = centre + f64::from(k) * 0.08;
                samples.push((f, class));
            }
        }
        let w = fit(&samples, 0.0, 5000);
        for (x, class) in &samples {
            let features = Features {
                compound: x[0],
                ..Features::default()
            };
            assert_eq!(decide(&features, &w).0, LABELS[*class], "x = {}", x[0]);
        }
    }

    #[test]
    fn score_sign_agrees_with_a_polar_label() {
        for compound in [-0.9, -0.3, 0.0, 0.3, 0.9] {
            for w in [&EN_WEIGHTS, &FR_WEIGHTS] {
                let f = Features {
                    compound,
                    positive: compound.max(0.0),
                    negative: (-compound).max(0.0),
                    ..Features::default()
                };
                let (label, score) = decide(&f, w);
                assert!((-1.0..=1.0).contains(&score));
                match label {
                    Label::Negative => assert!(score < 0.0),
                    Label::Positive => assert!(score > 0.0),
                    Label::Neutral => {}
                }
            }
        }
    }
}
