//! `internals_pub!`: one definition that is `pub` with the `internals` feature and
//! `pub(crate)` without.

/// Declares the item inside — a function or method, trait, struct, enum or constant — `pub`
/// with the `internals` feature and `pub(crate)` without: plumbing this crate uses itself
/// that snapseal's own crates (the CLI, archive, tests, benchmarks) use too, and that is no
/// part of the API an embedder is promised. Without the feature, rustdoc does not list it.
/// One item per invocation.
macro_rules! internals_pub {
    ($(#[$attr:meta])* $kw:ident $($rest:tt)*) => {
        #[cfg(feature = "internals")]
        $(#[$attr])*
        pub $kw $($rest)*

        #[cfg(not(feature = "internals"))]
        $(#[$attr])*
        #[allow(dead_code)]
        pub(crate) $kw $($rest)*
    };
}
