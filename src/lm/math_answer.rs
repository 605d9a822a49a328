//! Grading MATH answers as lm-eval-harness's `minerva_math` and `leaderboard_math_*` tasks do
//! (their `exact_match_original`): the final answer is pulled out of the text, normalised by
//! the rules of Lewkowycz et al. (2022), appendix D, and two answers count as equal when the
//! normalised strings are equal or their values are.
//!
//! lm-eval compares values with sympy (`parse_latex`, then `simplify(a - b) == 0`). Here a small
//! evaluator of numeric LaTeX (numbers, `+ - * /`, `^`, `\frac`, `\dfrac`, `\tfrac`, `\sqrt`,
//! `\pi`, `\cdot`, `\times`, braces and parentheses) stands in for it: `0.5` equals
//! `\frac{1}{2}` and `\frac{\sqrt{2}}{2}` equals `\frac{1}{\sqrt{2}}`, while answers with
//! variables, intervals or sets are equal only when their normalised text is.

use std::sync::LazyLock;

use regex::Regex;

/// The final answer of a model's text: the content of its last `\boxed{...}` (or `\fbox`),
/// else the answer of Minerva's closing sentence "Final Answer: The final answer is X. I hope
/// it is correct.", else the whole text.
pub fn final_answer(text: &str) -> &str {
    if let Some(boxed) = last_boxed(text) {
        return boxed;
    }
    static SENTENCE: LazyLock<Regex> = LazyLock::new(|| {
        // lm-eval's pattern as it is, its dots unescaped.
        Regex::new(r"Final Answer: The final answer is(.*?). I hope it is correct.")
            .expect("valid pattern")
    });
    // lm-eval appends the closing words, so a text cut off after the answer still counts.
    let closed = format!("{text}I hope it is correct.");
    if let Some(c) = SENTENCE.captures(&closed).and_then(|c| c.get(1)) {
        let (start, end) = (c.start(), c.end().min(text.len()));
        if start <= end {
            return text[start..end].trim();
        }
    }
    text
}

/// The content of the last `\boxed{...}` or `\fbox{...}`, braces matched; for the spaced
/// form `\boxed 5$` the text after `\boxed ` up to the next `$`.
pub fn last_boxed(text: &str) -> Option<&str> {
    if let Some(at) = text.rfind("\\boxed ") {
        let rest = &text[at + "\\boxed ".len()..];
        return Some(rest.split('$').next().unwrap_or(rest));
    }
    let (at, name) = match text.rfind("\\boxed") {
        Some(at) => (at, "\\boxed"),
        None => (text.rfind("\\fbox")?, "\\fbox"),
    };
    let after = &text[at + name.len()..];
    let body = after.strip_prefix('{')?;
    let mut depth = 1usize;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&body[..i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// Minerva's replacements, in order.
const SUBSTITUTIONS: [(&str, &str); 10] = [
    ("an ", ""),
    ("a ", ""),
    (".$", "$"),
    ("\\$", ""),
    ("\\ ", ""),
    (" ", ""),
    ("mbox", "text"),
    (",\\text{and}", ","),
    ("\\text{and}", ","),
    ("\\text{m}", "\\text{}"),
];

/// Minerva's removed words and marks (units among them), in order. Words (all letters) go
/// only where they are not part of a LaTeX command, so `\\left` keeps its `ft`.
const REMOVED: [&str; 42] = [
    "square",
    "ways",
    "integers",
    "dollars",
    "mph",
    "inches",
    "ft",
    "hours",
    "km",
    "units",
    "\\ldots",
    "sue",
    "points",
    "feet",
    "minutes",
    "digits",
    "cents",
    "degrees",
    "cm",
    "gm",
    "pounds",
    "meters",
    "meals",
    "edges",
    "students",
    "childrentickets",
    "multiples",
    "\\text{s}",
    "\\text{.}",
    "\\text{\ns}",
    "\\text{}^2",
    "\\text{}^3",
    "\\text{\n}",
    "\\text{}",
    "\\mathrm{th}",
    "^\\circ",
    "^{\\circ}",
    "\\;",
    ",\\!",
    "{,}",
    "\"",
    "\\dots",
];

/// Normalises a final answer by Minerva's rules as lm-eval-harness 0.4.13's `minerva_math`
/// applies them: the part after the last `=`; unit words standing alone removed; the
/// substitutions; the removals (words outside LaTeX commands only); the content of `$...$`,
/// `\text{}`, `\textbf{}`, `\overline{}` and `\boxed{}`; shorthand `\frac12`, `\sqrt2` and
/// `\sqrt[3]8` written out; no `$`; and `100,000` as `100000` (only true thousands groups,
/// so the tuple `0,1` stays).
pub fn normalize(answer: &str) -> String {
    static PATTERNS: LazyLock<[(Regex, &'static str); 8]> = LazyLock::new(|| {
        let re = |p: &str| Regex::new(p).expect("valid pattern");
        [
            (re(r"(.*?)(\$)(.*?)(\$)(.*)"), "$$${3}$$"),
            (re(r"(\\text\{)(.*?)(\})"), "${2}"),
            (re(r"(\\textbf\{)(.*?)(\})"), "${2}"),
            (re(r"(\\overline\{)(.*?)(\})"), "${2}"),
            (re(r"(\\boxed\{)(.*)(\})"), "${2}"),
            (re(r"(frac)([^{])(.)"), "frac{${2}}{${3}}"),
            (re(r"(sqrt)(\[[^\]]*\])(\w)"), "${1}${2}{${3}}"),
            // lm-eval's (sqrt)(?!\[)([^{]): not a brace, not an index.
            (re(r"(sqrt)([^{\[])"), "sqrt{${2}}"),
        ]
    });
    static COMMAND: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\\[a-zA-Z]+").expect("valid pattern"));
    static THOUSANDS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^-?\d{1,3}(,\d{3})+$").expect("valid pattern"));
    // Each unit word with its `\bword\b` pattern, compiled once.
    static WORDS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
        REMOVED
            .iter()
            .filter(|w| is_word(w))
            .map(|w| Regex::new(&format!(r"\b{}\b", regex::escape(w))).expect("valid pattern"))
            .collect()
    });
    let mut s = answer.rsplit('=').next().unwrap_or(answer).to_string();
    for pattern in WORDS.iter() {
        s = remove_standalone(&s, pattern);
    }
    for (from, to) in SUBSTITUTIONS {
        s = s.replace(from, to);
    }
    for removed in REMOVED {
        s = if is_word(removed) {
            // Only in the text between LaTeX commands.
            let mut out = String::with_capacity(s.len());
            let mut last = 0;
            for command in COMMAND.find_iter(&s) {
                out.push_str(&s[last..command.start()].replace(removed, ""));
                out.push_str(command.as_str());
                last = command.end();
            }
            out.push_str(&s[last..].replace(removed, ""));
            out
        } else {
            s.replace(removed, "")
        };
    }
    for (pattern, replacement) in PATTERNS.iter() {
        s = pattern.replace_all(&s, *replacement).into_owned();
    }
    s = s.replace('$', "");
    if THOUSANDS.is_match(&s) {
        s = s.replace(',', "");
    }
    s
}

/// Matches of `pattern` (a `\bword\b`) removed unless a backslash is before them
/// (lm-eval's `(?<!\\)\bword\b`; Rust's regex has no look-behind).
fn remove_standalone(s: &str, pattern: &Regex) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for m in pattern.find_iter(s) {
        if s[..m.start()].ends_with('\\') {
            continue;
        }
        out.push_str(&s[last..m.start()]);
        last = m.end();
    }
    out.push_str(&s[last..]);
    out
}

/// Whether a removed expression is a word (all letters): lm-eval's `str.isalpha()`.
fn is_word(w: &str) -> bool {
    !w.is_empty() && w.chars().all(char::is_alphabetic)
}

/// Whether two normalised answers are the same: equal text, or equal values.
pub fn equivalent(a: &str, b: &str) -> bool {
    if a.trim() == b.trim() {
        return true;
    }
    match (value(a), value(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => false,
    }
}

/// `math_equal`: the prediction's final answer against the target's (a target holding a
/// `\boxed{}`, such as a full solution, gives its boxed part), both normalised.
pub fn math_equal(prediction: &str, target: &str) -> bool {
    let target = last_boxed(target).unwrap_or(target);
    equivalent(&normalize(final_answer(prediction)), &normalize(target))
}

/// The value of a numeric LaTeX expression, if the whole text is one.
pub fn value(text: &str) -> Option<f64> {
    let mut parser = Parser {
        s: text.trim().as_bytes(),
        at: 0,
    };
    let v = parser.expr()?;
    parser.skip_space();
    (parser.at == parser.s.len() && v.is_finite()).then_some(v)
}

/// Recursive descent over: expr = term (('+' | '-') term)*; term = unary (('*' | '/' |
/// '\cdot' | '\times') unary | implicit product power)*; unary = '-' unary | power;
/// power = atom ('^' unary)?; atom = number | '(' expr ')' | '{' expr '}' |
/// '\frac' atom atom | '\sqrt' atom | '\pi'.
struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.at < self.s.len() && self.s[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.s[self.at..].starts_with(token.as_bytes()) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.s.get(self.at).copied()
    }

    fn expr(&mut self) -> Option<f64> {
        let mut v = self.term()?;
        loop {
            if self.eat("+") {
                v += self.term()?;
            } else if self.eat("-") {
                v -= self.term()?;
            } else {
                return Some(v);
            }
        }
    }

    fn term(&mut self) -> Option<f64> {
        let mut v = self.unary()?;
        loop {
            if self.eat("*") || self.eat("\\cdot") || self.eat("\\times") {
                v *= self.unary()?;
            } else if self.eat("/") {
                v /= self.unary()?;
            } else if matches!(self.peek(), Some(b'(' | b'{' | b'\\'))
                && !self.s[self.at..].starts_with(b"\\cdot")
                && !self.s[self.at..].starts_with(b"\\times")
            {
                // An implicit product such as 2\sqrt{3} or 3\pi.
                v *= self.power()?;
            } else {
                return Some(v);
            }
        }
    }

    /// A minus sign binds looser than `^`: -3^2 is -9.
    fn unary(&mut self) -> Option<f64> {
        if self.eat("-") {
            return Some(-self.unary()?);
        }
        self.power()
    }

    fn power(&mut self) -> Option<f64> {
        let base = self.atom()?;
        if self.eat("^") {
            Some(base.powf(self.unary()?))
        } else {
            Some(base)
        }
    }

    fn atom(&mut self) -> Option<f64> {
        if self.eat("(") {
            let v = self.expr()?;
            return self.eat(")").then_some(v);
        }
        if self.eat("{") {
            let v = self.expr()?;
            return self.eat("}").then_some(v);
        }
        for frac in ["\\frac", "\\dfrac", "\\tfrac"] {
            if self.eat(frac) {
                let numerator = self.atom()?;
                return Some(numerator / self.atom()?);
            }
        }
        if self.eat("\\sqrt") {
            return Some(self.atom()?.sqrt());
        }
        if self.eat("\\pi") {
            return Some(std::f64::consts::PI);
        }
        self.number()
    }

    /// Digits with an optional decimal point (`.5` too); a single digit after `\frac` is an
    /// atom of its own (`\frac12`).
    fn number(&mut self) -> Option<f64> {
        self.skip_space();
        let start = self.at;
        let mut seen_point = false;
        while let Some(&c) = self.s.get(self.at) {
            if c.is_ascii_digit() {
                self.at += 1;
            } else if c == b'.' && !seen_point {
                seen_point = true;
                self.at += 1;
            } else {
                break;
            }
        }
        std::str::from_utf8(&self.s[start..self.at])
            .ok()
            .filter(|t| !t.is_empty() && *t != ".")
            .and_then(|t| t.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_answers_are_found_with_their_braces() {
        assert_eq!(
            last_boxed("so \\boxed{1} then \\boxed{\\frac{1}{2}}."),
            Some("\\frac{1}{2}")
        );
        assert_eq!(last_boxed("\\fbox{7}"), Some("7"));
        assert_eq!(last_boxed("the answer is $\\boxed 5$."), Some("5"));
        assert_eq!(last_boxed("\\boxed{unclosed"), None);
        assert_eq!(last_boxed("no box"), None);
        assert_eq!(
            final_answer("Final Answer: The final answer is $12$. I hope it is correct."),
            "$12$"
        );
        assert_eq!(final_answer("Final Answer: The final answer is 3. "), "3");
        assert_eq!(final_answer("just 4"), "just 4");
    }

    #[test]
    fn values_of_numeric_latex() {
        let close = |text: &str, want: f64| {
            let got = value(text).unwrap_or(f64::NAN);
            assert!((got - want).abs() < 1e-12, "{text}: {got} vs {want}");
        };
        close("\\frac{1}{2}", 0.5);
        close("\\dfrac{3}{4}", 0.75);
        close("\\frac{\\sqrt{2}}{2}", 2f64.sqrt() / 2.0);
        close("2\\sqrt{3}", 2.0 * 3f64.sqrt());
        close("-3^2", -9.0);
        close("(1+2)\\cdot4", 12.0);
        close("3\\pi", 3.0 * std::f64::consts::PI);
        close(".5", 0.5);
        assert_eq!(value("x+1"), None);
        assert_eq!(value("(1,2)"), None);
        assert_eq!(value(""), None);
        assert_eq!(value("\\frac{1}{0}"), None);
    }

    /// The table of pairs in tests/fixtures/math_answers.tsv: prediction, target, equal.
    fn pairs() -> Vec<(&'static str, &'static str, bool)> {
        include_str!("../../tests/fixtures/math_answers.tsv")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                assert_eq!(f.len(), 3, "{l:?}");
                (f[0], f[1], f[2] == "true")
            })
            .collect()
    }

    #[test]
    fn the_table_of_pairs() {
        let pairs = pairs();
        assert!(pairs.len() >= 40);
        let wrong: Vec<String> = pairs
            .iter()
            .filter(|(p, t, want)| math_equal(p, t) != *want)
            .map(|(p, t, want)| {
                format!(
                    "{p:?} vs {t:?}: want {want}, normalised {:?} and {:?}",
                    normalize(final_answer(p)),
                    normalize(last_boxed(t).unwrap_or(t))
                )
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn normalisation_follows_minerva() {
        assert_eq!(normalize("x = 5"), "5");
        assert_eq!(normalize("\\$1,234"), "1234");
        assert_eq!(normalize("\\frac12"), "\\frac{1}{2}");
        assert_eq!(normalize("\\sqrt2"), "\\sqrt{2}");
        assert_eq!(normalize("5 \\text{ cm}^2"), "5");
        // Unit words are not taken out of LaTeX commands: \left keeps its "ft".
        assert_eq!(normalize("\\left(1,2\\right)"), "\\left(1,2\\right)");
        assert_eq!(normalize("2\\pi cm"), "2\\pi");
        assert_eq!(normalize("\\sqrt[3]8"), "\\sqrt[3]{8}");
        // Only thousands groups lose their commas: a tuple keeps them.
        assert_eq!(normalize("0,1"), "0,1");
        assert_eq!(normalize("-12,345"), "-12345");
    }
}
