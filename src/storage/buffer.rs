//! A heap buffer aligned to the sector size, as `O_DIRECT` requires.

use std::alloc::{self, Layout};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// A zeroed, fixed-size buffer whose address is a multiple of its alignment. Allocated once
/// (when a log opens) and moved, never copied, between the log and its storage.
pub struct AlignedBuffer {
    pointer: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the buffer owns its memory exclusively, like a `Box<[u8]>`.
unsafe impl Send for AlignedBuffer {}
// SAFETY: shared access only hands out `&[u8]`.
unsafe impl Sync for AlignedBuffer {}

impl AlignedBuffer {
    /// Allocates `size_bytes` zeroed bytes aligned to `alignment_bytes` (a power of two).
    pub fn new(size_bytes: usize, alignment_bytes: usize) -> AlignedBuffer {
        assert!(size_bytes > 0, "empty aligned buffer");
        assert!(alignment_bytes.is_power_of_two());
        assert_eq!(
            size_bytes % alignment_bytes,
            0,
            "size not a multiple of alignment"
        );
        let layout = Layout::from_size_align(size_bytes, alignment_bytes).expect("layout");
        // SAFETY: the layout has a non-zero size.
        let pointer = unsafe { alloc::alloc_zeroed(layout) };
        let Some(pointer) = NonNull::new(pointer) else {
            alloc::handle_alloc_error(layout)
        };
        AlignedBuffer { pointer, layout }
    }

    /// The alignment of the buffer's address, in bytes.
    pub fn alignment_bytes(&self) -> usize {
        self.layout.align()
    }
}

impl Deref for AlignedBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the pointer is valid for `size` initialised bytes for the buffer's life.
        unsafe { std::slice::from_raw_parts(self.pointer.as_ptr(), self.layout.size()) }
    }
}

impl DerefMut for AlignedBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.pointer.as_ptr(), self.layout.size()) }
    }
}

impl Drop for AlignedBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { alloc::dealloc(self.pointer.as_ptr(), self.layout) }
    }
}

impl fmt::Debug for AlignedBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuffer")
            .field("size_bytes", &self.layout.size())
            .field("alignment_bytes", &self.layout.align())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        for alignment in [512, 4096, 65536] {
            let buffer = AlignedBuffer::new(alignment * 3, alignment);
            assert_eq!(buffer.as_ptr() as usize % alignment, 0);
            assert_eq!(buffer.len(), alignment * 3);
            assert!(buffer.iter().all(|&byte| byte == 0));
        }
    }
}
