//! Transparent huge pages for fresh body chunks, where the kernel offers them on request.
//!
//! A fresh 4 MiB chunk is faulted in page by page as the body is copied into it: 1024 faults
//! with 4 KiB pages, 2 with huge ones. With `transparent_hugepage=madvise` (a common default)
//! the kernel only uses huge pages for ranges that ask for them. Advice only: where it is
//! refused or unsupported nothing changes but speed.
#![allow(unsafe_code)]

/// Huge page size on x86-64 and most arm64 kernels.
const HUGE: usize = 2 << 20;

/// Asks for huge pages over the 2 MiB-aligned part of `buf`'s allocation (its whole
/// capacity), before anything is written to it.
pub(crate) fn advise(buf: &mut Vec<u8>) {
    let start = buf.as_mut_ptr() as usize;
    let end = start + buf.capacity();
    let aligned = start.div_ceil(HUGE) * HUGE;
    if aligned + HUGE > end {
        return;
    }
    let len = (end - aligned) / HUGE * HUGE;
    // SAFETY: [aligned, aligned + len) lies inside `buf`'s allocation, which we own and keep;
    // MADV_HUGEPAGE changes how the kernel backs those pages, never their contents, and
    // touches no memory.
    let rc = unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
    if rc != 0 {
        tracing::trace!(error = %std::io::Error::last_os_error(), "MADV_HUGEPAGE refused");
    }
}
