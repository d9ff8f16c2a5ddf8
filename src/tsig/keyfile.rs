//! `tsig-keygen` files: `key "name" { algorithm hmac-sha256; secret "..."; };`
//! (the named.conf key statement; several per file; `//`, `#` and `/* */`
//! comments).

use std::path::{Path, PathBuf};

use data_encoding::BASE64;

use super::{Algorithm, Key};
use crate::dns::parse_name;

/// Why a key file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct KeyFileError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0 for the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Semicolon,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, (usize, String)> {
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
                        None => return Err((line, "unterminated /* comment".into())),
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
                        None => return Err((line, "unterminated string".into())),
                        Some('"') => break,
                        Some('\n') => return Err((line, "newline in a string".into())),
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
    let err = |line: usize, message: String| KeyFileError {
        file: path.to_path_buf(),
        line,
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(0, format!("cannot read: {e}")))?;
    let tokens = tokenize(&text).map_err(|(line, message)| err(line, message))?;
    let mut keys = Vec::new();
    let mut i = 0;
    let next = |i: &mut usize| -> Option<&(usize, Token)> {
        let t = tokens.get(*i);
        *i += 1;
        t
    };
    while let Some((line, token)) = next(&mut i) {
        let line = *line;
        match token {
            Token::Word(w) if w == "key" => {}
            other => return Err(err(line, format!("expected `key`, found {other:?}"))),
        }
        let name = match next(&mut i) {
            Some((_, Token::Quoted(n) | Token::Word(n))) => n.clone(),
            _ => return Err(err(line, "key without a name".into())),
        };
        if !matches!(next(&mut i), Some((_, Token::Open))) {
            return Err(err(line, format!("key {name:?}: expected `{{`")));
        }
        let mut algorithm = None;
        let mut secret = None;
        loop {
            let Some((l, token)) = next(&mut i) else {
                return Err(err(line, format!("key {name:?}: missing `}}`")));
            };
            let l = *l;
            match token {
                Token::Close => break,
                Token::Word(w) if w == "algorithm" || w == "secret" => {
                    let value = match next(&mut i) {
                        Some((_, Token::Quoted(v) | Token::Word(v))) => v.clone(),
                        _ => return Err(err(l, format!("key {name:?}: {w} without a value"))),
                    };
                    if !matches!(next(&mut i), Some((_, Token::Semicolon))) {
                        return Err(err(l, format!("key {name:?}: expected `;` after {w}")));
                    }
                    if w == "algorithm" {
                        algorithm = Some(Algorithm::from_name(&value).ok_or_else(|| {
                            err(l, format!("key {name:?}: algorithm {value:?} is not supported (hmac-sha256, hmac-sha384, hmac-sha512)"))
                        })?);
                    } else {
                        let bytes = BASE64.decode(value.as_bytes()).map_err(|e| {
                            err(l, format!("key {name:?}: secret is not base64: {e}"))
                        })?;
                        if bytes.is_empty() {
                            return Err(err(l, format!("key {name:?}: empty secret")));
                        }
                        secret = Some(bytes);
                    }
                }
                other => return Err(err(l, format!("key {name:?}: unexpected {other:?}"))),
            }
        }
        if matches!(tokens.get(i), Some((_, Token::Semicolon))) {
            i += 1;
        }
        let key_name = parse_name(&name).map_err(|e| err(line, e.to_string()))?;
        let (Some(algorithm), Some(secret)) = (algorithm, secret) else {
            return Err(err(
                line,
                format!("key {name:?}: needs both `algorithm` and `secret`"),
            ));
        };
        keys.push(Key::new(key_name, algorithm, &secret));
    }
    if keys.is_empty() {
        return Err(err(0, "no key statement".into()));
    }
    Ok(keys)
}
