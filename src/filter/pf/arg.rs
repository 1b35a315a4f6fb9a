//! An ioctl argument: one of pf's C structures in a zeroed, aligned buffer.
//!
//! pf's structures are plain data (integers, byte arrays, unions of those,
//! one pointer), for which all-zero bytes are a valid value and what the
//! kernel expects in every field the daemon does not set. Keeping the value
//! inside a buffer that starts zeroed, and only ever assigning its fields,
//! means its bytes, padding included, are always initialised: the kernel, a
//! model of it in tests and a trace of what was sent all read the same bytes.

use std::marker::PhantomData;
use std::mem::{align_of, size_of};

use super::sys;

mod sealed {
    pub trait Sealed {}
}

/// The structures an [`Arg`] may hold: bindgen's plain-data pf types, for
/// which all-zero bytes are a valid value.
pub trait Plain: sealed::Sealed {}

macro_rules! plain {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Plain for $t {}
    )*};
}
plain!(
    sys::pfioc_trans_e,
    sys::pfioc_rule,
    sys::pfioc_ruleset,
    sys::pf_status
);

/// A zero-initialised `T` on the heap, viewable as its bytes.
pub struct Arg<T: Plain> {
    words: Box<[u64]>,
    _type: PhantomData<T>,
}

impl<T: Plain> Arg<T> {
    /// An all-zero `T`.
    pub fn new() -> Arg<T> {
        const { assert!(align_of::<T>() <= align_of::<u64>()) };
        Arg {
            words: vec![0u64; size_of::<T>().div_ceil(8).max(1)].into_boxed_slice(),
            _type: PhantomData,
        }
    }

    pub fn get(&self) -> &T {
        // SAFETY: the buffer is at least size_of::<T>() bytes, aligned for
        // u64 and hence for T (asserted in new), and holds initialised
        // bytes, which are a valid T for every Plain type.
        unsafe { &*self.words.as_ptr().cast::<T>() }
    }

    /// The value, to assign its fields (never the whole value: a typed
    /// assignment may leave its padding undefined).
    pub fn get_mut(&mut self) -> &mut T {
        // SAFETY: as in `get`; the borrow of self is exclusive.
        unsafe { &mut *self.words.as_mut_ptr().cast::<T>() }
    }

    /// The `size_of::<T>()` bytes the kernel sees, for a model of the
    /// kernel and its traces (the daemon itself never reads them).
    ///
    /// # Safety
    ///
    /// Every write to the value since [`Arg::new`] must have been to a
    /// field of integers, byte arrays or unions of those, never an
    /// assignment of the whole value or of a field that is a structure
    /// with padding: such a typed assignment may leave the padding bytes
    /// uninitialised, and reading them is undefined behaviour.
    /// [`Arg::get_mut`] cannot enforce this; the caller vouches for it.
    pub unsafe fn bytes(&self) -> &[u8] {
        // SAFETY: the buffer holds at least size_of::<T>() bytes, zeroed at
        // creation; by the caller's promise no write since has left one
        // uninitialised.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), size_of::<T>()) }
    }
}

impl<T: Plain> Default for Arg<T> {
    fn default() -> Self {
        Arg::new()
    }
}

/// The address and mask of an address of type PF_ADDR_ADDRMASK, as bytes
/// (an IPv4 address in the first four).
pub fn addr_mask(w: &sys::pf_addr_wrap) -> ([u8; 16], [u8; 16]) {
    // SAFETY: every member of these unions is plain bytes or integers of
    // the same size, so any bit pattern is a valid [u8; 16].
    unsafe { (w.v.a.addr.pfa.addr8, w.v.a.mask.pfa.addr8) }
}

/// The text of a NUL-terminated C buffer (all of it when there is no NUL).
pub fn c_name(buf: &[std::ffi::c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_zeroed_and_shows_field_writes() {
        let mut a = Arg::<sys::pfioc_ruleset>::new();
        // SAFETY: nothing has been written since new().
        let fresh = unsafe { a.bytes() };
        assert_eq!(fresh.len(), size_of::<sys::pfioc_ruleset>());
        assert!(fresh.iter().all(|&b| b == 0));
        a.get_mut().nr = 0x0102_0304;
        assert_eq!(a.get().nr, 0x0102_0304);
        // SAFETY: the one write was to an integer field.
        let written = unsafe { a.bytes() };
        assert_eq!(&written[..4], &0x0102_0304u32.to_ne_bytes());
    }
}
