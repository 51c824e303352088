//! Fuzzing (issue #9): one test per target runs the engine of
//! `nanoc_tests::fuzz` for a short budget from the committed seed corpus
//! and fails on any crash or timeout; `replay_crashes_and_regressions`
//! replays every saved crash; the `limits` tests check that files claiming
//! absurd sizes are rejected with a clear error without allocating the
//! claim. See `docs/fuzzing.md` and `scripts/fuzz.sh`.
//!
//! By default a run is reproducible ([`DEFAULT_EXECS`] executions from a
//! fixed seed) and fails on crashes and memory findings only: tests never
//! fail on timing, so slow inputs are findings (printed, saved, failing)
//! only with `NANOC_FUZZ_STRICT_TIME=1` (which `scripts/fuzz.sh` sets);
//! otherwise only the hang watchdog (10 s) applies.
//! `NANOC_FUZZ_SECS` or `NANOC_FUZZ_EXECS` change the budget.

use nanoc_tests::fuzz::{self, Config, TrackingAlloc, largest_alloc, reset_largest_alloc, targets};
use std::time::Duration;

/// Records the largest allocation per thread (the limit tests assert on
/// it) and caps allocations while fuzzing.
#[global_allocator]
static ALLOC: TrackingAlloc = TrackingAlloc;

/// Executions per target in the default test run.
const DEFAULT_EXECS: u64 = 3000;

/// Whether slow inputs (timeouts) fail the tests (`NANOC_FUZZ_STRICT_TIME=1`).
fn strict_time() -> bool {
    std::env::var("NANOC_FUZZ_STRICT_TIME").is_ok_and(|v| v == "1")
}

fn fuzz_target(name: &str) {
    let target = targets::by_name(name).unwrap();
    let seeds = fuzz::seeds(name);
    assert!(!seeds.is_empty(), "no seeds in {}", fuzz::corpus_dir(name).display());
    let mut cfg = Config::from_env(name, DEFAULT_EXECS);
    if !strict_time() {
        // Only the hang watchdog remains: slow inputs are not findings here.
        cfg.timeout = cfg.hang;
    }
    let stats = fuzz::fuzz_on_big_stack(target, seeds, cfg);
    println!("{}", stats.line());
    eprintln!(
        "fuzz {name}: {} execs in {:.1} s ({:.0}/s), {} crashes, {} timeouts, corpus {} (from {} seeds), slowest {} ms",
        stats.execs,
        stats.elapsed.as_secs_f64(),
        stats.execs_per_sec(),
        stats.crashes.len(),
        stats.timeouts.len(),
        stats.corpus,
        stats.seeds,
        stats.slowest.as_millis()
    );
    let timeouts_fail = strict_time() && !stats.timeouts.is_empty();
    assert!(
        stats.crashes.is_empty() && !timeouts_fail && stats.memory.is_empty(),
        "fuzz target `{name}` (seed {}) found {} crash(es), {} timeout(s) and {} memory finding(s):\n{}",
        stats.seed,
        stats.crashes.len(),
        stats.timeouts.len(),
        stats.memory.len(),
        stats.report()
    );
}

#[test]
fn fuzz_onnx() {
    fuzz_target("onnx");
}

#[test]
fn fuzz_ngraph() {
    fuzz_target("ngraph");
}

#[test]
fn fuzz_safetensors() {
    fuzz_target("safetensors");
}

#[test]
fn fuzz_toml() {
    fuzz_target("toml");
}

#[test]
fn fuzz_bundle() {
    fuzz_target("bundle");
}

/// Every saved crash (`tests/fuzz/crashes/`) and fixed crash
/// (`tests/fuzz/regressions/`) must load without panicking or holding over
/// 2 GiB (and, with `NANOC_FUZZ_STRICT_TIME=1`, in under 2 s). Also checks
/// every seed.
#[test]
fn replay_crashes_and_regressions() {
    let mut bad = Vec::new();
    for t in targets::all() {
        let mut files = fuzz::input_files(&fuzz::crashes_dir(t.name));
        files.extend(fuzz::input_files(&fuzz::regressions_dir(t.name)));
        files.extend(fuzz::input_files(&fuzz::corpus_dir(t.name)));
        let limit = if strict_time() { Duration::from_secs(2) } else { Duration::MAX };
        bad.extend(fuzz::replay(t, &files, limit, 2 << 30));
    }
    let list: Vec<String> = bad.iter().map(|(p, m)| format!("{}: {m}", p.display())).collect();
    assert!(bad.is_empty(), "{} saved input(s) still fail:\n{}", bad.len(), list.join("\n"));
}

/// The engine itself: a planted panic is found, minimised and saved; a
/// slow input is reported as a timeout; the run is reproducible by seed.
#[test]
fn engine_finds_planted_bugs() {
    fn run(d: &[u8]) -> Result<String, String> {
        if d.windows(3).any(|w| w == b"bug") {
            panic!("planted bug");
        }
        if d.starts_with(b"SLOW") {
            std::thread::sleep(Duration::from_millis(12));
        }
        if d.len() > 4 { Ok(format!("len {}", d.len().min(8))) } else { Err(format!("short: {}", d.len())) }
    }
    static TOY: fuzz::Target =
        fuzz::Target { name: "toy", run, mutate: None, fixup: None, dict: &[b"bu", b"ug", b"SLOW"], max_len: 64 };
    let dir = std::env::temp_dir().join(format!("nanoc-fuzz-engine-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = Config {
        budget: fuzz::Budget::Execs(10_000),
        seed: 7,
        timeout: Duration::from_millis(5),
        hang: Duration::from_secs(10),
        crash_dir: Some(dir.clone()),
        max_corpus: 64,
        alloc_cap: usize::MAX,
        mem_limit: usize::MAX,
    };
    let stats = fuzz::fuzz_on_big_stack(&TOY, vec![b"hello world".to_vec()], cfg.clone());
    assert_eq!(stats.crashes.len(), 1, "{}", stats.line());
    let crash = &stats.crashes[0];
    assert!(crash.message.contains("planted bug"), "{}", crash.message);
    assert_eq!(crash.input, b"bug", "minimised");
    let saved = crash.saved.as_ref().unwrap();
    assert_eq!(std::fs::read(saved).unwrap(), b"bug");
    let note = std::fs::read_to_string(format!("{}.txt", saved.display())).unwrap();
    assert!(note.contains("planted bug") && note.contains("backtrace"), "{note}");
    assert!(!stats.timeouts.is_empty() && stats.timeouts[0].input.starts_with(b"SLOW"), "{}", stats.line());
    let again = fuzz::fuzz_on_big_stack(&TOY, vec![b"hello world".to_vec()], cfg);
    assert_eq!((again.execs, again.behaviours, again.corpus), (stats.execs, stats.behaviours, stats.corpus));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Regenerates the seed corpora from the fixtures:
/// `cargo test -p nanoc-tests --test fuzz -- --ignored make_seed_corpora`.
#[test]
#[ignore = "regenerates tests/fuzz/corpus; run by hand"]
fn make_seed_corpora() {
    corpus::make();
}

mod corpus {
    use nanoc::onnx::proto::ModelProto;
    use nanoc_ir::weights::Weights;
    use nanoc_ir::{Bytes, DType, Tensor, TensorType};
    use nanoc_tests::fuzz::{self, targets};
    use nanoc_tests::{fixture, fixtures_dir};
    use prost::Message;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn reset(dir: &Path) {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
    }

    fn onnx_op_types(bytes: &[u8]) -> BTreeSet<String> {
        let m = ModelProto::decode(bytes).unwrap();
        m.graph.unwrap().node.iter().map(|n| n.op_type.clone().unwrap_or_default()).collect()
    }

    /// The smallest fixtures that together cover every op type (ONNX op
    /// types for `onnx`, IR op names for `ngraph`), greedily.
    fn greedy_cover(items: Vec<(String, usize, BTreeSet<String>)>) -> Vec<String> {
        let mut items = items;
        items.sort_by_key(|(n, size, _)| (*size, n.clone()));
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (name, _, ops) in items {
            if !ops.is_subset(&seen) {
                seen.extend(ops);
                out.push(name);
            }
        }
        out
    }

    fn op_fixtures() -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(fixtures_dir().join("ops"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("model.onnx").exists())
            .map(|e| format!("ops/{}", e.file_name().to_string_lossy()))
            .collect();
        v.sort();
        v
    }

    pub fn make() {
        let whole = ["mlp", "cnn", "qdq_cnn", "unsupported"];

        // onnx: whole-model fixtures (not gpt2: 520 KB) and a greedy op cover.
        let dir = fuzz::corpus_dir("onnx");
        reset(&dir);
        let items: Vec<(String, usize, BTreeSet<String>)> = op_fixtures()
            .into_iter()
            .map(|f| {
                let b = std::fs::read(fixtures_dir().join(&f).join("model.onnx")).unwrap();
                (f, b.len(), onnx_op_types(&b))
            })
            .collect();
        let mut onnx_seeds: Vec<String> = whole.iter().map(|s| s.to_string()).collect();
        onnx_seeds.extend(greedy_cover(items));
        for f in &onnx_seeds {
            let name = f.trim_start_matches("ops/");
            std::fs::copy(fixtures_dir().join(f).join("model.onnx"), dir.join(format!("{name}.onnx"))).unwrap();
        }

        // ngraph: printed imports (greedy cover of IR ops), their big
        // constants in one weights file.
        let dir = fuzz::corpus_dir("ngraph");
        reset(&dir);
        let mut graphs = Vec::new();
        for f in whole.iter().map(|s| s.to_string()).chain(op_fixtures()) {
            if let Ok(g) = fixture(&f).import() {
                let text = nanoc_ir::text::print(&g);
                let ops: BTreeSet<String> = g.node_ids().iter().map(|&id| g.node(id).op.name().to_string()).collect();
                graphs.push((f, text, ops, nanoc_ir::text::external_weights(&g)));
            }
        }
        let items = graphs.iter().map(|(f, t, ops, _)| (f.clone(), t.len(), ops.clone())).collect();
        let mut chosen = greedy_cover(items);
        chosen.extend(["mlp".to_string(), "cnn".to_string()]);
        let mut weights = Weights::new();
        for (f, text, _, w) in &graphs {
            if !chosen.contains(f) || w.iter().any(|(n, _)| weights.get(n).is_some()) {
                continue;
            }
            for (n, t) in w.iter() {
                weights.insert(n.to_string(), t.clone());
            }
            let name = f.trim_start_matches("ops/");
            std::fs::write(dir.join(format!("{name}.ngraph")), text).unwrap();
        }
        weights.save_safetensors(&targets::ngraph_weights_path()).unwrap();

        // safetensors: one tensor of every dtype, the mlp's weights, none.
        let dir = fuzz::corpus_dir("safetensors");
        reset(&dir);
        let mut w = Weights::new();
        w.insert("f32".into(), Tensor::from_vec(vec![2, 3], vec![1.0f32, -2.0, 3.5, 0.0, f32::INFINITY, 7.0]).unwrap());
        let half = |d: DType, shape: Vec<usize>, bits: &[u16]| {
            let bytes = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
            Tensor::from_bytes(TensorType::new(d, shape), Bytes::from_vec(bytes)).unwrap()
        };
        w.insert("f16".into(), half(DType::F16, vec![2], &[0x3c00, 0xfc00]));
        w.insert("bf16".into(), half(DType::BF16, vec![1, 2], &[0x3f80, 0xff7f]));
        w.insert("i8".into(), Tensor::from_vec(vec![2], vec![-128i8, 127]).unwrap());
        w.insert("u8".into(), Tensor::from_vec(vec![1], vec![255u8]).unwrap());
        w.insert("i32".into(), Tensor::from_vec(vec![2], vec![i32::MIN, 5]).unwrap());
        w.insert("i64".into(), Tensor::scalar(i64::MAX));
        w.insert("bool".into(), Tensor::from_vec(vec![3], vec![true, false, true]).unwrap());
        w.insert("empty".into(), Tensor::from_vec(vec![0, 4], Vec::<f32>::new()).unwrap());
        w.save_safetensors(&dir.join("dtypes.safetensors")).unwrap();
        let mlp = fixture("mlp").import().unwrap();
        nanoc_ir::text::external_weights(&mlp).save_safetensors(&dir.join("mlp.safetensors")).unwrap();
        Weights::new().save_safetensors(&dir.join("empty.safetensors")).unwrap();

        // toml: the bundled descriptors.
        let dir = fuzz::corpus_dir("toml");
        reset(&dir);
        let tdir = nanoc_targets::targets_dir();
        for t in ["cpu-x86_64", "cpu-aarch64", "npu-x", "ethos-u55-256"] {
            std::fs::copy(tdir.join(format!("{t}.toml")), dir.join(format!("{t}.toml"))).unwrap();
        }

        // bundle: compiled from the mlp and a few op fixtures (no `.nanob`
        // extension: .gitignore ignores those).
        let dir = fuzz::corpus_dir("bundle");
        reset(&dir);
        let t = nanoc::driver::resolve_target("cpu").unwrap();
        for f in [
            "mlp",
            "ops/add_bcast_both",
            "ops/gather_axis1",
            "ops/softmax_axis_1",
            "ops/layernorm_axis_last",
            "ops/conv2d_1x1",
        ] {
            let Ok(g) = fixture(f).import() else { continue };
            let Ok(prog) = nanoc_backends::cpu::compile(&g, &t, false) else { continue };
            let bytes = nanoc::driver::bundle_bytes(&prog).unwrap();
            std::fs::write(dir.join(format!("{}.bundle", f.trim_start_matches("ops/"))), bytes).unwrap();
        }
    }
}

/// Limits: sizes, counts, depths and cycles from a file are checked before
/// anything is allocated or recursed on, and each is a clear error.
mod limits {
    use super::*;
    use nanoc::onnx::ImportOptions;
    use nanoc::onnx::proto::tensor_shape_proto::Dimension;
    use nanoc::onnx::proto::tensor_shape_proto::dimension::Value as DimValue;
    use nanoc::onnx::proto::type_proto::{Tensor as TypeTensor, Value as TypeValue};
    use nanoc::onnx::proto::{
        AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
        TensorShapeProto, TypeProto, ValueInfoProto,
    };
    use nanoc_ir::weights::Weights;
    use nanoc_runtime::bundle::update_checksum;
    use prost::Message;
    use std::path::PathBuf;
    use std::time::Instant;

    /// Largest allocation a rejected claim may cause (the inputs here are
    /// at most a few MB; the claims are terabytes).
    const SMALL: usize = 64 << 20;

    fn vi(name: &str, dims: &[i64]) -> ValueInfoProto {
        ValueInfoProto {
            name: Some(name.into()),
            r#type: Some(TypeProto {
                value: Some(TypeValue::TensorType(TypeTensor {
                    elem_type: Some(1),
                    shape: Some(TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|&d| Dimension { value: Some(DimValue::DimValue(d)), denotation: None })
                            .collect(),
                    }),
                })),
                denotation: None,
            }),
            ..Default::default()
        }
    }

    fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
        NodeProto {
            op_type: Some(op.into()),
            name: Some(format!("{op}_{}", outputs.first().copied().unwrap_or(""))),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn model(graph: GraphProto) -> Vec<u8> {
        ModelProto {
            ir_version: Some(8),
            opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
            graph: Some(graph),
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// Imports `bytes`, expecting an error; returns (message, largest allocation).
    fn import_err(bytes: &[u8], base: Option<&std::path::Path>) -> (String, usize) {
        reset_largest_alloc();
        let r = nanoc::onnx::import_onnx_bytes(bytes, "limit.onnx", base, &ImportOptions::default());
        let peak = largest_alloc();
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => (e.to_string(), peak),
        }
    }

    fn init_graph(t: TensorProto) -> GraphProto {
        GraphProto {
            name: Some("g".into()),
            node: vec![node("Relu", &["w"], &["y"])],
            initializer: vec![t],
            output: vec![vi("y", &[])],
            ..Default::default()
        }
    }

    fn float_init(dims: &[i64]) -> TensorProto {
        TensorProto { name: Some("w".into()), data_type: Some(1), dims: dims.to_vec(), ..Default::default() }
    }

    #[test]
    fn onnx_element_counts_that_overflow_are_errors() {
        for dims in [vec![1 << 32, 1 << 32, 16], vec![i64::MAX, 2], vec![1 << 62, 1 << 2]] {
            let mut t = float_init(&dims);
            t.raw_data = Some(vec![0; 16]);
            let (msg, peak) = import_err(&model(init_graph(t)), None);
            assert!(msg.contains("tensor `w`") && msg.contains("is too large"), "{dims:?}: {msg}");
            assert!(peak < SMALL, "{dims:?}: allocated {peak} bytes");
        }
        // A graph input whose dims overflow.
        let g = GraphProto {
            node: vec![node("Relu", &["x"], &["y"])],
            input: vec![vi("x", &[1 << 40, 1 << 40])],
            output: vec![vi("y", &[])],
            ..Default::default()
        };
        let (msg, peak) = import_err(&model(g), None);
        assert!(msg.contains("input `x`") && msg.contains("too large"), "{msg}");
        assert!(peak < SMALL, "allocated {peak} bytes");
    }

    #[test]
    fn onnx_absurd_dims_are_errors_without_allocating() {
        let dims = [1_000_000, 1_000_000];
        let mut t = float_init(&dims);
        t.raw_data = Some(vec![0; 16]);
        let (msg, peak) = import_err(&model(init_graph(t)), None);
        assert!(msg.contains("raw_data has 16 bytes but FLOAT [1000000,1000000] needs 4000000000000"), "{msg}");
        assert!(peak < SMALL, "allocated {peak} bytes");

        let mut t = float_init(&dims);
        t.float_data = vec![1.0; 4];
        let (msg, peak) = import_err(&model(init_graph(t)), None);
        assert!(msg.contains("float_data has 4 values but FLOAT [1000000,1000000] needs 1000000000000"), "{msg}");
        assert!(peak < SMALL, "allocated {peak} bytes");

        // External data: the file is far shorter than the claim.
        let dir = scratch("absurd-external");
        std::fs::write(dir.join("w.bin"), [0u8; 64]).unwrap();
        let mut t = float_init(&dims);
        t.data_location = Some(1);
        t.external_data = vec![StringStringEntryProto { key: Some("location".into()), value: Some("w.bin".into()) }];
        let (msg, peak) = import_err(&model(init_graph(t)), Some(&dir));
        assert!(msg.contains("past the end of the file (64 bytes)"), "{msg}");
        assert!(peak < SMALL, "allocated {peak} bytes");
    }

    /// `ConstantOfShape` with constant `[n, m]` (f32 zeros), `k` times.
    fn constant_of_shape(n: i64, m: i64, k: usize) -> Vec<u8> {
        let shape = TensorProto {
            name: Some("s".into()),
            data_type: Some(7),
            dims: vec![2],
            raw_data: Some([n.to_le_bytes(), m.to_le_bytes()].concat()),
            ..Default::default()
        };
        let g = GraphProto {
            name: Some("g".into()),
            node: (0..k).map(|i| node("ConstantOfShape", &["s"], &[&format!("y{i}")])).collect(),
            initializer: vec![shape],
            output: (0..k).map(|i| vi(&format!("y{i}"), &[n, m])).collect(),
            ..Default::default()
        };
        model(g)
    }

    #[test]
    fn onnx_constants_built_at_import_are_capped() {
        // 2^40 elements: refused before anything is built.
        let (msg, peak) = import_err(&constant_of_shape(1 << 20, 1 << 20, 1), None);
        assert!(msg.contains("shape [1048576, 1048576] is too large (over 1 GiB)"), "{msg}");
        assert!(peak < SMALL, "allocated {peak} bytes");
    }

    /// `k` chained `Pad`s (edge mode, one element on every side) of a
    /// constant f32[4, 4]: each is folded, and every intermediate constant
    /// stays in the graph.
    fn pad_chain(k: usize) -> Vec<u8> {
        let x = TensorProto {
            name: Some("x".into()),
            data_type: Some(1),
            dims: vec![4, 4],
            raw_data: Some(vec![0; 64]),
            ..Default::default()
        };
        let pads = TensorProto {
            name: Some("pads".into()),
            data_type: Some(7),
            dims: vec![4],
            raw_data: Some([1i64; 4].iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..Default::default()
        };
        let name = |i: usize| if i == 0 { "x".to_string() } else { format!("p{i}") };
        let nodes = (1..=k)
            .map(|i| {
                let mut n = node("Pad", &[&name(i - 1), "pads"], &[&name(i)]);
                n.attribute.push(AttributeProto {
                    name: Some("mode".into()),
                    r#type: Some(3),
                    s: Some(b"edge".to_vec()),
                    ..Default::default()
                });
                n
            })
            .collect();
        let side = 4 + 2 * k as i64;
        let g = GraphProto {
            name: Some("g".into()),
            node: nodes,
            initializer: vec![x, pads],
            output: vec![vi(&name(k), &[side, side])],
            ..Default::default()
        };
        model(g)
    }

    /// Constants built or folded at import have a total budget
    /// (`Importer::may_fold`): six `ConstantOfShape [16384, 8192]` in a
    /// 467-byte model (3 GiB if built) and 500 chained `Pad`s of a constant
    /// (~700 MB if all folded; the fuzzer's finding) import quickly in
    /// little memory, leaving the over-budget nodes to run at inference.
    #[test]
    fn onnx_constants_built_at_import_have_a_total_cap() {
        let mut bad = Vec::new();
        for (what, bytes) in [("6 ConstantOfShape", constant_of_shape(16384, 8192, 6)), ("500 Pads", pad_chain(500))] {
            let live0 = fuzz::live_heap();
            fuzz::reset_peak_heap();
            let t0 = Instant::now();
            let r = nanoc::onnx::import_onnx_bytes(&bytes, "many.onnx", None, &ImportOptions::default());
            let (held, took) = (fuzz::peak_heap(live0), t0.elapsed());
            // Memory is asserted; the time is printed (tests never fail on timing).
            println!("{what}: held {} MiB, took {took:?}", held >> 20);
            if let Err(e) = r {
                bad.push(format!("{what}: {e}"));
            }
            if held >= 256 << 20 {
                bad.push(format!("{what}: a {}-byte model made the importer hold {} MiB", bytes.len(), held >> 20));
            }
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    #[test]
    fn onnx_length_prefix_past_the_end_is_an_error() {
        // ModelProto.graph (field 7, length-delimited) claiming 2^31 - 1 bytes.
        let bytes = [0x3a, 0xff, 0xff, 0xff, 0xff, 0x07, 0x0a, 0x00];
        let (msg, peak) = import_err(&bytes, None);
        assert!(msg.contains("truncated or corrupt protobuf"), "{msg}");
        assert!(peak < SMALL, "allocated {peak} bytes");
        // A packed repeated field (TensorProto.dims) claiming 2^62 bytes.
        let mut b = model(init_graph(float_init(&[1])));
        b.extend_from_slice(&[0x3a, 0x0c, 0x2a, 0x0a, 0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
        let (msg, peak) = import_err(&b, None);
        assert!(msg.contains("truncated or corrupt protobuf"), "{msg}");
        assert!(peak < SMALL, "allocated {peak} bytes");
    }

    #[test]
    fn onnx_cycles_are_errors() {
        // A node consuming its own output.
        let g = GraphProto {
            node: vec![node("Relu", &["y"], &["y"])],
            input: vec![vi("x", &[2])],
            output: vec![vi("y", &[2])],
            ..Default::default()
        };
        let (msg, _) = import_err(&model(g), None);
        assert!(msg.contains("`y`"), "{msg}");
        // Two nodes feeding each other.
        let g = GraphProto {
            node: vec![node("Add", &["x", "b"], &["a"]), node("Relu", &["a"], &["b"])],
            input: vec![vi("x", &[2])],
            output: vec![vi("b", &[2])],
            ..Default::default()
        };
        let (msg, _) = import_err(&model(g), None);
        assert!(msg.contains("`b`"), "{msg}");
    }

    #[test]
    fn ngraph_cycles_are_errors() {
        let own =
            "graph \"g\" {\n  %0 = input \"x\" : f32[2]\n  %1 = add(%0, %1) \"y\" : f32[2]\n  output \"y\" = %1\n}\n";
        let e = nanoc_ir::text::parse(own, "c.ngraph", None).unwrap_err().to_string();
        assert!(e.contains("c.ngraph:3:") && e.contains("value `%1` is used before its definition"), "{e}");
        let two = "graph \"g\" {\n  %0 = input \"x\" : f32[2]\n  %1 = relu(%2) \"a\" : f32[2]\n  %2 = relu(%1) \"b\" : f32[2]\n  output \"y\" = %2\n}\n";
        let e = nanoc_ir::text::parse(two, "c.ngraph", None).unwrap_err().to_string();
        assert!(e.contains("value `%2` is used before its definition"), "{e}");
        // A cycle made through the graph API is reported by the verifier.
        let mut g = nanoc_ir::Graph::new("g");
        let ty = nanoc_ir::TensorType::new(nanoc_ir::DType::F32, vec![2]);
        let x = g.add_input("x", ty.clone());
        let a = g.add_node("a", nanoc_ir::Op::Unary(nanoc_ir::UnaryOp::Relu), &[x], ty.clone());
        let b = g.add_node("b", nanoc_ir::Op::Unary(nanoc_ir::UnaryOp::Relu), &[a], ty);
        g.replace_uses(x, b);
        g.add_output("y", b);
        let e = nanoc_ir::verify::verify(&g).unwrap_err().to_string();
        assert!(e.contains("has a cycle through node"), "{e}");
    }

    /// Runs `f` on a thread with a small stack: passing proves the code
    /// is not recursing per node.
    fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new().stack_size(512 << 10).spawn(f).unwrap().join().unwrap()
    }

    #[test]
    fn deep_chains_do_not_recurse() {
        const N: usize = 100_000;
        let t0 = Instant::now();
        let (nodes, printed_len) = on_small_stack(|| {
            let mut s = String::from("graph \"deep\" {\n  %0 = input \"x\" : f32[4]\n");
            for i in 1..=N {
                s.push_str(&format!("  %{i} = relu(%{}) \"n{i}\" : f32[4]\n", i - 1));
            }
            s.push_str(&format!("  output \"y\" = %{N}\n}}\n"));
            let g = nanoc_ir::text::parse(&s, "deep.ngraph", None).unwrap();
            nanoc_ir::verify::verify(&g).unwrap();
            let printed = nanoc_ir::text::print(&g);
            let back = nanoc_ir::text::parse(&printed, "deep.ngraph", None).unwrap();
            (back.node_count(), printed.len())
        });
        assert_eq!(nodes, N + 1);
        assert!(printed_len > N);
        let ngraph_secs = t0.elapsed().as_secs_f64();

        // The same chain as an ONNX model.
        let t0 = Instant::now();
        let nodes = on_small_stack(|| {
            let mut g = GraphProto {
                name: Some("deep".into()),
                input: vec![vi("v0", &[4])],
                output: vec![vi(&format!("v{N}"), &[4])],
                ..Default::default()
            };
            for i in 1..=N {
                g.node.push(node("Relu", &[&format!("v{}", i - 1)], &[&format!("v{i}")]));
            }
            let g = nanoc::onnx::import_onnx_bytes(&model(g), "deep.onnx", None, &ImportOptions::default()).unwrap();
            g.node_count()
        });
        assert_eq!(nodes, N + 1);
        eprintln!(
            "100k-node chain: .ngraph parse+verify+print+parse {ngraph_secs:.2} s, ONNX import {:.2} s",
            t0.elapsed().as_secs_f64()
        );
    }

    /// Nested subgraph attributes (`If` → then_branch → `If` → ...), written
    /// by hand (prost's encoder would recurse as deep as the nesting).
    fn nested_subgraphs(depth: usize) -> Vec<u8> {
        fn field(out: &mut Vec<u8>, tag: u32, payload: &[u8]) {
            varint(out, u64::from(tag << 3 | 2));
            varint(out, payload.len() as u64);
            out.extend_from_slice(payload);
        }
        fn varint(out: &mut Vec<u8>, mut v: u64) {
            while v >= 0x80 {
                out.push(v as u8 | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        }
        let mut graph = Vec::new(); // GraphProto
        for _ in 0..depth {
            let mut attr = Vec::new(); // AttributeProto { name, g, type = GRAPH }
            field(&mut attr, 1, b"then_branch");
            field(&mut attr, 6, &graph);
            attr.extend_from_slice(&[0xa0, 0x01, 0x05]);
            let mut node = Vec::new(); // NodeProto { op_type: If, attribute }
            field(&mut node, 4, b"If");
            field(&mut node, 5, &attr);
            graph.clear();
            field(&mut graph, 1, &node);
        }
        let mut m = vec![0x08, 0x08]; // ir_version 8
        field(&mut m, 8, &[0x10, 0x11]); // opset_import { version 17 }
        field(&mut m, 7, &graph);
        m
    }

    #[test]
    fn deeply_nested_subgraphs_are_errors() {
        let bytes = nested_subgraphs(5_000);
        let msg = on_small_stack(move || {
            match nanoc::onnx::import_onnx_bytes(&bytes, "nested.onnx", None, &ImportOptions::default()) {
                Ok(_) => panic!("expected an error"),
                Err(e) => e.to_string(),
            }
        });
        assert!(msg.contains("truncated or corrupt protobuf") && msg.contains("recursion limit"), "{msg}");
    }

    #[test]
    fn huge_attribute_lists_are_handled() {
        // Transpose with a million-entry perm.
        let mut n = node("Transpose", &["x"], &["y"]);
        n.attribute.push(AttributeProto {
            name: Some("perm".into()),
            r#type: Some(7),
            ints: (0..1_000_000).collect(),
            ..Default::default()
        });
        let g = GraphProto {
            node: vec![n],
            input: vec![vi("x", &[2, 3])],
            output: vec![vi("y", &[3, 2])],
            ..Default::default()
        };
        let t0 = Instant::now();
        let (msg, peak) = import_err(&model(g), None);
        assert!(msg.contains("perm"), "{msg}");
        assert!(peak < SMALL, "allocated {peak} bytes");
        eprintln!("took {:?} (printed, not asserted: tests never fail on timing)", t0.elapsed());

        // A node with 100k attributes.
        let mut n = node("Relu", &["x"], &["y"]);
        n.attribute = (0..100_000)
            .map(|k| AttributeProto { name: Some(format!("a{k}")), r#type: Some(2), i: Some(k), ..Default::default() })
            .collect();
        let g = GraphProto {
            node: vec![n],
            input: vec![vi("x", &[2, 3])],
            output: vec![vi("y", &[2, 3])],
            ..Default::default()
        };
        let t0 = Instant::now();
        let r = nanoc::onnx::import_onnx_bytes(&model(g), "attrs.onnx", None, &ImportOptions::default());
        eprintln!("100k attributes: {:?} in {:?}", r.as_ref().map(|_| ()).map_err(|e| e.to_string()), t0.elapsed());
        eprintln!("took {:?} (printed, not asserted: tests never fail on timing)", t0.elapsed());

        // .ngraph: a million-entry perm.
        let perm: Vec<String> = (0..1_000_000).map(|i| i.to_string()).collect();
        let src = format!(
            "graph \"g\" {{\n  %0 = input \"x\" : f32[2,3]\n  %1 = transpose{{perm=[{}]}}(%0) \"t\" : f32[3,2]\n  output \"y\" = %1\n}}\n",
            perm.join(", ")
        );
        let t0 = Instant::now();
        let e = nanoc_ir::text::parse(&src, "perm.ngraph", None).unwrap_err().to_string();
        assert!(e.contains("perm.ngraph:3:") && e.contains("transpose"), "{e}");
        eprintln!("took {:?} (printed, not asserted: tests never fail on timing)", t0.elapsed());
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nanoc-fuzz-limits-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn st_file(dir: &std::path::Path, name: &str, header_len: u64, header: &str, data: usize) -> PathBuf {
        let mut v = header_len.to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend(std::iter::repeat_n(0u8, data));
        let p = dir.join(name);
        std::fs::write(&p, v).unwrap();
        p
    }

    #[test]
    fn safetensors_claims_past_the_end_are_errors() {
        let dir = scratch("st");
        let cases = [
            // A tensor whose data runs past the end of the file.
            (
                r#"{"w":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4000000000000]}}"#,
                None,
                16,
                "not fully covered",
            ),
            // Offsets that do not match the shape.
            (
                r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,4000000000000]}}"#,
                None,
                16,
                "invalid shape, data type, or offset",
            ),
            // A shape whose element count overflows.
            (
                r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}}"#,
                None,
                16,
                "valid safetensors",
            ),
            // A header length far past the end of the file.
            ("{}", Some(1u64 << 40), 0, "header too large"),
            ("{}", Some(1 << 20), 0, "invalid header length"),
        ];
        for (i, (header, len, data, want)) in cases.into_iter().enumerate() {
            let p = st_file(&dir, &format!("{i}.safetensors"), len.unwrap_or(header.len() as u64), header, data);
            reset_largest_alloc();
            let e = Weights::load_safetensors(&p).unwrap_err().to_string();
            let peak = largest_alloc();
            assert!(e.starts_with(&p.display().to_string()) && e.contains(want), "case {i}: {e}");
            assert!(peak < SMALL, "case {i}: allocated {peak} bytes");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn seed_bundle() -> Vec<u8> {
        let files = fuzz::input_files(&fuzz::corpus_dir("bundle"));
        let p = files.iter().find(|p| p.to_string_lossy().contains("mlp")).unwrap_or(&files[0]);
        std::fs::read(p).unwrap()
    }

    fn section(b: &[u8], kind: u32) -> (usize, usize) {
        let count = u32::from_le_bytes(b[28..32].try_into().unwrap()) as usize;
        for i in 0..count {
            let at = 64 + 24 * i;
            if u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) == kind {
                return (at, u64::from_le_bytes(b[at + 8..at + 16].try_into().unwrap()) as usize);
            }
        }
        panic!("no section {kind}")
    }

    fn bundle_err(mut b: Vec<u8>) -> (String, usize) {
        update_checksum(&mut b);
        reset_largest_alloc();
        let e = match nanoc_runtime::Model::from_bytes(&b) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        };
        let peak = largest_alloc();
        assert_eq!(nanoc_runtime::decode_bundle(&b).unwrap_err().to_string(), e);
        (e, peak)
    }

    #[test]
    fn bundle_claims_are_checked_before_allocating() {
        let good = seed_bundle();
        let limit = good.len() * 4 + SMALL;
        let put = |b: &mut Vec<u8>, at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        let mut cases: Vec<(Vec<u8>, &str)> = Vec::new();
        // A section claiming 2^60 bytes.
        let mut b = good.clone();
        let (entry, _) = section(&b, 5);
        put(&mut b, entry + 16, &(1u64 << 60).to_le_bytes());
        cases.push((b, "extend past the end of the file"));
        // A section table claiming 2^32 - 1 entries.
        let mut b = good.clone();
        put(&mut b, 28, &u32::MAX.to_le_bytes());
        cases.push((b, "section_count 4294967295 needs a section table"));
        // PLAN: an arena of 2^40 bytes, 2^32 - 1 kernels.
        let (_, plan) = section(&good, 3);
        let mut b = good.clone();
        put(&mut b, plan, &(1u64 << 40).to_le_bytes());
        cases.push((b, "is implausible"));
        let mut b = good.clone();
        put(&mut b, plan + 8, &u32::MAX.to_le_bytes());
        cases.push((b, "kernel count 4294967295 needs at least"));
        // META: a target name of 2^32 - 1 bytes.
        let (_, meta) = section(&good, 1);
        let mut b = good.clone();
        put(&mut b, meta, &u32::MAX.to_le_bytes());
        cases.push((b, "expected 4294967295 bytes for the target name"));
        // SIGNATURE: 2^32 - 1 inputs; the first input with 2^32 - 1 dims.
        let (_, sig) = section(&good, 2);
        let mut b = good.clone();
        put(&mut b, sig, &u32::MAX.to_le_bytes());
        cases.push((b, "input count 4294967295 needs at least"));
        let name_len = u32::from_le_bytes(good[sig + 4..sig + 8].try_into().unwrap()) as usize;
        let mut b = good.clone();
        put(&mut b, sig + 8 + name_len + 1, &u32::MAX.to_le_bytes());
        cases.push((b, "dimension count 4294967295 needs at least"));
        // The header claiming a longer file.
        let mut b = good.clone();
        put(&mut b, 16, &(1u64 << 50).to_le_bytes());
        cases.push((b, "truncated"));
        for (i, (b, want)) in cases.into_iter().enumerate() {
            let (e, peak) = bundle_err(b);
            assert!(e.contains(want), "case {i}: {e}");
            assert!(peak < limit, "case {i}: allocated {peak} bytes");
        }
    }

    #[test]
    fn toml_deep_nesting_and_huge_values_are_errors() {
        let text = std::fs::read_to_string(nanoc_targets::targets_dir().join("cpu-x86_64.toml")).unwrap();
        let deep = format!("{}x = {}{}\n", text, "[".repeat(100_000), "]".repeat(100_000));
        let e = on_small_stack(move || nanoc_targets::Target::parse(&deep, "deep").unwrap_err().to_string());
        assert!(e.starts_with("deep: ") && e.contains("max recursion depth"), "{e}");
        let huge = text.replace("cores = 2", "cores = 4294967296");
        let e = nanoc_targets::Target::parse(&huge, "huge").unwrap_err().to_string();
        assert!(e.contains("cores"), "{e}");
    }
}
