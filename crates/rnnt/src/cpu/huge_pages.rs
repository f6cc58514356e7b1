//! Transparent huge pages for the large buffers the backend writes: the page advice.
//!
//! A fresh gradient buffer (from `torch.empty`, `numpy.empty`, `calloc`) is mapped lazily: the
//! first write to each 4 KiB page faults into the kernel, which zeroes the page. For a gradient of
//! hundreds of MB that is hundreds of thousands of faults, costing as much as the pass itself.
//! Asking for transparent huge pages first (where the system leaves them to `madvise`, the common
//! default) makes that 512 times fewer faults; the advice changes no contents and is ignored
//! where it does not apply.

/// Buffers smaller than this are left alone (a few faults cost less than the system call).
const ADVISE_MIN_BYTES: usize = 16 << 20;

/// Advises the kernel to back `buffer` with huge pages (Linux; a no-op elsewhere or on error).
pub fn advise_huge_pages<T>(buffer: &mut [T]) {
    let bytes = std::mem::size_of_val(buffer);
    if bytes < ADVISE_MIN_BYTES {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        const HUGE_PAGE: usize = 2 << 20;
        let start = (buffer.as_mut_ptr() as usize).next_multiple_of(HUGE_PAGE);
        let end = (buffer.as_mut_ptr() as usize + bytes) / HUGE_PAGE * HUGE_PAGE;
        if end > start {
            // SAFETY: [start, end) lies inside `buffer`, which we borrow exclusively; MADV_HUGEPAGE
            // only changes how the range is backed, never its contents. The result is ignored:
            // the advice is optional.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
}
