//! The generation loop on real ONNX graphs (the fixture zoo and the shipped one): batches with
//! left padding and, on the shipped zoo's decoders, right padding answer as single questions do;
//! beam search and sampling run over the KV cache, and results record the provider that ran them.

use std::path::PathBuf;

use lynx_zoo::generate::{GenerationOptions, Strategy};
use lynx_zoo::runtime::Spinning;
use lynx_zoo::{ExecutionProvider, Media, Model, Request, RuntimeOptions, Zoo};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runtime")
}

fn load(name: &str) -> Model {
    Zoo::open(fixture().join("zoo")).unwrap().load(name, &RuntimeOptions::new().with_intra_threads(1).unwrap()).unwrap()
}

fn requests() -> Vec<Request> {
    let image = Media::image(fixture().join("media/scene.png"));
    let video = Media::video(fixture().join("media/clip"));
    vec![
        Request::new(image.clone(), "what colour is the block?"),
        Request::new(video, "where does the block move?"),
        Request::new(image.clone(), "how many shapes are there?"),
        Request::new(image, "red?"),
    ]
}

fn singles(model: &mut Model, requests: &[Request], opts: &GenerationOptions) -> Vec<Vec<u32>> {
    requests.iter().map(|r| model.ask(&r.media, &r.question, opts).unwrap().tokens).collect()
}

#[test]
fn batches_with_left_padding_answer_as_single_questions() {
    for name in ["tiny", "tiny-xattn", "tiny-blind"] {
        let mut model = load(name);
        let reqs = requests();
        for opts in [GenerationOptions::greedy(8), GenerationOptions::greedy(8).with_beams(3).unwrap()] {
            let one: Vec<Vec<u32>> = singles(&mut model, &reqs, &opts);
            let batch = model.ask_batch(&reqs, &opts).unwrap();
            let got: Vec<Vec<u32>> = batch.iter().map(|a| a.tokens.clone()).collect();
            assert_eq!(got, one, "{name}, {:?}: batch differs from single questions", opts.strategy);
            assert!(batch.iter().all(|a| a.provider == ExecutionProvider::Cpu));
            assert!(one.iter().any(|t| !t.is_empty()), "{name}: every answer is empty");
        }
    }
}

#[test]
fn requests_encoded_ahead_answer_as_asked_and_count_their_encoding() {
    let mut model = load("tiny");
    let mut other = load("tiny-xattn");
    let opts = GenerationOptions::greedy(8);
    let plain = requests();
    let ahead: Vec<Request> =
        plain.iter().map(|r| model.request(r.media.clone(), r.question.clone()).unwrap()).collect();
    let tokens = |answers: Vec<lynx_zoo::Answer>| answers.into_iter().map(|a| a.tokens).collect::<Vec<_>>();
    for batch in [1, 4] {
        for (p, a) in plain.chunks(batch).zip(ahead.chunks(batch)) {
            let answers = model.ask_batch(a, &opts).unwrap();
            for t in answers.iter().map(|a| &a.timings) {
                assert!(t.tokenize > std::time::Duration::ZERO && t.total >= t.tokenize + t.prefill, "{t:?}");
            }
            assert_eq!(tokens(answers), tokens(model.ask_batch(p, &opts).unwrap()), "batch of {batch}");
            // encoded by another model: that one encodes the question itself
            assert_eq!(tokens(other.ask_batch(a, &opts).unwrap()), tokens(other.ask_batch(p, &opts).unwrap()));
        }
    }
    let image = Media::image(fixture().join("media/scene.png"));
    let err = model.request(image, "  ").unwrap_err().to_string();
    assert!(err.contains("non-empty question"), "{err}");
}

#[test]
fn prepared_pixels_and_reused_cache_buffers_answer_as_a_fresh_model() {
    // The shipped zoo's decoders are GroupQueryAttention over shared buffers, which a model keeps
    // from one generation to the next (stale values included) and rebinds after the beam expansion.
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let zoo = Zoo::open(&repo).unwrap();
    let opts = RuntimeOptions::new().with_intra_threads(1).unwrap();
    let image = Media::image(repo.join("data/test/images/000000.png"));
    let video = Media::video(repo.join("data/test/videos/000008"));
    let asks = [
        (image.clone(), "What shape is the red object?"),
        (video, "Where does the object move? Answer in one word."),
        (image.clone(), "How many objects are there?"),
        (image, "What shape is the red object?"),
    ];
    let greedy = GenerationOptions::greedy(12);
    let beams = GenerationOptions::greedy(12).with_beams(3).unwrap();
    let mut warm = zoo.load("lynx", &opts).unwrap();
    for (media, question) in &asks {
        for o in [&greedy, &beams] {
            let mut fresh = zoo.load("lynx", &opts).unwrap();
            let want = fresh.ask(media, question, o).unwrap().tokens;
            let mut request = warm.request(media.clone(), *question).unwrap();
            warm.prepare_pixels(&mut request).unwrap();
            let got = warm.ask_batch(std::slice::from_ref(&request), o).unwrap().remove(0);
            assert_eq!(got.tokens, want, "{question}, {} beam(s)", o.beams);
            assert!(got.timings.preprocess > std::time::Duration::ZERO && got.timings.total >= got.timings.preprocess);
        }
    }
}

#[test]
fn right_padded_batches_of_the_shipped_zoo_answer_as_single_questions() {
    // The shipped decoders (GroupQueryAttention over one K/V buffer, `prompt.padding: right`)
    // take a batch of rows of different lengths in one run per step: each row ends at its own
    // length, and the LM head reads each row's own last position.
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let zoo = Zoo::open(&repo).unwrap();
    let opts = RuntimeOptions::new().with_intra_threads(1).unwrap();
    let image = |i: &str| Media::image(repo.join(format!("data/test/images/{i}.png")));
    let video = |v: &str| Media::video(repo.join(format!("data/test/videos/{v}")));
    let asks = vec![
        Request::new(image("000000"), "What shape is the red object?"),
        Request::new(video("000008"), "Where does the object move?"),
        Request::new(image("000001"), "How many objects are there in this picture? Answer with a number."),
        Request::new(video("000009"), "Which way does it go, left or right, up or down, in this short clip?"),
        Request::new(image("000002"), "Colour?"),
    ];
    // prefix resampler, cross-attention, no picture, learned positions (GPT-2: `position_ids`)
    for name in ["lynx", "lynx-xattn", "lynx-blind", "lynx-gpt2"] {
        let mut model = zoo.load(name, &opts).unwrap();
        assert_eq!(model.manifest().prompt.padding, lynx_zoo::manifest::PaddingSide::Right, "{name}");
        for o in [GenerationOptions::greedy(10), GenerationOptions::greedy(10).with_beams(3).unwrap()] {
            let one = singles(&mut model, &asks, &o);
            let batch = model.ask_batch(&asks, &o).unwrap();
            let got: Vec<Vec<u32>> = batch.iter().map(|a| a.tokens.clone()).collect();
            assert_eq!(got, one, "{name}, {} beam(s): a padded row differs from the question alone", o.beams);
            // the three pictures are one batch and the two videos (five frames each) another,
            // unless blind
            let sizes: Vec<usize> = batch.iter().map(|a| a.timings.batch).collect();
            let want = if name == "lynx-blind" { vec![5; 5] } else { vec![3, 2, 3, 2, 3] };
            assert_eq!(sizes, want, "{name}");
        }
    }
    // The int8 decoder quantises a batch with one scale: it answers one question at a time.
    let mut int8 = zoo.load("lynx-int8", &opts).unwrap();
    assert_eq!(int8.manifest().prompt.padding, lynx_zoo::manifest::PaddingSide::None);
    let greedy = GenerationOptions::greedy(10);
    let batch = int8.ask_batch(&asks, &greedy).unwrap();
    assert!(batch.iter().all(|a| a.timings.batch == 1));
    let got: Vec<Vec<u32>> = batch.into_iter().map(|a| a.tokens).collect();
    assert_eq!(got, singles(&mut int8, &asks, &greedy));
    // ... and so does its prefill: two questions give the logits each gives alone.
    let px = |i: usize| int8.pixels(&asks[i].media).unwrap().unwrap();
    let (p0, p2) = (px(0), px(2));
    let (q0, q2) = (asks[0].question.as_str(), asks[2].question.as_str());
    let two = int8.prefill_logits(&[p0.clone(), p2.clone()], &[q0, q2]).unwrap().last_logits;
    let alone = int8.prefill_logits(&[p2], &[q2]).unwrap().last_logits;
    assert_eq!(two.row(1), alone.row(0));
    assert_eq!(two.row(0), int8.prefill_logits(&[p0], &[q0]).unwrap().last_logits.row(0));
}

#[test]
fn one_beam_is_greedy_and_beams_stay_within_limits() {
    let mut model = load("tiny");
    let r = &requests()[0];
    let greedy = model.ask(&r.media, &r.question, &GenerationOptions::greedy(6)).unwrap();
    let one = model.ask(&r.media, &r.question, &GenerationOptions::greedy(6).with_beams(1).unwrap()).unwrap();
    assert_eq!(greedy.tokens, one.tokens);
    let beam = model.ask(&r.media, &r.question, &GenerationOptions::greedy(6).with_beams(4).unwrap()).unwrap();
    assert!(beam.timings.decode_steps >= 1);
    assert!(beam.tokens.len() <= 6);
}

#[test]
fn manifest_defaults_decode_with_the_manifest_strategy() {
    let mut model = load("tiny");
    let opts = model.default_generation();
    assert_eq!(opts.strategy, Strategy::Greedy);
    assert_eq!(opts.max_new_tokens, 8);
    let r = &requests()[0];
    let answer = model.ask(&r.media, &r.question, &opts).unwrap();
    assert!(answer.tokens.len() <= 8);
    assert!(answer.timings.total >= answer.timings.time_to_first_token());
}

#[test]
fn sampling_is_reproducible_per_seed() {
    let mut model = load("tiny-xattn");
    let r = &requests()[1];
    let hot = GenerationOptions::greedy(8).with_temperature(3.0).unwrap().with_top_k(50).with_top_p(0.95).unwrap();
    let a = model.ask(&r.media, &r.question, &hot.clone().with_seed(11)).unwrap();
    let b = model.ask(&r.media, &r.question, &hot.clone().with_seed(11)).unwrap();
    assert_eq!(a.tokens, b.tokens);
    let others: Vec<Vec<u32>> =
        (0..5).map(|s| model.ask(&r.media, &r.question, &hot.clone().with_seed(100 + s)).unwrap().tokens).collect();
    assert!(others.iter().any(|t| t != &a.tokens), "five other seeds all gave {:?}", a.tokens);
}

#[test]
fn blind_control_ignores_the_media() {
    let mut model = load("tiny-blind");
    let opts = GenerationOptions::greedy(8);
    let with = model.ask(&Media::image(fixture().join("media/scene.png")), "what colour is the block?", &opts).unwrap();
    let without = model.ask(&Media::None, "what colour is the block?", &opts).unwrap();
    assert_eq!(with.tokens, without.tokens);
    assert_eq!(with.timings.vision, std::time::Duration::ZERO);
}

#[test]
fn model_and_zoo_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Model>();
    check::<Zoo>();
    // one model per thread
    let handles: Vec<_> = ["tiny", "tiny-xattn"]
        .into_iter()
        .map(|name| {
            std::thread::spawn(move || {
                let mut m = load(name);
                m.ask(&Media::image(fixture().join("media/scene.png")), "what colour?", &GenerationOptions::greedy(3))
                    .map(|a| a.tokens.len())
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap().unwrap() <= 3);
    }
}

#[test]
fn auto_spinning_is_decided_once_per_variant_at_load() {
    // the fixture's decoders are tiny: `auto` sleeps; what is asked for is kept
    assert_eq!(load("tiny").spinning(), Spinning::Off);
    let zoo = Zoo::open(fixture().join("zoo")).unwrap();
    let on = RuntimeOptions::new().with_intra_threads(1).unwrap().with_spinning(Spinning::On);
    let mut model = zoo.load("tiny", &on).unwrap();
    assert_eq!(model.spinning(), Spinning::On);
    let answer =
        model.ask(&Media::image(fixture().join("media/scene.png")), "what colour?", &GenerationOptions::greedy(3));
    assert!(answer.unwrap().tokens.len() <= 3);
}
