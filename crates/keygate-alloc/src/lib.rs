//! keygate's global allocator: mimalloc, with ordinary requests sent to `mi_malloc`.
//!
//! The `mimalloc` crate's `GlobalAlloc` passes every request to `mi_malloc_aligned`, whose fast
//! path only serves blocks up to 1 KiB; anything larger — the boxed futures of a request's
//! service stack are — took mimalloc's generic aligned path, ≈ 240 instructions each and five
//! per request (callgrind, BENCHMARKS.md). Requests whose alignment every mimalloc block has go
//! to `mi_malloc` instead; only over-aligned ones (rare: cache-padded types) keep the aligned
//! entry points.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as ffi;

/// Every mimalloc block is aligned to at least a machine word: blocks are whole words carved
/// from word-aligned pages (mimalloc's `MI_INTPTR_SIZE`).
const WORD_ALIGNED: usize = std::mem::size_of::<usize>();

/// The allocator: `#[global_allocator] static A: keygate_alloc::MiMalloc = keygate_alloc::MiMalloc;`
#[derive(Debug, Clone, Copy, Default)]
pub struct MiMalloc;

// SAFETY: every method forwards to mimalloc's C API, which is thread-safe and returns either
// null or a block of at least the requested size. Alignment: requests up to a word go to the
// plain entry points (every block is word-aligned, above); larger alignments go to the
// `_aligned` entry points, which honour them. `mi_free` accepts blocks from either.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD_ALIGNED {
            // SAFETY: plain allocation of `size` bytes; alignment as argued above.
            unsafe { ffi::mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: `Layout` guarantees a non-zero power-of-two alignment.
            unsafe { ffi::mi_malloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD_ALIGNED {
            // SAFETY: as `alloc`, zero-filled.
            unsafe { ffi::mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: as `alloc`, zero-filled.
            unsafe { ffi::mi_zalloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned (GlobalAlloc's contract).
        unsafe { ffi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD_ALIGNED {
            // SAFETY: `ptr` came from this allocator; the new block keeps word alignment.
            unsafe { ffi::mi_realloc(ptr.cast::<c_void>(), new_size).cast() }
        } else {
            // SAFETY: as above, keeping the layout's larger alignment.
            unsafe { ffi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allocates, writes, grows and frees blocks of many sizes and alignments, checking the
    /// alignment every time (sizes cross mimalloc's small/large boundary at 1 KiB).
    #[test]
    fn blocks_are_aligned_and_usable_for_every_size_and_alignment() {
        let a = MiMalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in [1, 7, 8, 24, 100, 1024, 1025, 3000, 70_000, 5 << 20] {
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: non-zero sizes; every block is freed with the layout it came with.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xAB, size);
                    let grown = a.realloc(p, layout, size * 2);
                    assert!(!grown.is_null());
                    assert_eq!(grown as usize % align, 0, "realloc: size {size} align {align}");
                    assert_eq!(*grown.add(size - 1), 0xAB, "realloc keeps the contents");
                    a.dealloc(grown, Layout::from_size_align(size * 2, align).expect("layout"));
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
