//! Turning generated text into an answer and scoring it, as lm-eval-harness does: stop
//! strings, regex answer filters (take the first or the last match; a match with groups
//! yields its first non-empty group; no match yields "[invalid]"), and `exact_match` with
//! regexes to ignore, case and punctuation folding.

use regex::Regex;

use super::{LmError, Result};

/// What a filter returns when nothing matches (lm-eval's fallback).
pub const INVALID: &str = "[invalid]";

/// Cuts `text` at the earliest stop string; says whether one was found.
pub fn truncate_at_stop<'a>(text: &'a str, stops: &[String]) -> (&'a str, bool) {
    let cut = stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min();
    match cut {
        Some(at) => (&text[..at], true),
        None => (text, false),
    }
}

/// Which match a filter keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    First,
    Last,
}

/// A regex answer filter.
#[derive(Debug, Clone)]
pub struct AnswerFilter {
    pattern: Regex,
    take: Take,
}

impl AnswerFilter {
    pub fn new(pattern: &str, take: Take) -> Result<Self> {
        let pattern = Regex::new(pattern)
            .map_err(|e| LmError::Invalid(format!("answer filter {pattern:?}: {e}")))?;
        Ok(Self { pattern, take })
    }

    /// The paper's GSM8K filters: strict (the sentence its format ends with) and flexible
    /// (the last number-like run).
    pub fn gsm8k_strict() -> Self {
        Self::new(r"So the answer is (\-?[0-9\.\,]+).", Take::First).expect("valid pattern")
    }

    pub fn gsm8k_flexible() -> Self {
        Self::new(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", Take::Last).expect("valid pattern")
    }

    /// MMLU-Pro: the first option letter in the output.
    pub fn first_letter() -> Self {
        Self::new(r"[A-J]", Take::First).expect("valid pattern")
    }

    pub fn apply(&self, text: &str) -> String {
        let matches: Vec<String> = self
            .pattern
            .captures_iter(text)
            .map(|c| {
                if c.len() == 1 {
                    c[0].to_string()
                } else {
                    (1..c.len())
                        .filter_map(|g| c.get(g).map(|m| m.as_str()))
                        .find(|s| !s.is_empty())
                        .unwrap_or("")
                        .to_string()
                }
            })
            .collect();
        let chosen = match self.take {
            Take::First => matches.first(),
            Take::Last => matches.last(),
        };
        chosen.map_or_else(|| INVALID.to_string(), |s| s.trim().to_string())
    }
}

/// lm-eval's `exact_match` options.
#[derive(Debug, Clone, Default)]
pub struct ExactMatch {
    pub regexes_to_ignore: Vec<Regex>,
    pub ignore_case: bool,
    pub ignore_punctuation: bool,
}

impl ExactMatch {
    /// The paper's GSM8K comparison: strip `,`, `$`, everything up to `#### `, a trailing `.`;
    /// ignore case.
    pub fn gsm8k() -> Self {
        Self {
            regexes_to_ignore: [r",", r"\$", r"(?s).*#### ", r"\.$"]
                .iter()
                .map(|p| Regex::new(p).expect("valid pattern"))
                .collect(),
            ignore_case: true,
            ignore_punctuation: false,
        }
    }

    fn normalise(&self, text: &str) -> String {
        let mut s = text.to_string();
        for r in &self.regexes_to_ignore {
            s = r.replace_all(&s, "").into_owned();
        }
        if self.ignore_case {
            s = s.to_lowercase();
        }
        if self.ignore_punctuation {
            s.retain(|c| !c.is_ascii_punctuation());
        }
        s
    }

    pub fn matches(&self, prediction: &str, reference: &str) -> bool {
        self.normalise(prediction) == self.normalise(reference)
    }
}

/// lm-eval's multiple-choice metrics from each choice's summed log-likelihood: `acc` picks the
/// largest; `acc_norm` the largest per character of the choice's text. Ties go to the first.
pub fn choose(log_likelihoods: &[f64], choices: &[String]) -> (usize, usize) {
    let argmax = |score: &dyn Fn(usize) -> f64| {
        (0..log_likelihoods.len()).fold(0, |best, k| if score(k) > score(best) { k } else { best })
    };
    let acc = argmax(&|k| log_likelihoods[k]);
    let acc_norm = argmax(&|k| log_likelihoods[k] / choices[k].chars().count().max(1) as f64);
    (acc, acc_norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_cut_at_the_earliest() {
        let stops = vec![
            "Q:".to_string(),
            "</s>".to_string(),
            "<|im_end|>".to_string(),
        ];
        assert_eq!(
            truncate_at_stop("12 apples.<|im_end|>Q: next", &stops),
            ("12 apples.", true)
        );
        assert_eq!(
            truncate_at_stop("no stop here", &stops),
            ("no stop here", false)
        );
        assert_eq!(truncate_at_stop("x", &[String::new()]), ("x", false));
    }

    #[test]
    fn gsm8k_filters_and_exact_match() {
        let text = "She has 3 + 4 = 7 apples, costing $1,200. So the answer is 1,207. Then 9";
        // The group is greedy and the pattern's final `.` takes the space, as in Python's re.
        assert_eq!(AnswerFilter::gsm8k_strict().apply(text), "1,207.");
        assert_eq!(
            AnswerFilter::gsm8k_strict().apply("So the answer is 12."),
            "12"
        );
        assert_eq!(AnswerFilter::gsm8k_flexible().apply(text), "9");
        assert_eq!(
            AnswerFilter::gsm8k_flexible().apply("costs $1,200."),
            "$1,200."
        );
        assert_eq!(AnswerFilter::gsm8k_strict().apply("I think 5"), INVALID);
        let em = ExactMatch::gsm8k();
        assert!(em.matches("1,207.", "Step... #### 1207"));
        assert!(em.matches("$1,200.", "1200"));
        assert!(!em.matches("1208", "1207"));
        assert!(!em.matches(INVALID, "1207"));
    }

    #[test]
    fn mmlu_pro_takes_the_first_letter_and_bbh_the_whole_output() {
        assert_eq!(
            AnswerFilter::first_letter().apply("the answer is (C) not D"),
            "C"
        );
        let plain = ExactMatch::default();
        assert!(plain.matches("True", "True") && !plain.matches("true", "True"));
        let folded = ExactMatch {
            ignore_case: true,
            ignore_punctuation: true,
            ..Default::default()
        };
        assert!(folded.matches("(A).", "a"));
    }

    #[test]
    fn acc_and_acc_norm_follow_lm_eval() {
        // Choice 0 has the larger total (-2 > -5), choice 1 the larger per character
        // (-5 / 16 > -2 / 5); equal totals go to the first choice.
        let choices = vec!["Paris".to_string(), "the city of Lyon".to_string()];
        assert_eq!(choose(&[-2.0, -5.0], &choices), (0, 1));
        assert_eq!(choose(&[-1.0, -1.0], &choices), (0, 1));
    }

    #[test]
    fn a_bad_pattern_is_named() {
        let e = AnswerFilter::new("([0-9", Take::First).unwrap_err();
        assert!(e.to_string().contains("answer filter \"([0-9\""), "{e}");
    }
}
