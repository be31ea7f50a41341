//! Measures the scorer on a labeled file (`herald sentiment eval FILE`):
//! one `label<TAB>text` item per line, label `negative`, `neutral` or
//! `positive`. The report gives precision, recall, F1 and support per class,
//! the confusion matrix, the detected languages, and ends with
//! `accuracy=0.xx macro_f1=0.xx n=N`.

use std::fmt;

use super::{analyze, Label, Language};

/// One labeled item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub label: Label,
    pub text: String,
}

/// Parses `label<TAB>text` lines. Empty lines are skipped; anything else that
/// does not fit is an error naming its line (1-based).
pub fn parse(input: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let number = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let Some((label, text)) = line.split_once('\t') else {
            return Err(format!(
                "line {number}: expected `label<TAB>text`, found no tab"
            ));
        };
        let label = Label::parse(label.trim()).ok_or_else(|| {
            format!(
                "line {number}: unknown label {:?} (expected negative, neutral or positive)",
                label.trim()
            )
        })?;
        items.push(Item {
            label,
            text: text.to_string(),
        });
    }
    if items.is_empty() {
        return Err("no labeled line found (expected `label<TAB>text` lines)".into());
    }
    Ok(items)
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassStats {
    pub label: Label,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Items whose true label is this class.
    pub support: usize,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Negative, neutral, positive.
    pub classes: [ClassStats; 3],
    /// `confusion[truth][predicted]`, classes in the order above.
    pub confusion: [[usize; 3]; 3],
    /// Items detected as French, English, and neither.
    pub languages: [usize; 3],
    pub accuracy: f64,
    pub macro_f1: f64,
    pub n: usize,
}

/// Scores every item of `input` with [`analyze`] and compares with its label.
pub fn evaluate(input: &str) -> Result<Report, String> {
    let items = parse(input)?;
    let mut confusion = [[0usize; 3]; 3];
    let mut languages = [0usize; 3];
    for item in &items {
        let s = analyze(&item.text);
        confusion[item.label.index()][s.label.index()] += 1;
        languages[match s.language {
            Some(Language::Fr) => 0,
            Some(Language::En) => 1,
            None => 2,
        }] += 1;
    }
    Ok(Report::from_confusion(confusion, languages))
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl Report {
    /// Builds the figures from a confusion matrix (`[truth][predicted]`).
    pub fn from_confusion(confusion: [[usize; 3]; 3], languages: [usize; 3]) -> Report {
        let n: usize = confusion.iter().flatten().sum();
        let classes = Label::ALL.map(|label| {
            let c = label.index();
            let correct = confusion[c][c];
            let predicted: usize = confusion.iter().map(|row| row[c]).sum();
            let support: usize = confusion[c].iter().sum();
            let precision = ratio(correct, predicted);
            let recall = ratio(correct, support);
            let f1 = if precision + recall == 0.0 {
                0.0
            } else {
                2.0 * precision * recall / (precision + recall)
            };
            ClassStats {
                label,
                precision,
                recall,
                f1,
                support,
            }
        });
        let correct: usize = (0..3).map(|c| confusion[c][c]).sum();
        Report {
            classes,
            confusion,
            languages,
            accuracy: ratio(correct, n),
            macro_f1: classes.iter().map(|c| c.f1).sum::<f64>() / 3.0,
            n,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "class     precision  recall  f1    support")?;
        for c in &self.classes {
            writeln!(
                f,
                "{:<9} {:<10.2} {:<7.2} {:<5.2} {}",
                c.label.as_str(),
                c.precision,
                c.recall,
                c.f1,
                c.support
            )?;
        }
        writeln!(
            f,
            "confusion (rows: truth, columns: predicted negative/neutral/positive)"
        )?;
        for (label, row) in Label::ALL.iter().zip(self.confusion.iter()) {
            writeln!(
                f,
                "{:<9} {:>5} {:>5} {:>5}",
                label.as_str(),
                row[0],
                row[1],
                row[2]
            )?;
        }
        writeln!(
            f,
            "detected language: fr={} en={} unsure={}",
            self.languages[0], self.languages[1], self.languages[2]
        )?;
        writeln!(
            f,
            "accuracy={:.2} macro_f1={:.2} n={}",
            self.accuracy, self.macro_f1, self.n
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_the_bad_line() {
        let err = parse("positive\tgreat\nnegative no tab here\n").err();
        assert_eq!(
            err.as_deref(),
            Some("line 2: expected `label<TAB>text`, found no tab")
        );
        let err = parse("\npositive\tgreat\nhappy\tgreat\n").err();
        assert_eq!(
            err.as_deref(),
            Some("line 3: unknown label \"happy\" (expected negative, neutral or positive)")
        );
        assert!(parse("\n\n").is_err());
        let items = parse("neutral\tle train part\n\npositive\tmerci\tbeaucoup\n");
        assert_eq!(
            items.ok(),
            Some(vec![
                Item {
                    label: Label::Neutral,
                    text: "le train part".into()
                },
                Item {
                    label: Label::Positive,
                    text: "merci\tbeaucoup".into()
                },
            ])
        );
    }

    #[test]
    fn figures_follow_the_confusion_matrix() {
        // truth negative: 3 right, 1 as neutral; neutral: 2 right, 2 as
        // positive; positive: 4 right.
        let r = Report::from_confusion([[3, 1, 0], [0, 2, 2], [0, 0, 4]], [0, 12, 0]);
        assert_eq!(r.n, 12);
        assert!((r.accuracy - 9.0 / 12.0).abs() < 1e-9);
        assert!((r.classes[0].precision - 1.0).abs() < 1e-9);
        assert!((r.classes[0].recall - 0.75).abs() < 1e-9);
        assert!((r.classes[2].precision - 4.0 / 6.0).abs() < 1e-9);
        assert_eq!(r.classes[1].support, 4);
        let f1_neg = 2.0 * 0.75 / 1.75;
        let f1_neu = 2.0 * (2.0 / 3.0) * 0.5 / (2.0 / 3.0 + 0.5);
        let f1_pos = 2.0 * (4.0 / 6.0) / (4.0 / 6.0 + 1.0);
        assert!((r.macro_f1 - (f1_neg + f1_neu + f1_pos) / 3.0).abs() < 1e-9);
    }

    #[test]
    fn report_ends_with_the_summary_line() {
        let input = "positive\tThank you so much, this is wonderful!\n\
                     negative\tThis is awful, I hate it.\n\
                     neutral\tThe meeting is on Tuesday.\n";
        let report = evaluate(input).map(|r| r.to_string()).unwrap_or_default();
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(
            lines.first().copied(),
            Some("class     precision  recall  f1    support")
        );
        assert!(lines[1].starts_with("negative "));
        assert!(lines[2].starts_with("neutral "));
        assert!(lines[3].starts_with("positive "));
        let last = lines.last().copied().unwrap_or("");
        let fields: Vec<&str> = last.split(' ').collect();
        assert_eq!(fields.len(), 3, "{last}");
        assert!(fields[0].starts_with("accuracy=0.") || fields[0] == "accuracy=1.00");
        assert!(fields[1].starts_with("macro_f1="));
        assert_eq!(fields[2], "n=3");
        assert_eq!(fields[0].len(), "accuracy=0.00".len());
    }

    /// Macro-F1 on a dev split beside the project (research data, never
    /// shipped), or `None` when this checkout does not have it.
    fn dev_macro_f1(lang: &str) -> Option<f64> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../shared/datasets/sentiment/{lang}-dev.tsv"));
        let Ok(input) = std::fs::read_to_string(&path) else {
            eprintln!("skipped: {} not found", path.display());
            return None;
        };
        let report = evaluate(&input);
        assert!(report.is_ok(), "{lang}-dev.tsv does not parse: {report:?}");
        let report = report.ok()?;
        eprintln!("{lang}-dev.tsv:\n{report}");
        Some(report.macro_f1)
    }

    #[test]
    fn english_dev_split_reaches_the_target() {
        if let Some(f1) = dev_macro_f1("en") {
            assert!(f1 >= 0.60, "en-dev macro_f1 = {f1:.3}");
        }
    }

    #[test]
    fn french_dev_split_reaches_the_target() {
        if let Some(f1) = dev_macro_f1("fr") {
            assert!(f1 >= 0.60, "fr-dev macro_f1 = {f1:.3}");
        }
    }
}
