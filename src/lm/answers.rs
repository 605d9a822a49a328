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

/// Which match a filter keeps; in options, `'first'` or `'last'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Take {
    First,
    Last,
}

/// Python's `str.isspace()`: Unicode white space plus the four information separators
/// \x1c-\x1f, which Python counts as space and Rust does not.
pub fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()`.
pub fn python_strip(s: &str) -> &str {
    s.trim_matches(is_python_space)
}

/// Python's `str.rstrip()`.
pub fn python_rstrip(s: &str) -> &str {
    s.trim_end_matches(is_python_space)
}

/// Compiles a pattern written for Python's `re` (as lm-eval's task files are): `\s` and `\S`
/// take Python's meaning (\x1c-\x1f are space); the rest of the syntax the two engines share.
pub fn python_regex(pattern: &str) -> std::result::Result<Regex, regex::Error> {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut in_class = false;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('s') if in_class => out.push_str("\\s\\x1c-\\x1f"),
                Some('s') => out.push_str("[\\s\\x1c-\\x1f]"),
                Some('S') => out.push_str("[^\\s\\x1c-\\x1f]"),
                // Python's end of string.
                Some('Z') => out.push_str("\\z"),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A `]` or `^]` right after the bracket is a literal, not the end.
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().expect("peeked"));
                }
                if chars.peek() == Some(&']') {
                    chars.next();
                    out.push_str("\\]");
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    Regex::new(&out)
}

/// An answer filter, as lm-eval's `take_first` ("none": the output as it is) or its
/// `regex` filter: Python's `re.findall`, the first or last match (`group_select` 0 or -1);
/// with one group the group's text, with several the first non-empty group or, when all are
/// empty, "[invalid]"; no match is "[invalid]"; the answer is `strip()`ped.
#[derive(Debug, Clone)]
pub struct AnswerFilter {
    /// `None`: the raw output, unchanged (not even stripped).
    pattern: Option<Regex>,
    take: Take,
}

impl AnswerFilter {
    pub fn new(pattern: &str, take: Take) -> Result<Self> {
        let pattern = python_regex(pattern)
            .map_err(|e| LmError::Invalid(format!("answer filter {pattern:?}: {e}")))?;
        Ok(Self {
            pattern: Some(pattern),
            take,
        })
    }

    /// lm-eval's "none" filter: the output as generated (cut at the stop strings).
    pub fn none() -> Self {
        Self {
            pattern: None,
            take: Take::First,
        }
    }

    /// The paper's GSM8K filters: strict (the sentence its format ends with) and flexible
    /// (the last number-like run).
    pub fn gsm8k_strict() -> Self {
        Self::new(r"So the answer is (\-?[0-9\.\,]+).", Take::First).expect("valid pattern")
    }

    pub fn gsm8k_flexible() -> Self {
        Self::new(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", Take::Last).expect("valid pattern")
    }

    /// MMLU-Pro as the paper's task file reads it: the first capital A-J anywhere in the
    /// output (regex `([A-J])`), so "Answer: C" gives the `A` of "Answer".
    pub fn first_letter() -> Self {
        Self::new(r"[A-J]", Take::First).expect("valid pattern")
    }

    /// The stricter reading: the first A-J that stands alone as a word ("Answer: C" gives C,
    /// "(C)" and "C." give C).
    pub fn standalone_letter() -> Self {
        Self::new(r"\b([A-J])\b", Take::First).expect("valid pattern")
    }

    pub fn apply(&self, text: &str) -> String {
        let Some(pattern) = &self.pattern else {
            return text.to_string();
        };
        let groups = pattern.captures_len() - 1;
        // What Python's findall yields per match: the match (no group), the group (one), or
        // the groups (several; a group that took no part is "").
        let found = |c: regex::Captures| -> Option<String> {
            match groups {
                0 => Some(c[0].to_string()),
                1 => Some(c.get(1).map_or("", |m| m.as_str()).to_string()),
                _ => (1..=groups)
                    .filter_map(|g| c.get(g).map(|m| m.as_str()))
                    .find(|s| !s.is_empty())
                    .map(str::to_string),
            }
        };
        let chosen = match self.take {
            Take::First => pattern.captures_iter(text).next(),
            Take::Last => pattern.captures_iter(text).last(),
        };
        match chosen.map(found) {
            Some(Some(answer)) => python_strip(&answer).to_string(),
            _ => INVALID.to_string(),
        }
    }
}

/// lm-eval's `exact_match` options (Hugging Face evaluate's metric: each regex removed from
/// both sides with `re.sub`, then `lower()`, then ASCII punctuation removed).
#[derive(Debug, Clone, Default)]
pub struct ExactMatch {
    pub regexes_to_ignore: Vec<Regex>,
    pub ignore_case: bool,
    pub ignore_punctuation: bool,
    /// Graded as MATH answers (`math_answer::math_equal`) after the other steps.
    pub math: bool,
}

impl ExactMatch {
    /// The paper's GSM8K comparison: strip `,`, `$`, everything up to `#### `, a trailing `.`;
    /// ignore case.
    pub fn gsm8k() -> Self {
        Self {
            regexes_to_ignore: [r",", r"\$", r"(?s).*#### ", r"\.$"]
                .iter()
                .map(|p| python_regex(p).expect("valid pattern"))
                .collect(),
            ignore_case: true,
            ignore_punctuation: false,
            math: false,
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

    /// MATH's: the final answers, normalised by Minerva's rules, equal as text or value.
    pub fn math() -> Self {
        Self {
            math: true,
            ..Self::default()
        }
    }

    pub fn matches(&self, prediction: &str, reference: &str) -> bool {
        let (prediction, reference) = (self.normalise(prediction), self.normalise(reference));
        if self.math {
            super::math_answer::math_equal(&prediction, &reference)
        } else {
            prediction == reference
        }
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
        // The paper's filter takes the A of "Answer"; the standalone one the letter.
        assert_eq!(AnswerFilter::first_letter().apply("Answer: C"), "A");
        assert_eq!(AnswerFilter::standalone_letter().apply("Answer: C"), "C");
        assert_eq!(AnswerFilter::standalone_letter().apply("(D)."), "D");
        assert_eq!(AnswerFilter::standalone_letter().apply("CAB"), "[invalid]");
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

    /// lm-eval's filters by their definitions (lm_eval/filters/extraction.py RegexFilter,
    /// selection.py TakeFirstFilter), cases computed by hand.
    #[test]
    fn filters_follow_lm_eval() {
        // "none" keeps the output as it is, whitespace included.
        assert_eq!(AnswerFilter::none().apply("  42 \n"), "  42 \n");
        // No group: the whole match; one group: its text, even when empty.
        let whole = AnswerFilter::new(r"\d+", Take::First).unwrap();
        assert_eq!(whole.apply("a 12 b 34"), "12");
        let one = AnswerFilter::new(r"x(\d*)", Take::Last).unwrap();
        assert_eq!(one.apply("x1 x"), "");
        // Several groups: the first non-empty; all empty is "[invalid]".
        let two = AnswerFilter::new(r"(a*)(b*)c", Take::First).unwrap();
        assert_eq!(two.apply("bbc"), "bb");
        assert_eq!(two.apply("c"), INVALID);
        // The answer is strip()ped as Python strips: \x1c-\x1f count as space.
        let any = AnswerFilter::new(r"=(.*)", Take::First).unwrap();
        assert_eq!(any.apply("= 7\u{1f}\u{a0}"), "7");
        // \s in a pattern is Python's \s.
        let spaced = AnswerFilter::new(r"is\s(\d)", Take::First).unwrap();
        assert_eq!(spaced.apply("is\u{1c}5"), "5");
        let not_space = AnswerFilter::new(r"(\S+)$", Take::First).unwrap();
        assert_eq!(not_space.apply("a b\u{1d}c"), "c");
        let class = AnswerFilter::new(r"([^\s,]+)", Take::Last).unwrap();
        assert_eq!(class.apply("1, 2\u{1e}3"), "3");
        assert_eq!(
            AnswerFilter::new(r"(\d)\Z", Take::First)
                .unwrap()
                .apply("12"),
            "2"
        );
        assert_eq!(python_rstrip("ab \u{1c}\t"), "ab");
    }

    #[test]
    fn a_bad_pattern_is_named() {
        let e = AnswerFilter::new("([0-9", Take::First).unwrap_err();
        assert!(e.to_string().contains("answer filter \"([0-9\""), "{e}");
    }
}
