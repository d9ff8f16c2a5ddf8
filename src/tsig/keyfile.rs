//! `tsig-keygen` files: `key "name" { algorithm hmac-sha256; secret "..."; };`
//! (the named.conf key statement; several per file; `//`, `#` and `/* */`
//! comments).

use std::{
    io,
    path::{Path, PathBuf},
};

use data_encoding::BASE64;

use super::{Algorithm, Key};
use crate::dns::{NameError, parse_name};

/// Why a key file could not be used: where, and what is wrong there.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {kind}")]
pub struct KeyFileError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0 for the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub kind: KeyStatementError,
}

/// What is wrong in a file of named.conf `key` statements.
#[derive(Debug, thiserror::Error)]
pub enum KeyStatementError {
    /// The file cannot be read.
    #[error("cannot read: {0}")]
    Read(io::Error),
    /// A `/*` comment without its `*/`.
    #[error("unterminated /* comment")]
    UnterminatedComment,
    /// A `"` without its closing `"`.
    #[error("unterminated string")]
    UnterminatedString,
    /// A line break inside a quoted string.
    #[error("newline in a string")]
    NewlineInString,
    /// A statement other than `key`.
    #[error("expected `key`, found {found}")]
    NotKey {
        /// What was there instead.
        found: Token,
    },
    /// `key` without a name.
    #[error("key without a name")]
    NoName,
    /// No `{` after the key name.
    #[error("key {name:?}: expected `{{`")]
    NoOpen {
        /// The key name as written.
        name: String,
    },
    /// The file ends inside the statement.
    #[error("key {name:?}: missing `}}`")]
    NoClose {
        /// The key name as written.
        name: String,
    },
    /// `algorithm` or `secret` without a value.
    #[error("key {name:?}: {clause} without a value")]
    NoValue {
        /// The key name as written.
        name: String,
        /// `algorithm` or `secret`.
        clause: String,
    },
    /// No `;` after a clause.
    #[error("key {name:?}: expected `;` after {clause}")]
    NoSemicolon {
        /// The key name as written.
        name: String,
        /// `algorithm` or `secret`.
        clause: String,
    },
    /// An algorithm other than HMAC-SHA256/384/512.
    #[error(
        "key {name:?}: algorithm {algorithm:?} is not supported (hmac-sha256, hmac-sha384, hmac-sha512)"
    )]
    UnsupportedAlgorithm {
        /// The key name as written.
        name: String,
        /// The algorithm as written.
        algorithm: String,
    },
    /// A secret that is not base64.
    #[error("key {name:?}: secret is not base64: {source}")]
    SecretNotBase64 {
        /// The key name as written.
        name: String,
        /// Where decoding stopped.
        source: data_encoding::DecodeError,
    },
    /// A secret of no octets.
    #[error("key {name:?}: empty secret")]
    EmptySecret {
        /// The key name as written.
        name: String,
    },
    /// Something other than `algorithm`, `secret` or `}` in the statement.
    #[error("key {name:?}: unexpected {found}")]
    Unexpected {
        /// The key name as written.
        name: String,
        /// What was there.
        found: Token,
    },
    /// The key name is not a domain name (RFC 8945 §4.2: it is one).
    #[error(transparent)]
    KeyName(#[from] NameError),
    /// `algorithm` or `secret` missing.
    #[error("key {name:?}: needs both `algorithm` and `secret`")]
    Incomplete {
        /// The key name as written.
        name: String,
    },
    /// Not one `key` statement in the file.
    #[error("no key statement")]
    NoKey,
}

/// One token of a key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A bare word (`key`, `algorithm`, `hmac-sha256`).
    Word(String),
    /// A quoted string, without the quotes.
    Quoted(String),
    /// `{`.
    Open,
    /// `}`.
    Close,
    /// `;`.
    Semicolon,
}

/// How an error names a token: punctuation and keyword-like words as they
/// are; any other word and every quoted string only by kind and length, so
/// a secret in a mangled file never reaches a log.
impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keyword = |w: &str| {
            w.len() <= 20
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        match self {
            Token::Word(w) if keyword(w) => write!(f, "`{w}`"),
            Token::Word(w) => write!(f, "a word of {} characters", w.chars().count()),
            Token::Quoted(q) => write!(f, "a quoted string of {} characters", q.chars().count()),
            Token::Open => f.write_str("`{`"),
            Token::Close => f.write_str("`}`"),
            Token::Semicolon => f.write_str("`;`"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, (usize, KeyStatementError)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                loop {
                    match chars.next() {
                        None => return Err((line, KeyStatementError::UnterminatedComment)),
                        Some('\n') => line += 1,
                        Some('/') if prev == '*' => break,
                        Some(c) => prev = c,
                    }
                }
            }
            '{' => out.push((line, Token::Open)),
            '}' => out.push((line, Token::Close)),
            ';' => out.push((line, Token::Semicolon)),
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err((line, KeyStatementError::UnterminatedString)),
                        Some('"') => break,
                        Some('\n') => return Err((line, KeyStatementError::NewlineInString)),
                        Some(c) => s.push(c),
                    }
                }
                out.push((line, Token::Quoted(s)));
            }
            c => {
                let mut s = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || "{};\"".contains(n) {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                out.push((line, Token::Word(s)));
            }
        }
    }
    Ok(out)
}

/// Parses every `key` statement of a file.
pub fn parse_key_file(path: &Path) -> Result<Vec<Key>, KeyFileError> {
    let err = |(line, kind): (usize, KeyStatementError)| KeyFileError {
        file: path.to_path_buf(),
        line,
        kind,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err((0, KeyStatementError::Read(e))))?;
    parse_key_text(path, &text)
}

/// Parses every `key` statement of `text`, read from `path` (named in errors).
pub(crate) fn parse_key_text(path: &Path, text: &str) -> Result<Vec<Key>, KeyFileError> {
    let err = |(line, kind): (usize, KeyStatementError)| KeyFileError {
        file: path.to_path_buf(),
        line,
        kind,
    };
    let tokens = tokenize(text).map_err(err)?;
    let mut tokens = tokens.iter().peekable();
    let mut keys = Vec::new();
    while let Some((line, token)) = tokens.next() {
        keys.push(key_statement(*line, token, &mut tokens).map_err(err)?);
    }
    if keys.is_empty() {
        return Err(err((0, KeyStatementError::NoKey)));
    }
    Ok(keys)
}

/// The tokens of a file, each with its line.
type Tokens<'a> = std::iter::Peekable<std::slice::Iter<'a, (usize, Token)>>;

/// One `key "name" { algorithm NAME; secret "BASE64"; };` statement, from
/// its first token (at `line`) on.
fn key_statement(
    line: usize,
    first: &Token,
    tokens: &mut Tokens<'_>,
) -> Result<Key, (usize, KeyStatementError)> {
    if !matches!(first, Token::Word(w) if w == "key") {
        let found = first.clone();
        return Err((line, KeyStatementError::NotKey { found }));
    }
    let name = match tokens.next() {
        Some((_, Token::Quoted(n) | Token::Word(n))) => n.clone(),
        _ => return Err((line, KeyStatementError::NoName)),
    };
    if !matches!(tokens.next(), Some((_, Token::Open))) {
        return Err((line, KeyStatementError::NoOpen { name }));
    }
    let mut algorithm = None;
    let mut secret = None;
    loop {
        let Some((l, token)) = tokens.next() else {
            return Err((line, KeyStatementError::NoClose { name }));
        };
        let l = *l;
        let clause = match token {
            Token::Close => break,
            Token::Word(w) if w == "algorithm" || w == "secret" => w,
            other => {
                let found = other.clone();
                return Err((l, KeyStatementError::Unexpected { name, found }));
            }
        };
        let value = clause_value(&name, clause, tokens).map_err(|kind| (l, kind))?;
        if clause == "algorithm" {
            let named = Algorithm::from_name(&value);
            algorithm = Some(named.ok_or_else(|| {
                let (name, algorithm) = (name.clone(), value.clone());
                (
                    l,
                    KeyStatementError::UnsupportedAlgorithm { name, algorithm },
                )
            })?);
        } else {
            let bytes = BASE64.decode(value.as_bytes()).map_err(|source| {
                let name = name.clone();
                (l, KeyStatementError::SecretNotBase64 { name, source })
            })?;
            if bytes.is_empty() {
                return Err((l, KeyStatementError::EmptySecret { name }));
            }
            secret = Some(bytes);
        }
    }
    tokens.next_if(|(_, t)| *t == Token::Semicolon);
    let key_name = parse_name(&name).map_err(|e| (line, e.into()))?;
    let (Some(algorithm), Some(secret)) = (algorithm, secret) else {
        return Err((line, KeyStatementError::Incomplete { name }));
    };
    Ok(Key::new(key_name, algorithm, &secret))
}

/// The value of an `algorithm` or `secret` clause, and the `;` after it.
fn clause_value(
    name: &str,
    clause: &str,
    tokens: &mut Tokens<'_>,
) -> Result<String, KeyStatementError> {
    let (name, clause) = (name.to_string(), clause.to_string());
    let value = match tokens.next() {
        Some((_, Token::Quoted(v) | Token::Word(v))) => v.clone(),
        _ => return Err(KeyStatementError::NoValue { name, clause }),
    };
    if !matches!(tokens.next(), Some((_, Token::Semicolon))) {
        return Err(KeyStatementError::NoSemicolon { name, clause });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> (usize, String) {
        let tmp = tempfile::tempdir().expect("tmp");
        let file = tmp.path().join("k.key");
        std::fs::write(&file, text).expect("write");
        let e = parse_key_file(&file).expect_err("refused");
        (e.line, e.kind.to_string())
    }

    #[test]
    fn refusals_never_show_the_secret() {
        let secret = "YpbnOapa/XuGGvTDCPj33ehLkOpZPmOOq7AIL2tSRcs=";
        for text in [
            format!("{secret};"),
            format!("\"{secret}\";"),
            format!("key x {{ algorithm hmac-sha256; {secret}; }};"),
            format!("key x {{ algorithm hmac-sha256; \"{secret}\"; }};"),
            format!("key x {{ algorithm hmac-sha256; secret {secret} }};"),
        ] {
            let (_, message) = error_of(&text);
            assert!(!message.contains("YpbnOapa"), "{text:?} -> {message}");
        }
    }

    #[test]
    fn every_refusal_names_its_line_and_key() {
        for (text, line, message) in [
            ("", 0, "no key statement"),
            ("options { };", 1, "expected `key`, found `options`"),
            ("key", 1, "key without a name"),
            ("key x;", 1, "key \"x\": expected `{`"),
            ("key x {\n", 1, "key \"x\": missing `}`"),
            ("key x {\n secret }", 2, "key \"x\": secret without a value"),
            (
                "key x {\n secret \"c2VjcmV0\" }",
                2,
                "key \"x\": expected `;` after secret",
            ),
            ("key x {\n secret \"\"; };", 2, "key \"x\": empty secret"),
            ("key x { foo; };", 1, "key \"x\": unexpected `foo`"),
            (
                "key x { secret \"c2VjcmV0\"; };",
                1,
                "key \"x\": needs both `algorithm` and `secret`",
            ),
            ("/* open", 1, "unterminated /* comment"),
            ("key \"x\n", 1, "newline in a string"),
        ] {
            assert_eq!(error_of(text), (line, message.to_string()), "{text:?}");
        }
    }
}
