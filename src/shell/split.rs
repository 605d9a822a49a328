//! Splits SQL text into statements at `;`, respecting quotes and comments, and keeps each
//! statement's first line number so errors can point at it. A line starting with `\` at a
//! statement boundary is a shell command.

/// One piece of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A SQL statement, without its trailing `;`.
    Sql { text: String, line: usize },
    /// A backslash command such as `\d responses`.
    Command { text: String, line: usize },
}

impl Piece {
    pub fn line(&self) -> usize {
        match self {
            Piece::Sql { line, .. } | Piece::Command { line, .. } => *line,
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Piece::Sql { text, .. } | Piece::Command { text, .. } => text,
        }
    }

    /// The first non-empty line, for error messages.
    pub fn first_line(&self) -> &str {
        self.text()
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("--"))
            .unwrap_or("")
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Code,
    Single,
    Double,
    LineComment,
    BlockComment,
}

/// Splits complete statements off `text`; returns them and the unfinished rest (text after
/// the last `;` that still holds something other than whitespace and comments).
pub fn split(text: &str, first_line: usize) -> (Vec<Piece>, String) {
    let mut pieces = Vec::new();
    let mut state = State::Code;
    let mut current = String::new();
    let mut start_line = first_line;
    let mut line = first_line;
    let mut has_code = false;
    // Where the block comment being read started, when it came before any code.
    let mut comment_start = 0;
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        // A backslash command: only at a statement boundary, first thing on its line.
        if state == State::Code && !has_code && c == '\\' {
            let end = chars[i..]
                .iter()
                .position(|&c| c == '\n')
                .map(|p| i + p)
                .unwrap_or(chars.len());
            let command: String = chars[i..end].iter().collect();
            pieces.push(Piece::Command {
                text: command.trim().trim_end_matches(';').trim().to_string(),
                line,
            });
            current.clear();
            i = end;
            continue;
        }
        match state {
            State::Code => match c {
                '\'' => state = State::Single,
                '"' => state = State::Double,
                '-' if next == Some('-') => state = State::LineComment,
                '/' if next == Some('*') => {
                    state = State::BlockComment;
                    if !has_code {
                        comment_start = i;
                    }
                }
                ';' => {
                    if has_code {
                        pieces.push(Piece::Sql {
                            text: current.trim().to_string(),
                            line: start_line,
                        });
                    }
                    current.clear();
                    has_code = false;
                    i += 1;
                    continue;
                }
                _ => {}
            },
            State::Single if c == '\'' => state = State::Code,
            State::Double if c == '"' => state = State::Code,
            State::LineComment if c == '\n' => state = State::Code,
            State::BlockComment if c == '*' && next == Some('/') => {
                if has_code {
                    current.push_str("*/");
                }
                state = State::Code;
                i += 2;
                continue;
            }
            _ => {}
        }
        if !has_code
            && !c.is_whitespace()
            && matches!(state, State::Code | State::Single | State::Double)
        {
            has_code = true;
            start_line = line;
        }
        if c == '\n' {
            line += 1;
        }
        if has_code {
            current.push(c);
        }
        i += 1;
    }
    // A block comment still open is unfinished text too: the shell waits for its end, and a
    // script ending in one fails on it instead of silently dropping what follows `/*`.
    let rest = if has_code {
        current
    } else if state == State::BlockComment {
        chars[comment_start..].iter().collect()
    } else {
        String::new()
    };
    (pieces, rest)
}

/// Splits a whole script; an unterminated last statement counts as complete.
pub fn split_script(text: &str) -> Vec<Piece> {
    let (mut pieces, rest) = split(text, 1);
    if !rest.trim().is_empty() {
        let (_, line) = last_line_of(text, &rest);
        pieces.push(Piece::Sql {
            text: rest.trim().to_string(),
            line,
        });
    }
    pieces
}

/// Line where the unfinished `rest` starts within `text` (it is a suffix, up to whitespace).
fn last_line_of(text: &str, rest: &str) -> (usize, usize) {
    let start = text.rfind(rest.trim()).unwrap_or(0);
    (start, text[..start].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(pieces: &[Piece]) -> Vec<(&str, usize)> {
        pieces.iter().map(|p| (p.text(), p.line())).collect()
    }

    #[test]
    fn an_open_block_comment_is_unfinished_text() {
        let script = "SELECT 1;\n/* never closed\nDROP TABLE t;\nSELECT 2;";
        let pieces = split_script(script);
        assert_eq!(pieces.len(), 2, "{pieces:?}");
        assert_eq!(pieces[1].line(), 2);
        assert!(pieces[1].text().starts_with("/* never closed"));
        // Interactively, the shell keeps reading until the comment ends.
        let (done, rest) = split("/* open\nSELECT 1;", 1);
        assert!(done.is_empty() && rest.starts_with("/* open"));
    }

    #[test]
    fn statements_and_lines() {
        let script = "-- header\nSELECT 1;\n\nSELECT 'a;b'\n  , \"x;y\" /* ; */ FROM t;\nSELECT 3";
        let pieces = split_script(script);
        assert_eq!(
            sql(&pieces),
            vec![
                ("SELECT 1", 2),
                ("SELECT 'a;b'\n  , \"x;y\" /* ; */ FROM t", 4),
                ("SELECT 3", 6)
            ]
        );
    }

    #[test]
    fn commands_at_boundaries() {
        let pieces = split_script("\\d responses\nSELECT '\\d' ;\n\\timing\n");
        assert_eq!(
            pieces[0],
            Piece::Command {
                text: "\\d responses".into(),
                line: 1
            }
        );
        assert_eq!(
            pieces[1],
            Piece::Sql {
                text: "SELECT '\\d'".into(),
                line: 2
            }
        );
        assert_eq!(
            pieces[2],
            Piece::Command {
                text: "\\timing".into(),
                line: 3
            }
        );
    }

    #[test]
    fn unfinished_rest() {
        let (pieces, rest) = split("SELECT 1; SELECT\n 2", 1);
        assert_eq!(pieces.len(), 1);
        assert_eq!(rest.trim(), "SELECT\n 2");
        let (pieces, rest) = split("SELECT 1; -- done\n", 1);
        assert_eq!(pieces.len(), 1);
        assert!(rest.is_empty());
    }
}
