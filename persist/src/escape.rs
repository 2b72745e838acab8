//! [`Escaped`]: names and bytes that came from a file or a directory listing, made safe to
//! print.
//!
//! A file name, an archive entry name, a node name in a remote or a field of a manifest is
//! whatever whoever wrote it chose: terminal escape sequences, carriage returns that overwrite
//! the line, bytes that are not UTF-8. Every message that shows such a value shows it through
//! [`Escaped`], so what a user reads is what is there and nothing else.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Displays bytes with everything but printable text escaped: valid UTF-8 that is not a
/// control character is shown as is; `\\` is doubled; `\n`, `\r`, `\t` are shown as such;
/// every other control character (C0, DEL, C1) and every byte that is not part of valid UTF-8
/// is shown as `\xNN`; a control character above U+00FF and a bidirectional override as
/// `\u{NNNN}`.
#[derive(Clone, Copy)]
pub struct Escaped<'a>(&'a [u8]);

impl<'a> Escaped<'a> {
    /// Escapes arbitrary bytes.
    pub fn bytes(bytes: &'a [u8]) -> Escaped<'a> {
        Escaped(bytes)
    }

    /// Escapes a path (its bytes, as the OS has them).
    pub fn path(path: &'a Path) -> Escaped<'a> {
        Escaped(path.as_os_str().as_bytes())
    }

    /// Escapes a string.
    pub fn str(s: &'a str) -> Escaped<'a> {
        Escaped(s.as_bytes())
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '\n' => f.write_str("\\n")?,
                    '\r' => f.write_str("\\r")?,
                    '\t' => f.write_str("\\t")?,
                    c if c.is_control() && (c as u32) <= 0xff => write!(f, "\\x{:02x}", c as u32)?,
                    // Bidirectional overrides reorder what follows them on screen.
                    c if c.is_control()
                        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
                    {
                        write!(f, "\\u{{{:04x}}}", c as u32)?
                    }
                    c => write!(f, "{c}")?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_is_shown_as_is_and_everything_else_escaped() {
        assert_eq!(
            Escaped::str("snapshot_10_11.committed").to_string(),
            "snapshot_10_11.committed"
        );
        assert_eq!(Escaped::str("nœud").to_string(), "nœud");
        assert_eq!(
            Escaped::str("a\x1b[31mred\r\n").to_string(),
            "a\\x1b[31mred\\r\\n"
        );
        assert_eq!(Escaped::str("\u{9b}x\u{7f}").to_string(), "\\x9bx\\x7f");
        assert_eq!(
            Escaped::bytes(b"ok\xff\xfe\\").to_string(),
            "ok\\xff\\xfe\\\\"
        );
        assert_eq!(Escaped::str("a\u{202e}b").to_string(), "a\\u{202e}b");
    }
}
