//! Chat templates: the Jinja `chat_template` of a model's `tokenizer_config.json`, rendered the
//! way transformers' `apply_chat_template` renders it (blocks trimmed and left-stripped, no
//! trailing newline kept, Python string methods such as `.strip()`, `raise_exception`, and
//! `strftime_now` for templates that stamp today's date, as Llama 3.2's does).

use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind};
use serde::Serialize;

use super::{LmError, Result};

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    pub fn user(content: &str) -> Self {
        Self::new("user", content)
    }

    pub fn assistant(content: &str) -> Self {
        Self::new("assistant", content)
    }
}

/// A compiled chat template and the special tokens it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

const NAME: &str = "chat_template";

impl ChatTemplate {
    /// Compiles `source`; `place` names where it came from for error messages.
    pub fn new(source: &str, bos_token: &str, eos_token: &str, place: &str) -> Result<Self> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| template_error(place, e))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| template_error(place, e))?;
        Ok(Self {
            env,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        })
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where the assistant's
    /// reply begins. `extra` adds template variables (e.g. `date_string`).
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        extra: &[(&str, &str)],
    ) -> Result<String> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| template_error("chat template", e))?;
        let mut context: std::collections::BTreeMap<&str, Value> =
            extra.iter().map(|(k, v)| (*k, Value::from(*v))).collect();
        context.insert("messages", Value::from(minijinja::value::Serde(messages)));
        context.insert("add_generation_prompt", Value::from(add_generation_prompt));
        context.insert("bos_token", Value::from(self.bos_token.as_str()));
        context.insert("eos_token", Value::from(self.eos_token.as_str()));
        template
            .render(Value::from_pairs(context))
            .map_err(|e| template_error("chat template", e))
    }

    /// The text before the reply and the reply itself, as the template lays them out for
    /// training: `prompt` ends with the generation prompt, `response` is the rest of the
    /// rendered conversation (the reply and the template's end-of-turn marks).
    pub fn split_pair(&self, prompt: &str, response: &str) -> Result<(String, String)> {
        let head = self.render(&[Message::user(prompt)], true, &[])?;
        let whole = self.render(
            &[Message::user(prompt), Message::assistant(response)],
            false,
            &[],
        )?;
        match whole.strip_prefix(head.as_str()) {
            Some(tail) => Ok((head, tail.to_string())),
            None => Err(LmError::Invalid(
                "the chat template does not render a conversation as its prompt followed by \
                 the reply, so the reply's tokens cannot be told apart"
                    .into(),
            )),
        }
    }
}

fn template_error(place: &str, e: Error) -> LmError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        message.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    LmError::Config {
        place: place.into(),
        message,
    }
}

fn raise_exception(message: String) -> std::result::Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// Python's `datetime.now().strftime(format)` for the directives chat templates use.
fn strftime_now(format: String) -> std::result::Result<String, Error> {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    strftime(&format, seconds)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Formats a UTC time given in seconds since 1970 (`%d %b %B %m %Y %y %H %M %S %%`).
fn strftime(format: &str, seconds: i64) -> std::result::Result<String, Error> {
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let month_name = MONTHS[(month - 1) as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('b') => out.push_str(&month_name[..3]),
            Some('B') => out.push_str(month_name),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            Some('H') => out.push_str(&format!("{:02}", second_of_day / 3600)),
            Some('M') => out.push_str(&format!("{:02}", second_of_day / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", second_of_day % 60)),
            Some('%') => out.push('%'),
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "strftime_now: unsupported directive %{}",
                        other.map(String::from).unwrap_or_default()
                    ),
                ))
            }
        }
    }
    Ok(out)
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + (month <= 2) as i64;
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QWEN25: &str = include_str!("../../tests/fixtures/chat_templates/qwen2.5-instruct.jinja");
    const LLAMA32: &str =
        include_str!("../../tests/fixtures/chat_templates/llama-3.2-instruct.jinja");

    fn qwen() -> ChatTemplate {
        ChatTemplate::new(QWEN25, "", "<|im_end|>", "qwen2.5").unwrap()
    }

    fn llama() -> ChatTemplate {
        ChatTemplate::new(LLAMA32, "<|begin_of_text|>", "<|eot_id|>", "llama-3.2").unwrap()
    }

    #[test]
    fn qwen25_default_system_prompt_and_generation_prompt() {
        let text = qwen()
            .render(&[Message::user("What is 2+2?")], true, &[])
            .unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful \
             assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n\
             <|im_start|>assistant\n"
        );
    }

    #[test]
    fn qwen25_own_system_prompt_and_reply() {
        let messages = [
            Message::new("system", "Be brief."),
            Message::user("Hi"),
            Message::assistant("Hello."),
        ];
        let text = qwen().render(&messages, false, &[]).unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
             <|im_start|>assistant\nHello.<|im_end|>\n"
        );
    }

    #[test]
    fn llama32_dated_header_trimmed_turns() {
        let messages = [
            Message::new("system", "  Be brief. "),
            Message::user(" Hi\n"),
            Message::assistant("Hello."),
        ];
        let text = llama()
            .render(&messages, true, &[("date_string", "29 Nov 2026")])
            .unwrap();
        assert_eq!(
            text,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n\
             Cutting Knowledge Date: December 2023\nToday Date: 29 Nov 2026\n\n\
             Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }

    #[test]
    fn llama32_stamps_today_through_strftime_now() {
        let text = llama().render(&[Message::user("Hi")], false, &[]).unwrap();
        let today = strftime_now("%d %b %Y".into()).unwrap();
        assert!(
            text.contains(&format!("Today Date: {today}\n\n<|eot_id|>")),
            "{text}"
        );
    }

    #[test]
    fn split_pair_separates_reply() {
        let (prompt, response) = qwen().split_pair("Q", "A").unwrap();
        assert!(prompt.ends_with("<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"));
        assert_eq!(response, "A<|im_end|>\n");
    }

    #[test]
    fn raise_exception_and_syntax_errors_are_reported() {
        let t = ChatTemplate::new("{{ raise_exception('no system role') }}", "", "", "t").unwrap();
        let err = t.render(&[], false, &[]).unwrap_err().to_string();
        assert!(err.contains("no system role"), "{err}");
        let err = ChatTemplate::new("{% if %}", "", "", "models/x/tokenizer_config.json")
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("models/x/tokenizer_config.json"), "{err}");
    }

    #[test]
    fn strftime_dates() {
        // 2024-07-26 12:34:56 UTC, and 2000-02-29 (a leap day).
        assert_eq!(
            strftime("%d %b %Y %H:%M:%S", 1_721_997_296).unwrap(),
            "26 Jul 2024 12:34:56"
        );
        assert_eq!(
            strftime("%Y-%m-%d %B", 951_782_400).unwrap(),
            "2000-02-29 February"
        );
        assert!(strftime("%Q", 0).is_err());
    }
}
