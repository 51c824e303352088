//! A small fuzzing engine that runs on the stable toolchain, inside
//! `cargo test` (`tests/tests/fuzz.rs`, `scripts/fuzz.sh`, `docs/fuzzing.md`).
//!
//! It has no compiler instrumentation: it mutates seed files (byte-level
//! havoc plus a structure-aware mutator per target), runs each input under
//! [`std::panic::catch_unwind`] with a time limit, and keeps an input in the
//! corpus when it produces a behaviour not seen before (a new normalised
//! error message, or a new kind of success), a cheap stand-in for coverage.
//!
//! - a panic is a crash: saved (minimised) to `tests/fuzz/crashes/<target>/<hash>`
//!   with the message and backtrace in `<hash>.txt`;
//! - an input slower than [`Config::timeout`] is a timeout, saved as
//!   `timeout-<hash>`; a watchdog thread aborts the process if one input
//!   runs longer than [`Config::hang`] (saving it as `hang-<hash>` first);
//! - an allocation over the cap of [`TrackingAlloc`] saves the input as
//!   `alloc-<hash>` and aborts the process; with `NANOC_FUZZ_TRACE=1` every
//!   input is also written to [`current_input_path`] before it runs, so an
//!   input that kills the process some other way (a stack overflow) can be
//!   recovered: rerun with the seed the run printed.
//!
//! The targets live in [`targets`].

mod onnx_mut;
pub mod targets;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant, SystemTime};

// ---- paths ---------------------------------------------------------------

/// `tests/fuzz`: corpora, crashes and regressions.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// `tests/fuzz/corpus/<target>`: the committed seed corpus.
pub fn corpus_dir(target: &str) -> PathBuf {
    fuzz_dir().join("corpus").join(target)
}

/// `tests/fuzz/crashes/<target>`: inputs that crashed or timed out.
pub fn crashes_dir(target: &str) -> PathBuf {
    fuzz_dir().join("crashes").join(target)
}

/// `tests/fuzz/regressions/<target>`: fixed crashes, replayed forever.
pub fn regressions_dir(target: &str) -> PathBuf {
    fuzz_dir().join("regressions").join(target)
}

/// `target/fuzz`: scratch files (the current input of each target).
pub fn scratch_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target").join("fuzz");
    let _ = std::fs::create_dir_all(&d);
    d
}

/// Where the input being run is written before it runs (tmpfs when there
/// is one: `/dev/shm/nanoc-fuzz-<target>.current`, else `target/fuzz/`).
pub fn current_input_path(target: &str) -> PathBuf {
    let name = format!("nanoc-fuzz-{target}.current");
    let shm = Path::new("/dev/shm");
    if shm.is_dir() { shm.join(name) } else { scratch_dir().join(name) }
}

/// The input files in `dir` (sorted; `.txt` notes and dotfiles skipped).
pub fn input_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    v.retain(|p| {
        p.is_file()
            && p.extension().is_none_or(|e| e != "txt")
            && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.'))
    });
    v.sort();
    v
}

// ---- PRNG and hashing ----------------------------------------------------

/// A deterministic PRNG (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 if `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A random element of `xs` (`None` if empty).
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> Option<&'a T> {
        if xs.is_empty() { None } else { Some(&xs[self.below(xs.len())]) }
    }

    /// A size skewed towards small values: `1..=max`.
    pub fn small(&mut self, max: usize) -> usize {
        let max = max.max(1);
        let bits = self.below(usize::BITS as usize - max.leading_zeros() as usize + 1);
        1 + self.below((1usize << bits).min(max))
    }

    /// An "interesting" integer: a boundary value, or a small random one.
    pub fn interesting_i64(&mut self) -> i64 {
        if self.one_in(4) { self.below(64) as i64 - 8 } else { *self.pick(INTERESTING).unwrap_or(&0) }
    }
}

/// Boundary values the mutators write into numbers, dims, counts and offsets.
pub const INTERESTING: &[i64] = &[
    0,
    1,
    -1,
    2,
    3,
    4,
    7,
    8,
    15,
    16,
    17,
    31,
    32,
    63,
    64,
    65,
    127,
    128,
    255,
    256,
    1023,
    1024,
    4096,
    65535,
    65536,
    1 << 20,
    1 << 24,
    i32::MAX as i64,
    i32::MIN as i64,
    1 << 31,
    (1 << 32) - 1,
    1 << 32,
    (1 << 32) + 1,
    1 << 40,
    1_000_000,
    1_000_000_000_000,
    i64::MAX,
    i64::MIN,
    i64::MAX / 2,
    i64::MAX / 4 + 1,
    -2,
    -128,
    -32768,
];

/// FNV-1a, 64 bits (names crash files, dedups behaviours).
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

// ---- byte-level mutators -------------------------------------------------

/// One to sixteen stacked byte-level mutations (bit/byte flips, interesting
/// values at random offsets, arithmetic, insert/delete/duplicate/overwrite
/// chunks, splices with another corpus entry, dictionary words, truncation
/// and extension). The result is at most `max_len` bytes.
pub fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>], dict: &[&[u8]], max_len: usize) {
    let n = 1 << rng.below(5);
    for _ in 0..n {
        mutate_once(rng, data, corpus, dict);
    }
    data.truncate(max_len);
}

fn mutate_once(rng: &mut Rng, d: &mut Vec<u8>, corpus: &[Vec<u8>], dict: &[&[u8]]) {
    let len = d.len();
    match rng.below(16) {
        // Flip a bit.
        0 if len > 0 => {
            let i = rng.below(len);
            d[i] ^= 1 << rng.below(8);
        }
        // Random byte.
        1 if len > 0 => {
            let i = rng.below(len);
            d[i] = rng.next_u64() as u8;
        }
        // Interesting value of width 1, 2, 4 or 8, either endianness.
        2 | 3 if len > 0 => {
            let w = 1 << rng.below(4);
            let v = rng.interesting_i64();
            let bytes = if rng.one_in(4) { v.to_be_bytes() } else { v.to_le_bytes() };
            let src: &[u8] = if rng.one_in(4) { &bytes[8 - w..] } else { &bytes[..w] };
            let i = rng.below(len);
            for (k, &b) in src.iter().enumerate() {
                if let Some(x) = d.get_mut(i + k) {
                    *x = b;
                }
            }
        }
        // Add or subtract a small amount to a byte or a little-endian u32.
        4 if len > 0 => {
            let i = rng.below(len);
            let delta = rng.below(35) as i64 - 17;
            if rng.one_in(2) || i + 4 > len {
                d[i] = (d[i] as i64).wrapping_add(delta) as u8;
            } else {
                let mut a = [0; 4];
                a.copy_from_slice(&d[i..i + 4]);
                let v = u32::from_le_bytes(a).wrapping_add(delta as u32);
                d[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        // Insert random bytes.
        5 => {
            let i = rng.below(len + 1);
            let k = rng.small(64);
            let fill: Vec<u8> = if rng.one_in(2) {
                let b = rng.next_u64() as u8;
                vec![b; k]
            } else {
                (0..k).map(|_| rng.next_u64() as u8).collect()
            };
            d.splice(i..i, fill);
        }
        // Delete a chunk.
        6 | 7 if len > 0 => {
            let i = rng.below(len);
            let k = rng.small(len - i);
            d.drain(i..i + k);
        }
        // Duplicate a chunk somewhere else.
        8 if len > 0 => {
            let i = rng.below(len);
            let k = rng.small((len - i).min(256));
            let chunk = d[i..i + k].to_vec();
            let at = rng.below(len + 1);
            d.splice(at..at, chunk);
        }
        // Overwrite a chunk with another chunk of the same input.
        9 if len > 1 => {
            let k = rng.small(len / 2);
            let (a, b) = (rng.below(len - k + 1), rng.below(len - k + 1));
            let chunk = d[a..a + k].to_vec();
            d[b..b + k].copy_from_slice(&chunk);
        }
        // Splice: our prefix, another entry's suffix.
        10 => {
            if let Some(other) = rng.pick(corpus) {
                let i = rng.below(len + 1);
                let j = rng.below(other.len() + 1);
                d.truncate(i);
                d.extend_from_slice(&other[j..]);
            }
        }
        // Insert a chunk of another entry.
        11 => {
            if let Some(other) = rng.pick(corpus).filter(|o| !o.is_empty()) {
                let j = rng.below(other.len());
                let k = rng.small((other.len() - j).min(512));
                let at = rng.below(len + 1);
                d.splice(at..at, other[j..j + k].iter().copied());
            }
        }
        // Dictionary word, inserted or overwriting.
        12 | 13 => {
            if let Some(w) = rng.pick(dict) {
                let at = rng.below(len + 1);
                if rng.one_in(2) {
                    d.splice(at..at, w.iter().copied());
                } else {
                    let end = (at + w.len()).min(len);
                    d.splice(at..end, w.iter().copied());
                }
            }
        }
        // Truncate.
        14 if len > 0 => {
            let keep = rng.below(len);
            d.truncate(keep);
        }
        // Extend: repeat the tail, or append zeros.
        15 => {
            let k = rng.small(4096);
            if rng.one_in(2) && len > 0 {
                let tail = d[len - rng.small(len.min(64))..].to_vec();
                while d.len() < len + k {
                    d.extend_from_slice(&tail);
                }
            } else {
                d.resize(len + k, 0);
            }
        }
        _ => {
            // A case that needs a non-empty input on an empty one.
            d.push(rng.next_u64() as u8);
        }
    }
}

// ---- targets -------------------------------------------------------------

/// Runs one input: `Ok(behaviour)` (a short description of what the input
/// did, used as feedback) or `Err(message)` (the loader's error). Must not
/// panic: a panic is a bug.
pub type RunFn = fn(&[u8]) -> Result<String, String>;
/// Structure-aware mutation of an input (`None` when the input cannot be
/// decoded; the engine then uses the byte mutators).
pub type MutateFn = fn(&mut Rng, &[u8], &[Vec<u8>]) -> Option<Vec<u8>>;
/// Makes a byte-mutated input pass an integrity check (a checksum or a
/// length prefix) so the mutation reaches the checks behind it.
pub type FixupFn = fn(&mut Vec<u8>);

/// A fuzz target.
pub struct Target {
    /// Name, also the corpus folder name.
    pub name: &'static str,
    /// The harness.
    pub run: RunFn,
    /// Structure-aware mutator.
    pub mutate: Option<MutateFn>,
    /// Integrity fixup after byte mutations (applied 7 times in 8).
    pub fixup: Option<FixupFn>,
    /// Words for the dictionary mutator.
    pub dict: &'static [&'static [u8]],
    /// Largest input the mutators produce.
    pub max_len: usize,
}

// ---- configuration and results -------------------------------------------

/// How long to fuzz.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    /// Wall-clock time.
    Time(Duration),
    /// A fixed number of executions (after the seeds).
    Execs(u64),
}

/// Engine settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long to run.
    pub budget: Budget,
    /// PRNG seed.
    pub seed: u64,
    /// An input slower than this is a timeout.
    pub timeout: Duration,
    /// An input slower than this aborts the process (a hang).
    pub hang: Duration,
    /// Where crashes are saved (`None`: not saved).
    pub crash_dir: Option<PathBuf>,
    /// Largest corpus (seeds plus additions).
    pub max_corpus: usize,
    /// Largest single allocation allowed while fuzzing (see [`TrackingAlloc`]).
    pub alloc_cap: usize,
    /// An input during which the loader holds more heap than this at once
    /// is a memory finding (see [`TrackingAlloc`]).
    pub mem_limit: usize,
}

impl Config {
    /// The settings for `target` from the environment. Without any, a run
    /// is reproducible: `default_execs` executions from a seed derived from
    /// the target name. `NANOC_FUZZ_SECS` fuzzes for a time budget instead
    /// (then the seed comes from the clock and is printed),
    /// `NANOC_FUZZ_EXECS` sets the count, `NANOC_FUZZ_SEED` fixes the seed;
    /// `NANOC_FUZZ_TIMEOUT_MS` (1000), `NANOC_FUZZ_HANG_SECS` (10),
    /// `NANOC_FUZZ_ALLOC_CAP_MB` (3072), `NANOC_FUZZ_MEM_MB` (2048).
    pub fn from_env(target: &str, default_execs: u64) -> Config {
        fn var<T: std::str::FromStr>(k: &str) -> Option<T> {
            std::env::var(k).ok().and_then(|v| v.trim().parse().ok())
        }
        let secs: Option<f64> = var("NANOC_FUZZ_SECS");
        let budget = match (var::<u64>("NANOC_FUZZ_EXECS"), secs) {
            (Some(n), _) => Budget::Execs(n),
            (None, Some(s)) => Budget::Time(Duration::from_secs_f64(s.max(0.0))),
            (None, None) => Budget::Execs(default_execs),
        };
        let seed = var("NANOC_FUZZ_SEED").unwrap_or_else(|| match budget {
            Budget::Time(_) => {
                SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
                    ^ hash64(target.as_bytes())
            }
            Budget::Execs(_) => hash64(target.as_bytes()),
        });
        Config {
            budget,
            seed,
            timeout: Duration::from_millis(var("NANOC_FUZZ_TIMEOUT_MS").unwrap_or(1000)),
            hang: Duration::from_secs(var("NANOC_FUZZ_HANG_SECS").unwrap_or(10)),
            crash_dir: Some(crashes_dir(target)),
            max_corpus: 4096,
            alloc_cap: var::<usize>("NANOC_FUZZ_ALLOC_CAP_MB").unwrap_or(3072) << 20,
            mem_limit: var::<usize>("NANOC_FUZZ_MEM_MB").unwrap_or(2048) << 20,
        }
    }
}

/// What kind of finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The harness panicked.
    Crash,
    /// The input took longer than [`Config::timeout`].
    Timeout,
    /// The loader held more than [`Config::mem_limit`] of heap at once.
    Memory,
}

/// A crash or timeout.
#[derive(Clone, Debug)]
pub struct Finding {
    /// Crash or timeout.
    pub kind: Kind,
    /// Panic message (with location), or the time taken.
    pub message: String,
    /// The (minimised) input.
    pub input: Vec<u8>,
    /// Where it was saved.
    pub saved: Option<PathBuf>,
}

/// The result of a fuzzing run.
#[derive(Debug)]
pub struct Stats {
    /// Target name.
    pub target: &'static str,
    /// PRNG seed (to reproduce the run).
    pub seed: u64,
    /// Inputs run (seeds included).
    pub execs: u64,
    /// Inputs that the loader accepted.
    pub accepted: u64,
    /// Wall-clock time.
    pub elapsed: Duration,
    /// Seed inputs.
    pub seeds: usize,
    /// Corpus size at the end (seeds plus new-behaviour inputs).
    pub corpus: usize,
    /// Distinct behaviours seen.
    pub behaviours: usize,
    /// Slowest input.
    pub slowest: Duration,
    /// Most heap an input made the loader hold at once.
    pub peak_mem: usize,
    /// Unique crashes (by panic location and message).
    pub crashes: Vec<Finding>,
    /// Unique timeouts (by behaviour).
    pub timeouts: Vec<Finding>,
    /// Unique memory findings (by behaviour).
    pub memory: Vec<Finding>,
}

impl Stats {
    /// Executions per second.
    pub fn execs_per_sec(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// One machine-readable line (`scripts/fuzz.sh` parses it).
    pub fn line(&self) -> String {
        format!(
            "FUZZ-STATS target={} execs={} secs={:.1} execs_per_sec={:.0} crashes={} timeouts={} memory={} corpus={} seeds={} behaviours={} accepted={} slowest_ms={} peak_mem_mb={} seed={}",
            self.target,
            self.execs,
            self.elapsed.as_secs_f64(),
            self.execs_per_sec(),
            self.crashes.len(),
            self.timeouts.len(),
            self.memory.len(),
            self.corpus,
            self.seeds,
            self.behaviours,
            self.accepted,
            self.slowest.as_millis(),
            self.peak_mem >> 20,
            self.seed
        )
    }

    /// A report of every finding (message, where it was saved, the input
    /// in hex when it is short).
    pub fn report(&self) -> String {
        let mut s = String::new();
        for f in self.crashes.iter().chain(&self.timeouts).chain(&self.memory) {
            s.push_str(&format!("--- {:?} in target `{}`: {}\n", f.kind, self.target, f.message));
            if let Some(p) = &f.saved {
                s.push_str(&format!("    saved to {}\n", p.display()));
            }
            if f.input.len() <= 2048 {
                s.push_str(&format!("    input ({} bytes): {}\n", f.input.len(), hex(&f.input)));
            }
        }
        s
    }
}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---- running one input ---------------------------------------------------

/// What one execution did.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Accepted, with its behaviour description.
    Ok(String),
    /// Rejected with this error.
    Err(String),
    /// Panicked: message with location, and the backtrace.
    Panic(String, String),
}

thread_local! {
    static CAPTURE: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CAPTURE.with(|c| c.get()) {
                let p = info.payload();
                let msg =
                    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
                let loc = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
                let bt = std::backtrace::Backtrace::force_capture().to_string();
                let full = format!("panicked at {loc}: {}", msg.unwrap_or_else(|| "(non-string payload)".into()));
                LAST_PANIC.with(|l| *l.borrow_mut() = Some((full, bt)));
            } else {
                prev(info)
            }
        }));
    });
}

/// Runs `input` through `run`, catching a panic (quietly: its message and
/// backtrace go into the [`Outcome`], not to stderr).
pub fn run_one(run: RunFn, input: &[u8]) -> Outcome {
    install_panic_hook();
    CAPTURE.with(|c| c.set(true));
    let r = panic::catch_unwind(AssertUnwindSafe(|| run(input)));
    CAPTURE.with(|c| c.set(false));
    match r {
        Ok(Ok(b)) => Outcome::Ok(b),
        Ok(Err(e)) => Outcome::Err(e),
        Err(_) => {
            let (m, bt) = LAST_PANIC.with(|l| l.borrow_mut().take()).unwrap_or_default();
            Outcome::Panic(m, bt)
        }
    }
}

/// A short signature of an error message for new-behaviour feedback:
/// digits, quoted names and byte offsets are dropped, so that the same
/// check failing on another node or value is not "new".
pub fn normalize(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len().min(160));
    let mut chars = msg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // A quoted name or value: dropped (escapes honoured).
            '`' | '"' => {
                out.push(c);
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
                out.push(c);
            }
            // A number, hex included (`0x1f`, `1e-5`, `12ab`): one `#`.
            c if c.is_ascii_digit() => {
                out.push('#');
                while chars.peek().is_some_and(|d| d.is_ascii_alphanumeric() || *d == '.' || *d == '_') {
                    chars.next();
                }
            }
            c => out.push(c),
        }
        if out.len() >= 160 {
            break;
        }
    }
    // Lists of numbers (shapes, offsets) of any length are one behaviour.
    for (from, to) in [("#, #", "#"), ("#,#", "#")] {
        while out.contains(from) {
            out = out.replace(from, to);
        }
    }
    out
}

/// The signature of a panic message: its location plus its normalised
/// text (first line).
fn crash_signature(msg: &str) -> String {
    normalize(msg.lines().next().unwrap_or(""))
}

// ---- the allocator -------------------------------------------------------

/// The global allocator of the fuzz test binary: the system allocator,
/// recording the largest single allocation per thread (limit tests assert
/// that a file claiming a huge size is rejected without allocating it) and,
/// while a thread is fuzzing, refusing allocations over a cap (printing
/// where the offending input is) so that an absurd allocation is a loud
/// failure instead of the machine swapping or the OOM killer.
pub struct TrackingAlloc;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    /// Bytes allocated minus bytes freed on this thread, and its peak.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static CAP: Cell<usize> = const { Cell::new(usize::MAX) };
    /// The target and input this thread is fuzzing (for the cap handler).
    static FUZZING: Cell<Option<(&'static str, *const u8, usize)>> = const { Cell::new(None) };
}

fn note_live(delta: isize) {
    if let Ok(live) = LIVE.try_with(|l| {
        l.set(l.get().wrapping_add(delta));
        l.get()
    }) {
        let _ = PEAK.try_with(|p| p.set(p.get().max(live)));
    }
}

fn note_alloc(size: usize) -> bool {
    let _ = LARGEST.try_with(|l| {
        if size > l.get() {
            l.set(size)
        }
    });
    let cap = CAP.try_with(|c| c.get()).unwrap_or(usize::MAX);
    if size <= cap {
        return true;
    }
    // Over the cap: lift it (the code below allocates a little), save the
    // input, and let the allocation fail, which aborts the process.
    let _ = CAP.try_with(|c| c.set(usize::MAX));
    let mut saved = String::from("(not saved)");
    if let Ok(Some((target, ptr, len))) = FUZZING.try_with(|f| f.get()) {
        // SAFETY: `fuzz` sets FUZZING to the input it is running for the
        // duration of the run, and this is that run's thread.
        let input = unsafe { std::slice::from_raw_parts(ptr, len) };
        let dir = crashes_dir(target);
        let path = dir.join(format!("alloc-{:016x}", hash64(input)));
        if std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, input)).is_ok() {
            saved = path.display().to_string();
        }
    }
    eprintln!(
        "\nnanoc fuzz: an input asked for a single allocation of {size} bytes, over the fuzzing cap of {cap} \
         bytes (NANOC_FUZZ_ALLOC_CAP_MB); input saved to {saved}. Aborting."
    );
    false
}

// SAFETY: every method forwards to `System` with the same arguments; the
// bookkeeping touches only const-initialised thread locals (no allocation).
unsafe impl GlobalAlloc for TrackingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note_alloc(layout.size()) {
            return std::ptr::null_mut();
        }
        note_live(layout.size() as isize);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note_alloc(layout.size()) {
            return std::ptr::null_mut();
        }
        note_live(layout.size() as isize);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_live(-(layout.size() as isize));
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note_alloc(new_size) {
            return std::ptr::null_mut();
        }
        note_live(new_size as isize - layout.size() as isize);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Resets this thread's largest-allocation record (needs [`TrackingAlloc`]
/// as the global allocator).
pub fn reset_largest_alloc() {
    LARGEST.with(|l| l.set(0));
}

/// The largest single allocation on this thread since
/// [`reset_largest_alloc`] (0 unless [`TrackingAlloc`] is the global allocator).
pub fn largest_alloc() -> usize {
    LARGEST.with(|l| l.get())
}

/// Starts measuring the heap this thread holds at once ([`peak_heap`]).
pub fn reset_peak_heap() {
    PEAK.with(|p| p.set(LIVE.with(|l| l.get())));
}

/// The most heap this thread held at once since [`reset_peak_heap`], above
/// what it held then (approximate: memory freed by other threads is not
/// subtracted; 0 unless [`TrackingAlloc`] is the global allocator).
pub fn peak_heap(since_live: isize) -> usize {
    PEAK.with(|p| p.get()).saturating_sub(since_live).max(0) as usize
}

/// What this thread holds now (the argument of [`peak_heap`]).
pub fn live_heap() -> isize {
    LIVE.with(|l| l.get())
}

// ---- the engine ----------------------------------------------------------

/// The seed inputs of `target`: its corpus folder plus its regressions.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let mut files = input_files(&corpus_dir(target));
    files.extend(input_files(&regressions_dir(target)));
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

struct Watchdog {
    /// Milliseconds since `base` when the current input started, plus one; 0 when idle.
    started: Arc<AtomicU64>,
    /// A copy of the input being run.
    input: Arc<Mutex<Vec<u8>>>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(target: &'static str, hang: Duration, crash_dir: Option<PathBuf>) -> (Self, Instant) {
        let base = Instant::now();
        let started = Arc::new(AtomicU64::new(0));
        let input = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let (s, d, current) = (started.clone(), done.clone(), input.clone());
        let thread = std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let t = s.load(Ordering::Relaxed);
                if t == 0 {
                    continue;
                }
                let now = base.elapsed().as_millis() as u64 + 1;
                if now.saturating_sub(t) > hang.as_millis() as u64 {
                    let input = current.lock().map(|v| v.clone()).unwrap_or_default();
                    let mut saved = "(not saved)".to_string();
                    if let Some(dir) = &crash_dir {
                        let p = dir.join(format!("hang-{:016x}", hash64(&input)));
                        if std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&p, &input)).is_ok() {
                            saved = p.display().to_string();
                        }
                    }
                    eprintln!(
                        "\nnanoc fuzz: target `{target}`: one input has run for over {:?}; it is saved in {saved}. Aborting.",
                        hang
                    );
                    std::process::abort();
                }
            }
        });
        (Watchdog { started, input, done, thread: Some(thread) }, base)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Fuzzes `target` from `seeds` with `cfg`. Runs on the calling thread
/// (give it a main-thread-sized stack: see [`fuzz_on_big_stack`]).
pub fn fuzz(target: &Target, seeds: Vec<Vec<u8>>, cfg: &Config) -> Stats {
    let mut rng = Rng::new(cfg.seed);
    let trace = std::env::var("NANOC_FUZZ_TRACE").is_ok_and(|v| v == "1");
    let verbose = std::env::var("NANOC_FUZZ_VERBOSE").is_ok_and(|v| v == "1");
    let current = if trace { File::create(current_input_path(target.name)).ok() } else { None };
    let (watchdog, base) = Watchdog::start(target.name, cfg.hang, cfg.crash_dir.clone());
    let start = Instant::now();

    let mut stats = Stats {
        target: target.name,
        seed: cfg.seed,
        execs: 0,
        accepted: 0,
        elapsed: Duration::ZERO,
        seeds: seeds.len(),
        corpus: 0,
        behaviours: 0,
        slowest: Duration::ZERO,
        crashes: Vec::new(),
        timeouts: Vec::new(),
        memory: Vec::new(),
        peak_mem: 0,
    };
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    let mut behaviours: HashSet<u64> = HashSet::new();
    let mut crash_sigs: HashSet<String> = HashSet::new();
    let mut timeout_sigs: HashSet<u64> = HashSet::new();
    let mut memory_sigs: HashSet<u64> = HashSet::new();
    let mut pending: std::collections::VecDeque<Vec<u8>> = seeds.into();
    if pending.is_empty() {
        pending.push_back(Vec::new());
    }
    let seed_count = pending.len() as u64;
    let mut slowest_seed = Duration::ZERO;
    let keep_len = pending.iter().map(Vec::len).max().unwrap_or(0).saturating_mul(2).max(64 << 10);

    loop {
        let done = match cfg.budget {
            Budget::Time(t) => stats.execs >= seed_count && start.elapsed() >= t,
            Budget::Execs(n) => stats.execs >= seed_count + n,
        };
        if done {
            break;
        }
        let input = match pending.pop_front() {
            Some(s) => s,
            None => next_input(&mut rng, target, &corpus),
        };
        if let Some(f) = &current {
            let _ = f.set_len(0).and_then(|_| f.write_all_at(&input, 0));
        }
        if let Ok(mut v) = watchdog.input.lock() {
            v.clear();
            v.extend_from_slice(&input);
        }
        watchdog.started.store(base.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
        FUZZING.with(|f| f.set(Some((target.name, input.as_ptr(), input.len()))));
        let _ = CAP.try_with(|c| c.set(cfg.alloc_cap));
        let live0 = live_heap();
        reset_peak_heap();
        let t0 = Instant::now();
        let outcome = run_one(target.run, &input);
        let took = t0.elapsed();
        let held = peak_heap(live0);
        let _ = CAP.try_with(|c| c.set(usize::MAX));
        FUZZING.with(|f| f.set(None));
        watchdog.started.store(0, Ordering::Relaxed);
        stats.execs += 1;
        stats.slowest = stats.slowest.max(took);
        stats.peak_mem = stats.peak_mem.max(held);

        let behaviour = match &outcome {
            Outcome::Ok(b) => {
                stats.accepted += 1;
                format!("ok:{b}")
            }
            Outcome::Err(e) => format!("err:{}", normalize(e)),
            Outcome::Panic(m, bt) => {
                let sig = crash_signature(m);
                if crash_sigs.insert(sig.clone()) {
                    let min =
                        minimize(target, &input, |o| matches!(o, Outcome::Panic(m2, _) if crash_signature(m2) == sig));
                    let saved = save_finding(cfg, "", &min, &format!("{m}\n\nbacktrace:\n{bt}"));
                    stats.crashes.push(Finding { kind: Kind::Crash, message: m.clone(), input: min, saved });
                }
                continue;
            }
        };
        let h = hash64(behaviour.as_bytes());
        if held > cfg.mem_limit {
            if memory_sigs.insert(h) {
                let msg = format!(
                    "held {} MiB at once (limit {} MiB); outcome: {behaviour}",
                    held >> 20,
                    cfg.mem_limit >> 20
                );
                let saved = save_finding(cfg, "memory-", &input, &msg);
                stats.memory.push(Finding { kind: Kind::Memory, message: msg, input: input.clone(), saved });
            }
            continue;
        }
        if took > cfg.timeout {
            if timeout_sigs.insert(h) {
                let msg = format!("took {:.2} s (limit {:?}); outcome: {behaviour}", took.as_secs_f64(), cfg.timeout);
                let saved = save_finding(cfg, "timeout-", &input, &msg);
                stats.timeouts.push(Finding { kind: Kind::Timeout, message: msg, input: input.clone(), saved });
            }
            continue;
        }
        // New behaviour: keep the input (unless it is slow: its mutants
        // would be slow too).
        let new = behaviours.insert(h);
        if new && verbose {
            eprintln!("new behaviour: {}", behaviour.chars().take(300).collect::<String>().replace('\n', "\\n"));
        }
        // Slow or big inputs (over 4x the slowest seed, 2x the biggest) are
        // run but not kept: their mutants would be slow too.
        if stats.execs <= seed_count {
            slowest_seed = slowest_seed.max(took);
        }
        let keep_time = (slowest_seed * 4 + Duration::from_millis(1)).min(cfg.timeout / 20);
        if (new || stats.execs <= seed_count) && took <= keep_time && input.len() <= keep_len {
            if corpus.len() < cfg.max_corpus {
                corpus.push(input);
            } else {
                // Full: replace a random addition (seeds stay).
                let seeds_kept = (seed_count as usize).min(corpus.len());
                let i = seeds_kept + rng.below(corpus.len() - seeds_kept);
                if let Some(slot) = corpus.get_mut(i) {
                    *slot = input;
                }
            }
        }
    }
    drop(watchdog);
    stats.elapsed = start.elapsed();
    stats.corpus = corpus.len();
    stats.behaviours = behaviours.len();
    stats
}

/// [`fuzz`] on a fresh thread with an 8 MiB stack (what `main` gets), so
/// the recursion depth an input can reach is the CLI's, not the test
/// harness's 2 MiB.
pub fn fuzz_on_big_stack(target: &'static Target, seeds: Vec<Vec<u8>>, cfg: Config) -> Stats {
    std::thread::Builder::new()
        .name(format!("fuzz-{}", target.name))
        .stack_size(8 << 20)
        .spawn(move || fuzz(target, seeds, &cfg))
        .and_then(|h| h.join().map_err(|_| std::io::Error::other("fuzz thread panicked")))
        .unwrap_or_else(|e| panic!("fuzz thread for `{}`: {e}", target.name))
}

/// The next mutant: a corpus entry, mutated by the target's structure-aware
/// mutator (half the time, when it has one) or by byte havoc plus the
/// target's integrity fixup.
fn next_input(rng: &mut Rng, target: &Target, corpus: &[Vec<u8>]) -> Vec<u8> {
    let parent = rng.pick(corpus).cloned().unwrap_or_default();
    // A structure-aware mutator re-encodes through the crates' own writers
    // (prost, `encode_bundle`); a panic there falls back to byte havoc.
    let structured = target.mutate.filter(|_| rng.one_in(2)).and_then(|m| {
        CAPTURE.with(|c| c.set(true));
        let r = panic::catch_unwind(AssertUnwindSafe(|| m(rng, &parent, corpus)));
        CAPTURE.with(|c| c.set(false));
        r.ok().flatten()
    });
    if let Some(mut out) = structured {
        if rng.one_in(8) {
            mutate_bytes(rng, &mut out, corpus, target.dict, target.max_len);
        }
        out.truncate(target.max_len);
        return out;
    }
    let mut out = parent;
    mutate_bytes(rng, &mut out, corpus, target.dict, target.max_len);
    if let Some(fix) = target.fixup
        && !rng.one_in(8)
    {
        fix(&mut out);
    }
    out
}

/// Shrinks `input` while `keep` holds for its outcome: removes chunks of
/// halving sizes (with the target's fixup applied), at most 2000 tries.
pub fn minimize(target: &Target, input: &[u8], keep: impl Fn(&Outcome) -> bool) -> Vec<u8> {
    let mut best = input.to_vec();
    let mut tries = 0;
    let mut chunk = best.len() / 2;
    while chunk > 0 && tries < 2000 {
        let mut i = 0;
        let mut shrunk = false;
        while i < best.len() && tries < 2000 {
            let end = (i + chunk).min(best.len());
            let mut cand = [&best[..i], &best[end..]].concat();
            if let Some(fix) = target.fixup {
                fix(&mut cand);
            }
            tries += 1;
            if cand.len() < best.len() && keep(&run_one(target.run, &cand)) {
                best = cand;
                shrunk = true;
            } else {
                i += chunk;
            }
        }
        if !shrunk {
            chunk /= 2;
        }
    }
    best
}

fn save_finding(cfg: &Config, prefix: &str, input: &[u8], note: &str) -> Option<PathBuf> {
    let dir = cfg.crash_dir.as_ref()?;
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(format!("{prefix}{:016x}", hash64(input)));
    std::fs::write(&path, input).ok()?;
    let mut txt = path.clone().into_os_string();
    txt.push(".txt");
    std::fs::write(PathBuf::from(txt), note).ok()?;
    Some(path)
}

/// Replays `files` through `target`: every panic, every input slower than
/// `timeout` and every input that made the loader hold more than
/// `mem_limit` bytes at once is returned as a finding.
pub fn replay(target: &Target, files: &[PathBuf], timeout: Duration, mem_limit: usize) -> Vec<(PathBuf, String)> {
    let mut bad = Vec::new();
    for p in files {
        let Ok(input) = std::fs::read(p) else { continue };
        let live0 = live_heap();
        reset_peak_heap();
        let t0 = Instant::now();
        let outcome = run_one(target.run, &input);
        let (took, held) = (t0.elapsed(), peak_heap(live0));
        match outcome {
            Outcome::Panic(m, _) => bad.push((p.clone(), m)),
            _ if took > timeout => {
                bad.push((p.clone(), format!("took {:.2} s (limit {timeout:?})", took.as_secs_f64())))
            }
            _ if held > mem_limit => bad.push((p.clone(), format!("held {} MiB at once", held >> 20))),
            _ => {}
        }
    }
    bad
}
