//! Structured pruning end to end on tiny Llamas: keeping everything is the
//! identity, the smaller model saves and loads back with the same logits
//! and the computed parameter count, the reported calibration errors are
//! what the pruned model really does, a GGUF source (interleaved Q/K rows)
//! comes out as a correct Hugging Face folder, and OSSCAR beats the
//! baselines at the same size.

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use caracal_compress::prune::{
    calibrate, prune_structured, prune_with_calibration, save_pruned, CalibOptions, Method,
    PruneOptions, Target, TokenizerOut,
};
use caracal_models::train::{grammar_corpus, TokenData, TrainOptions, Trainer};
use caracal_models::{gguf, hf, GgufWeights, Llama, LlamaConfig, Tap, Tokenizer};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("caracal-prune-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Calibration text as byte tokens (the models have vocabulary 256).
fn calib_tokens(n: usize) -> Vec<u32> {
    Tokenizer::Bytes.encode(&grammar_corpus(3, n)).unwrap()
}

fn opts(method: Method, ffn_keep: f64, kv: Option<usize>) -> PruneOptions {
    PruneOptions {
        method,
        ffn_keep,
        kv_groups_keep: kv,
        calib: CalibOptions {
            samples: 16,
            seq_len: 32,
            batch_size: 8,
        },
        ..PruneOptions::default()
    }
}

fn ids(dev: &Device) -> Tensor {
    Tensor::new(
        &[
            [3u32, 100, 7, 255, 0, 42, 42, 9],
            [65, 66, 67, 32, 116, 104, 101, 32],
        ],
        dev,
    )
    .unwrap()
}

/// Parameters of a loaded model, counted tensor by tensor.
fn count(m: &Llama) -> usize {
    m.named_vars().iter().map(|(_, v)| v.elem_count()).sum()
}

/// Keeping every neuron and every KV-head group reproduces the logits bit
/// for bit, for every method.
#[test]
fn keeping_everything_is_the_identity() {
    let dev = Device::Cpu;
    let cfg = LlamaConfig::tiny(256, 32, 2);
    let m = Llama::random(&cfg, 1, DType::F32, &dev).unwrap();
    let want = m.logits(&ids(&dev)).unwrap();
    for method in [Method::Osscar, Method::Minitron, Method::Magnitude] {
        let p = prune_structured(&m, &calib_tokens(2000), &opts(method, 1.0, None)).unwrap();
        assert_eq!(p.model.config(), &cfg);
        assert_eq!(max_abs(&p.model.logits(&ids(&dev)).unwrap(), &want), 0.0);
        assert!(p.report.layers.iter().all(|l| l.down_proj.rel_error == 0.0));
        assert_eq!(p.report.before, p.report.after);
    }
}

/// FFN 50 % and one of two KV-head groups: the smaller config, a folder
/// that `hf::load_dir` and `load_model` read back with identical logits,
/// and the parameter count written out by hand.
#[test]
fn the_smaller_model_saves_loads_and_counts() {
    let dev = Device::Cpu;
    let cfg = LlamaConfig::tiny(256, 32, 2);
    assert_eq!((cfg.intermediate_size, cfg.head_dim), (80, 8));
    let m = Llama::random(&cfg, 2, DType::F32, &dev).unwrap();
    let p = prune_structured(&m, &calib_tokens(2000), &opts(Method::Osscar, 0.5, Some(1))).unwrap();
    let c = p.model.config();
    assert_eq!(
        (
            c.intermediate_size,
            c.num_attention_heads,
            c.num_key_value_heads,
            c.head_dim
        ),
        (40, 2, 1, 8)
    );
    // embed + layers·(q 16×32 + k, v 8×32 + o 32×16 + gate, up, down 3·40×32 + 2 norms) + final norm.
    let want = 256 * 32 + 2 * (16 * 32 + 2 * 8 * 32 + 32 * 16 + 3 * 40 * 32 + 2 * 32) + 32;
    assert_eq!(c.n_params(), want);
    assert_eq!(count(&p.model), want);
    assert_eq!(p.report.after.params, want);
    assert_eq!(p.report.before.params, count(&m));

    let dir = tmp("save");
    let how = save_pruned(&p.model, &Tokenizer::Bytes, &dir, &dir.join("out")).unwrap();
    assert_eq!(how, TokenizerOut::Bytes);
    let back = hf::load_dir(dir.join("out"), DType::F32, &dev).unwrap();
    assert_eq!(back.config(), c);
    assert_eq!(count(&back), want);
    let a = p.model.logits(&ids(&dev)).unwrap();
    assert_eq!(max_abs(&back.logits(&ids(&dev)).unwrap(), &a), 0.0);
    let text = std::fs::read_to_string(dir.join("out/config.json")).unwrap();
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(j["intermediate_size"], 40);
    assert_eq!(j["num_attention_heads"], 2);
    assert_eq!(j["num_key_value_heads"], 1);
    assert_eq!(j["head_dim"], 8);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The reported relative errors are what the pruned model does: layer 0's
/// `down_proj` (resp. `o_proj`) output on the calibration windows, dense
/// vs pruned. Pruning only FFN neurons (resp. only heads) leaves the
/// kept inputs of that layer-0 matrix unchanged, so the measured error is
/// exactly the reported one. Tolerance: 1e-3 relative (f32 activations,
/// f64 statistics).
#[test]
fn reported_errors_are_what_the_pruned_layers_do() {
    let dev = Device::Cpu;
    let cfg = LlamaConfig::tiny(256, 32, 2);
    let m = Llama::random(&cfg, 4, DType::F32, &dev).unwrap();
    let toks = calib_tokens(2000);
    let o = opts(Method::Osscar, 0.5, None);
    let starts: Vec<usize> =
        caracal_compress::prune::calib::window_starts(toks.len(), &o.calib).unwrap();
    let batch: Vec<u32> = starts
        .iter()
        .flat_map(|&s| toks[s..s + 32].to_vec())
        .collect();
    let batch = Tensor::from_vec(batch, (starts.len(), 32), &dev).unwrap();
    let out = |model: &Llama, tap: Tap, w: &str| -> Tensor {
        let mut x = None;
        model
            .forward_hidden_with_taps(&batch, &mut |l, t, y| {
                if l == 0 && t == tap {
                    x = Some(y.clone());
                }
                Ok(())
            })
            .unwrap();
        let wt = model
            .named_vars()
            .into_iter()
            .find(|(n, _)| n == w)
            .unwrap()
            .1;
        x.unwrap()
            .broadcast_matmul(&wt.as_tensor().t().unwrap())
            .unwrap()
    };
    for (method, ffn, kv, tap, w) in [
        (
            Method::Osscar,
            0.5,
            None,
            Tap::DownProjInput,
            "model.layers.0.mlp.down_proj.weight",
        ),
        (
            Method::Magnitude,
            0.5,
            None,
            Tap::DownProjInput,
            "model.layers.0.mlp.down_proj.weight",
        ),
        (
            Method::Osscar,
            1.0,
            Some(1),
            Tap::OProjInput,
            "model.layers.0.self_attn.o_proj.weight",
        ),
        (
            Method::Minitron,
            1.0,
            Some(1),
            Tap::OProjInput,
            "model.layers.0.self_attn.o_proj.weight",
        ),
    ] {
        let p = prune_structured(&m, &toks, &opts(method, ffn, kv)).unwrap();
        let y = out(&m, tap, w);
        let y2 = out(&p.model, tap, w);
        let rel = ((&y2 - &y)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            / y.sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap())
        .sqrt() as f64;
        let l0 = &p.report.layers[0];
        let reported = if tap == Tap::DownProjInput {
            l0.down_proj.rel_error
        } else {
            l0.o_proj.rel_error
        };
        assert!(reported > 0.01, "{method:?}: nothing was cut? {reported}");
        assert!(
            (rel - reported).abs() < 1e-3 * reported,
            "{method:?} {tap:?}: measured {rel} vs reported {reported}"
        );
    }
}

/// llama.cpp's `permute`: rotate-half rows → interleaved rows per head.
fn to_interleaved(w: &Tensor, heads: usize) -> Tensor {
    let (out, inp) = w.dims2().unwrap();
    let d = out / heads;
    w.reshape((heads, 2, d / 2, inp))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape((out, inp))
        .unwrap()
}

/// A model as an F32 GGUF file (interleaved Q/K rows, `llama.*` metadata).
fn write_gguf(m: &Llama, path: &std::path::Path) {
    let c = m.config().clone();
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for (name, v) in m.named_vars() {
        let mut t = v.as_tensor().clone();
        if name.ends_with("q_proj.weight") {
            t = to_interleaved(&t, c.num_attention_heads);
        } else if name.ends_with("k_proj.weight") {
            t = to_interleaved(&t, c.num_key_value_heads);
        }
        tensors.push((
            gguf::gguf_name(&name),
            QTensor::quantize(&t, GgmlDType::F32).unwrap(),
        ));
    }
    let u = |x: usize| Value::U32(x as u32);
    let md: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("llama.embedding_length", u(c.hidden_size)),
        ("llama.feed_forward_length", u(c.intermediate_size)),
        ("llama.block_count", u(c.num_hidden_layers)),
        ("llama.attention.head_count", u(c.num_attention_heads)),
        ("llama.attention.head_count_kv", u(c.num_key_value_heads)),
        (
            "llama.attention.layer_norm_rms_epsilon",
            Value::F32(c.rms_norm_eps as f32),
        ),
        ("llama.rope.freq_base", Value::F32(c.rope_theta as f32)),
    ];
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &md_refs, &t_refs).unwrap();
}

/// A GGUF source (Q/K rows interleaved) prunes to a Hugging Face folder in
/// the rotate-half layout: kept whole, its logits match the GGUF model's;
/// pruned, the saved folder matches the in-memory pruned model, and the
/// same pruning of the safetensors twin gives the same logits.
/// Tolerance: 1e-4 absolute (f32; the two layouts round differently).
#[test]
fn a_gguf_source_becomes_a_correct_hf_folder() {
    let dev = Device::Cpu;
    let cfg = LlamaConfig::tiny(256, 32, 2);
    let twin = Llama::random(&cfg, 5, DType::F32, &dev).unwrap();
    let dir = tmp("gguf");
    let path = dir.join("m.gguf");
    write_gguf(&twin, &path);
    let (m, tok) = gguf::load(&path, GgufWeights::Dequantized, &dev).unwrap();
    assert!(m.qk_interleaved());
    let want = m.logits(&ids(&dev)).unwrap();
    let toks = calib_tokens(2000);
    let p = prune_structured(&m, &toks, &opts(Method::Osscar, 1.0, None)).unwrap();
    save_pruned(&p.model, &tok, &path, &dir.join("all")).unwrap();
    let back = hf::load_dir(dir.join("all"), DType::F32, &dev).unwrap();
    assert!(max_abs(&back.logits(&ids(&dev)).unwrap(), &want) < 1e-4);

    let p = prune_structured(&m, &toks, &opts(Method::Osscar, 0.5, Some(1))).unwrap();
    save_pruned(&p.model, &tok, &path, &dir.join("half")).unwrap();
    let back = hf::load_dir(dir.join("half"), DType::F32, &dev).unwrap();
    let got = back.logits(&ids(&dev)).unwrap();
    assert!(max_abs(&got, &p.model.logits(&ids(&dev)).unwrap()) < 1e-4);
    let p2 = prune_structured(&twin, &toks, &opts(Method::Osscar, 0.5, Some(1))).unwrap();
    assert!(max_abs(&got, &p2.model.logits(&ids(&dev)).unwrap()) < 1e-4);
    std::fs::remove_dir_all(dir).unwrap();
}

/// On a tiny model trained for 60 steps on the grammar corpus, at FFN 50 %
/// and one of two KV-head groups, OSSCAR's calibration reconstruction
/// error is at most Minitron's and magnitude's for every pruned matrix of
/// every layer (all three from the same calibration statistics).
#[test]
fn osscar_beats_minitron_and_magnitude_on_a_trained_model() {
    let dev = Device::Cpu;
    let cfg = LlamaConfig::tiny(256, 32, 2);
    let text = grammar_corpus(11, 40_000);
    let data = TokenData::from_text(&text, &Tokenizer::Bytes, 0.1).unwrap();
    let topts = TrainOptions {
        steps: 60,
        batch_size: 8,
        seq_len: 64,
        warmup: 5,
        eval_every: 0,
        ckpt_every: 0,
        eval_batches: 1,
        ..TrainOptions::default()
    };
    let mut tr = Trainer::new(
        Llama::random(&cfg, 0, DType::F32, &dev).unwrap(),
        topts,
        "bytes",
    )
    .unwrap();
    let before = tr.evaluate(&data.val, 2).unwrap().loss;
    tr.run(&data, None, None, |_, _| {}).unwrap();
    let after = tr.evaluate(&data.val, 2).unwrap().loss;
    assert!(
        after < before - 0.5,
        "training did not learn: {before} → {after}"
    );
    let m = tr.model;

    let o = opts(Method::Osscar, 0.5, Some(1));
    let calib = calibrate(&m, &data.val, &o.calib).unwrap();
    let target = Target::resolve(&cfg, 0.5, Some(1)).unwrap();
    let run = |method| {
        prune_with_calibration(
            &m,
            &calib,
            target,
            &PruneOptions {
                method,
                ..o.clone()
            },
        )
        .unwrap()
        .report
    };
    let (os, mi, ma) = (
        run(Method::Osscar),
        run(Method::Minitron),
        run(Method::Magnitude),
    );
    for l in 0..cfg.num_hidden_layers {
        let (a, b, c) = (&os.layers[l], &mi.layers[l], &ma.layers[l]);
        for (x, y, z, what) in [
            (
                a.down_proj.rel_error,
                b.down_proj.rel_error,
                c.down_proj.rel_error,
                "down_proj",
            ),
            (
                a.o_proj.rel_error,
                b.o_proj.rel_error,
                c.o_proj.rel_error,
                "o_proj",
            ),
        ] {
            assert!(
                x > 0.0 && x <= y && x <= z,
                "layer {l} {what}: osscar {x}, minitron {y}, magnitude {z}"
            );
        }
    }
    assert!(
        os.mean_rel_error_down_proj
            < 0.9 * mi.mean_rel_error_down_proj.min(ma.mean_rel_error_down_proj)
    );
}

/// Bad sizes and short texts are one-sentence errors.
#[test]
fn bad_targets_and_short_text_are_one_sentence_errors() {
    let dev = Device::Cpu;
    let cfg = LlamaConfig::tiny(256, 32, 1);
    let m = Llama::random(&cfg, 0, DType::F32, &dev).unwrap();
    let toks = calib_tokens(2000);
    let err = |o: PruneOptions, t: &[u32]| prune_structured(&m, t, &o).unwrap_err().to_string();
    for (o, want) in [
        (opts(Method::Osscar, 1.5, None), "--ffn-keep is 1.5"),
        (opts(Method::Osscar, 0.0, None), "--ffn-keep is 0"),
        (opts(Method::Osscar, f64::NAN, None), "--ffn-keep is NaN"),
        (opts(Method::Osscar, 0.5, Some(0)), "--kv-groups-keep is 0"),
        (opts(Method::Osscar, 0.5, Some(3)), "only 2 KV-head groups"),
    ] {
        let e = err(o, &toks);
        assert!(e.contains(want), "{e}");
        assert_eq!(e.matches(". ").count(), 0, "more than one sentence: {e}");
    }
    let e = err(opts(Method::Osscar, 0.5, None), &toks[..20]);
    assert!(
        e.contains("20 tokens") && e.contains("fewer than one window"),
        "{e}"
    );
    let mut bad = cfg.clone();
    bad.num_key_value_heads = 3;
    let e = Target::resolve(&bad, 0.5, None).unwrap_err().to_string();
    assert!(e.contains("do not divide"), "{e}");
    assert!(Method::parse("wanda")
        .unwrap_err()
        .to_string()
        .contains("osscar, minitron or magnitude"));
}
