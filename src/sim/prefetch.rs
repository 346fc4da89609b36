//! Cache hints for the replay loop. A replay touches, for every step, records
//! that went cold while the step waited or ran (its own record, its queue
//! generation, its share charge, its index entry); waiting for each in turn
//! costs more than the work done with them. Where the loop knows which
//! record it will touch next, it asks the CPU to start loading it now.
//!
//! A hint changes nothing the program computes, only when memory arrives:
//! the outputs are the same with or without it, and on architectures
//! without the instruction it does nothing.

/// Starts loading the cache line that holds `item`.
#[inline(always)]
pub fn prefetch<T>(item: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing the program sees; it
    // is given the address of a live reference. `sse`, which provides it, is
    // part of every x86_64 target.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((item as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}

/// Starts loading `items[i]`, if there is such an item.
#[inline(always)]
pub fn prefetch_at<T>(items: &[T], i: usize) {
    if let Some(item) = items.get(i) {
        prefetch(item);
    }
}
