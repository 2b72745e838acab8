//! The one rule every name passed to a [`DirHandle`](super::DirHandle) obeys.

use std::io;

/// Accepts only a single file name: non-empty, not `.` or `..`, no `/`, no NUL.
///
/// Anything else could make an `*at` call leave the directory (`../x`, `a/b`) or be cut short
/// by the C string conversion (NUL), so it is refused before any system call is made.
pub(crate) fn check_name(name: &str) -> io::Result<()> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.bytes().any(|b| b == b'/' || b == 0);
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a single file name"),
        ))
    }
}
