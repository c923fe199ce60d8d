//! Splitting an inline command (`SET "a key" 'it''s'`) into arguments with the quoting
//! rules of Redis's `sdssplitargs`, so the gateway reads a typed command exactly as
//! `redis-server` would.
//!
//! Outside quotes, arguments end at space, tab, CR, LF or NUL; leading blanks (any C
//! `isspace` byte) are skipped. In double quotes, `\xHH`, `\n`, `\r`, `\t`, `\b`, `\a`
//! are escapes and `\` before any other byte is that byte. In single quotes only `\'` is
//! an escape. A closing quote must be followed by a blank or the end of the line; a quote
//! left open is an error. A NUL byte ends the line, as in C.

use bytes::Bytes;

/// The quotes of the line do not balance (Redis: "unbalanced quotes in request").
#[derive(Debug, PartialEq, Eq)]
pub(super) struct UnbalancedQuotes;

/// The arguments of one inline line (without its line end). Arguments without quotes
/// are slices of `line`; quoted ones are copied out with their escapes applied.
pub(super) fn split_args(line: &Bytes) -> Result<Vec<Bytes>, UnbalancedQuotes> {
    let s = &line[..];
    // C string semantics: reading past the end yields NUL.
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while p < s.len() && is_space(s[p]) {
            p += 1;
        }
        if at(p) == 0 {
            return Ok(args);
        }
        let start = p;
        // Set once the argument has quotes: from then on its bytes are built here.
        let mut owned: Option<Vec<u8>> = None;
        let mut quote = Quote::None;
        let end = loop {
            let c = at(p);
            let mut done = false;
            match quote {
                Quote::Double => {
                    let buf = owned.get_or_insert_with(Vec::new);
                    if c == b'\\' && at(p + 1) == b'x' && is_hex(at(p + 2)) && is_hex(at(p + 3)) {
                        buf.push(hex(at(p + 2)) << 4 | hex(at(p + 3)));
                        p += 3;
                    } else if c == b'\\' && at(p + 1) != 0 {
                        p += 1;
                        buf.push(match at(p) {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    } else if c == b'"' {
                        closing_quote(at(p + 1))?;
                        done = true;
                    } else if c == 0 {
                        return Err(UnbalancedQuotes);
                    } else {
                        buf.push(c);
                    }
                }
                Quote::Single => {
                    let buf = owned.get_or_insert_with(Vec::new);
                    if c == b'\\' && at(p + 1) == b'\'' {
                        p += 1;
                        buf.push(b'\'');
                    } else if c == b'\'' {
                        closing_quote(at(p + 1))?;
                        done = true;
                    } else if c == 0 {
                        return Err(UnbalancedQuotes);
                    } else {
                        buf.push(c);
                    }
                }
                Quote::None => match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' | b'\'' => {
                        // What came before the quote, unquoted, starts the argument.
                        owned = Some(s[start..p].to_vec());
                        quote = if c == b'"' {
                            Quote::Double
                        } else {
                            Quote::Single
                        };
                    }
                    // Unquoted so far: the argument stays a slice of the line (nothing
                    // unquoted can follow a closing quote).
                    _ => {}
                },
            }
            let here = p;
            if at(p) != 0 {
                p += 1;
            }
            if done {
                break here;
            }
        };
        args.push(match owned {
            Some(bytes) => Bytes::from(bytes),
            None => line.slice(start..end),
        });
    }
}

#[derive(Clone, Copy)]
enum Quote {
    None,
    Double,
    Single,
}

/// A closing quote must end its argument.
fn closing_quote(next: u8) -> Result<(), UnbalancedQuotes> {
    if next != 0 && !is_space(next) {
        return Err(UnbalancedQuotes);
    }
    Ok(())
}

/// C's `isspace` in the "C" locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, UnbalancedQuotes> {
        split_args(&Bytes::copy_from_slice(line))
            .map(|args| args.into_iter().map(|a| a.to_vec()).collect())
    }

    fn ok(line: &[u8]) -> Vec<Vec<u8>> {
        split(line).unwrap()
    }

    // Every expectation below is what redis-server 7.0.15 made of the same inline line
    // (the arguments as `ECHO` returned them).
    #[test]
    fn plain_words() {
        assert_eq!(ok(b"PING"), [b"PING"]);
        assert_eq!(ok(b"  echo   \t x  "), [b"echo".to_vec(), b"x".to_vec()]);
        assert_eq!(
            ok(b"echo a\rb"),
            [b"echo".to_vec(), b"a".to_vec(), b"b".to_vec()]
        );
        assert!(ok(b"").is_empty());
        assert!(ok(b"  \t ").is_empty());
        // Vertical tab is skipped before a word but does not end one.
        assert_eq!(ok(b"\x0becho\x0bx"), [b"echo\x0bx"]);
    }

    #[test]
    fn double_quotes_and_escapes() {
        assert_eq!(ok(br#"echo "a b""#)[1], b"a b");
        assert_eq!(
            ok(br#"echo "\x41\n\t\r\b\a\z\\""#)[1],
            b"A\n\t\r\x08\x07z\\"
        );
        // An incomplete \x escape is a plain escape of `x`.
        assert_eq!(ok(br#"echo "\x4""#)[1], b"x4");
        assert_eq!(ok(br#"echo """#)[1], b"");
        // Quotes may start inside a word; the closing one ends it.
        assert_eq!(ok(br#"echo ab"c d""#)[1], b"abc d");
        // A closing quote followed by a vertical tab is allowed (isspace).
        assert_eq!(ok(b"echo \"a\"\x0b"), [b"echo".to_vec(), b"a".to_vec()]);
    }

    #[test]
    fn single_quotes() {
        assert_eq!(ok(br"echo 'c\'d'")[1], b"c'd");
        assert_eq!(ok(br"echo 'a\nb'")[1], br"a\nb");
        assert_eq!(ok(b"echo ''")[1], b"");
    }

    #[test]
    fn unbalanced_quotes() {
        for line in [
            &br#"set a "b"#[..],
            br#"echo "a"b"#,
            br"echo 'a'b",
            br"echo 'abc",
            br#"echo "abc\"#,
            b"echo \"a\x00b\"",
        ] {
            assert_eq!(split(line), Err(UnbalancedQuotes), "{line:?}");
        }
    }

    #[test]
    fn nul_ends_the_line() {
        assert_eq!(ok(b"echo a\x00b c"), [b"echo".to_vec(), b"a".to_vec()]);
    }

    #[test]
    fn unquoted_words_share_the_line() {
        let line = Bytes::from_static(b"GET key");
        let args = split_args(&line).unwrap();
        assert_eq!(args[1].as_ptr(), line[4..].as_ptr());
    }
}
