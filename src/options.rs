//! Options JSON objects into their typed structs, with one wording of errors for every
//! function: each options struct is a serde type with `deny_unknown_fields`, read once here.

use serde::de::DeserializeOwned;
use thiserror::Error;

/// What is wrong with an options object.
#[derive(Debug, Error)]
pub enum OptionsError {
    #[error("options: malformed JSON: {0}")]
    Malformed(#[source] serde_json::Error),

    #[error("options must be a JSON object, got {0}")]
    NotAnObject(String),

    /// A key or value serde refused, at its path (`train.epochs`); the root's path is empty.
    #[error("{}{message}", if path.is_empty() { "options: ".to_string() } else { format!("option `{path}`: ") })]
    Invalid { path: String, message: String },
}

/// Parses `json` (an empty string is `{}`) into `T`.
pub fn parse<T: DeserializeOwned>(json: &str) -> Result<T, OptionsError> {
    from_value(&parse_object(json)?)
}

/// Parses `json` (an empty string is `{}`) as a JSON object, before it is typed (a caller
/// may merge it over defaults first).
pub fn parse_object(json: &str) -> Result<serde_json::Value, OptionsError> {
    let json = json.trim();
    let value: serde_json::Value = if json.is_empty() {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_str(json).map_err(OptionsError::Malformed)?
    };
    require_object(&value)?;
    Ok(value)
}

fn require_object(value: &serde_json::Value) -> Result<(), OptionsError> {
    if value.is_object() {
        return Ok(());
    }
    let shown: String = value.to_string().chars().take(80).collect();
    Err(OptionsError::NotAnObject(shown))
}

/// Deserializes a JSON object into `T`; errors name the key's path.
pub fn from_value<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, OptionsError> {
    require_object(value)?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        // serde_path_to_error writes the root as ".".
        let outer = e.path().to_string();
        let mut outer = if outer == "." { String::new() } else { outer };
        let message = e.into_inner().to_string();
        // An unknown key's path ends in the key itself, which the message names already.
        if message.starts_with("unknown field") {
            outer.truncate(outer.rfind('.').unwrap_or(0));
        }
        // A nested struct read by `nested` (a `try_from` conversion) reports its own path
        // in front of its message: join the two.
        match message
            .strip_prefix(NESTED)
            .and_then(|m| m.split_once(NESTED))
        {
            Some((inner, message)) => OptionsError::Invalid {
                path: [outer.as_str(), inner]
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .collect::<Vec<_>>()
                    .join("."),
                message: message.to_string(),
            },
            None => OptionsError::Invalid {
                path: outer,
                message,
            },
        }
    })
}

/// Marks the path a nested read puts in front of its message.
const NESTED: &str = "\u{1}";

/// Deserializes a nested options object inside a `try_from` conversion, as [`from_value`]
/// does, into a message that [`from_value`] turns back into a joined path.
pub fn nested<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    from_value(&value).map_err(|e| match e {
        OptionsError::Invalid { path, message } => format!("{NESTED}{path}{NESTED}{message}"),
        other => other.to_string(),
    })
}

/// A check of a nested options object's value, as [`nested`] reports it.
pub fn nested_invalid(path: &str, message: impl std::fmt::Display) -> String {
    format!("{NESTED}{path}{NESTED}{message}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        epochs: usize,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(default)]
        seed: u64,
        train: Option<Inner>,
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse::<Outer>(r#"{"seed": "x"}"#).unwrap_err().to_string();
        assert!(e.starts_with("option `seed`: invalid type: string"), "{e}");
        let e = parse::<Outer>(r#"{"train": {"epochs": -1}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("option `train.epochs`: invalid value"), "{e}");
        let e = parse::<Outer>(r#"{"sed": 1}"#).unwrap_err().to_string();
        assert!(
            e.starts_with("options: unknown field `sed`, expected"),
            "{e}"
        );
        let e = parse::<Outer>(r#"{"train": {"epoch": 1}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("option `train`: unknown field `epoch`"),
            "{e}"
        );
        let e = parse::<Outer>("[1]").unwrap_err().to_string();
        assert_eq!(e, "options must be a JSON object, got [1]");
        let e = parse::<Outer>("{").unwrap_err().to_string();
        assert!(e.starts_with("options: malformed JSON"), "{e}");
        assert_eq!(
            parse::<Outer>("").unwrap(),
            Outer {
                seed: 0,
                train: None
            }
        );
    }
}
