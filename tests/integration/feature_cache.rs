//! A frozen vision encoder shared by variants runs once per item when their models share a
//! FeatureCache, and the answers do not change.

use std::path::PathBuf;

use lynx_zoo::model::FeatureCache;
use lynx_zoo::{GenerationOptions, Media, Request, RuntimeOptions, Zoo};

#[test]
fn shared_encoder_features_are_reused_and_answers_unchanged() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let zoo = Zoo::open(root.join("tests/fixtures/runtime/zoo")).unwrap();
    let (a, b) = ("tiny", "tiny-xattn");
    let vision_sha = |n: &str| zoo.manifest(n).unwrap().graphs.vision.unwrap().file.sha256;
    assert_eq!(vision_sha(a), vision_sha(b), "the fixture variants should share their encoder");

    let opts = RuntimeOptions::new();
    let g = GenerationOptions::greedy(6);
    let requests = vec![
        Request::new(Media::image(root.join("data/test/images/000000.png")), "What shape?"),
        Request::new(Media::video(root.join("data/test/videos/000008")), "Which way?"),
    ];
    let plain: Vec<Vec<String>> = [a, b]
        .iter()
        .map(|n| zoo.load(n, &opts).unwrap().ask_batch(&requests, &g).unwrap().into_iter().map(|x| x.text).collect())
        .collect();

    let cache = FeatureCache::new();
    let mut ma = zoo.load(a, &opts).unwrap().with_feature_cache(cache.clone());
    let got_a: Vec<String> = ma.ask_batch(&requests, &g).unwrap().into_iter().map(|x| x.text).collect();
    assert_eq!(cache.stats(), (0, 2));
    let mut mb = zoo.load(b, &opts).unwrap().with_feature_cache(cache.clone());
    let got_b: Vec<String> = mb.ask_batch(&requests, &g).unwrap().into_iter().map(|x| x.text).collect();
    assert_eq!(cache.stats(), (2, 2), "the second variant should reuse both samples' features");
    // A mixed batch: one cached sample, one new.
    let mixed =
        vec![requests[0].clone(), Request::new(Media::image(root.join("data/test/images/000003.png")), "How many?")];
    let got_mixed: Vec<String> = mb.ask_batch(&mixed, &g).unwrap().into_iter().map(|x| x.text).collect();
    assert_eq!(cache.stats(), (3, 3));
    assert_eq!(got_a, plain[0]);
    assert_eq!(got_b, plain[1]);
    let fresh: Vec<String> =
        zoo.load(b, &opts).unwrap().ask_batch(&mixed, &g).unwrap().into_iter().map(|x| x.text).collect();
    assert_eq!(got_mixed, fresh);
}
