//! A bounded map over threads: the live pass runs checks, deploys and
//! destroys with it, and the policy commands run simulations with it.
//!
//! Results come back in input order, whatever order the threads finish in,
//! so callers stay deterministic. This module knows nothing of what the
//! work is; it does not time out or cancel anything (the work must bound
//! itself, as every external command does).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Like [`parallel`], and calls `done(index, &result)` on the calling thread
/// as each result arrives (in completion order), so the caller can act on
/// early results while slow items still run.
pub fn parallel_each<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
    mut done: impl FnMut(usize, &R),
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    let (send, receive) = std::sync::mpsc::channel::<(usize, R)>();
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            let send = send.clone();
            let (next, f) = (&next, &f);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    if send.send((i, f(item))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(send);
        for (i, r) in receive {
            done(i, &r);
            results[i] = Some(r);
        }
    });
    results.into_iter().flatten().collect()
}

/// Maps `f` over `items` on at most `workers` threads, keeping the order.
pub fn parallel<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    if let Ok(mut slots) = results.lock() {
                        slots[i] = Some(r);
                    }
                }
            });
        }
    });
    results.into_inner().unwrap_or_default().into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parallel_keeps_order_and_bounds_workers() {
        let items: Vec<u32> = (0..20).collect();
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let out = parallel(&items, 3, |x| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            x * 2
        });
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert!(parallel(&Vec::<u32>::new(), 4, |x| *x).is_empty());
    }

    #[test]
    fn parallel_each_reports_every_result_once_and_keeps_order() {
        let items: Vec<u64> = (0..20).collect();
        let mut seen = vec![];
        let out = parallel_each(
            &items,
            4,
            |x| {
                std::thread::sleep(Duration::from_millis(20 - x));
                x * 3
            },
            |i, r| seen.push((i, *r)),
        );
        assert_eq!(out, items.iter().map(|x| x * 3).collect::<Vec<_>>());
        seen.sort_unstable();
        assert_eq!(seen, items.iter().map(|&x| (x as usize, x * 3)).collect::<Vec<_>>());
    }
}
