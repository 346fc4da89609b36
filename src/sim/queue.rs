//! Hydra's runnable steps in the dispatcher's order, and the scheduling
//! shares that order depends on (the rules are in `sim/hydra.rs`).
//!
//! Steps queue in one heap per (step type, jobset), keyed by everything but
//! `shareUsed`, which is the same for a whole heap. The best step of a type
//! is the best of its non-empty heaps' heads, comparing global priority,
//! then the jobsets' shares, then the rest of the keys. A type with few
//! non-empty heaps (the usual case: a handful of jobsets) finds it by
//! scanning their heads; past [`RANK_ABOVE`] heaps it keeps a winner tree
//! over them, replayed along one path when a head or a jobset's share
//! changes, so that many jobsets cost a logarithm rather than a scan. The
//! result is the same either way.
//!
//! A step requeued under a better key (a new dependent, a retry) gets a new
//! entry; its old entry goes stale and is dropped when it reaches the head.
//! Whether an entry is live is the caller's to say: this module does not
//! know steps, machines or time beyond the share window.

use super::time::SimTime;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, VecDeque};

type IdHash = std::hash::BuildHasherDefault<crate::trace::IdHasher>;

/// Length of the scheduling-share window (Hydra's `schedulingWindow`).
pub const SHARE_WINDOW_MS: i64 = 24 * 3_600_000;

/// A type keeps a winner tree over its non-empty heaps once it has more
/// than this many, and drops it below [`RANK_BELOW`].
pub const RANK_ABOVE: usize = 32;
const RANK_BELOW: usize = 16;
/// Empty heaps kept for reuse before a sweep forgets them.
const SWEEP_SLACK: usize = 1024;

/// Key of a queued step in its heap: larger is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueueKey {
    /// Global priority and priority, each offset to compare as unsigned.
    pub priorities: u64,
    /// Number of required features, then reverse dependencies.
    pub features_and_rdeps: u64,
    /// Complements, so that the lower id compares greater.
    pub build_id: u64,
    pub step_id: u64,
    pub slot: u32,
    /// The step's queue generation when this entry was pushed: an entry
    /// whose step has since been requeued (or left) is stale.
    pub queue_gen: u32,
}

/// An `i32` mapped to a `u32` of the same order.
pub(super) fn ordered(x: i32) -> u32 {
    (x as u32) ^ 0x8000_0000
}

/// What a queued step's key is made of, in the C++ runner's order of
/// places (the Rust runner's order fills them differently, `hydra/rust.rs`).
#[derive(Debug, Clone, Copy)]
pub struct KeyParts {
    pub global_priority: i32,
    pub priority: i32,
    pub features: usize,
    pub rdeps: u32,
    pub build_id: u64,
    pub step_id: u64,
    pub slot: u32,
    pub queue_gen: u32,
}

impl QueueKey {
    pub fn new(p: KeyParts) -> QueueKey {
        QueueKey {
            priorities: u64::from(ordered(p.global_priority)) << 32 | u64::from(ordered(p.priority)),
            features_and_rdeps: (p.features.min(u32::MAX as usize) as u64) << 32 | u64::from(p.rdeps),
            build_id: !p.build_id,
            step_id: !p.step_id,
            slot: p.slot,
            queue_gen: p.queue_gen,
        }
    }

    fn global_priority(&self) -> u32 {
        (self.priorities >> 32) as u32
    }
}

/// One jobset's scheduling share.
#[derive(Debug, Clone)]
struct Share {
    shares: u64,
    /// Build milliseconds charged to attempts that started within the window.
    window_ms: i128,
    /// Its non-empty heaps.
    queues: Vec<u32>,
}

/// An attempt's build time, charged to its jobset under the time the
/// attempt started (as Hydra's `Jobset::addStep(startTime, duration)`) once
/// it ends. Attempts start in time order, so a queue of them in start order
/// is also the order in which their charges leave the window.
#[derive(Debug, Clone, Copy)]
struct Charge {
    started_at: i64,
    jobset: u32,
    /// `None` while the attempt runs.
    ms: Option<i64>,
}

/// The queued entries of one (type, jobset) pair, best first. Steps mostly
/// queue in order (build and step ids grow with time, priorities rarely
/// differ), so entries that arrive below every earlier one go to a FIFO in
/// descending order and cost O(1); the others go to a binary heap. The best
/// entry is the better of the two heads.
#[derive(Debug, Default)]
struct Entries {
    fifo: VecDeque<QueueKey>,
    heap: BinaryHeap<QueueKey>,
}

impl Entries {
    fn push(&mut self, key: QueueKey) {
        if self.fifo.back().is_none_or(|back| key < *back) {
            self.fifo.push_back(key);
        } else {
            self.heap.push(key);
        }
    }

    fn peek(&self) -> Option<&QueueKey> {
        match (self.fifo.front(), self.heap.peek()) {
            (Some(f), Some(h)) => Some(if f > h { f } else { h }),
            (f, h) => f.or(h),
        }
    }

    fn pop(&mut self) -> Option<QueueKey> {
        match (self.fifo.front(), self.heap.peek()) {
            (Some(f), Some(h)) if h > f => self.heap.pop(),
            (Some(_), _) => self.fifo.pop_front(),
            (None, _) => self.heap.pop(),
        }
    }
}

#[derive(Debug)]
struct Heap {
    kind: u32,
    jobset: u32,
    entries: Entries,
    /// The head, copied out because the rankings read it often.
    head: Option<QueueKey>,
    /// Position in its type's and its jobset's lists of non-empty heaps.
    in_kind: u32,
    in_jobset: u32,
}

/// A winner tree over positions `0..n`: `nodes[1]` holds the best position,
/// leaf `i` is node `cap + i`.
#[derive(Debug, Default)]
struct Tournament {
    cap: usize,
    nodes: Vec<u32>,
}

const NONE: u32 = u32::MAX;

impl Tournament {
    fn build(n: usize, better: impl Fn(u32, u32) -> bool) -> Tournament {
        let cap = (n * 2).next_power_of_two().max(2);
        let mut nodes = vec![NONE; 2 * cap];
        for (i, node) in nodes[cap..cap + n].iter_mut().enumerate() {
            *node = i as u32;
        }
        let mut t = Tournament { cap, nodes };
        for node in (1..cap).rev() {
            t.nodes[node] = t.winner(node, &better);
        }
        t
    }

    fn winner(&self, node: usize, better: &impl Fn(u32, u32) -> bool) -> u32 {
        match (self.nodes[2 * node], self.nodes[2 * node + 1]) {
            (NONE, x) | (x, NONE) => x,
            (l, r) if better(r, l) => r,
            (l, _) => l,
        }
    }

    /// Position `pos` changed (or became empty when `pos >= n`); returns the
    /// nodes replayed.
    fn replay(&mut self, pos: usize, n: usize, better: impl Fn(u32, u32) -> bool) -> u64 {
        let mut node = self.cap + pos;
        self.nodes[node] = if pos < n { pos as u32 } else { NONE };
        let mut visited = 0;
        while node > 1 {
            node /= 2;
            self.nodes[node] = self.winner(node, &better);
            visited += 1;
        }
        visited
    }

    fn best(&self) -> Option<u32> {
        Some(self.nodes[1]).filter(|&p| p != NONE)
    }
}

/// A type's non-empty heaps, and their winner tree when there are many.
#[derive(Debug, Default)]
struct KindQueues {
    nonempty: Vec<u32>,
    ranking: Option<Tournament>,
}

/// The runnable steps of every type and the jobsets' shares.
#[derive(Debug)]
pub struct Runnable {
    heaps: Vec<Heap>,
    /// The heap of each (type, jobset) pair with queued steps, and of some
    /// that had them lately.
    index: HashMap<u64, u32, IdHash>,
    /// Heaps forgotten by a sweep, for reuse.
    free: Vec<u32>,
    /// Heaps with queued steps.
    nonempty: usize,
    kinds: Vec<KindQueues>,
    /// Types with a winner tree: without any, a share that changes has no
    /// tree to replay.
    ranked: usize,
    /// The last (type, jobset) pair pushed to and its heap: steps arrive in
    /// runs of one pair.
    last_pushed: Option<(u64, u32)>,
    jobsets: Vec<Share>,
    /// Attempts that started within the window (and earlier ones still
    /// running), oldest first; `charges_popped` counts those gone before.
    charges: VecDeque<Charge>,
    charges_popped: u64,
    /// Charges of attempts that ended after their start had left the window:
    /// added when they end and dropped at the next expiry, as in Hydra.
    late: Vec<(u32, i64)>,
    /// Heads compared and tree nodes replayed: work that must not grow with
    /// the number of jobsets.
    pub work: u64,
    /// [`RANK_ABOVE`] and [`RANK_BELOW`], which tests lower to compare both ways.
    rank_above: usize,
    rank_below: usize,
}

impl Default for Runnable {
    fn default() -> Runnable {
        Runnable {
            heaps: vec![],
            index: HashMap::default(),
            free: vec![],
            nonempty: 0,
            kinds: vec![],
            ranked: 0,
            last_pushed: None,
            jobsets: vec![],
            charges: VecDeque::new(),
            charges_popped: 0,
            late: vec![],
            work: 0,
            rank_above: RANK_ABOVE,
            rank_below: RANK_BELOW,
        }
    }
}

/// Whether heap `a` holds a better step than heap `b` (see the module
/// documentation); both must be non-empty.
#[inline(always)]
fn heap_better(heaps: &[Heap], jobsets: &[Share], a: u32, b: u32) -> bool {
    let (ha, hb) = (&heaps[a as usize], &heaps[b as usize]);
    let (Some(ka), Some(kb)) = (&ha.head, &hb.head) else { return ha.head.is_some() };
    let (ga, gb) = (ka.global_priority(), kb.global_priority());
    if ga != gb {
        return ga > gb;
    }
    if ha.jobset != hb.jobset {
        match share_cmp(&jobsets[hb.jobset as usize], &jobsets[ha.jobset as usize]) {
            Ordering::Equal => {}
            order => return order.is_gt(),
        }
    }
    ka > kb
}

/// Orders jobsets by `shareUsed = window_ms / shares`, compared exactly (as
/// floating point only where the exact products would not fit).
fn share_cmp(a: &Share, b: &Share) -> Ordering {
    if a.shares == b.shares {
        return a.window_ms.cmp(&b.window_ms);
    }
    match (a.window_ms.checked_mul(i128::from(b.shares)), b.window_ms.checked_mul(i128::from(a.shares))) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => (a.window_ms as f64 / a.shares as f64).total_cmp(&(b.window_ms as f64 / b.shares as f64)),
    }
}

impl Runnable {
    /// Registers the next jobset with its scheduling shares (at least 1).
    pub fn add_jobset(&mut self, shares: u64) -> u32 {
        self.jobsets.push(Share { shares: shares.max(1), window_ms: 0, queues: vec![] });
        (self.jobsets.len() - 1) as u32
    }

    /// The jobset's charged milliseconds within the window and its shares.
    pub fn share(&self, jobset: u32) -> (i128, u64) {
        let j = &self.jobsets[jobset as usize];
        (j.window_ms, j.shares)
    }

    /// Whether a type has a queued step.
    pub fn has(&self, kind: u32) -> bool {
        self.kinds.get(kind as usize).is_some_and(|k| !k.nonempty.is_empty())
    }

    /// The heap holding the best queued step of a type.
    pub fn best(&mut self, kind: u32) -> Option<u32> {
        let Runnable { heaps, jobsets, kinds, work, .. } = self;
        let k = kinds.get(kind as usize)?;
        if let Some(t) = &k.ranking {
            return t.best().map(|p| k.nonempty[p as usize]);
        }
        let mut best: Option<u32> = None;
        *work += k.nonempty.len() as u64;
        for &h in &k.nonempty {
            if best.is_none_or(|b| heap_better(heaps, jobsets, h, b)) {
                best = Some(h);
            }
        }
        best
    }

    /// The entry at the head of a heap.
    pub fn head(&self, heap: u32) -> Option<QueueKey> {
        self.heaps[heap as usize].head
    }

    /// Where the charge of `ticket` is in `charges`, unless it has left the window.
    #[inline(always)]
    fn charge_position(&self, ticket: u64) -> Option<usize> {
        ticket.checked_sub(self.charges_popped).map(|i| i as usize)
    }

    /// Starts loading the charge that [`Runnable::charge`] will update for `ticket`.
    #[inline(always)]
    pub fn prefetch_charge(&self, ticket: u64) {
        if let Some(c) = self.charge_position(ticket).and_then(|i| self.charges.get(i)) {
            super::prefetch::prefetch(c);
        }
    }

    /// Whether heap `a` holds a better step than heap `b`.
    pub fn better(&self, a: u32, b: u32) -> bool {
        heap_better(&self.heaps, &self.jobsets, a, b)
    }

    /// Queues an entry for a step of `kind` in `jobset`.
    pub fn push(&mut self, kind: u32, jobset: u32, key: QueueKey) {
        let pair = u64::from(kind) << 32 | u64::from(jobset);
        let cached = self.last_pushed.filter(|&(p, _)| p == pair).map(|(_, h)| h);
        let h = match cached.or_else(|| self.index.get(&pair).copied()) {
            Some(h) => h,
            None => {
                let heap =
                    Heap { kind, jobset, entries: Entries::default(), head: None, in_kind: NONE, in_jobset: NONE };
                let h = match self.free.pop() {
                    Some(h) => {
                        self.heaps[h as usize] = heap;
                        h
                    }
                    None => {
                        self.heaps.push(heap);
                        (self.heaps.len() - 1) as u32
                    }
                };
                self.index.insert(pair, h);
                h
            }
        };
        self.last_pushed = Some((pair, h));
        let heap = &mut self.heaps[h as usize];
        heap.entries.push(key);
        match heap.head {
            None => {
                heap.head = Some(key);
                self.link(h);
            }
            Some(head) if key > head => {
                heap.head = Some(key);
                self.replay(h);
            }
            Some(_) => {}
        }
    }

    /// Takes the head of a heap, then drops the stale entries that reach
    /// the head after it (`is_live` says which are live).
    pub fn pop(&mut self, heap: u32, is_live: impl Fn(&QueueKey) -> bool) -> Option<QueueKey> {
        let hp = &mut self.heaps[heap as usize];
        let top = hp.entries.pop()?;
        hp.head = loop {
            match hp.entries.peek() {
                Some(head) if !is_live(head) => hp.entries.pop(),
                head => break head.copied(),
            };
        };
        if hp.head.is_some() {
            self.replay(heap);
        } else {
            self.unlink(heap);
        }
        Some(top)
    }

    /// An attempt of a step of `jobset` starts; the ticket names it when it ends.
    pub fn attempt_started(&mut self, jobset: u32, started_at: i64) -> u64 {
        self.charges.push_back(Charge { started_at, jobset, ms: None });
        self.charges_popped + self.charges.len() as u64 - 1
    }

    /// Charges an ended attempt's build time to its jobset, under its start time.
    #[inline(always)]
    pub fn charge(&mut self, ticket: u64, jobset: u32, ms: i64) {
        let ms = ms.max(0);
        match self.charge_position(ticket).and_then(|i| self.charges.get_mut(i)) {
            Some(c) => c.ms = Some(ms),
            None => self.late.push((jobset, ms)),
        }
        self.jobsets[jobset as usize].window_ms += i128::from(ms);
        self.share_changed(jobset);
    }

    /// Drops the charges of attempts that started a whole window before
    /// `now` or earlier, as Hydra's `Jobset::pruneSteps` does at every dispatch.
    #[inline]
    pub fn expire(&mut self, now: SimTime) {
        let oldest = now.0.saturating_sub(SHARE_WINDOW_MS);
        // Checked at every dispatch; there is work at few of them.
        if self.late.is_empty() && self.charges.front().is_none_or(|c| c.started_at > oldest) {
            return;
        }
        self.expire_before(oldest);
    }

    #[inline(never)]
    fn expire_before(&mut self, oldest: i64) {
        for (jobset, ms) in std::mem::take(&mut self.late) {
            self.jobsets[jobset as usize].window_ms -= i128::from(ms);
            self.share_changed(jobset);
        }
        while let Some(&c) = self.charges.front() {
            if c.started_at > oldest {
                break;
            }
            self.charges.pop_front();
            self.charges_popped += 1;
            if let Some(ms) = c.ms {
                self.jobsets[c.jobset as usize].window_ms -= i128::from(ms);
                self.share_changed(c.jobset);
            }
        }
    }

    #[inline(always)]
    fn share_changed(&mut self, jobset: u32) {
        if self.ranked > 0 {
            self.replay_jobset(jobset);
        }
    }

    /// Replays the trees over the jobset's non-empty heaps.
    #[inline(never)]
    fn replay_jobset(&mut self, jobset: u32) {
        for i in 0..self.jobsets[jobset as usize].queues.len() {
            let h = self.jobsets[jobset as usize].queues[i];
            self.replay(h);
        }
    }

    /// Adds a heap that became non-empty to its type's and jobset's lists.
    fn link(&mut self, h: u32) {
        let (kind, jobset) = (self.heaps[h as usize].kind as usize, self.heaps[h as usize].jobset as usize);
        if self.kinds.len() <= kind {
            self.kinds.resize_with(kind + 1, KindQueues::default);
        }
        let j = &mut self.jobsets[jobset].queues;
        self.heaps[h as usize].in_jobset = j.len() as u32;
        j.push(h);
        let k = &mut self.kinds[kind].nonempty;
        self.heaps[h as usize].in_kind = k.len() as u32;
        k.push(h);
        self.nonempty += 1;
        let n = self.kinds[kind].nonempty.len();
        match &self.kinds[kind].ranking {
            Some(t) if n <= t.cap => self.replay(h),
            Some(_) => self.rebuild(kind),
            None if n > self.rank_above => self.rebuild(kind),
            None => {}
        }
    }

    /// Removes a heap that became empty from its type's and jobset's lists.
    fn unlink(&mut self, h: u32) {
        let (kind, jobset) = (self.heaps[h as usize].kind as usize, self.heaps[h as usize].jobset as usize);
        let pos = self.heaps[h as usize].in_jobset as usize;
        let j = &mut self.jobsets[jobset].queues;
        j.swap_remove(pos);
        if let Some(&moved) = j.get(pos) {
            self.heaps[moved as usize].in_jobset = pos as u32;
        }
        let pos = self.heaps[h as usize].in_kind as usize;
        let k = &mut self.kinds[kind];
        k.nonempty.swap_remove(pos);
        let moved = k.nonempty.get(pos).copied();
        if let Some(moved) = moved {
            self.heaps[moved as usize].in_kind = pos as u32;
        }
        self.heaps[h as usize].in_kind = NONE;
        self.heaps[h as usize].in_jobset = NONE;
        self.nonempty -= 1;
        if self.index.len() > 2 * self.nonempty + SWEEP_SLACK {
            self.sweep();
        }
        let k = &self.kinds[kind];
        if k.ranking.is_some() {
            if k.nonempty.len() < self.rank_below {
                self.kinds[kind].ranking = None;
                self.ranked -= 1;
            } else {
                // Clear the vacated last leaf before replaying the moved one,
                // so that no replay compares a position past the end.
                let n = k.nonempty.len();
                self.replay_position(kind, n, n);
                if pos < n {
                    self.replay_position(kind, pos, n);
                }
            }
        }
    }

    /// Forgets the empty heaps, so that memory follows the pairs with queued
    /// steps rather than every pair ever seen; their slots are reused.
    fn sweep(&mut self) {
        self.last_pushed = None;
        let heaps = &self.heaps;
        let free = &mut self.free;
        self.index.retain(|_, h| {
            let keep = heaps[*h as usize].head.is_some();
            if !keep {
                free.push(*h);
            }
            keep
        });
        self.work += self.heaps.len() as u64;
        for &h in &self.free {
            self.heaps[h as usize].entries = Entries::default();
        }
    }

    /// A heap's head or its jobset's share changed: replays its type's tree.
    fn replay(&mut self, h: u32) {
        let heap = &self.heaps[h as usize];
        let (kind, pos) = (heap.kind as usize, heap.in_kind as usize);
        if pos == NONE as usize || self.kinds[kind].ranking.is_none() {
            return;
        }
        let n = self.kinds[kind].nonempty.len();
        self.replay_position(kind, pos, n);
    }

    fn replay_position(&mut self, kind: usize, pos: usize, n: usize) {
        let Runnable { heaps, jobsets, kinds, work, .. } = self;
        let k = &mut kinds[kind];
        let Some(t) = k.ranking.as_mut() else { return };
        if pos >= t.cap {
            return;
        }
        let nonempty = &k.nonempty;
        *work += t.replay(pos, n, |a, b| heap_better(heaps, jobsets, nonempty[a as usize], nonempty[b as usize]));
    }

    /// Builds (or grows) a type's winner tree over its non-empty heaps.
    fn rebuild(&mut self, kind: usize) {
        let Runnable { heaps, jobsets, kinds, work, ranked, .. } = self;
        let k = &mut kinds[kind];
        let nonempty = &k.nonempty;
        *work += nonempty.len() as u64;
        if k.ranking.is_none() {
            *ranked += 1;
        }
        k.ranking = Some(Tournament::build(nonempty.len(), |a, b| {
            heap_better(heaps, jobsets, nonempty[a as usize], nonempty[b as usize])
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parts(global_priority: i32, priority: i32, rdeps: u32, build_id: u64, step_id: u64, slot: u32) -> KeyParts {
        KeyParts { global_priority, priority, features: 0, rdeps, build_id, step_id, slot, queue_gen: 0 }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push { kind: u32, jobset: u32, priority: i32, rdeps: u32, build: u64 },
        Pop { kind: u32 },
        Charge { jobset: u32, ms: i64 },
        Advance { ms: i64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..3, 0u32..12, 0i32..3, 0u32..3, 0u64..50)
                .prop_map(|(kind, jobset, priority, rdeps, build)| Op::Push { kind, jobset, priority, rdeps, build }),
            3 => (0u32..3).prop_map(|kind| Op::Pop { kind }),
            2 => (0u32..12, 0i64..100_000).prop_map(|(jobset, ms)| Op::Charge { jobset, ms }),
            1 => (0i64..50_000_000).prop_map(|ms| Op::Advance { ms }),
        ]
    }

    proptest! {
        #[test]
        fn entries_come_out_best_first(
            ops in proptest::collection::vec(proptest::option::of((0u64..60, 0u32..4, 0i32..2)), 1..300),
        ) {
            // Some(build id, reverse dependencies, priority): push a step of
            // that build; None: pop. Keys that differ before the build id
            // arrive out of order however the ids grow.
            let mut entries = Entries::default();
            let mut reference = std::collections::BTreeSet::new();
            for (step, op) in ops.into_iter().enumerate() {
                match op {
                    Some((build, rdeps, priority)) => {
                        let key = QueueKey::new(parts(0, 100 + priority, rdeps, build, step as u64, 0));
                        entries.push(key);
                        reference.insert(key);
                    }
                    None => {
                        prop_assert_eq!(entries.peek().copied(), reference.last().copied());
                        prop_assert_eq!(entries.pop(), reference.pop_last());
                    }
                }
            }
        }

        #[test]
        fn the_winner_tree_picks_what_the_scan_picks(ops in proptest::collection::vec(op(), 1..400)) {
            // The same operations on a queue that always ranks with a tree
            // and on one that always scans: every pop takes the same step.
            let mut ranked = Runnable { rank_above: 0, rank_below: 0, ..Runnable::default() };
            let mut scanned = Runnable { rank_above: usize::MAX, rank_below: 0, ..Runnable::default() };
            for q in [&mut ranked, &mut scanned] {
                for j in 0..12 {
                    q.add_jobset(if j % 3 == 0 { 300 } else { 100 });
                }
            }
            let mut now = 0;
            let mut step = 0u64;
            for op in ops {
                match op {
                    Op::Push { kind, jobset, priority, rdeps, build } => {
                        step += 1;
                        let key = QueueKey::new(parts(0, priority, rdeps, build, step, step as u32));
                        ranked.push(kind, jobset, key);
                        scanned.push(kind, jobset, key);
                    }
                    Op::Pop { kind } => {
                        let a = ranked.best(kind).and_then(|h| ranked.pop(h, |_| true));
                        let b = scanned.best(kind).and_then(|h| scanned.pop(h, |_| true));
                        prop_assert_eq!(a, b);
                    }
                    Op::Charge { jobset, ms } => {
                        for q in [&mut ranked, &mut scanned] {
                            let ticket = q.attempt_started(jobset, now);
                            q.charge(ticket, jobset, ms);
                        }
                    }
                    Op::Advance { ms } => {
                        now += ms;
                        ranked.expire(SimTime(now));
                        scanned.expire(SimTime(now));
                    }
                }
            }
            for kind in 0..3 {
                while let Some(h) = scanned.best(kind) {
                    let b = scanned.pop(h, |_| true);
                    let a = ranked.best(kind).and_then(|h| ranked.pop(h, |_| true));
                    prop_assert_eq!(a, b);
                }
                prop_assert!(ranked.best(kind).is_none());
            }
        }
    }
}
